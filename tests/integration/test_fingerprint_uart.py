"""The UART fingerprint driver against the module emulator over a real pty."""
import asyncio

import pytest

from drivers.events import DeviceHealth, FingerRead
from drivers.fingerprint.emulated import EmulatedFingerprint
from drivers.fingerprint.emulator import ModuleEmulator, finger_template
from drivers.fingerprint.protocol import EnrolMismatch, FingerprintTimeout, TemplateInvalid
from drivers.fingerprint.uart import (
    ConfigurationError, DuplicateFinger, InvalidSlot, PortUnavailable, UartFingerprint,
)

FAST = dict(poll_interval=0.02, reply_timeout=0.3, reconnect_interval=0.05, enrol_timeout=5)


class Recorder:
    def __init__(self):
        self.events = []

    def __call__(self, event):
        self.events.append(event)

    def reads(self, station=None):
        return [e for e in self.events if isinstance(e, FingerRead) and station in (None, e.station)]

    async def until(self, predicate, timeout=5.0):
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate():
            assert asyncio.get_running_loop().time() < deadline, f"timed out; events: {self.events}"
            await asyncio.sleep(0.01)


@pytest.fixture
def emulator():
    module = ModuleEmulator(capacity=200)
    yield module
    module.stop()


@pytest.fixture
async def started(emulator):
    """A driver polling the emulator, and what it emitted."""
    driver = UartFingerprint("door", emulator.plug(), **FAST)
    recorder = Recorder()
    await driver.start(recorder)
    await recorder.until(lambda: driver.health().state == "connected")
    yield driver, recorder
    await driver.stop()


async def test_search_hit_miss_and_failed_read_become_finger_reads(emulator, started):
    driver, recorder = started
    emulator.library[5] = finger_template("alice", 512)
    emulator.tap("alice")
    emulator.tap("bob")
    emulator.tap("carol", smudged=True)
    await recorder.until(lambda: len(recorder.reads()) == 3)
    assert recorder.reads() == [
        FingerRead("door", "match", slot=5, score=180),
        FingerRead("door", "no_match"),
        FingerRead("door", "read_failed"),
    ]


async def test_a_resting_finger_is_read_once_until_it_is_lifted(emulator, started):
    driver, recorder = started
    emulator.place_finger("bob")
    await recorder.until(lambda: len(recorder.reads()) == 1)
    polls = emulator.image_requests
    await recorder.until(lambda: emulator.image_requests >= polls + 5)  # the driver keeps polling
    assert len(recorder.reads()) == 1
    emulator.lift_finger()
    polls = emulator.image_requests
    await recorder.until(lambda: emulator.image_requests >= polls + 2)  # the driver saw the glass empty
    emulator.fail_next_image()
    emulator.place_finger("bob")
    await recorder.until(lambda: len(recorder.reads()) == 2)
    assert recorder.reads()[1] == FingerRead("door", "read_failed")


@pytest.mark.parametrize("packet_size, template_size", [(32, 768), (128, 512), (256, 512)])
async def test_loaded_template_matches_its_finger_and_deleting_it_forgets_it(packet_size, template_size):
    module = ModuleEmulator(capacity=100, packet_size=packet_size, template_size=template_size)
    driver = UartFingerprint("door", module.plug(), **FAST)
    recorder = Recorder()
    try:
        await driver.start(recorder)
        template = finger_template("head-office-enrolled", template_size)
        await driver.load_template(42, template)
        assert module.library[42] == template
        assert await driver.template_count() == 1
        module.tap("head-office-enrolled")
        await recorder.until(lambda: recorder.reads())
        assert recorder.reads() == [FingerRead("door", "match", slot=42, score=180)]

        await driver.delete_slots([42])
        assert await driver.template_count() == 0
        module.tap("head-office-enrolled")
        await recorder.until(lambda: len(recorder.reads()) == 2)
        assert recorder.reads()[1] == FingerRead("door", "no_match")
    finally:
        await driver.stop()
        module.stop()


