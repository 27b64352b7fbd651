"""The module's touch output wired to a GPIO input (issue 11: present -> decision without polling's wait).

The emulator drives a gpiozero mock pin as fingers land and lift, as an R307's TOUCH or an R503's WAKEUP
output would drive a GPIO; the UART driver reads it through gpiozero like on the device. What a person at
the door would notice: the finger is taken on the first image (no "no finger" GenImg in the way), a wire
that is loose or a GPIO that cannot be opened never hides a finger, and an unplugged module still shows.
"""
import asyncio

from gpiozero import DigitalInputDevice
from gpiozero.pins.mock import MockFactory

from drivers.events import FingerRead, FingerTouched
from drivers.fingerprint.emulator import ModuleEmulator, finger_template
from drivers.fingerprint.protocol import Instruction
from drivers.fingerprint.uart import UartFingerprint
from test_fingerprint_faults import FAST, Recorder, touch

E1 = finger_template("E1", 512)
PIN = 23
MATCH = FingerRead("door", "match", 0, 180)


def wired_module(factory, **kwargs) -> ModuleEmulator:
    pin = factory.pin(PIN)
    module = ModuleEmulator(capacity=200, touch_output=lambda on: pin.drive_high() if on else pin.drive_low(),
                            **kwargs)
    module.library[0] = E1
    module.add_finger("E1", E1)
    return module


async def started(driver, recorder) -> None:
    driver.sync_library({0: E1})
    await driver.start(recorder)
    await recorder.until(lambda: driver.health().state == "connected")
    await recorder.until(lambda: driver.health().detail["library"]["loaded"] == 1)


async def test_with_the_wire_the_line_is_free_when_a_finger_lands_and_the_first_image_is_the_finger():
    factory = MockFactory()
    module = wired_module(factory, real_timing=True)
    driver = UartFingerprint("door", module.plug(), touch_pin=PIN, pin_factory=factory)
    recorder = Recorder()
    try:
        await started(driver, recorder)
        assert driver.health().detail["touch"] == f"GPIO {PIN}"
        await asyncio.sleep(1.0)                      # past the first check of the wire at start
        images, heartbeats = module.commands[Instruction.GEN_IMG], module.commands[Instruction.TEMPLATE_NUM]
        await asyncio.sleep(2.5)
        assert module.commands[Instruction.GEN_IMG] == images, "no GenImg while nobody touches the module"
        assert module.commands[Instruction.TEMPLATE_NUM] > heartbeats, "the idle module is still watched"

        requests, taken = module.image_requests, module.images_taken
        module.press("E1", after=0.1, seconds=2.0)
        await recorder.until(lambda: recorder.reads(), timeout=20)
        assert recorder.reads() == [MATCH]
        assert module.image_requests - requests == module.images_taken - taken >= 1, \
            "every GenImg since the finger landed took it: none was in flight without a finger"
        touched = [i for i, e in enumerate(recorder.events) if isinstance(e, FingerTouched)]
        assert len(touched) == 1 and touched[0] < recorder.events.index(MATCH), "the landing is said first"
        await asyncio.sleep(2.5)                      # rests, lifts: still one attempt
        assert recorder.reads() == [MATCH]
    finally:
        await driver.stop()
        module.stop()


async def test_a_loose_wire_never_hides_a_finger_the_driver_polls_and_says_why():
    factory = MockFactory()
    module = ModuleEmulator(capacity=200)             # its touch output reaches nobody: the wire is loose
    module.library[0] = E1
    module.add_finger("E1", E1)
    driver = UartFingerprint("door", module.plug(), touch_pin=PIN, pin_factory=factory, touch_probe=0.5, **FAST)
    recorder = Recorder()
    try:
        await started(driver, recorder)
        assert await touch(module, recorder, "E1", timeout=20) == MATCH, "found by the check of the wire"
        note = driver.health().detail["touch"]
        assert note.startswith("polling:") and f"GPIO {PIN}" in note and "wire" in note
        assert await touch(module, recorder, None) == FingerRead("door", "no_match")   # polling from now on
        assert await touch(module, recorder, "E1") == MATCH
    finally:
        await driver.stop()
        module.stop()


