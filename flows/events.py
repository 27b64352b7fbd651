"""Domain events the agent feeds to a handover (already resolved: slots to people, tags to boxes)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from flows.model import Box

Station = Literal["door", "counter"]
# "unreadable": the module's answer was lost or damaged on the line, so nobody knows what the finger was:
# the person is asked to press again and the attempt does not count towards the failure alarm
FingerOutcome = Literal["match", "no_match", "read_failed", "unreadable"]
Resolution = Literal["continue", "abort"]


@dataclass(frozen=True)
class VehicleArrived:
    """The task's truck is here: by its beacon, or recorded by an authenticated officer (manual)."""
    beacon: str | None = None
    manual_by: str | None = None          # officer person id when BLE failed
    stops_done: frozenset[str] = frozenset()  # earlier stops known done (head office, a bundle, our own records)
    # earlier stops nobody has reported either way (offline): route unverified, not a route skip.
    # Empty means the reports are complete: a stop not done was skipped.
    stops_unknown: frozenset[str] = frozenset()


@dataclass(frozen=True)
class RouteProgress:
    """Later news of earlier stops of the running handover's route (head office's route_progress)."""
    stops_done: frozenset[str]


@dataclass(frozen=True)
class FingerPresented:
    """One attempt at a fingerprint module. `person_id` is set on a match; `duress` when the matched
    finger is the person's duress finger; `snapshot` is the face photo's hash (None: no camera/face)."""
    station: Station
    outcome: FingerOutcome
    person_id: str | None = None
    duress: bool = False
    snapshot: str | None = None


@dataclass(frozen=True)
class PasswordPresented:
    """An officer's password check, done by the agent against the stored slow hash."""
    person_id: str
    ok: bool


@dataclass(frozen=True)
class BoxPresented:
    """A tag was read. `box` is the box this tag belongs to in any task known today, None if unknown.
    `uid_only` marks a tag read without its anti-clone check."""
    tag: str
    box: Box | None
    uid_only: bool = False
    refused: str | None = None            # why the tag's anti-clone check failed, if it did


@dataclass(frozen=True)
class DispositionRecorded:
    """Risk handling (风险处置): an authenticated officer's decision on the open exceptions."""
    officer_id: str
    code: str                              # from DISPOSITION_CODES
    text: str
    resolution: Resolution


DISPOSITION_CODES = (
    "box_set_aside",          # wrong/unknown box kept apart, handover goes on
    "box_count_corrected",    # recount agreed with the escort lead
    "identity_confirmed",     # staff confirmed the person by other means
    "police_called",
    "head_office_instructed",
    "other",
)

Event = VehicleArrived | FingerPresented | PasswordPresented | BoxPresented | DispositionRecorded | RouteProgress
