"""Simulated BLE scanner: the panel drives a truck's beacon up to the branch and away."""
from __future__ import annotations

from drivers.events import VehicleArrived, VehicleDeparted
from drivers.health import SimulatedInput


class SimulatedBeaconScanner(SimulatedInput):
    def __init__(self, name: str = "ble"):
        self.name = name

    def approach(self, identity: str, rssi: int = -55) -> None:
        """The beacon has been strong for the dwell time (the real scanner applies the dwell)."""
        self._send(VehicleArrived(identity, rssi))

    def leave(self, identity: str) -> None:
        self._send(VehicleDeparted(identity))
