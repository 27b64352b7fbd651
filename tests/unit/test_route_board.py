"""The route board's judgement (hq/route_board.py): every row of the table, then whole routes as the vault
manager sees them — done, at the door, next, overdue, pending, and a route skip judged from a later stop."""
from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hq.route_board import RULES, Here, PlannedStop, StopRecord, StopState, judge, skipped, state_of

CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 30, 9, 0, tzinfo=CST)
S = StopState


def stops(*windows: tuple[float, float]) -> list[PlannedStop]:
    """Stops S1, S2, ... with windows given in hours from T0."""
    return [PlannedStop(f"S{i}", T0 + timedelta(hours=a), T0 + timedelta(hours=b))
            for i, (a, b) in enumerate(windows, 1)]


STARTED = StopRecord(started_at=T0 - timedelta(minutes=5))
ENDED = StopRecord(started_at=T0 - timedelta(hours=1), ended_at=T0 - timedelta(minutes=40))


# -- the table, row by row ------------------------------------------------------------------------

@pytest.mark.parametrize("later, first, over", list(itertools.product([True, False], repeat=3)))
def test_an_ended_handover_is_done_whatever_else_is_true(later, first, over):
    assert state_of(Here.ENDED, later, first, over) is S.DONE


@pytest.mark.parametrize("later, first, over", list(itertools.product([True, False], repeat=3)))
def test_a_started_handover_is_at_the_door_whatever_else_is_true(later, first, over):
    assert state_of(Here.STARTED, later, first, over) is S.AT_DOOR


@pytest.mark.parametrize("first, over", list(itertools.product([True, False], repeat=2)))
def test_no_handover_with_a_later_stop_reached_is_skipped(first, over):
    assert state_of(Here.NONE, True, first, over) is S.SKIPPED


@pytest.mark.parametrize("first, over, state", [
    (True, False, S.NEXT), (True, True, S.OVERDUE), (False, True, S.OVERDUE), (False, False, S.PENDING)])
def test_a_stop_not_reached_is_next_overdue_or_pending(first, over, state):
    assert state_of(Here.NONE, False, first, over) is state


def test_every_combination_has_exactly_the_first_matching_row_and_every_row_is_used():
    used = set()
    for here, later, first, over in itertools.product(Here, *[[True, False]] * 3):
        matching = [i for i, (h, lr, fr, ov, _) in enumerate(RULES)
                    if h is here and all(r is None or r is v for r, v in ((lr, later), (fr, first), (ov, over)))]
        assert matching, (here, later, first, over)
        used.add(matching[0])
    assert used == set(range(len(RULES))), "a row no combination reaches is dead"


# -- whole routes -----------------------------------------------------------------------------------

def test_the_vault_manager_s_morning_done_at_the_door_overdue_pending():
    route = stops((-2, -1), (-0.5, 1), (-1.5, -0.25), (1, 2))
    states = judge(route, {"S1": ENDED, "S2": STARTED}, T0)
    assert states == [S.DONE, S.AT_DOOR, S.OVERDUE, S.PENDING]
    assert skipped(route, states) == []


def test_the_first_stop_not_reached_is_next_the_rest_pending():
    route = stops((-1, 1), (1, 2), (2, 3))
    assert judge(route, {}, T0) == [S.NEXT, S.PENDING, S.PENDING]
    assert judge(route, {"S1": ENDED}, T0) == [S.DONE, S.NEXT, S.PENDING]


def test_a_later_stop_reached_makes_the_earlier_unvisited_one_a_skip_at_once():
    route = stops((-2, -1), (-1, 0.5), (0, 2))
    states = judge(route, {"S1": ENDED, "S3": STARTED}, T0)       # S3 only at the door: judged now
    assert states == [S.DONE, S.SKIPPED, S.AT_DOOR]
    assert skipped(route, states) == ["S2"]


def test_a_skip_turns_done_when_the_late_terminal_s_records_arrive():
    route = stops((-2, -1), (-1, 0.5), (0, 2))
    assert judge(route, {"S1": ENDED, "S2": ENDED, "S3": STARTED}, T0) == [S.DONE, S.DONE, S.AT_DOOR]


def test_an_overdue_stop_stays_overdue_not_skipped_while_no_later_stop_is_reached():
    route = stops((-3, -2), (-2, -1), (1, 2))
    assert judge(route, {"S1": ENDED}, T0) == [S.DONE, S.OVERDUE, S.PENDING]


def test_the_window_s_end_itself_is_not_yet_overdue():
    route = stops((-1, 0))
    assert judge(route, {}, T0) == [S.NEXT]
    assert judge(route, {}, T0 + timedelta(seconds=1)) == [S.OVERDUE]


def test_an_empty_route_is_an_empty_board():
    assert judge([], {}, T0) == []


@given(st.lists(st.sampled_from([None, "started", "ended"]), min_size=1, max_size=8),
       st.lists(st.booleans(), min_size=8, max_size=8))
def test_skips_are_exactly_the_unvisited_stops_before_the_last_reached_one(visits, over):
    route = [PlannedStop(f"S{i}", T0 - timedelta(hours=2), T0 + (timedelta(hours=-1) if over[i] else timedelta(hours=1)))
             for i in range(len(visits))]
    records = {f"S{i}": STARTED if v == "started" else ENDED for i, v in enumerate(visits) if v}
    states = judge(route, records, T0)
    reached = [i for i, v in enumerate(visits) if v]
    last = reached[-1] if reached else -1
    assert skipped(route, states) == [f"S{i}" for i in range(last) if visits[i] is None]
    after = [i for i in range(last + 1, len(visits))]
    # exactly one stop is where the truck goes next (next or overdue) once it has unvisited stops ahead
    assert [states[i] for i in after[:1]] == [S.OVERDUE if over[i] else S.NEXT for i in after[:1]]
    assert all(states[i] in (S.PENDING, S.OVERDUE) for i in after[1:])
