"""Every transition of the handover machine (SPEC §2.2 steps 1-5, §2.3 alarms and risk handling)."""
from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from flows.decisions import (
    Alarm, AlarmKind, AttemptRecorded, BoxAccepted, DoorPermit, EscortVerified, HandoverEnded, MarkRecorded,
    OfficerConfirmed, Outcome, Prompt, Refused, RiskResolved, RouteUnverified, RouteVerified, Step, StepChanged,
    TaskRestarted)
from flows.dispositions import fitting
from flows.events import (
    DISPOSITION_CODES, BoxPresented, DispositionRecorded, FingerPresented, PasswordPresented, RouteProgress,
    VehicleArrived)
from flows.handover import Handover
from flows.model import SiteType, Task, TaskKind
from flows.report import build_report
from flows_fixtures import (
    BR1, BR2, BR3, PEOPLE, T0, TRUCK, VAULT, WINDOW, Run, alarms, box, counter, dispose, door, of, password,
    prompt, prompts, refusals, site, stops_before, tag, task, told)


# --- step 1: arrival ---------------------------------------------------------------------------

def test_beacon_arrival_names_the_truck_and_asks_for_the_escorts():
    r = Run.of()
    ds = r.arrive()
    assert prompt(ds, "vehicle_arrived").params == {"plate": TRUCK.plate}
    assert StepChanged(Step.ESCORT_VERIFICATION) in ds
    assert prompt(ds, "present_escort_fingers").params == {"count": 2}
    assert alarms(ds) == [] and not r.h.in_risk_handling
    assert r.h.arrived_at == r.now and r.h.arrival_manual_by is None


def test_manual_arrival_by_an_officer_is_recorded_as_manual():
    r = Run.of()
    ds = r.feed(VehicleArrived(manual_by="O1", stops_done=frozenset({VAULT})))
    assert r.h.step is Step.ESCORT_VERIFICATION and "vehicle_arrived_manual" in prompts(ds) and "vehicle_arrived" not in prompts(ds)
    assert r.h.arrival_manual_by == "O1"
    assert build_report(r.h).arrival_manual is True


@pytest.mark.parametrize("who", ["E1", "X1", "O3", "M1", "nobody"],
                         ids=["assigned escort", "other escort", "officer not a confirmer", "manager", "unknown"])
def test_manual_arrival_by_anyone_but_a_confirming_officer_is_refused(who):
    r = Run.of()
    ds = r.feed(VehicleArrived(manual_by=who))
    assert told(ds) == ["manual_arrival_needs_officer"]
    assert refusals(ds) == [Refused(Step.ARRIVAL, "VehicleArrived", "manual_arrival_needs_officer")] == ds
    assert r.h.step is Step.ARRIVAL and r.h.arrived_at is None


def test_beacon_seen_again_changes_nothing():
    r = Run.of()
    r.arrive()
    arrived = r.h.arrived_at
    assert r.arrive() == [Refused(Step.ESCORT_VERIFICATION, "VehicleArrived", "already_arrived")]
    r.verify_escorts()
    assert r.arrive() == [Refused(Step.BOX_HANDOVER, "VehicleArrived", "already_arrived")]
    assert r.h.arrived_at == arrived and r.h.step is Step.BOX_HANDOVER


def test_fingers_and_boxes_before_arrival_are_not_counted():
    r = Run.of()
    ds = r.feed(door("E1"))
    assert of(ds, AttemptRecorded)[0].outcome == "not_expected" and "wait_for_arrival" in prompts(ds)
    ds = r.feed(door(outcome="no_match"))
    assert of(ds, AttemptRecorded)[0].consecutive_failures == 0
    assert told(r.feed(tag(box("B1", BR1)))) == ["not_box_step"]
    assert r.h.step is Step.ARRIVAL and r.h.verified == {}


# --- step 2: escort verification ----------------------------------------------------------------

def test_escort_verified_at_the_door_with_snapshot():
    r = Run.of()
    r.arrive()
    ds = r.feed(door("E1", snapshot="face-1"))
    assert of(ds, AttemptRecorded) == [AttemptRecorded("door", "verified", "E1", "face-1", 0)]
    assert of(ds, EscortVerified) == [EscortVerified("E1", "face-1")]
    assert prompt(ds, "escort_verified").params == {"person_id": "E1"}
    assert of(ds, DoorPermit) == [] and not r.h.door_raised
    assert r.h.verified["E1"].snapshot == "face-1"


def test_escorts_must_use_the_door_reader():
    r = Run.of()
    r.arrive()
    ds = r.feed(counter("E1"))
    assert of(ds, AttemptRecorded)[0].outcome == "not_expected"
    assert "escorts_use_door_reader" in prompts(ds) and "E1" not in r.h.verified


def test_an_escort_verified_twice_is_told_so_and_counted_once():
    r = Run.of()
    r.arrive()
    r.feed(door("E1"))
    ds = r.feed(door("E1"))
    assert prompt(ds, "already_verified").params == {"person_id": "E1"}
    assert of(ds, EscortVerified) == [] and of(ds, DoorPermit) == []


