"""Which task a truck's beacon belongs to, and the vehicle alarms (SPEC §2.2 step 1, §2.3)."""
from __future__ import annotations

from datetime import timedelta

from flows.arrival import match_arrival
from flows.decisions import Alarm, AlarmKind
from flows_fixtures import OTHER_TRUCK, T0, TRUCK, task


def _window(start_h: float, hours: float = 1):
    start = T0 + timedelta(hours=start_h)
    return start, start + timedelta(hours=hours)


def test_the_truck_of_an_open_task_here_matches_that_task():
    mine, other = task(task_id="T1"), task(task_id="T2", vehicle=OTHER_TRUCK)
    m = match_arrival(TRUCK.beacon, [other, mine], [mine, other], T0)
    assert m.task is mine and m.alarm is None


def test_the_task_whose_window_holds_now_wins_over_the_truck_s_other_tasks():
    morning = task(task_id="T1", window=_window(-3))
    now_ = task(task_id="T2", window=_window(-0.5))
    later = task(task_id="T3", window=_window(2))
    assert match_arrival(TRUCK.beacon, [morning, later, now_], [morning, now_, later], T0).task is now_


def test_outside_every_window_the_nearest_window_is_matched():
    # the handover itself then raises outside_window (tests/unit/test_handover.py)
    early = task(task_id="T1", window=_window(-4))          # ended 3 h ago
    soon = task(task_id="T2", window=_window(1))            # starts in 1 h
    m = match_arrival(TRUCK.beacon, [early, soon], [early, soon], T0)
    assert m.task is soon and m.alarm is None


def test_equal_distance_prefers_the_earlier_window_then_the_task_id():
    a = task(task_id="T2", window=_window(1))
    b = task(task_id="T1", window=_window(1))
    before = task(task_id="T3", window=_window(-2))         # ended 1 h ago: as far as a and b start
    assert match_arrival(TRUCK.beacon, [a, b, before], [], T0).task is before
    assert match_arrival(TRUCK.beacon, [a, b], [], T0).task is b


def test_a_known_truck_with_no_open_task_here_is_a_wrong_vehicle():
    handed_over = task(task_id="T1")                         # known today, but not open here any more
    m = match_arrival(TRUCK.beacon, [task(task_id="T2", vehicle=OTHER_TRUCK)], [handed_over], T0)
    assert m.task is None
    assert m.alarm == Alarm(AlarmKind.WRONG_VEHICLE, {"beacon": TRUCK.beacon, "plate": TRUCK.plate},
                            blocking=False)


def test_a_beacon_no_task_knows_is_an_unknown_vehicle():
    t = task()
    m = match_arrival("ibeacon:fake-truck", [t], [t], T0)
    assert m.task is None
    assert m.alarm == Alarm(AlarmKind.UNKNOWN_VEHICLE, {"beacon": "ibeacon:fake-truck"}, blocking=False)
    assert not m.alarm.silent


def test_no_tasks_at_all_means_unknown_vehicle():
    assert match_arrival(TRUCK.beacon, [], [], T0).alarm.kind is AlarmKind.UNKNOWN_VEHICLE
