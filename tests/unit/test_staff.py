"""The staff-action and kiosk machine (flows/staff.py): who waits for which credential for which purpose,
staff sessions, kiosk mode and the truck taking the screen — and duress decided exactly once per finger."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows import staff as fs
from flows.decisions import Alarm, AlarmKind, Prompt
from flows.events import FingerPresented
from flows_fixtures import T0, Run, dispose

IDLE = fs.Context()
RISK = fs.Context(handover_task="T1", risk_handling=True, open_alarms=frozenset({"wrong_box"}))
RUNNING = fs.Context(handover_task="T1")
PARKED = fs.Context(handover_task="T1", at_arrival=True)
OPEN = fs.Context(open_tasks=frozenset({"T1", "T2"}))
STAFFED = fs.Context(people=frozenset({"E1", "O1"}))
ENROL = {"person_id": "E1", "finger": "right_middle"}
GOOD = {"code": "box_set_aside", "text": "note", "resolution": "continue"}


def finger(pid="O1", station="counter", outcome="match", duress=False):
    return FingerPresented(station, outcome, pid if outcome == "match" else None, duress)


def officer_finger(pid="O1", running=False, duress=False):
    return fs.Finger(finger(pid, duress=duress), True, running)


def escort_finger(pid="E1", running=False, duress=False):
    return fs.Finger(finger(pid, "door", duress=duress), False, running)


def of(ds, cls):
    return [d for d in ds if isinstance(d, cls)]


def reasons(ds):
    return [d.reason for d in of(ds, fs.Refused)]


REQUESTS = [
    # purpose, params, context, in kiosk, refusal (None: now waiting for an officer)
    (fs.Purpose.DISPOSITION, GOOD, RISK, False, None),
    (fs.Purpose.DISPOSITION, GOOD, RUNNING, False, "no_open_exception"),
    (fs.Purpose.DISPOSITION, GOOD, IDLE, False, "no_open_exception"),
    (fs.Purpose.DISPOSITION, GOOD | {"code": "made_up"}, RISK, False, "disposition_invalid"),
    (fs.Purpose.DISPOSITION, GOOD | {"resolution": "later"}, RISK, False, "disposition_invalid"),
    (fs.Purpose.DISPOSITION, GOOD | {"text": "x" * 501}, RISK, False, "disposition_invalid"),
    (fs.Purpose.MANUAL_ARRIVAL, {"task_id": "T1"}, OPEN, False, None),
    (fs.Purpose.MANUAL_ARRIVAL, {"task_id": "T9"}, OPEN, False, "task_not_open"),
    (fs.Purpose.MANUAL_ARRIVAL, {"task_id": "T1"}, PARKED, False, None),        # back at step 1 after a restart
    (fs.Purpose.MANUAL_ARRIVAL, {"task_id": "T2"}, PARKED, False, "handover_in_progress"),
    (fs.Purpose.MANUAL_ARRIVAL, {"task_id": "T1"}, RUNNING, False, "handover_in_progress"),
    (fs.Purpose.KIOSK_EXIT, {}, IDLE, True, None),
    (fs.Purpose.KIOSK_EXIT, {}, IDLE, False, "not_in_kiosk"),
    (fs.Purpose.STAFF_VIEW, {}, IDLE, True, None),
    (fs.Purpose.ENROLMENT, ENROL, STAFFED, False, None),
    (fs.Purpose.ENROLMENT, ENROL | {"person_id": "E9"}, STAFFED, False, "person_unknown"),
    (fs.Purpose.ENROLMENT, ENROL | {"finger": "nose"}, STAFFED, False, "finger_invalid"),
    (fs.Purpose.ENROLMENT, ENROL, fs.Context(handover_task="T1", people=frozenset({"E1"})), False,
     "handover_in_progress"),                      # the counter module is the handover's while a truck is here
]


@pytest.mark.parametrize("purpose,params,ctx,kiosk,refusal", REQUESTS)
def test_who_may_ask_for_what(purpose, params, ctx, kiosk, refusal):
    s = fs.Staff(fs.Mode.KIOSK if kiosk else fs.Mode.HANDOVER)
    ds = s.handle(fs.Request(purpose, params, ctx), T0)
    if refusal is None:
        assert of(ds, fs.AwaitingOfficer) == [fs.AwaitingOfficer(purpose, params)]
        assert Prompt("officer_auth_needed") in ds and s.pending == fs.Pending(purpose, params)
    else:
        assert reasons(ds) == [refusal] == [d.reason for d in ds] and s.pending is None


def test_an_officer_finger_signs_the_pending_action_and_an_escort_finger_does_not():
    s = fs.Staff()
    s.handle(fs.Request(fs.Purpose.DISPOSITION, GOOD, RISK), T0)
    assert s.handle(escort_finger(running=True), T0) == [fs.ToHandover(finger("E1", "door"))]
    assert s.pending is not None
    ds = s.handle(officer_finger("O2", running=True), T0)
    assert of(ds, fs.Authorised) == [fs.Authorised(fs.Purpose.DISPOSITION, GOOD, "O2", "fingerprint", finger("O2"))]
    assert of(ds, fs.ToHandover) == [] and s.pending is None


def test_an_enrolment_is_signed_by_an_officer_only_and_by_a_password_only_where_the_site_allows():
    s = fs.Staff()
    s.handle(fs.Request(fs.Purpose.ENROLMENT, ENROL, STAFFED), T0)
    assert s.handle(escort_finger("E1"), T0) == [fs.Unclaimed(finger("E1", "door"))] and s.pending
    assert reasons(s.handle(fs.Password("O1", True, True, False, False), T0)) == ["password_not_allowed"]
    ds = s.handle(fs.Password("O1", True, True, True, False), T0)
    assert of(ds, fs.Authorised) == [fs.Authorised(fs.Purpose.ENROLMENT, ENROL, "O1", "password")]
    assert s.pending is None and s.mode is fs.Mode.HANDOVER and s.session is None


def test_a_finger_nobody_waits_for_is_unclaimed():
    assert fs.Staff().handle(escort_finger(), T0) == [fs.Unclaimed(finger("E1", "door"))]
    assert fs.Staff().handle(officer_finger(), T0) == [fs.Unclaimed(finger("O1"))]


def test_passwords_sign_kiosk_actions_anywhere_and_handover_actions_where_the_site_allows():
    s = fs.Staff(fs.Mode.KIOSK)
    assert not s.password_allowed(site_allows=False)
    s.handle(fs.Request(fs.Purpose.KIOSK_EXIT, {}, IDLE), T0)
    assert s.password_allowed(site_allows=False)
    ds = s.handle(fs.Password("O1", False, True, False, False), T0)
    assert of(ds, fs.AuthFailed) == [fs.AuthFailed("O1", "password", fs.Purpose.KIOSK_EXIT)] and s.pending
    ds = s.handle(fs.Password("E1", True, False, False, False), T0)      # right password, not an officer
    assert of(ds, fs.AuthFailed) and s.mode is fs.Mode.KIOSK
    ds = s.handle(fs.Password("O1", True, True, False, False), T0)
    assert of(ds, fs.ModeChanged) == [fs.ModeChanged(fs.Mode.HANDOVER, "O1", "password")]
    h = fs.Staff()
    h.handle(fs.Request(fs.Purpose.DISPOSITION, GOOD, RISK), T0)
    assert reasons(h.handle(fs.Password("O1", True, True, False, True), T0)) == ["password_not_allowed"]
    assert reasons(fs.Staff().handle(fs.Password("O1", True, True, True, False), T0)) == ["no_handover_in_progress"]


def test_the_truck_takes_the_screen_from_the_kiosk_and_gives_it_back():
    s = fs.Staff()
    assert of(s.handle(fs.EnterKiosk(handover_running=False), T0), fs.ModeChanged) == [fs.ModeChanged(fs.Mode.KIOSK)]
    assert reasons(s.handle(fs.EnterKiosk(handover_running=False), T0)) == ["already_in_kiosk"]
    s.handle(fs.Request(fs.Purpose.STAFF_VIEW, {}, IDLE), T0)
    s.handle(officer_finger(), T0)
    s.handle(fs.Request(fs.Purpose.KIOSK_EXIT, {}, IDLE), T0)
    ds = s.handle(fs.HandoverStarted(), T0)
    assert ds == [fs.PendingCleared(fs.Purpose.KIOSK_EXIT, "truck_took_screen"), fs.ModeChanged(fs.Mode.HANDOVER),
                  fs.SessionEnded("truck_took_screen")]
    assert s.mode is fs.Mode.HANDOVER and s.kiosk_resume and s.session is None
    assert reasons(s.handle(fs.EnterKiosk(handover_running=True), T0)) == ["handover_in_progress"]
    assert s.handle(fs.HandoverFinished(), T0) == [fs.ModeChanged(fs.Mode.KIOSK)]
    assert s.mode is fs.Mode.KIOSK and not s.kiosk_resume


def test_a_beacon_arrival_ends_a_manual_arrival_waiting_for_an_officer():
    s = fs.Staff()
    s.handle(fs.Request(fs.Purpose.MANUAL_ARRIVAL, {"task_id": "T1"}, OPEN), T0)
    assert s.handle(fs.HandoverStarted(), T0) == [fs.PendingCleared(fs.Purpose.MANUAL_ARRIVAL, "no_longer_applies")]
    assert s.pending is None and s.mode is fs.Mode.HANDOVER and not s.kiosk_resume


def test_a_staff_session_lapses_when_idle_and_each_use_extends_it():
    s = fs.Staff(fs.Mode.KIOSK)
    s.handle(fs.Request(fs.Purpose.STAFF_VIEW, {}, IDLE), T0)
    ds = s.handle(officer_finger("O2"), T0)
    assert of(ds, fs.SessionOpened) == [fs.SessionOpened("O2", "fingerprint", T0 + fs.STAFF_SESSION)]
    assert s.current_staff(T0 + timedelta(minutes=4)) == "O2"
    assert s.current_staff(T0 + timedelta(minutes=8)) == "O2"          # extended at minute 4
    assert s.current_staff(T0 + timedelta(minutes=14)) is None
    assert s.session is None


def test_a_simulated_clock_jump_is_not_time_passing_for_the_person_signed_in():
    s = fs.Staff(fs.Mode.KIOSK)
    s.handle(fs.Request(fs.Purpose.STAFF_VIEW, {}, IDLE), T0)
    s.handle(officer_finger("O2"), T0)
    s.clock_jumped(timedelta(hours=4))                                   # the panel jumps to a later window
    assert s.current_staff(T0 + timedelta(hours=4, minutes=4)) == "O2"
    assert s.current_staff(T0 + timedelta(hours=4, minutes=10)) is None  # then it lapses as usual


@pytest.mark.parametrize("pending,ctx,kept", [
    (fs.Purpose.DISPOSITION, RISK, True), (fs.Purpose.DISPOSITION, RUNNING, False),
    (fs.Purpose.MANUAL_ARRIVAL, OPEN, True), (fs.Purpose.MANUAL_ARRIVAL, RUNNING, False),
    (fs.Purpose.KIOSK_EXIT, IDLE, True), (fs.Purpose.ENROLMENT, STAFFED, False)])
def test_a_restart_keeps_a_pending_action_that_still_holds_and_drops_the_rest_with_a_prompt(pending, ctx, kept):
    params = {fs.Purpose.DISPOSITION: GOOD, fs.Purpose.MANUAL_ARRIVAL: {"task_id": "T1"},
              fs.Purpose.ENROLMENT: ENROL}.get(pending, {})
    s = fs.Staff(fs.Mode.KIOSK if pending is fs.Purpose.KIOSK_EXIT else fs.Mode.HANDOVER,
                 pending=fs.Pending(pending, params), session=fs.Session("O1", T0))
    ds = s.handle(fs.Restarted(ctx), T0)
    assert fs.SessionEnded("restart") in ds and s.session is None
    assert (s.pending is not None) is kept
    assert (Prompt("staff_action_dropped_restart", {"purpose": pending.value}) in ds) is not kept


def test_a_restart_gives_the_kiosk_back_when_the_trucks_handover_is_gone():
    s = fs.Staff(fs.Mode.HANDOVER, kiosk_resume=True)
    assert s.handle(fs.Restarted(RUNNING), T0) == [] and s.mode is fs.Mode.HANDOVER
    assert s.handle(fs.Restarted(IDLE), T0) == [fs.ModeChanged(fs.Mode.KIOSK)]


# --- random sequences: duress exactly once, and the state through the journal ---
PIDS = ("E1", "E2", "O1", "O2")
staff_events = st.one_of(
    st.builds(lambda pid, station, outcome, duress, running: fs.Finger(
        finger(pid, station, outcome, duress), pid.startswith("O"), running),
        st.sampled_from(PIDS), st.sampled_from(["door", "counter"]), st.sampled_from(["match", "match", "no_match"]),
        st.booleans(), st.booleans()),
    st.builds(fs.Request, st.sampled_from(list(fs.Purpose)), st.sampled_from([GOOD, {"task_id": "T1"}, {}]),
              st.sampled_from([IDLE, RISK, RUNNING, PARKED, OPEN])),
    st.builds(fs.Password, st.sampled_from(PIDS), st.booleans(), st.booleans(), st.booleans(), st.booleans()),
    st.sampled_from([fs.Cancel(), fs.HandoverStarted(), fs.HandoverFinished(), fs.EndSession()]),
    st.builds(fs.EnterKiosk, st.booleans()),
    st.builds(fs.Restarted, st.sampled_from([IDLE, RISK, RUNNING, OPEN])))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(staff_events, st.integers(0, 400)), max_size=40))
def test_every_duress_finger_raises_exactly_one_silent_alarm_and_the_state_survives_the_journal(events):
    s = fs.Staff()
    handover = Run.of().to_boxes().h                  # the handover a forwarded finger goes to, in risk handling
    handover.handle(FingerPresented("door", "match", "X1"), T0)
    now = T0
    for ev, seconds in events:
        now += timedelta(seconds=seconds)
        ds = s.handle(ev, now)
        alarms = [d for d in ds if isinstance(d, Alarm) and d.kind is AlarmKind.DURESS]
        for fwd in of(ds, fs.ToHandover):
            alarms += [d for d in handover.handle(fwd.event, now) if isinstance(d, Alarm) and d.kind is AlarmKind.DURESS]
        is_duress = isinstance(ev, fs.Finger) and ev.finger.duress and ev.finger.outcome == "match"
        assert len(alarms) == (1 if is_duress else 0)
        assert all(a.silent and not a.blocking for a in alarms)
        assert not any(isinstance(d, Prompt) and "duress" in d.key for d in ds)
        snap = json.loads(json.dumps(s.snapshot()))
        assert fs.Staff.restore(snap).snapshot() == s.snapshot()


def test_a_disposition_signed_here_is_one_the_handover_accepts():
    r = Run.of()
    r.to_boxes()
    r.feed(FingerPresented("door", "match", "X1"))                  # wrong person: risk handling
    s = fs.Staff()
    asked = GOOD | {"code": "identity_confirmed"}                   # what fits a wrong person
    s.handle(fs.Request(fs.Purpose.DISPOSITION, asked, fs.Context("T1", risk_handling=True,
                                                                  open_alarms=frozenset({"wrong_person"}))), T0)
    [signed] = of(s.handle(officer_finger("O1", running=True), T0), fs.Authorised)
    r.feed(dispose(signed.officer_id, **{k: signed.params[k] for k in ("resolution", "code", "text")}))
    assert not r.h.in_risk_handling


def test_restore_refuses_a_state_that_does_not_parse():
    with pytest.raises(ValueError, match="staff state"):
        fs.Staff.restore({"mode": "cinema"})


def test_signing_in_and_out_of_the_staff_view_replaces_the_request_on_the_feedback_line():
    """The feedback line kept "请营业专员认证以确认此操作" after the officer had signed in."""
    s = fs.Staff(fs.Mode.KIOSK)
    assert Prompt("officer_auth_needed") in s.handle(fs.Request(fs.Purpose.STAFF_VIEW, {}, IDLE), T0)
    ds = s.handle(officer_finger("O2"), T0)
    assert ds[-1] == Prompt("staff_signed_in", {"person_id": "O2"}) and Prompt("officer_auth_needed") not in ds
    assert s.handle(fs.EndSession(), T0) == [fs.SessionEnded("logout"), Prompt("staff_signed_out")]
    assert s.handle(fs.EndSession(), T0) == []           # nobody signed in: nothing said


def test_cancelling_a_pending_action_replaces_the_request_on_the_feedback_line():
    s = fs.Staff(fs.Mode.KIOSK)
    s.handle(fs.Request(fs.Purpose.KIOSK_EXIT, {}, IDLE), T0)
    assert s.handle(fs.Cancel(), T0) == [fs.PendingCleared(fs.Purpose.KIOSK_EXIT, "cancelled"),
                                         Prompt("staff_action_cancelled")]
    assert s.handle(fs.Cancel(), T0) == []              # a second tap: nothing waits, nothing said