def test_a_confirmer_at_the_escort_step_is_asked_to_wait_without_alarm():
    r = Run.of()
    r.arrive()
    ds = r.feed(door("O1"))
    assert "escorts_first" in prompts(ds) and alarms(ds) == []
    assert r.h.step is Step.ESCORT_VERIFICATION


@pytest.mark.parametrize("escorts,min_escorts", [
    (("E1", "E2"), 2), (("E1", "E2", "E3"), 2), (("E1", "E2", "E3"), 3), (("E1", "E2", "E3", "E4"), 4)])
def test_door_permit_only_when_every_assigned_escort_is_verified(escorts, min_escorts):
    r = Run.of(task(escorts=escorts, min_escorts=min_escorts), min_escorts=min_escorts)
    r.arrive()
    for e in escorts[:-1]:
        ds = r.feed(door(e))
        assert of(ds, DoorPermit) == [] and not r.h.door_raised
        r.feed(door(e))                                 # the same escort again does not count twice
        assert not r.h.door_raised
    ds = r.feed(door(escorts[-1]))
    assert of(ds, DoorPermit) == [DoorPermit(True)] and r.h.door_raised
    assert "all_escorts_verified" in prompts(ds) and r.h.step is Step.BOX_HANDOVER


@pytest.mark.parametrize("machine_min,task_min,assigned", [(3, 2, 2), (2, 3, 2), (4, 2, 3)])
def test_too_few_escorts_for_the_configured_minimum_is_refused(machine_min, task_min, assigned):
    t = Task("T9", 1, TaskKind.DELIVERY, *WINDOW, (VAULT, BR1), TRUCK, ("E1", "E2", "E3")[:assigned],
             (), ("O1",), task_min)
    with pytest.raises(ValueError, match=r"T9: \d escorts assigned, at least \d required"):
        Handover(t, site(), PEOPLE, min_escorts=machine_min)


# --- failures and illegal authentication --------------------------------------------------------

@pytest.mark.parametrize("outcome,key", [("read_failed", "finger_read_failed"), ("no_match", "finger_not_recognised")])
def test_failed_attempts_say_how_many_remain(outcome, key):
    r = Run.of()
    r.arrive()
    for n in range(1, 5):
        ds = r.feed(door(outcome=outcome))
        assert of(ds, AttemptRecorded) == [AttemptRecorded("door", outcome, None, None, n)]
        assert prompt(ds, key).params == {"remaining": 5 - n}
    assert r.h.step is Step.ESCORT_VERIFICATION and alarms(r.decisions) == []


def test_an_unreadable_module_answer_asks_to_press_again_and_never_counts():
    """A reply lost or damaged on the line says nothing about the finger: no alarm however often."""
    r = Run.of()
    r.arrive()
    r.feed_all(*[door(outcome="no_match")] * 4)
    for _ in range(10):
        ds = r.feed(door(outcome="unreadable"))
        assert [a.outcome for a in of(ds, AttemptRecorded)] == ["unreadable"]
        assert "finger_press_again" in prompts(ds) and of(ds, TaskRestarted) == []
    assert r.h.failures["door"] == 4 and r.h.step is Step.ESCORT_VERIFICATION and alarms(r.decisions) == []
    ds = r.feed(door("E1"))
    assert of(ds, EscortVerified)


@pytest.mark.parametrize("station", ["door", "counter"])
def test_five_consecutive_failures_at_one_station_restart_the_task(station):
    r = Run.of().to_boxes()
    r.feed(tag(box("B1", BR1)))
    assert r.h.door_raised
    for _ in range(4):
        r.feed(door(outcome="no_match") if station == "door" else counter(outcome="read_failed"))
    ds = r.feed(door(outcome="no_match") if station == "door" else counter(outcome="read_failed"))
    alarm = alarms(ds, AlarmKind.ILLEGAL_AUTHENTICATION)
    assert alarm == [Alarm(AlarmKind.ILLEGAL_AUTHENTICATION, {"station": station, "attempts": 5}, blocking=False)]
    assert TaskRestarted(station) in ds and DoorPermit(False) in ds and not r.h.door_raised
    assert prompt(ds, "illegal_authentication_restart").urgent
    assert StepChanged(Step.ARRIVAL) in ds and r.h.step is Step.ARRIVAL
    assert r.h.verified == {} and r.h.boxes_read == {} and r.h.arrived_at is None and r.h.restarts == 1
    assert [a.alarm.kind for a in r.h.alarms] == [AlarmKind.ILLEGAL_AUTHENTICATION]    # history kept
    # the truck is seen again and the whole handover is done over
    r.walk()
    assert r.h.outcome is Outcome.COMPLETED_WITH_EXCEPTION
    report = build_report(r.h)
    assert report.restarts == 1 and [e["kind"] for e in report.exceptions] == ["illegal_authentication"]


