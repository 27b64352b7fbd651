"""Door-permission output through a USB serial relay board (LCUS-1 and the like, CH340 based).

The board takes a short command per state; defaults are the LCUS-1's. The relay starts lowered,
is lowered on stop, and a port that disappears (USB unplugged) is reopened on the next command.
"""
from __future__ import annotations

import asyncio
import threading

import serial

from drivers.health import HealthMixin

LCUS1_ON = bytes.fromhex("A00101A2")
LCUS1_OFF = bytes.fromhex("A00100A1")


class SerialRelayDoor(HealthMixin):
    def __init__(self, port: str, on: bytes = LCUS1_ON, off: bytes = LCUS1_OFF,
                 baudrate: int = 9600, name: str = "door"):
        if not on or not off or on == off:
            raise ValueError("relay on/off commands must be two different, non-empty byte strings")
        self.name = name
        self.port = port
        self.on, self.off = bytes(on), bytes(off)
        self.baudrate = baudrate
        self._serial: serial.Serial | None = None
        self._raised = False
        self._lock = threading.Lock()
        self._write(False)                    # lowered from the start, whatever the board held

    async def set_permit(self, raised: bool) -> None:
        await asyncio.to_thread(self._write, raised)

    @property
    def raised(self) -> bool:
        return self._raised

    async def stop(self) -> None:
        await asyncio.to_thread(self._write, False)
        with self._lock:
            self._close()

    def _write(self, raised: bool) -> None:
        command = self.on if raised else self.off
        with self._lock:
            for _ in range(2):          # second try on a freshly opened port: it may have been replugged
                try:
                    if self._serial is None:
                        self._serial = serial.Serial(self.port, self.baudrate, timeout=1, write_timeout=1)
                    self._serial.write(command)
                    self._serial.flush()
                except (serial.SerialException, OSError) as exc:
                    self._close()
                    error = f"{self.port}: {exc}"
                    continue
                self._raised = raised
                self._set_health("connected")
                return
            self._set_health("missing", error)

    def _close(self) -> None:
        if self._serial is not None:
            try:
                self._serial.close()
            except (serial.SerialException, OSError):
                pass
            self._serial = None
