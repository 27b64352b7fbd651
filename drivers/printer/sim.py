"""Simulated receipt printer: prints nowhere. The screen shows the report and the agent keeps it under
reports/; a list of every receipt here grew by ~1 KB per handover for the life of the process."""
from __future__ import annotations

from drivers.health import HealthMixin


class SimulatedPrinter(HealthMixin):
    def __init__(self, name: str = "printer"):
        self.name = name

    async def print_lines(self, title: str, lines: list[str]) -> None:
        return None
