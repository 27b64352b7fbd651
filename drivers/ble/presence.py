"""Truck presence from BLE advertisements, pure: who is advertising, and is it really here.

No radio, no clock: callers pass advertisement fields and the time, so every rule is testable
with plain values. The scanner (scanner.py) feeds it from bleak.
"""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Mapping

from drivers.events import VehicleArrived, VehicleDeparted

APPLE_COMPANY_ID = 0x004C
IBEACON_PREFIX = b"\x02\x15"                     # iBeacon type, then 21 bytes of payload
EDDYSTONE_UUID = "0000feaa-0000-1000-8000-00805f9b34fb"
EDDYSTONE_UID_FRAME = 0x00


@dataclass(frozen=True)
class BeaconPattern:
    """A truck whose tag is not an iBeacon or Eddystone: recognised by local name and/or manufacturer data.

    Every criterion given must match; the truck is then reported as `identity`.
    """
    identity: str
    local_name: str | None = None                # regular expression, matched against the whole name
    company_id: int | None = None                # Bluetooth SIG company identifier
    data_prefix: bytes = b""                     # manufacturer data must start with this

    def __post_init__(self) -> None:
        if not self.identity:
            raise ValueError("BeaconPattern needs a non-empty identity")
        if self.local_name is None and self.company_id is None:
            raise ValueError(f"BeaconPattern {self.identity!r} needs a local_name or a company_id to match on")
        if self.data_prefix and self.company_id is None:
            raise ValueError(f"BeaconPattern {self.identity!r}: data_prefix needs the company_id it belongs to")
        if self.local_name is not None:
            re.compile(self.local_name)          # a bad expression fails at configuration, not at the branch

    def matches(self, local_name: str | None, manufacturer_data: Mapping[int, bytes]) -> bool:
        if self.local_name is not None and (local_name is None or not re.fullmatch(self.local_name, local_name)):
            return False
        if self.company_id is not None:
            data = manufacturer_data.get(self.company_id)
            if data is None or not bytes(data).startswith(self.data_prefix):
                return False
        return True


def ibeacon_identity(manufacturer_data: Mapping[int, bytes]) -> str | None:
    data = manufacturer_data.get(APPLE_COMPANY_ID)
    if data is None or len(data) < 23 or not bytes(data).startswith(IBEACON_PREFIX):
        return None
    beacon_uuid = uuid.UUID(bytes=bytes(data[2:18]))
    major = int.from_bytes(data[18:20], "big")
    minor = int.from_bytes(data[20:22], "big")
    return f"ibeacon:{beacon_uuid}:{major}:{minor}"


def eddystone_uid_identity(service_data: Mapping[str, bytes]) -> str | None:
    data = service_data.get(EDDYSTONE_UUID)
    # frame type, tx power, 10-byte namespace, 6-byte instance (2 reserved bytes may follow)
    if data is None or len(data) < 18 or data[0] != EDDYSTONE_UID_FRAME:
        return None
    return f"eddystone:{bytes(data[2:12]).hex()}:{bytes(data[12:18]).hex()}"


def extract_identity(
    *,
    local_name: str | None,
    manufacturer_data: Mapping[int, bytes],
    service_data: Mapping[str, bytes],
    patterns: tuple[BeaconPattern, ...] = (),
) -> str | None:
    """The truck identity an advertisement carries, or None for anything that is not a truck beacon."""
    found = ibeacon_identity(manufacturer_data) or eddystone_uid_identity(
        {k.lower(): v for k, v in service_data.items()})
    if found:
        return found
    for pattern in patterns:
        if pattern.matches(local_name, manufacturer_data):
            return pattern.identity
    return None


@dataclass
class _Presence:
    smoothed: float
    last_seen: float
    strong_since: float | None = None
    arrived: bool = False


@dataclass
class DwellTracker:
    """Arrival once the smoothed RSSI stays at or above the threshold for `dwell_seconds`;
    departure once nothing was heard for `silence_seconds`. Each is emitted once per visit."""
    rssi_threshold: int = -75
    dwell_seconds: float = 3.0
    silence_seconds: float = 60.0
    smoothing: float = 0.3                       # weight of a new reading; damps one lucky strong packet
    _seen: dict[str, _Presence] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.dwell_seconds < 0 or self.silence_seconds <= 0:
            raise ValueError("dwell_seconds must be >= 0 and silence_seconds > 0")
        if not 0 < self.smoothing <= 1:
            raise ValueError(f"smoothing must be in (0, 1], got {self.smoothing}")

    def sighting(self, identity: str, rssi: int, now: float) -> list[VehicleArrived]:
        p = self._seen.get(identity)
        if p is None:
            p = self._seen[identity] = _Presence(smoothed=float(rssi), last_seen=now)
        else:
            p.smoothed += self.smoothing * (rssi - p.smoothed)
            p.last_seen = now
        if p.smoothed < self.rssi_threshold:
            p.strong_since = None
            return []
        if p.strong_since is None:
            p.strong_since = now
        if not p.arrived and now - p.strong_since >= self.dwell_seconds:
            p.arrived = True
            return [VehicleArrived(identity, round(p.smoothed))]
        return []

    def tick(self, now: float) -> list[VehicleDeparted]:
        gone = [i for i, p in self._seen.items() if now - p.last_seen >= self.silence_seconds]
        departures = [VehicleDeparted(i) for i in gone if self._seen[i].arrived]
        for i in gone:
            del self._seen[i]
        return departures

    def present(self) -> list[str]:
        return [i for i, p in self._seen.items() if p.arrived]
