"""Continuous BLE scanning for truck beacons through bleak.

bleak reports every advertisement; presence.py decides who it is and whether the truck has
really arrived or left. When the adapter is missing (no BlueZ, adapter unplugged, D-Bus down)
the scanner reports itself missing and keeps retrying with backoff, so replugging the adapter
is enough to recover. BlueZ does not tell a running scan that its adapter went away, so a scan
that hears nothing at all (not even a phone) for `quiet_restart_seconds` is restarted, which
surfaces a lost adapter as a failed start.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable

from bleak import BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData

from drivers.base import Emit
from drivers.ble.presence import BeaconPattern, DwellTracker, extract_identity
from drivers.events import DeviceHealth
from drivers.health import HealthMixin

log = logging.getLogger(__name__)

ScannerFactory = Callable[..., Any]      # called with detection_callback=...; returns an object with async start/stop


class BleakBeaconScanner(HealthMixin):
    def __init__(
        self,
        name: str = "ble",
        rssi_threshold: int = -75,
        dwell_seconds: float = 3.0,
        silence_seconds: float = 60.0,
        patterns: tuple[BeaconPattern, ...] = (),
        *,
        scanner_factory: ScannerFactory = BleakScanner,
        clock: Callable[[], float] = time.monotonic,
        retry_initial: float = 1.0,
        retry_max: float = 30.0,
        tick_seconds: float = 1.0,
        quiet_restart_seconds: float = 120.0,
    ):
        self.name = name
        self.patterns = tuple(patterns)
        self._tracker = DwellTracker(rssi_threshold, dwell_seconds, silence_seconds)
        self._factory = scanner_factory
        self._clock = clock
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._tick_seconds = tick_seconds
        self._quiet_restart = quiet_restart_seconds
        self._last_heard = 0.0
        self._emit: Emit | None = None
        self._task: asyncio.Task | None = None
        self._set_health("missing")          # nothing is scanning until start() succeeds

    async def start(self, emit: Emit) -> None:
        self._emit = emit
        self._task = asyncio.create_task(self._run(), name=f"{self.name}-scan")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        self._emit = None

    def on_advertisement(self, device: BLEDevice, adv: AdvertisementData) -> None:
        """bleak's detection callback: one advertisement heard."""
        self._last_heard = self._clock()
        identity = extract_identity(
            local_name=adv.local_name,
            manufacturer_data=adv.manufacturer_data,
            service_data=adv.service_data,
            patterns=self.patterns,
        )
        if identity is None or adv.rssi is None:
            return
        for event in self._tracker.sighting(identity, adv.rssi, self._clock()):
            self._send(event)

    def _send(self, event) -> None:
        if self._emit:
            self._emit(event)

    def _report(self, state, error: str | None = None) -> None:
        before = self.health()
        self._set_health(state, error)
        if self.health() != before:
            self._send(DeviceHealth(self.name, state, self._last_error))

    async def _run(self) -> None:
        delay = self._retry_initial
        while True:
            scanner = self._factory(detection_callback=self.on_advertisement)
            try:
                await scanner.start()
            except asyncio.CancelledError:
                raise
            except Exception as exc:         # whatever the OS stack throws, the daemon keeps going
                log.warning("%s: cannot start scanning (%s: %s); retry in %.0f s",
                            self.name, type(exc).__name__, exc, delay)
                self._report("missing", f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max)
                continue
            delay = self._retry_initial
            self._last_heard = self._clock()
            self._report("connected")
            try:
                while self._clock() - self._last_heard < self._quiet_restart:
                    await asyncio.sleep(self._tick_seconds)
                    for event in self._tracker.tick(self._clock()):
                        self._send(event)
                log.info("%s: nothing heard for %.0f s; restarting the scan", self.name, self._quiet_restart)
            finally:
                try:
                    await scanner.stop()
                except Exception as exc:      # the adapter may already be gone; stopping must not mask why
                    log.debug("%s: stop failed: %s", self.name, exc)