def test_restart_before_the_door_opens_does_not_touch_the_door():
    r = Run.of()
    r.arrive()
    ds = r.feed_all(*[door(outcome="no_match")] * 5)
    assert TaskRestarted("door") in ds and of(ds, DoorPermit) == []


def test_a_success_resets_the_count():
    r = Run.of()
    r.arrive()
    r.feed_all(*[door(outcome="no_match")] * 4)
    ds = r.feed(door("E1"))
    assert of(ds, AttemptRecorded)[0].consecutive_failures == 0
    ds = r.feed_all(*[door(outcome="read_failed")] * 4)
    assert of(ds, TaskRestarted) == [] and prompt(ds[-2:], "finger_read_failed").params == {"remaining": 1}


def test_failures_at_different_stations_are_counted_apart():
    r = Run.of()
    r.arrive()
    ds = r.feed_all(*[door(outcome="no_match"), counter(outcome="no_match")] * 4)
    assert of(ds, TaskRestarted) == []
    assert r.h.failures == {"door": 4, "counter": 4}
    assert of(r.feed(counter(outcome="no_match")), TaskRestarted) == [TaskRestarted("counter")]


def test_restart_at_sign_off_makes_everyone_mark_again():
    r = Run.of().to_sign_off()
    r.feed(counter("E1"))                                # the lead marks, then the counter reader fails
    r.feed_all(*[counter(outcome="no_match")] * 5)
    assert r.h.step is Step.ARRIVAL and r.h.marks == {}
    r.to_sign_off()
    ds = r.feed(counter("O1"))
    assert r.h.step is Step.SIGN_OFF and of(ds, HandoverEnded) == []     # the lead has not marked this time
    assert of(r.feed(counter("E1")), HandoverEnded) == [HandoverEnded(Outcome.COMPLETED_WITH_EXCEPTION)]


def test_failure_limit_is_configurable():
    r = Run.of(failure_limit=3)
    r.arrive()
    ds = r.feed_all(*[door(outcome="no_match")] * 3)
    assert TaskRestarted("door") in ds
    assert alarms(ds, AlarmKind.ILLEGAL_AUTHENTICATION)[0].detail["attempts"] == 3


# --- step 3: boxes --------------------------------------------------------------------------------

def test_boxes_are_counted_then_the_officer_is_asked():
    r = Run.of().to_boxes()
    b1, b2 = box("B1", BR1), box("B2", BR1)
    assert prompt(r.decisions, "present_boxes_in").params == {"count": 2}
    ds = r.feed(tag(b1))
    assert of(ds, BoxAccepted) == [BoxAccepted("B1", b1.tag, False)]
    assert prompt(ds, "box_counted").params == {"box_id": "B1", "counted": 1, "planned": 2}
    assert r.h.step is Step.BOX_HANDOVER
    ds = r.feed(tag(b1))
    assert prompt(ds, "box_already_counted").params == {"box_id": "B1"} and of(ds, BoxAccepted) == []
    ds = r.feed(tag(b2))
    assert prompts(ds) == ["box_counted", "all_boxes_counted", "officer_confirm"]
    assert r.h.step is Step.OFFICER_CONFIRMATION
    assert prompts(r.feed(tag(b2))) == ["box_already_counted"]


def test_a_task_with_no_boxes_here_goes_straight_to_the_officer():
    r = Run.of(task(boxes=(box("B3", BR2),)))
    ds = r.to_boxes().decisions
    assert r.h.expected == {} and r.h.step is Step.OFFICER_CONFIRMATION
    assert "officer_confirm" in prompts(ds) and not any(k.startswith("present_boxes") for k in prompts(ds))
    r.confirm()
    r.sign_off()
    assert r.h.outcome is Outcome.COMPLETED and build_report(r.h).boxes_planned == ()


def test_boxes_outside_the_box_steps_are_refused():
    r = Run.of().to_sign_off()
    assert told(r.feed(tag(box("B1", BR1)))) == ["not_box_step"]


# --- step 4: officer confirmation -----------------------------------------------------------------

def test_officer_confirms_by_fingerprint():
    r = Run.of().to_boxes()
    r.count_boxes()
    ds = r.confirm()
    assert of(ds, OfficerConfirmed) == [OfficerConfirmed("O1", "fingerprint")]
    assert prompt(ds, "officer_verified").params == {"person_id": "O1"}
    assert prompt(ds, "sign_off").params == {"lead_id": "E1", "officer_id": "O1"}
    assert r.h.step is Step.SIGN_OFF and alarms(ds) == []


def test_officer_confirms_by_password_where_the_site_allows_it():
    r = Run.of(s=site(password=True)).to_boxes()
    r.count_boxes()
    assert told(r.feed(password("E1"))) == ["officer_needed"]
    assert told(r.feed(password("O3"))) == ["officer_needed"]
    ds = r.feed(password("O2", ok=False))
    assert prompts(ds) == ["password_wrong"] and ds[0].params == {"remaining": 4}
    assert prompt(r.feed(password("O2", ok=False)), "password_wrong").params == {"remaining": 3}
    ds = r.feed(password("O2"))
    assert of(ds, OfficerConfirmed) == [OfficerConfirmed("O2", "password")] and r.h.step is Step.SIGN_OFF
    r.sign_off("O2")
    assert r.h.outcome is Outcome.COMPLETED and build_report(r.h).officer_method == "password"