async def test_a_gpio_that_cannot_be_opened_means_polling_not_a_deaf_door():
    factory = MockFactory()
    module = wired_module(factory)
    taken = DigitalInputDevice(PIN, pin_factory=factory)       # someone else holds the pin
    driver = UartFingerprint("door", module.plug(), touch_pin=PIN, pin_factory=factory, **FAST)
    recorder = Recorder()
    try:
        await started(driver, recorder)
        note = driver.health().detail["touch"]
        assert note.startswith("polling:") and f"GPIO {PIN} unavailable" in note
        assert await touch(module, recorder, "E1") == MATCH
        assert await touch(module, recorder, None) == FingerRead("door", "no_match")
    finally:
        taken.close()
        await driver.stop()
        module.stop()


async def test_with_the_wire_an_unplugged_module_shows_missing_and_comes_back(tmp_path):
    factory = MockFactory()
    link = str(tmp_path / "ttyFP")
    module = wired_module(factory)
    driver = UartFingerprint("door", module.plug(link), touch_pin=PIN, pin_factory=factory, **FAST)
    recorder = Recorder()
    try:
        await started(driver, recorder)
        module.unplug()                                   # nobody touches it: only the heartbeat can notice
        await recorder.until(lambda: driver.health().state == "missing", timeout=20)
        module.plug(link)
        await recorder.until(lambda: driver.health().state == "connected", timeout=20)
        assert await touch(module, recorder, "E1", timeout=20) == MATCH
        assert driver.health().detail["touch"] == f"GPIO {PIN}"
    finally:
        await driver.stop()
        module.stop()


async def test_quick_taps_with_the_wire_are_each_an_attempt():
    """Finding 8 with the wire: a lift and a press while a GenImg is on the line still make a new attempt."""
    factory = MockFactory()
    module = wired_module(factory)
    driver = UartFingerprint("door", module.plug(), touch_pin=PIN, pin_factory=factory, **FAST)
    recorder = Recorder()
    try:
        await started(driver, recorder)
        for finger in ("E1", None, "E1", "E1", None):
            module.tap(finger, images=2)               # queued: each lands 0.1 s after the one before lifts
        await recorder.until(lambda: len(recorder.reads()) == 5 and not module.taps_waiting(), timeout=20)
        await asyncio.sleep(0.5)
        no = FingerRead("door", "no_match")
        assert recorder.reads() == [MATCH, no, MATCH, MATCH, no]
    finally:
        await driver.stop()
        module.stop()


async def test_with_the_wire_a_tap_right_after_a_cancelled_enrolment_goes_to_the_next_enrolment_not_the_door():
    """The wire's edges during a capture were left queued behind it: after a cancel, one of them woke a poll
    while the next enrolment waited, and that poll read the next enrolment's finger as a door attempt."""
    factory = MockFactory()
    module = wired_module(factory)
    # a slow line pace holds the cancelled capture asleep between two images while the next one is asked for
    driver = UartFingerprint("door", module.plug(), touch_pin=PIN, pin_factory=factory,
                             **{**FAST, "poll_interval": 1.0})
    recorder = Recorder()
    try:
        await started(driver, recorder)
        cancelled = asyncio.create_task(driver.enrol(5))
        await recorder.until(lambda: driver.enrolling)
        module.tap("new-E5")                              # the first capture; its edges reach the worker
        await recorder.until(lambda: driver.enrol_captures == 1)
        await asyncio.sleep(0.1)                          # lifted: the cancelled capture waits for a second image
        cancelled.cancel()
        again = asyncio.create_task(driver.enrol(5))      # the officer starts over at once
        await asyncio.sleep(0)
        module.tap("new-E5")                              # and the person presses straight away
        await recorder.until(lambda: not module.taps_waiting(), timeout=20)
        await asyncio.sleep(0.2)                          # a door attempt would be on its way by now
        assert recorder.reads() == [], "the next enrolment's finger was taken as a door attempt"
        await recorder.until(lambda: driver.enrol_captures == 1 and driver.enrolling, timeout=20)
        module.tap("new-E5")
        assert await asyncio.wait_for(again, 30) == module.library[5]
        assert recorder.reads() == []
        assert cancelled.cancelled()
    finally:
        await driver.stop()
        module.stop()
