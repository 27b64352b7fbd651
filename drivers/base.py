"""The small async interfaces every device kind implements, real driver and simulator alike.

Input devices push events through the `emit` callback given to `start()`; the callback is
synchronous and cheap (it queues). Output devices are awaited. Every driver reports its health
and must survive being unplugged and replugged while running.
"""
from __future__ import annotations

import asyncio
from typing import Callable, Protocol, runtime_checkable

from drivers.events import DeviceEvent, DeviceHealth, FaceSnapshot

Emit = Callable[[DeviceEvent], None]


@runtime_checkable
class InputDevice(Protocol):
    name: str

    async def start(self, emit: Emit) -> None: ...
    async def stop(self) -> None: ...
    def health(self) -> DeviceHealth: ...


@runtime_checkable
class FingerprintModule(InputDevice, Protocol):
    """A ZhianTec/Synochip-style module: 1:N search on each touch, templates in numbered slots."""
    station: str

    def sync_library(self, wanted: dict[int, bytes]) -> None: ...  # slot -> template, loaded in the background
    def update_library(self, load: dict[int, bytes], clear: list[int]) -> None: ...  # an import's changes
    async def load_template(self, slot: int, template: bytes) -> None: ...
    async def delete_slots(self, slots: list[int]) -> None: ...
    async def enrol(self, slot: int) -> bytes: ...          # two captures, merge, store; returns template
    @property
    def enrol_captures(self) -> int: ...                   # captures the running enrolment has taken (0-2)
    async def template_count(self) -> int: ...


class CardReader(InputDevice, Protocol): ...


class BeaconScanner(InputDevice, Protocol): ...


@runtime_checkable
class Camera(Protocol):
    name: str

    # a few frames; once `decided` is set (the module has decided) no more, and a face seen is returned at once
    async def snapshot(self, decided: asyncio.Event | None = None) -> FaceSnapshot: ...
    # a handover has begun: get ready for the door (a camera that takes time to start starts now)
    def wake(self) -> None: ...
    def health(self) -> DeviceHealth: ...


@runtime_checkable
class Voice(Protocol):
    name: str

    async def say(self, text: str, lang: str = "zh-CN", urgent: bool = False) -> None: ...
    def health(self) -> DeviceHealth: ...


@runtime_checkable
class Printer(Protocol):
    name: str

    async def print_lines(self, title: str, lines: list[str]) -> None: ...
    def health(self) -> DeviceHealth: ...


@runtime_checkable
class DoorOutput(Protocol):
    name: str

    async def set_permit(self, raised: bool) -> None: ...
    @property
    def raised(self) -> bool: ...
    def health(self) -> DeviceHealth: ...