def test_password_refused_where_the_site_does_not_allow_it():
    r = Run.of(s=site(password=False)).to_boxes()
    r.count_boxes()
    assert told(r.feed(password("O1"))) == ["password_not_allowed"]
    assert r.h.step is Step.OFFICER_CONFIRMATION and r.h.officer is None


def test_password_before_the_officer_step_is_refused():
    r = Run.of(s=site(password=True))
    r.arrive()
    assert told(r.feed(password("O1"))) == ["officer_needed"]


def test_five_wrong_passwords_restart_the_task():
    r = Run.of(s=site(password=True)).to_boxes()
    r.count_boxes()
    ds = r.feed_all(*[password("O1", ok=False)] * 5)
    assert TaskRestarted("password") in ds and r.h.step is Step.ARRIVAL
    assert alarms(ds, AlarmKind.ILLEGAL_AUTHENTICATION)


def test_an_escort_at_the_officer_step_is_asked_for_the_officer():
    r = Run.of().to_boxes()
    r.count_boxes()
    ds = r.feed(counter("E2"))
    assert of(ds, AttemptRecorded)[0].outcome == "not_expected" and "officer_needed" in prompts(ds)
    assert alarms(ds) == [] and r.h.step is Step.OFFICER_CONFIRMATION


# --- step 5: sign-off ----------------------------------------------------------------------------

@pytest.mark.parametrize("order", [("E1", "O1"), ("O1", "E1")], ids=["lead first", "officer first"])
def test_lead_and_officer_marks_complete_the_handover_and_lower_the_door(order):
    r = Run.of().to_sign_off()
    first = r.feed(counter(order[0]))
    assert of(first, HandoverEnded) == [] and r.h.door_raised
    ds = r.feed(counter(order[1]))
    roles = {"E1": "escort_lead", "O1": "officer"}
    assert [m for d in (first, ds) for m in of(d, MarkRecorded)] == [MarkRecorded(p, roles[p]) for p in order]
    assert of(ds, DoorPermit) == [DoorPermit(False)] and not r.h.door_raised
    assert of(ds, HandoverEnded) == [HandoverEnded(Outcome.COMPLETED)] and prompts(ds)[-1] == "handover_completed"
    assert r.h.step is Step.ENDED and alarms(r.decisions) == []            # a normal handover raises nothing
    assert r.feed(counter("E1")) == [Refused(Step.ENDED, "FingerPresented", "handover_already_ended")]


@pytest.mark.parametrize("who", ["E2", "O2"], ids=["escort not the lead", "officer who did not confirm"])
def test_only_the_lead_and_the_confirming_officer_mark(who):
    r = Run.of().to_sign_off()
    ds = r.feed(counter(who))
    assert of(ds, AttemptRecorded)[0].outcome == "not_expected" and "sign_off" in prompts(ds)
    assert of(ds, MarkRecorded) == [] and alarms(ds) == []
    r.feed(counter("E1"))
    assert r.h.step is Step.SIGN_OFF
    r.feed(counter("O1"))
    assert r.h.outcome is Outcome.COMPLETED
    assert {p.person_id: p.marked_at is not None for p in build_report(r.h).people} == {
        "E1": True, "E2": False, "O1": True}


# --- every alarm of SPEC §2.3 -------------------------------------------------------------------
# (wrong and unknown vehicle are decided before a handover exists: tests/unit/test_arrival.py)

def _wrong_person_at_door(r):
    r.arrive()
    return r.feed(door("X1", snapshot="face-x"))


def _wrong_person_at_officer_step(r):
    r.to_boxes().count_boxes()
    return r.feed(counter("O3"))


def _wrong_person_at_sign_off(r):
    r.to_sign_off()
    return r.feed(counter("M1"))


def _early(r):
    return r.arrive(at=WINDOW[0] - timedelta(minutes=1))


def _late(r):
    return r.arrive(at=WINDOW[1] + timedelta(minutes=1))


def _wrong_box(r):
    r.to_boxes()
    return r.feed(tag(box("B3", BR2)))


def _box_of_another_task(r):
    r.to_boxes()
    return r.feed(tag(box("Z9", BR3)))


def _unknown_box(r):
    r.to_boxes()
    return r.feed(BoxPresented("TAG-NOWHERE", None))


def _missing_box(r):
    r.to_boxes()
    r.feed(tag(box("B1", BR1)))
    return r.confirm()


def _route_skip(r):
    return r.feed(VehicleArrived(beacon=TRUCK.beacon, stops_done=frozenset()))


def _refused_tag(r):
    r.to_boxes()
    return r.feed(tag(box("B1", BR1), refused="cmac_mismatch"))


