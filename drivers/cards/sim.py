"""Simulated contactless reader: the panel presents a badge or a box tag by UID."""
from __future__ import annotations

from drivers.base import Emit
from drivers.events import CardRead
from drivers.health import HealthMixin


class SimulatedCardReader(HealthMixin):
    def __init__(self, name: str = "cards"):
        self.name = name
        self._emit: Emit | None = None

    async def start(self, emit: Emit) -> None:
        self._emit = emit

    async def stop(self) -> None:
        self._emit = None

    def present(self, uid: str, uid_only: bool = False) -> None:
        """A box tag or badge; by default an anti-clone (SUN-verified) tag, as the sample boxes carry."""
        if self._emit:
            self._emit(CardRead(self.name, uid.upper(), sun_verified=not uid_only, uid_only=uid_only))
