"""Simulated BLE scanner: the panel drives a truck's beacon up to the branch and away."""
from __future__ import annotations

from drivers.base import Emit
from drivers.events import VehicleArrived, VehicleDeparted
from drivers.health import HealthMixin


class SimulatedBeaconScanner(HealthMixin):
    def __init__(self, name: str = "ble"):
        self.name = name
        self._emit: Emit | None = None

    async def start(self, emit: Emit) -> None:
        self._emit = emit

    async def stop(self) -> None:
        self._emit = None

    def approach(self, identity: str, rssi: int = -55) -> None:
        """The beacon has been strong for the dwell time (the real scanner applies the dwell)."""
        if self._emit:
            self._emit(VehicleArrived(identity, rssi))

    def leave(self, identity: str) -> None:
        if self._emit:
            self._emit(VehicleDeparted(identity))