def _uid_only_forbidden(r):
    r.to_boxes()
    return r.feed(tag(box("B1", BR1), uid_only=True))


ALARMS = [
    # scenario, site options, alarm kind, expected detail (subset)
    (_wrong_person_at_door, {}, AlarmKind.WRONG_PERSON, {"person_id": "X1", "station": "door", "snapshot": "face-x"}),
    (_wrong_person_at_officer_step, {}, AlarmKind.WRONG_PERSON, {"person_id": "O3", "station": "counter"}),
    (_wrong_person_at_sign_off, {}, AlarmKind.WRONG_PERSON, {"person_id": "M1", "station": "counter"}),
    (_early, {}, AlarmKind.OUTSIDE_WINDOW, {"window_start": WINDOW[0].isoformat()}),
    (_late, {}, AlarmKind.OUTSIDE_WINDOW, {"window_end": WINDOW[1].isoformat()}),
    (_wrong_box, {}, AlarmKind.WRONG_BOX, {"box_id": "B3", "destination": BR2}),
    (_box_of_another_task, {}, AlarmKind.WRONG_BOX, {"box_id": "Z9", "destination": BR3}),
    (_unknown_box, {}, AlarmKind.UNKNOWN_BOX, {"tag": "TAG-NOWHERE"}),
    (_missing_box, {}, AlarmKind.MISSING_BOX, {"missing": ["B2"], "counted": 1, "planned": 2}),
    (_route_skip, {}, AlarmKind.ROUTE_SKIP, {"skipped": [VAULT]}),
    (_refused_tag, {}, AlarmKind.CLONED_TAG, {"tag": "TAG-B1", "reason": "cmac_mismatch"}),
    (_uid_only_forbidden, {"uid_only": False}, AlarmKind.CLONED_TAG, {"tag": "TAG-B1", "reason": "uid_only_not_allowed"}),
]


@pytest.mark.parametrize("scenario,site_kw,kind,detail", ALARMS, ids=[a[0].__name__.strip("_") for a in ALARMS])
def test_every_blocking_alarm_is_shown_spoken_and_opens_risk_handling(scenario, site_kw, kind, detail):
    r = Run.of(s=site(**site_kw))
    ds = scenario(r)
    [alarm] = alarms(ds)
    assert alarm.kind is kind and alarm.blocking and not alarm.silent
    assert detail.items() <= alarm.detail.items()
    shown = prompt(ds, f"alarm_{kind.value}")
    assert shown.urgent and shown.params == alarm.detail
    assert prompts(ds)[-1] == "risk_handling_pending" and r.h.in_risk_handling
    # nothing moves until an officer records a disposition
    step = r.h.step
    for ev in (door("E1"), counter("O1"), tag(box("B2", BR1)), VehicleArrived(beacon=TRUCK.beacon)):
        assert told(r.feed(ev)) == ["risk_handling_pending"]
    assert r.h.step is step and r.h.outcome is None
    # the exception stays on the report
    assert [e["kind"] for e in build_report(r.h).exceptions] == [kind.value]


def test_wrong_box_and_unknown_box_are_not_counted():
    r = Run.of()
    _wrong_box(r)
    r.feed(dispose())
    r.feed(BoxPresented("TAG-NOWHERE", None))
    assert r.h.boxes_read == {}


@pytest.mark.parametrize("valid_from,valid_until", [(1, None), (None, -1)], ids=["not yet valid", "expired"])
def test_an_assigned_escort_outside_the_enrolment_validity_is_a_wrong_person(valid_from, valid_until):
    day = T0.date()
    people = dict(PEOPLE)
    people["E2"] = dataclasses.replace(
        PEOPLE["E2"], valid_from=day + timedelta(days=valid_from) if valid_from else None,
        valid_until=day + timedelta(days=valid_until) if valid_until else None)
    r = Run(Handover(task(), site(), people))
    r.arrive()
    r.feed(door("E1"))
    ds = r.feed(door("E2"))
    assert alarms(ds) == [Alarm(AlarmKind.WRONG_PERSON, {"person_id": "E2", "station": "door", "snapshot": None,
                                                         "reason": "outside_validity"})]
    assert "E2" not in r.h.verified and not r.h.door_raised and r.h.in_risk_handling


def test_an_escort_enrolled_until_today_is_still_valid():
    people = dict(PEOPLE)
    people["E2"] = dataclasses.replace(PEOPLE["E2"], valid_from=T0.date(), valid_until=T0.date())
    r = Run(Handover(task(), site(), people))
    r.to_boxes()
    assert r.h.door_raised and alarms(r.decisions) == []


def test_an_unassigned_escort_at_the_door_is_a_failed_attempt():
    r = Run.of()
    ds = _wrong_person_at_door(r)
    assert of(ds, AttemptRecorded) == [AttemptRecorded("door", "wrong_person", "X1", "face-x", 1)]
    assert "X1" not in r.h.verified