async def test_bad_slots_and_templates_are_refused_and_change_nothing(emulator, started):
    driver, _ = started
    await driver.load_template(1, finger_template("x", 512))
    with pytest.raises(InvalidSlot, match="slot 200 is outside the module library 0..199"):
        await driver.load_template(200, finger_template("y", 512))
    with pytest.raises(InvalidSlot, match="slot -1"):
        await driver.delete_slots([1, -1])
    with pytest.raises(ValueError, match="512 or 768 bytes, got 100"):
        await driver.load_template(2, b"\x00" * 100)
    assert sorted(emulator.library) == [1]
    assert await driver.template_count() == 1


async def test_a_template_of_the_wrong_size_for_this_module_is_rejected_by_the_module(emulator, started):
    driver, _ = started  # the emulator holds 512-byte templates
    with pytest.raises(TemplateInvalid, match="Store into slot 3"):
        await driver.load_template(3, finger_template("z", 768))
    assert emulator.library == {}


async def test_enrol_two_captures_store_and_return_the_template(emulator, started):
    driver, recorder = started
    enrolment = asyncio.create_task(driver.enrol(7))
    await recorder.until(lambda: driver.enrolling)  # else the door poll would take the taps
    emulator.tap("dave")
    emulator.tap("dave")
    template = await enrolment
    assert template == finger_template("dave", 512)
    assert emulator.library[7] == template
    assert await driver.template_count() == 1
    assert recorder.reads() == []  # enrolment captures are not door attempts

    emulator.tap("dave")
    await recorder.until(lambda: recorder.reads())
    assert recorder.reads() == [FingerRead("door", "match", slot=7, score=180)]


async def test_enrolling_a_finger_already_stored_names_the_existing_slot(emulator, started):
    driver, recorder = started
    emulator.library[3] = finger_template("erin", 512)
    enrolment = asyncio.create_task(driver.enrol(9))
    await recorder.until(lambda: driver.enrolling)  # else the door poll would take the taps
    emulator.tap("erin")
    emulator.tap("erin")
    with pytest.raises(DuplicateFinger, match="already enrolled in slot 3") as caught:
        await enrolment
    assert caught.value.existing_slot == 3
    assert 9 not in emulator.library


async def test_enrolment_with_two_different_fingers_does_not_merge(emulator, started):
    driver, recorder = started
    enrolment = asyncio.create_task(driver.enrol(4))
    await recorder.until(lambda: driver.enrolling)  # else the door poll would take the taps
    emulator.tap("frank")
    emulator.tap("grace")
    with pytest.raises(EnrolMismatch, match="RegModel"):
        await enrolment
    assert emulator.library == {}


async def test_a_cancelled_enrolment_frees_the_module_for_the_next_one(emulator, started):
    driver, recorder = started
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(driver.enrol(1), 0.2)  # nobody came to put a finger on the glass
    enrolment = asyncio.create_task(driver.enrol(2))
    await recorder.until(lambda: driver.enrolling)
    emulator.tap("kate")
    emulator.tap("kate")
    # a generous wait for an effect, not a speed goal: two taps on a busy machine may take seconds
    assert await asyncio.wait_for(enrolment, 30) == finger_template("kate", 512)
    assert sorted(emulator.library) == [2]


async def test_a_silent_module_is_a_timeout_not_a_bad_header(emulator, started):
    driver, _ = started
    emulator.silent = True
    with pytest.raises(FingerprintTimeout) as caught:
        await driver.template_count()
    message = str(caught.value)
    assert "no reply from the module" in message and "header" not in message
    assert driver.health().state == "degraded"
    emulator.silent = False
    assert await driver.template_count() == 0
    assert driver.health().state == "connected"


async def test_garbage_before_a_valid_reply_is_skipped(emulator, started):
    driver, _ = started
    emulator.library[0] = finger_template("h", 512)
    emulator.inject_garbage(b"\x00\xffnoise\xef\x00\xef")
    assert await driver.template_count() == 1
    assert driver.health().state == "connected"


