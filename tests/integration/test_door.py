"""Door-permission output: gpiozero with its own mock pin factory, and a serial relay over a pty."""
import os
import pty
import select
import tty

import pytest
from gpiozero.pins.mock import MockFactory

from drivers.door.gpio import GpioDoor
from drivers.door.relay import LCUS1_OFF, LCUS1_ON, SerialRelayDoor


# --- GPIO ---

@pytest.fixture
def factory():
    f = MockFactory()
    yield f
    f.reset()


async def test_gpio_starts_lowered_and_follows_permit(factory):
    door = GpioDoor(17, pin_factory=factory)
    pin = factory.pin(17)
    assert pin.state == 0 and not door.raised
    await door.set_permit(True)
    assert pin.state == 1 and door.raised
    await door.set_permit(False)
    assert pin.state == 0 and not door.raised
    await door.set_permit(True)
    await door.stop()
    assert pin.state == 0
    assert door.health().state == "connected"


async def test_gpio_active_low_relay_board(factory):
    door = GpioDoor(27, active_high=False, pin_factory=factory)
    pin = factory.pin(27)
    assert pin.state == 1                       # active-low: idle high means lowered
    await door.set_permit(True)
    assert pin.state == 0 and door.raised


async def test_gpio_pin_in_use_is_reported_missing_not_raised(factory):
    first = GpioDoor(22, pin_factory=factory)
    second = GpioDoor(22, pin_factory=factory)
    assert second.health().state == "missing" and "22" in second.health().last_error
    await second.set_permit(True)               # no exception, nothing changes
    assert not second.raised and factory.pin(22).state == 0
    await first.stop()
    await second.set_permit(True)               # the pin is free again: recovered
    assert second.raised and second.health().state == "connected"


# --- serial relay ---

class RelayBoard:
    """The board's side of a pty pair: collects what the driver sends."""
    def __init__(self, link):
        self.master, slave = pty.openpty()
        tty.setraw(slave)
        self.slave = slave
        if os.path.lexists(link):
            os.unlink(link)
        os.symlink(os.ttyname(slave), link)

    def received(self, n: int) -> bytes:
        data = b""
        while len(data) < n and select.select([self.master], [], [], 2)[0]:
            data += os.read(self.master, n - len(data))
        return data

    def unplug(self):
        os.close(self.master)
        os.close(self.slave)


async def test_relay_starts_lowered_and_sends_lcus1_commands(tmp_path):
    board = RelayBoard(tmp_path / "ttyRelay")
    door = SerialRelayDoor(str(tmp_path / "ttyRelay"))
    assert board.received(4) == LCUS1_OFF and not door.raised
    await door.set_permit(True)
    assert board.received(4) == bytes.fromhex("A0 01 01 A2") and door.raised
    await door.set_permit(False)
    assert board.received(4) == bytes.fromhex("A0 01 00 A1")
    await door.set_permit(True)
    board.received(4)
    await door.stop()
    assert board.received(4) == LCUS1_OFF and not door.raised
    board.unplug()


async def test_relay_unplugged_then_replugged_recovers(tmp_path):
    link = tmp_path / "ttyRelay"
    board = RelayBoard(link)
    door = SerialRelayDoor(str(link))
    board.received(4)
    board.unplug()
    os.unlink(link)
    await door.set_permit(True)                 # board gone: reported, never raised
    assert door.health().state == "missing" and "ttyRelay" in door.health().last_error
    assert not door.raised
    board = RelayBoard(link)                    # plugged back in
    await door.set_permit(True)
    assert board.received(4) == LCUS1_ON and door.raised and door.health().state == "connected"
    await door.stop()
    board.unplug()


def test_relay_missing_at_start_is_reported(tmp_path):
    door = SerialRelayDoor(str(tmp_path / "ttyUSB9"))
    assert door.health().state == "missing" and "ttyUSB9" in door.health().last_error


def test_relay_commands_must_differ():
    with pytest.raises(ValueError, match="on/off"):
        SerialRelayDoor("/dev/null", on=b"\x01", off=b"\x01")