def test_keeping_to_the_route_raises_no_route_skip():
    for here, done in ((BR1, {VAULT}), (BR2, {VAULT, BR1}), (VAULT, set())):
        r = Run.of(s=site(SiteType.VAULT if here == VAULT else SiteType.BRANCH, here))
        ds = r.feed(VehicleArrived(beacon=TRUCK.beacon, stops_done=frozenset(done)))
        assert alarms(ds) == [], here
    r = Run.of(s=site(SiteType.BRANCH, BR2))
    ds = r.feed(VehicleArrived(beacon=TRUCK.beacon, stops_done=frozenset({VAULT})))
    assert alarms(ds)[0].detail == {"skipped": [BR1]}


def test_both_window_and_route_alarms_on_one_arrival_need_one_disposition():
    r = Run.of()
    ds = r.feed(VehicleArrived(beacon=TRUCK.beacon), at=WINDOW[1] + timedelta(hours=1))
    assert [a.kind for a in alarms(ds)] == [AlarmKind.OUTSIDE_WINDOW, AlarmKind.ROUTE_SKIP]
    assert "present_escort_fingers" not in prompts(ds)
    ds = r.feed(dispose(code="head_office_instructed"))
    assert prompt(ds, "present_escort_fingers").params == {"count": 2} and not r.h.in_risk_handling


def test_a_uid_only_tag_is_accepted_where_the_site_allows_it_and_marked_on_the_report():
    r = Run.of(s=site(uid_only=True)).to_boxes()
    ds = r.feed(tag(box("B1", BR1), uid_only=True))
    assert of(ds, BoxAccepted) == [BoxAccepted("B1", "TAG-B1", True)] and alarms(ds) == []
    r.feed(tag(box("B2", BR1)))
    r.confirm()
    r.sign_off()
    assert r.h.outcome is Outcome.COMPLETED and build_report(r.h).uid_only_boxes == ("B1",)


def test_illegal_authentication_does_not_block_but_restarts():
    r = Run.of()
    r.arrive()
    ds = r.feed_all(*[door(outcome="read_failed")] * 5)
    [alarm] = alarms(ds)
    assert alarm.kind is AlarmKind.ILLEGAL_AUTHENTICATION and not alarm.blocking and not alarm.silent
    assert not r.h.in_risk_handling and TaskRestarted("door") in ds


# --- duress: silent, not blocking, the flow looks normal ------------------------------------------

@pytest.mark.parametrize("who,index", [("E2", 2), ("O1", 5), ("E1", 6), ("O1", 7)],
                         ids=["escort at the door", "officer confirming", "lead marking", "officer marking"])
def test_duress_finger_raises_a_silent_alarm_and_the_flow_looks_normal(who, index):
    normal = Run.of(task(boxes=(box("B1", BR1), box("B2", BR1)))).walk()
    events = [e for e, _, _ in normal.log]
    assert getattr(events[index], "person_id", None) == who
    duress_events = list(events)
    duress_events[index] = type(events[index])(events[index].station, "match", who, True, events[index].snapshot)
    r = Run.of(task(boxes=(box("B1", BR1), box("B2", BR1))))
    for e, (_, at, _) in zip(duress_events, normal.log):
        r.feed(e, at)
    [alarm] = alarms(r.decisions)
    assert alarm == Alarm(AlarmKind.DURESS, {"person_id": who, "station": events[index].station},
                          silent=True, blocking=False)
    # what the screen, speaker, door and printer see is exactly what a normal handover shows
    assert [d for d in r.decisions if d != alarm] == normal.decisions
    assert not any("duress" in p.key or "duress" in str(p.params) for p in of(r.decisions, Prompt))
    assert r.h.outcome is Outcome.COMPLETED                 # not completed_with_exception
    assert build_report(r.h) == build_report(normal.h)      # never on the local paper


@pytest.mark.parametrize("setup", ["before arrival", "risk handling", "ended"])
def test_duress_is_alarmed_silently_whatever_the_step(setup):
    r = Run.of()
    if setup == "risk handling":
        _wrong_box(r)
    elif setup == "ended":
        r.walk()
    before = r.h.step
    ds = r.feed(door("E1", duress=True))
    assert alarms(ds) == [Alarm(AlarmKind.DURESS, {"person_id": "E1", "station": "door"}, silent=True,
                                blocking=False)]
    assert r.h.step is before
    assert not any("duress" in k for k in prompts(ds))


# --- risk handling (风险处置) ---------------------------------------------------------------------

def test_a_blocked_finger_is_still_journaled_as_an_attempt():
    r = Run.of()
    _wrong_box(r)
    ds = r.feed(counter("O1"))
    assert of(ds, AttemptRecorded)[0].outcome == "blocked" and of(ds, OfficerConfirmed) == []


@pytest.mark.parametrize("who", ["E1", "X1", "O3", "M1", "nobody"])
def test_only_a_confirming_officer_may_record_a_disposition(who):
    r = Run.of()
    _wrong_box(r)
    assert told(r.feed(dispose(officer=who))) == ["disposition_needs_officer"]
    assert r.h.in_risk_handling and r.h.dispositions == []