async def test_wrong_password_is_a_configuration_error_naming_the_port():
    module = ModuleEmulator(password=0x1234ABCD)
    port = module.plug()
    wrong = UartFingerprint("door", port, password=0, **FAST)
    right = UartFingerprint("door", port, password=0x1234ABCD, **FAST)
    try:
        with pytest.raises(ConfigurationError, match=f"module on {port} rejected the configured password"):
            await wrong.template_count()
        assert wrong.health().state == "degraded"
        assert "password" in wrong.health().last_error
        assert "1234" not in wrong.health().last_error.upper()  # the secret itself is never reported
        await wrong.stop()
        assert await right.template_count() == 0
    finally:
        await wrong.stop()
        await right.stop()
        module.stop()


async def test_unplug_and_replug_at_the_same_path_recovers_without_restart(emulator, tmp_path):
    link = str(tmp_path / "ttyFINGER")
    emulator.library[11] = finger_template("ivan", 512)
    driver = UartFingerprint("door", emulator.plug(link), **FAST)
    recorder = Recorder()
    await driver.start(recorder)
    try:
        await recorder.until(lambda: driver.health().state == "connected")
        emulator.unplug()
        await recorder.until(lambda: driver.health().state == "missing")
        assert link in driver.health().last_error
        with pytest.raises(PortUnavailable, match=link):
            await driver.template_count()

        emulator.plug(link)  # a new pty behind the same name, like a re-enumerated USB adapter
        await recorder.until(lambda: driver.health().state == "connected")
        emulator.tap("ivan")
        await recorder.until(lambda: recorder.reads())
        assert recorder.reads() == [FingerRead("door", "match", slot=11, score=180)]
        states = [e.state for e in recorder.events if isinstance(e, DeviceHealth)]
        assert states[-2:] == ["missing", "connected"]
    finally:
        await driver.stop()


async def test_a_port_that_is_not_there_is_missing_and_named(tmp_path):
    port = str(tmp_path / "ttyNOTHING")
    driver = UartFingerprint("counter", port, **FAST)
    try:
        with pytest.raises(PortUnavailable, match=f"{port} is not available"):
            await driver.template_count()
        assert driver.health().state == "missing"
        assert port in driver.health().last_error
    finally:
        await driver.stop()


async def test_door_and_counter_modules_at_once_on_two_ports():
    door_module, counter_module = ModuleEmulator(), ModuleEmulator()
    door = UartFingerprint("door", door_module.plug(), **FAST)
    counter = UartFingerprint("counter", counter_module.plug(), **FAST)
    recorder = Recorder()
    try:
        await door.start(recorder)
        await counter.start(recorder)
        await door.load_template(1, finger_template("escort", 512))
        await counter.load_template(2, finger_template("officer", 512))
        door_module.tap("escort")
        counter_module.tap("officer")
        counter_module.tap("escort")  # the escort is not enrolled at the counter
        await recorder.until(lambda: len(recorder.reads()) == 3)
        assert recorder.reads("door") == [FingerRead("door", "match", slot=1, score=180)]
        assert recorder.reads("counter") == [FingerRead("counter", "match", slot=2, score=180),
                                             FingerRead("counter", "no_match")]
    finally:
        await door.stop()
        await counter.stop()
        door_module.stop()
        counter_module.stop()


async def test_emulated_module_plays_the_simulator_panel_through_the_real_protocol():
    module = EmulatedFingerprint("counter", poll_interval=0.02)
    recorder = Recorder()
    try:
        await module.start(recorder)
        enrolment = asyncio.create_task(module.enrol(6))
        while not module.enrolling:     # tapped before, the poll loop would take the taps as door attempts
            await asyncio.sleep(0.01)
        module.touch_new("guard-6")
        module.touch_new("guard-6")
        template = await enrolment
        assert len(template) == 512
        assert await module.template_count() == 1
        module.touch(6)
        module.touch(None)
        module.touch_failed()
        await recorder.until(lambda: len(recorder.reads()) == 3)
        assert recorder.reads() == [
            FingerRead("counter", "match", slot=6, score=180),
            FingerRead("counter", "no_match"),
            FingerRead("counter", "read_failed"),
        ]
        assert module.health().state == "connected"
    finally:
        await module.stop()
