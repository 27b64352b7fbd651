"""Which dispositions fit which open alarm, as a table a reader can check: a route skip is not settled by
setting a box aside, a wrong person not by correcting the box count. A disposition fits the open exceptions
when it fits at least one of them. Duress is absent on purpose: it is silent and never opens risk handling."""
from __future__ import annotations

from collections.abc import Iterable

from flows.decisions import AlarmKind
from flows.events import DISPOSITION_CODES

_ANY = ("head_office_instructed", "police_called", "other")     # what fits every alarm

DISPOSITIONS_FOR: dict[AlarmKind, tuple[str, ...]] = {
    AlarmKind.WRONG_BOX: ("box_set_aside", *_ANY),
    AlarmKind.UNKNOWN_BOX: ("box_set_aside", *_ANY),
    AlarmKind.CLONED_TAG: ("box_set_aside", *_ANY),
    AlarmKind.MISSING_BOX: ("box_count_corrected", *_ANY),
    AlarmKind.WRONG_PERSON: ("identity_confirmed", *_ANY),
    AlarmKind.ILLEGAL_AUTHENTICATION: ("identity_confirmed", *_ANY),
    AlarmKind.ROUTE_SKIP: _ANY,
    AlarmKind.OUTSIDE_WINDOW: _ANY,
    AlarmKind.WRONG_VEHICLE: _ANY,
    AlarmKind.UNKNOWN_VEHICLE: _ANY,
}


def fitting(kinds: Iterable[str]) -> tuple[str, ...]:
    """The codes that fit at least one of these open alarm kinds, in DISPOSITION_CODES order."""
    fit = {c for k in kinds for c in DISPOSITIONS_FOR.get(AlarmKind(k), DISPOSITION_CODES)}
    return tuple(c for c in DISPOSITION_CODES if c in fit)
