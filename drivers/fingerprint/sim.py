"""In-process fingerprint module for simulation: the panel decides what each touch matches."""
from __future__ import annotations

from drivers.events import FingerRead, FingerTouched
from drivers.health import SimulatedInput


class SimulatedFingerprint(SimulatedInput):
    def __init__(self, station: str):
        self.station = station
        self.name = f"fingerprint_{station}"
        self._slots: dict[int, bytes] = {}

    # --- what the simulator panel plays ---
    def touch(self, slot: int | None) -> None:
        """A finger on the glass: a known slot matches, None is a finger the module does not know."""
        self._send(FingerTouched(self.station))     # the image is taken, the search follows
        if slot is not None and slot in self._slots:
            self._send(FingerRead(self.station, "match", slot=slot, score=120))
        else:
            self._send(FingerRead(self.station, "no_match"))

    def touch_new(self, finger: str) -> None:
        """A finger the module has not stored (this module enrols without captures)."""
        self._send(FingerTouched(self.station))
        self._send(FingerRead(self.station, "no_match"))

    def touch_failed(self) -> None:
        """A smudged or partial read: the module could not make an image."""
        self._send(FingerRead(self.station, "read_failed"))

    # --- module library ---
    def sync_library(self, wanted: dict[int, bytes]) -> None:
        self._slots = dict(wanted)

    def update_library(self, load: dict[int, bytes], clear: list[int]) -> None:
        for s in clear:
            self._slots.pop(s, None)
        self._slots.update(load)

    async def load_template(self, slot: int, template: bytes) -> None:
        self._slots[slot] = template

    async def delete_slots(self, slots: list[int]) -> None:
        for s in slots:
            self._slots.pop(s, None)

    enrol_captures = 0                  # the in-process module enrols at once, with no captures to show

    async def enrol(self, slot: int) -> bytes:
        template = bytes([slot % 256]) * 512
        self._slots[slot] = template
        return template

    async def template_count(self) -> int:
        return len(self._slots)