@pytest.mark.parametrize("code,resolution", [("made_up", "continue"), ("other", "carry_on"), ("", "abort")])
def test_a_disposition_off_the_fixed_list_is_refused(code, resolution):
    r = Run.of()
    _wrong_box(r)
    assert told(r.feed(dispose(code=code, resolution=resolution))) == ["disposition_invalid"]
    assert r.h.in_risk_handling and r.h.dispositions == []


def test_a_disposition_with_nothing_open_is_refused():
    r = Run.of()
    r.arrive()
    assert told(r.feed(dispose())) == ["no_open_exception"] and r.h.dispositions == []


@pytest.mark.parametrize("scenario", [a[0] for a in ALARMS], ids=[a[0].__name__.strip("_") for a in ALARMS])
def test_continue_resumes_and_ends_completed_with_exception(scenario):
    site_kw = {"uid_only": False} if scenario is _uid_only_forbidden else {}
    r = Run.of(s=site(**site_kw))
    scenario(r)
    code = fitting(a.kind for a in r.h.open_alarms)[0]       # the first disposition that fits this alarm
    ds = r.feed(dispose(code=code, text="recounted with the lead"))
    assert of(ds, RiskResolved) == [RiskResolved("O1", code, "recounted with the lead", "continue")]
    assert "risk_resolved" in prompts(ds) and not r.h.in_risk_handling
    _finish(r)
    assert r.h.outcome is Outcome.COMPLETED_WITH_EXCEPTION
    assert prompts(r.decisions)[-1] == "handover_completed_with_exception"
    report = build_report(r.h)
    assert report.outcome == "completed_with_exception"
    assert [(d["code"], d["resolution"]) for d in report.dispositions] == [(code, "continue")]


def _finish(r: Run) -> None:
    """Walk whatever remains of a clean handover from the current step."""
    if r.h.step is Step.ARRIVAL:
        r.arrive()
    if r.h.step is Step.ESCORT_VERIFICATION:
        r.feed_all(*(door(e) for e in r.h.task.escorts if e not in r.h.verified))
    if r.h.step is Step.BOX_HANDOVER:
        r.feed_all(*(tag(b) for t, b in r.h.expected.items() if t not in r.h.boxes_read))
    if r.h.step is Step.OFFICER_CONFIRMATION:
        r.confirm()
    r.sign_off(r.h.officer.person_id)
    assert r.h.step is Step.ENDED, prompts(r.decisions)


@pytest.mark.parametrize("door_open", [False, True])
def test_abort_ends_the_handover_and_lowers_the_door(door_open):
    r = Run.of()
    _wrong_box(r) if door_open else _route_skip(r)
    ds = r.feed(dispose(code="police_called", resolution="abort"))
    assert of(ds, RiskResolved)[0].resolution == "abort"
    assert of(ds, DoorPermit) == ([DoorPermit(False)] if door_open else [])
    assert not r.h.door_raised
    assert of(ds, HandoverEnded) == [HandoverEnded(Outcome.ABORTED)] and prompts(ds)[-1] == "handover_aborted"
    assert r.h.step is Step.ENDED and build_report(r.h).outcome == "aborted"


# --- every task kind at both site types ------------------------------------------------------------

KINDS = [
    # kind, site type, route, boxes on the task, box ids that change hands here, direction
    (TaskKind.DELIVERY, SiteType.BRANCH, (VAULT, BR1, BR2),
     (box("D1", BR1), box("D2", BR1), box("D3", BR2)), ("D1", "D2"), "in"),
    (TaskKind.DELIVERY, SiteType.VAULT, (VAULT, BR1, BR2),
     (box("D1", BR1), box("D2", BR1), box("D3", BR2)), ("D1", "D2", "D3"), "out"),
    (TaskKind.COLLECTION, SiteType.BRANCH, (BR2, BR1, VAULT),
     (box("C1", VAULT, BR1), box("C2", VAULT, BR2), box("C3", VAULT, BR1)), ("C1", "C3"), "out"),
    (TaskKind.COLLECTION, SiteType.VAULT, (BR1, BR2, VAULT),
     (box("C1", VAULT, BR1), box("C2", VAULT, BR2)), ("C1", "C2"), "in"),
    (TaskKind.ALLOCATION, SiteType.BRANCH, (BR2, BR1),
     (box("A1", BR1, BR2), box("A2", BR3, BR2)), ("A1",), "in"),
    (TaskKind.ALLOCATION, SiteType.BRANCH, (BR1, BR2),                 # the branch the boxes leave
     (box("A1", BR2, BR1), box("A2", BR3, BR2)), ("A1",), "out"),
    (TaskKind.ALLOCATION, SiteType.VAULT, (VAULT, BR1),
     (box("A1", BR1), box("A2", BR1)), ("A1", "A2"), "out"),
    (TaskKind.ATM_REPLENISHMENT, SiteType.BRANCH, (VAULT, BR1, BR2),
     (box("M1", BR1), box("M2", BR2)), ("M1",), "in"),
    (TaskKind.ATM_REPLENISHMENT, SiteType.VAULT, (VAULT, BR1, BR2),
     (box("M1", BR1), box("M2", BR2)), ("M1", "M2"), "out"),
]


