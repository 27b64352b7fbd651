"""Enrolment at the branch, driver level (issue 11): two captures, RegModel, a duplicate check by Search,
stored in both modules, read back; what a screen calls next. Both modules are the emulator on ptys."""
import asyncio

import pytest

from agent.devices import enrol_finger
from drivers.events import FingerRead
from drivers.fingerprint.emulator import ModuleEmulator, finger_template
from drivers.fingerprint.protocol import Instruction
from drivers.fingerprint.uart import DuplicateFinger, UartFingerprint

FAST = dict(poll_interval=0.02, reply_timeout=0.3, reconnect_interval=0.05, enrol_timeout=10)


class Reads(list):
    def __call__(self, event):
        if isinstance(event, FingerRead):
            self.append(event)


async def until(predicate, timeout=10.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


@pytest.fixture
async def stations():
    counter_module, door_module = ModuleEmulator(capacity=100), ModuleEmulator(capacity=100)
    counter = UartFingerprint("counter", counter_module.plug(), **FAST)
    door = UartFingerprint("door", door_module.plug(), **FAST)
    reads = Reads()
    existing = {0: finger_template("E1", 512)}
    for driver in (counter, door):
        driver.sync_library(existing)
        await driver.start(reads)
    await until(lambda: counter_module.library == existing and door_module.library == existing)
    yield {"counter": counter, "door": door}, counter_module, door_module, reads
    for driver in (counter, door):
        await driver.stop()
    counter_module.stop()
    door_module.stop()


async def enrol_with(modules, capture_module, slot, first, second=None):
    enrolment = asyncio.create_task(enrol_finger(modules, "counter", slot))
    await until(lambda: modules["counter"].enrolling)
    capture_module.tap(first)
    capture_module.tap(second or first)
    return await enrolment


async def test_an_enrolled_finger_is_in_both_modules_and_verifies_at_the_door(stations):
    modules, counter_module, door_module, reads = stations
    result = await enrol_with(modules, counter_module, 5, "new-escort")
    assert result.template == finger_template("new-escort", 512) and result.not_stored == {}
    assert counter_module.library[5] == door_module.library[5] == result.template
    assert reads == [], "the enrolment captures are not door attempts"
    door_module.tap("new-escort")
    await until(lambda: reads)
    assert reads == [FingerRead("door", "match", 5, 180)]


async def test_a_finger_already_enrolled_is_refused_and_nothing_is_stored(stations):
    modules, counter_module, door_module, _ = stations
    counter_module.add_finger("E1", finger_template("E1", 512))
    with pytest.raises(DuplicateFinger, match="already enrolled in slot 0"):
        await enrol_with(modules, counter_module, 6, "E1")
    assert 6 not in counter_module.library and 6 not in door_module.library


async def test_a_lost_reply_during_enrolment_fails_it_cleanly_and_the_next_one_works(stations):
    modules, counter_module, door_module, _ = stations
    counter_module.inject("lost", Instruction.REG_MODEL)
    with pytest.raises(Exception, match="REG_MODEL"):
        await enrol_with(modules, counter_module, 7, "guard-7")
    assert 7 not in counter_module.library and 7 not in door_module.library
    result = await enrol_with(modules, counter_module, 7, "guard-7")
    assert door_module.library[7] == result.template


async def test_a_door_module_of_another_type_is_named_and_the_enrolment_stands():
    counter_module = ModuleEmulator(capacity=100)
    door_module = ModuleEmulator(capacity=100, template_size=768, lenient_sizes=True)
    door_module.library[1] = finger_template("old", 768)
    counter = UartFingerprint("counter", counter_module.plug(), **FAST)
    door = UartFingerprint("door", door_module.plug(), **FAST)
    try:
        await counter.start(Reads())
        await door.start(Reads())
        await door.load_template(2, finger_template("learn-size", 768))
        modules = {"counter": counter, "door": door}
        result = await enrol_with(modules, counter_module, 3, "guard-3")
        assert counter_module.library[3] == result.template
        assert "holds 768-byte templates" in result.not_stored["door"]
        assert 3 not in door_module.library
    finally:
        await counter.stop()
        await door.stop()
        counter_module.stop()
        door_module.stop()
