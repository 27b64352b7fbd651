"""The route board's judgement (SPEC §2.3, §2.5): each stop of a truck's route today, from its window, the
time now and what the fleet's journals say happened there. Route skips (跳点) are judged here, at head
office, from the whole fleet's records: a terminal offline may only know `route_unverified`.

Pure, as flows/ is (no I/O, no clock: `now` is passed in), but head office's own: hq imports nothing of the
terminal (tests/unit/test_layout.py), and the terminal never judges a whole route.

A stop is `skipped` when the truck has reached a later stop of the route (a handover started there) while
this one has no handover at all: waiting for the later stop to finish would tell the vault manager only
after the crew has left. What is not known (a terminal whose records have not come up yet) looks like no
handover; the board is judged again as its entries arrive.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Mapping, Sequence


class StopState(StrEnum):
    DONE = "done"               # the handover here ended (completed, with exception, or aborted)
    AT_DOOR = "at_door"         # a handover here started and has not ended
    NEXT = "next"               # where the truck goes next, its window still open
    OVERDUE = "overdue"         # not reached and its window is over
    PENDING = "pending"         # a later stop, its window still open
    SKIPPED = "skipped"         # no handover here, and the truck reached a later stop (跳点)


class Here(StrEnum):
    """What the journals say of the stop itself."""
    ENDED = "ended"
    STARTED = "started"
    NONE = "none"


ANY = None

# (handover here, a later stop reached, first stop not reached yet, window over) -> state.
# The first row that matches wins; ANY matches either value.
RULES: tuple[tuple[Here, bool | None, bool | None, bool | None, StopState], ...] = (
    (Here.ENDED,   ANY,   ANY,   ANY,   StopState.DONE),
    (Here.STARTED, ANY,   ANY,   ANY,   StopState.AT_DOOR),
    (Here.NONE,    True,  ANY,   ANY,   StopState.SKIPPED),
    (Here.NONE,    False, True,  False, StopState.NEXT),
    (Here.NONE,    False, True,  True,  StopState.OVERDUE),
    (Here.NONE,    False, False, True,  StopState.OVERDUE),
    (Here.NONE,    False, False, False, StopState.PENDING),
)


def state_of(here: Here, later_reached: bool, first_open: bool, window_over: bool) -> StopState:
    for rule_here, rule_later, rule_first, rule_over, state in RULES:
        if rule_here is here and all(rule is ANY or rule is value for rule, value in (
                (rule_later, later_reached), (rule_first, first_open), (rule_over, window_over))):
            return state
    raise AssertionError(f"no rule for {here}, {later_reached}, {first_open}, {window_over}")   # RULES are complete


@dataclass(frozen=True)
class PlannedStop:
    site_id: str
    window_start: datetime
    window_end: datetime


@dataclass(frozen=True)
class StopRecord:
    """What the journals of the stop's terminals say: a handover started (arrival) and when it ended."""
    started_at: datetime | None = None
    ended_at: datetime | None = None

    @property
    def here(self) -> Here:
        if self.ended_at is not None:
            return Here.ENDED
        return Here.STARTED if self.started_at is not None else Here.NONE


def judge(stops: Sequence[PlannedStop], records: Mapping[str, StopRecord], now: datetime) -> list[StopState]:
    """Each stop's state, in route order. `records` by site id; a site without one has no handover."""
    here = [records.get(s.site_id, StopRecord()).here for s in stops]
    reached = [h is not Here.NONE for h in here]
    out: list[StopState] = []
    first_open_seen = False
    for i, stop in enumerate(stops):
        later = any(reached[i + 1:])
        first_open = here[i] is Here.NONE and not later and not first_open_seen
        first_open_seen = first_open_seen or first_open
        out.append(state_of(here[i], later, first_open, now > stop.window_end))
    return out


def skipped(stops: Sequence[PlannedStop], states: Sequence[StopState]) -> list[str]:
    """The site ids of the stops judged skipped (the board's route skip)."""
    return [s.site_id for s, state in zip(stops, states) if state is StopState.SKIPPED]
