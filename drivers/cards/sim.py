"""Simulated contactless reader: the panel presents a badge or a box tag by UID."""
from __future__ import annotations

from drivers.events import CardRead
from drivers.health import SimulatedInput


class SimulatedCardReader(SimulatedInput):
    def __init__(self, name: str = "cards"):
        self.name = name

    def present(self, uid: str, uid_only: bool = False) -> None:
        """A box tag or badge; by default an anti-clone (SUN-verified) tag, as the sample boxes carry."""
        self._send(CardRead(self.name, uid.upper(), sun_verified=not uid_only, uid_only=uid_only))
