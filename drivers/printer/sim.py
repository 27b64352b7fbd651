"""Simulated receipt printer: keeps the last receipts, a demo's paper roll (/api/sim/printed shows them).
Only the last few: keeping every receipt grew by ~1 KB per handover for the life of the process."""
from __future__ import annotations

from drivers.health import HealthMixin

ROLL = 20                      # receipts kept


class SimulatedPrinter(HealthMixin):
    def __init__(self, name: str = "printer"):
        self.name = name
        self.printed: list[tuple[str, list[str]]] = []

    async def print_lines(self, title: str, lines: list[str]) -> None:
        self.printed.append((title, list(lines)))
        del self.printed[:-ROLL]
