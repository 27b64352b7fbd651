"""Simulated door-permission output: remembers the lamp's state for the screen and tests."""
from __future__ import annotations

from drivers.health import HealthMixin


class SimulatedDoor(HealthMixin):
    def __init__(self, name: str = "door"):
        self.name = name
        self._raised = False

    async def set_permit(self, raised: bool) -> None:
        self._raised = raised

    @property
    def raised(self) -> bool:
        return self._raised
