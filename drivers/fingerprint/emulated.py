"""Simulation through the real protocol: the module emulator on a pty, driven by the UART driver.

Offers the same panel controls as SimulatedFingerprint (touch, touch_failed), so simulation mode
exercises framing, polling, search and the library operations end to end. With `touch` the module's touch
output is wired to the driver through a gpiozero mock pin, as a GPIO input would be on the device.
"""
from __future__ import annotations

import asyncio

from gpiozero.pins.mock import MockFactory

from drivers.base import Emit
from drivers.events import DeviceHealth
from drivers.fingerprint.emulator import ModuleEmulator
from drivers.fingerprint.uart import UartFingerprint

SYNC_WAIT = 5.0     # seconds; the sample day's library loads in well under one


class EmulatedFingerprint:
    TOUCH_PIN = 4           # any pin: the mock factory is this module's own

    def __init__(self, station: str, *, capacity: int = 300, poll_interval: float = 0.05, touch: bool = False):
        self.station = station
        factory = MockFactory() if touch else None
        pin = factory.pin(self.TOUCH_PIN) if factory else None
        self.emulator = ModuleEmulator(
            capacity=capacity, touch_output=(lambda on: pin.drive_high() if on else pin.drive_low()) if pin else None)
        self.driver = UartFingerprint(station, self.emulator.plug(), poll_interval=poll_interval,
                                      touch_pin=self.TOUCH_PIN if touch else None, pin_factory=factory)
        self.name = self.driver.name

    async def start(self, emit: Emit) -> None:
        await self.driver.start(emit)
        # the emulator is in-process and always there: a demo's first touch finds its library loaded
        deadline = asyncio.get_running_loop().time() + SYNC_WAIT
        while not await self.driver.library_synced() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        await self.driver.stop()
        self.emulator.stop()

    def health(self) -> DeviceHealth:
        return self.driver.health()

    # --- what the simulator panel plays ---
    def touch(self, slot: int | None) -> None:
        """A finger on the glass: the finger enrolled in `slot` matches; None is a finger nobody enrolled."""
        template = self.emulator.library.get(slot) if slot is not None else None
        if template is None:
            self.emulator.tap(None)
            return
        finger = f"slot-{slot}"
        self.emulator.add_finger(finger, template)
        self.emulator.tap(finger)

    def touch_new(self, finger: str) -> None:
        """A finger the module has not stored yet, named by the panel: it plays the enrolment's captures,
        and the same name enrols the same template (a second enrolment of it is a duplicate)."""
        self.emulator.tap(f"new-{finger}")

    def touch_failed(self) -> None:
        """A smudged or partial read: the module cannot extract features."""
        self.emulator.tap(None, smudged=True)

    # --- module library ---
    def sync_library(self, wanted: dict[int, bytes]) -> None:
        self.driver.sync_library(wanted)

    def update_library(self, load: dict[int, bytes], clear: list[int]) -> None:
        self.driver.update_library(load, clear)

    async def load_template(self, slot: int, template: bytes) -> None:
        await self.driver.load_template(slot, template)

    async def delete_slots(self, slots: list[int]) -> None:
        await self.driver.delete_slots(slots)

    async def enrol(self, slot: int) -> bytes:
        """Enrolment through the real protocol: the panel plays the captures (touch_new, twice)."""
        return await self.driver.enrol(slot)

    @property
    def enrol_captures(self) -> int:
        return self.driver.enrol_captures

    @property
    def enrolling(self) -> bool:
        return self.driver.enrolling

    async def template_count(self) -> int:
        return await self.driver.template_count()
