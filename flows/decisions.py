"""What a handover decides. The agent journals these first, then shows, speaks, and drives outputs."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Step(StrEnum):
    ARRIVAL = "arrival"                          # 1 车辆认证
    ESCORT_VERIFICATION = "escort_verification"  # 2 押运人员身份验证
    BOX_HANDOVER = "box_handover"                # 3 款箱交接
    OFFICER_CONFIRMATION = "officer_confirmation"  # 4 营业专员身份认证
    SIGN_OFF = "sign_off"                        # 5 留痕与报告
    ENDED = "ended"


class Outcome(StrEnum):
    COMPLETED = "completed"
    COMPLETED_WITH_EXCEPTION = "completed_with_exception"
    ABORTED = "aborted"


class AlarmKind(StrEnum):
    ILLEGAL_AUTHENTICATION = "illegal_authentication"   # 非法认证
    WRONG_PERSON = "wrong_person"                       # 私自调班
    WRONG_VEHICLE = "wrong_vehicle"
    UNKNOWN_VEHICLE = "unknown_vehicle"
    OUTSIDE_WINDOW = "outside_window"
    WRONG_BOX = "wrong_box"                             # 错箱
    MISSING_BOX = "missing_box"                         # 丢箱
    UNKNOWN_BOX = "unknown_box"
    CLONED_TAG = "cloned_tag"
    ROUTE_SKIP = "route_skip"                           # 跳点
    DURESS = "duress"


@dataclass(frozen=True)
class Prompt:
    """Voice and on-screen text together (全程语音和图文提示): a catalog key and its parameters."""
    key: str
    params: dict = field(default_factory=dict)
    urgent: bool = False


@dataclass(frozen=True)
class StepChanged:
    step: Step


@dataclass(frozen=True)
class AttemptRecorded:
    """Every fingerprint attempt, with its outcome, for the journal and the screen."""
    station: str
    outcome: str                 # "verified", "no_match", "read_failed", "wrong_person", "not_expected", "unreadable"
    person_id: str | None
    snapshot: str | None
    consecutive_failures: int


@dataclass(frozen=True)
class EscortVerified:
    person_id: str
    snapshot: str | None


@dataclass(frozen=True)
class DoorPermit:
    raised: bool


@dataclass(frozen=True)
class Alarm:
    kind: AlarmKind
    detail: dict = field(default_factory=dict)
    silent: bool = False         # duress: head office only; the screen and speaker behave normally
    blocking: bool = True        # puts the handover into risk handling


@dataclass(frozen=True)
class BoxAccepted:
    box_id: str
    tag: str
    uid_only: bool


@dataclass(frozen=True)
class OfficerConfirmed:
    person_id: str
    method: str                  # "fingerprint" or "password"


@dataclass(frozen=True)
class MarkRecorded:
    """留痕: the escort lead's or officer's fingerprint mark on the finished handover."""
    person_id: str
    role: str


@dataclass(frozen=True)
class RiskResolved:
    officer_id: str
    code: str
    text: str
    resolution: str


@dataclass(frozen=True)
class TaskRestarted:
    """Five failures at one station: back to step 1; history stays in the journal."""
    station: str


@dataclass(frozen=True)
class HandoverEnded:
    outcome: "Outcome"


@dataclass(frozen=True)
class RouteUnverified:
    """Earlier stops nobody has reported done or skipped (offline): journaled and shown to staff, never
    blocking. Head office judges the route from the fleet's records."""
    stops: tuple[str, ...]


@dataclass(frozen=True)
class RouteVerified:
    """Progress arrived later: these earlier stops are now known done."""
    stops: tuple[str, ...]


@dataclass(frozen=True)
class Refused:
    """The event does not apply at this step; nothing changed. `reason` is the catalog key shown."""
    step: Step
    event: str
    reason: str


Decision = (Prompt | StepChanged | AttemptRecorded | EscortVerified | DoorPermit | Alarm | BoxAccepted
            | OfficerConfirmed | MarkRecorded | RiskResolved | TaskRestarted | HandoverEnded | RouteUnverified
            | RouteVerified | Refused)
