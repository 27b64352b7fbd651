"""Simulated receipt printer: keeps what was printed so the screen can show it."""
from __future__ import annotations

from drivers.health import HealthMixin


class SimulatedPrinter(HealthMixin):
    def __init__(self, name: str = "printer"):
        self.name = name
        self.printed: list[tuple[str, list[str]]] = []

    async def print_lines(self, title: str, lines: list[str]) -> None:
        self.printed.append((title, list(lines)))
