"""What devices report, in device terms. The agent maps these to domain events for flows/
(a fingerprint slot becomes a person, a card UID becomes a badge or a box)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

HealthState = Literal["connected", "degraded", "missing"]
# "unreadable": the module's answer was lost or damaged on the line, so nobody knows what the finger was:
# the person is asked to press again and the attempt does not count towards the failure alarm
FingerOutcome = Literal["match", "no_match", "read_failed", "unreadable"]


@dataclass(frozen=True)
class FingerRead:
    """One attempt at a fingerprint module. `slot` is the module's library slot on a match."""
    station: str                      # "door" or "counter"
    outcome: FingerOutcome
    slot: int | None = None
    score: int = 0


@dataclass(frozen=True)
class FingerTouched:
    """A finger landed on a module: its touch output rose, or (no touch wire) its image was taken. Sent before
    the search, so the door camera snaps the face while the module works. Normally one FingerRead of the
    same station follows; a touch that left no image (a brush of the glass) has none."""
    station: str


@dataclass(frozen=True)
class CardRead:
    """A badge or box tag presented at a PC/SC reader (or a BLE tag reader)."""
    reader: str
    uid: str                          # upper-case hex
    sun_verified: bool = False        # NTAG 424 DNA SUN checked (anti-clone) when the tag offers it
    sun_counter: int | None = None
    uid_only: bool = True


@dataclass(frozen=True)
class CardReadIncomplete:
    """A tag left the reader half-way through its read (lifted too soon): nothing was read, so nothing
    is counted or refused; the officer is asked to present it again."""
    reader: str


@dataclass(frozen=True)
class VehicleArrived:
    """A truck's beacon was strong enough for long enough (dwell applied by the BLE driver)."""
    identity: str                     # e.g. "ibeacon:<uuid>:<major>:<minor>" or a configured name
    rssi: int


@dataclass(frozen=True)
class VehicleDeparted:
    identity: str


@dataclass(frozen=True)
class FaceSnapshot:
    """Best face crop around an attempt; `jpeg` is None when there was no camera or no face."""
    jpeg: bytes | None
    face_found: bool
    reason: str | None = None         # "no_camera", "no_face" when jpeg is None


@dataclass(frozen=True)
class DeviceHealth:
    device: str
    state: HealthState
    last_error: str | None = None
    detail: dict = field(default_factory=dict)


DeviceEvent = (FingerRead | FingerTouched | CardRead | CardReadIncomplete | VehicleArrived | VehicleDeparted
               | DeviceHealth)