@pytest.mark.parametrize("kind,site_type,route,boxes,here_ids,direction", KINDS,
                         ids=[f"{k[0].value}-{k[1].value}" for k in KINDS])
def test_every_kind_at_both_site_types_walks_to_completion(kind, site_type, route, boxes, here_ids, direction):
    t = task(kind, route=route, boxes=boxes)
    s = site(site_type)
    assert tuple(b.box_id for b in t.boxes_for(s.site_id, site_type)) == here_ids
    r = Run.of(t, s).to_boxes()
    assert prompt(r.decisions, f"present_boxes_{direction}").params == {"count": len(here_ids)}
    others = [b for b in boxes if b.box_id not in here_ids]
    r.count_boxes()
    r.confirm()
    r.sign_off()
    assert r.h.outcome is Outcome.COMPLETED and alarms(r.decisions) == []
    assert build_report(r.h).boxes_counted == tuple(sorted(here_ids))
    if others:                                  # a box that changes hands elsewhere is a wrong box here
        r2 = Run.of(t, s).to_boxes()
        assert alarms(r2.feed(tag(others[0])), AlarmKind.WRONG_BOX)


def test_route_skip_is_judged_from_this_site_s_place_in_the_route():
    t = task(TaskKind.COLLECTION, route=(BR1, BR2, VAULT), boxes=(box("C1", VAULT, BR1),))
    r = Run.of(t, site(SiteType.VAULT))
    ds = r.feed(VehicleArrived(beacon=TRUCK.beacon, stops_done=frozenset({BR1})))
    assert alarms(ds, AlarmKind.ROUTE_SKIP)[0].detail == {"skipped": [BR2]}
    assert stops_before(t, VAULT) == {BR1, BR2}


@pytest.mark.parametrize("edge", [0, 1], ids=["window start", "window end"])
def test_arrival_on_the_window_edge_is_in_time(edge):
    r = Run.of()
    assert alarms(r.arrive(at=WINDOW[edge])) == [] and r.h.step is Step.ESCORT_VERIFICATION


# --- route knowledge (issue 13 item 3): a route skip only on what is known ------------------------

def test_offline_an_unreported_earlier_stop_is_unverified_not_skipped():
    r = Run.of(s=site(SiteType.BRANCH, BR2))                       # route VAULT, BR1, BR2
    ds = r.feed(VehicleArrived(beacon=TRUCK.beacon, stops_done=frozenset({VAULT}), stops_unknown=frozenset({BR1})))
    assert alarms(ds) == [] and not r.h.in_risk_handling and r.h.step is Step.ESCORT_VERIFICATION
    assert of(ds, RouteUnverified) == [RouteUnverified((BR1,))] and r.h.route_unverified == (BR1,)
    assert prompt(ds, "route_unverified").params == {"stops": [BR1]} and not prompt(ds, "route_unverified").urgent
    assert prompts(ds)[-1] == "present_escort_fingers"


def test_a_stop_known_skipped_is_still_a_route_skip_beside_unknown_ones():
    r = Run.of(s=site(SiteType.BRANCH, BR2))
    ds = r.feed(VehicleArrived(beacon=TRUCK.beacon, stops_unknown=frozenset({BR1})))    # VAULT: known not done
    assert [a.detail for a in alarms(ds)] == [{"skipped": [VAULT]}] and r.h.in_risk_handling
    assert r.h.route_unverified == (BR1,)


def test_progress_arriving_later_verifies_the_route_at_any_step_even_in_risk_handling():
    r = Run.of(s=site(SiteType.BRANCH, BR2))
    r.feed(VehicleArrived(beacon=TRUCK.beacon, stops_unknown=frozenset({VAULT, BR1})))
    r.feed(door("X1"))                                              # wrong person: risk handling
    assert r.h.in_risk_handling
    ds = r.feed(RouteProgress(frozenset({VAULT})))
    assert ds == [RouteVerified((VAULT,))] and r.h.route_unverified == (BR1,)
    assert r.feed(RouteProgress(frozenset({VAULT}))) == [
        Refused(Step.ESCORT_VERIFICATION, "RouteProgress", "route_nothing_new")]
    ds = r.feed(RouteProgress(frozenset({VAULT, BR1})))
    assert ds == [RouteVerified((BR1,)), Prompt("route_verified")] and r.h.route_unverified == ()
    assert r.h.in_risk_handling                                     # the route's news settles nothing else


def test_every_step_and_event_is_decided_by_the_table_or_refused_by_name():
    from flows import handover as fh
    for step in Step:
        if step is Step.ENDED:
            continue
        for event in (VehicleArrived, FingerPresented, PasswordPresented, BoxPresented, DispositionRecorded):
            assert (step, event) in fh._TABLE or event in fh._NOT_NOW, (step, event.__name__)
