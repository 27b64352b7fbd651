"""Properties of the handover machine over random event sequences (SPEC §2.2, §2.3).

A small universe: a task of any kind at a branch or the vault, two or three escorts, an unassigned
escort, confirming and non-confirming officers, the task's boxes plus an unknown tag, every kind of
finger, box, password and disposition event. Noise is mixed with "progress" (the next event a
well-behaved crew would produce, a disposition when blocked) in a drawn proportion, so that runs
reach every step and every outcome.
"""
from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from flows.decisions import (
    Alarm, AlarmKind, AttemptRecorded, DoorPermit, EscortVerified, HandoverEnded, MarkRecorded, OfficerConfirmed, Outcome,
    Prompt, Refused, RiskResolved, Step, TaskRestarted)
from flows.events import (
    DISPOSITION_CODES, BoxPresented, DispositionRecorded, FingerPresented, PasswordPresented, VehicleArrived)
from flows.handover import FAILURE_LIMIT, Handover
from flows.model import SiteType, TaskKind
from flows_fixtures import BR1, BR2, PEOPLE, T0, VAULT, WINDOW, box, site, stops_before, tag, task

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BOXES = (box("B1", BR1, BR2), box("B2", BR1, BR2), box("B3", BR2, BR1), box("B4", VAULT, BR1))
BOX_ALARMS = {AlarmKind.WRONG_BOX, AlarmKind.UNKNOWN_BOX, AlarmKind.MISSING_BOX, AlarmKind.CLONED_TAG}


@st.composite
def worlds(draw):
    """(task, site, machine options, [(event, time)])."""
    kind = draw(st.sampled_from(TaskKind))
    site_type = draw(st.sampled_from(SiteType))
    escorts = ("E1", "E2", "E3")[:draw(st.integers(2, 3))]
    min_escorts = draw(st.integers(2, len(escorts)))
    route = draw(st.sampled_from([(VAULT, BR1, BR2), (BR2, BR1, VAULT), (BR1, VAULT)]))
    boxes = tuple(b for b in BOXES if draw(st.booleans()))
    t = task(kind, route=route, escorts=escorts, boxes=boxes, min_escorts=min_escorts)
    s = site(site_type, password=draw(st.booleans()), uid_only=draw(st.booleans()))
    here = s.site_id

    arrival = st.sampled_from([
        VehicleArrived(beacon=t.vehicle.beacon, stops_done=stops_before(t, here)),
        VehicleArrived(beacon=t.vehicle.beacon),
        VehicleArrived(manual_by="O1", stops_done=stops_before(t, here)),
        VehicleArrived(manual_by="E1")])
    stations = st.sampled_from(["door", "counter"])
    match = st.builds(lambda s_, p, d: FingerPresented(s_, "match", p, d), stations,
                      st.sampled_from(escorts + ("X1", "O1", "O2", "O3")), st.booleans())
    fails = st.builds(lambda s_, o, n: [FingerPresented(s_, o)] * n, stations,
                      st.sampled_from(["no_match", "read_failed"]), st.integers(1, FAILURE_LIMIT))
    boxes_ev = st.one_of(
        st.sampled_from(BOXES).map(tag),
        st.builds(lambda b, u: tag(b, uid_only=u, refused="cmac_mismatch" if not u else None),
                  st.sampled_from(BOXES), st.booleans()),
        st.just(BoxPresented("TAG-NOWHERE", None)))
    passwords = st.builds(PasswordPresented, st.sampled_from(["O1", "E1"]), st.booleans())
    dispositions = st.builds(DispositionRecorded, st.sampled_from(["O1", "O1", "E1"]),
                             st.sampled_from(DISPOSITION_CODES + ("made_up",)), st.just("note"),
                             st.sampled_from(["continue", "continue", "abort"]))
    noise = st.one_of(arrival.map(lambda e: [e]), match.map(lambda e: [e]), fails, boxes_ev.map(lambda e: [e]),
                      passwords.map(lambda e: [e]), dispositions.map(lambda e: [e]))

    # steer with a machine of our own: "progress" is the event a well-behaved crew and officer would
    # produce next, so that many sequences reach the end; the properties are checked on fresh replays
    kw = {"min_escorts": min_escorts}
    steer = Handover(t, s, PEOPLE, **kw)
    now = draw(st.sampled_from([T0, WINDOW[0] - timedelta(minutes=20)]))
    progress_weight = draw(st.integers(0, 3))
    events = []
    for _ in range(draw(st.integers(0, 60))):
        chunk = [_progress(steer, abort=draw(st.integers(0, 7)) == 0)] if draw(st.integers(0, 3)) < progress_weight else draw(noise)
        for e in chunk:
            now += timedelta(minutes=draw(st.integers(0, 10)))
            steer.handle(e, now)
            events.append((e, now))
    return t, s, kw, events


def _progress(h: Handover, abort: bool):
    if h.in_risk_handling:
        return DispositionRecorded("O1", "box_set_aside", "note", "abort" if abort else "continue")
    here = h.site.site_id
    if h.step is Step.ARRIVAL:
        return VehicleArrived(beacon=h.task.vehicle.beacon, stops_done=stops_before(h.task, here))
    if h.step is Step.ESCORT_VERIFICATION:
        return FingerPresented("door", "match", next(e for e in h.task.escorts if e not in h.verified))
    if h.step is Step.BOX_HANDOVER:
        return tag(next(b for t_, b in h.expected.items() if t_ not in h.boxes_read))
    if h.step is Step.OFFICER_CONFIRMATION:
        return FingerPresented("counter", "match", "O1")
    if h.step is Step.SIGN_OFF:
        return FingerPresented("counter", "match", h.lead if h.lead not in h.marks else h.officer.person_id)
    return FingerPresented("counter", "match", "O1")          # after the end: one more finger


def run(world) -> tuple[Handover, list[list]]:
    t, s, kw, events = world
    h = Handover(t, s, PEOPLE, **kw)
    return h, [h.handle(e, at) for e, at in events]


def _without_duress(e):
    return FingerPresented(e.station, e.outcome, e.person_id, False, e.snapshot) if isinstance(e, FingerPresented) else e


@SETTINGS
@given(worlds())
def test_invariants_hold_after_every_event(world):
    t, s, kw, events = world
    h = Handover(t, s, PEOPLE, **kw)
    escorts = set(t.escorts)
    verified: set[str] = set()             # from EscortVerified since the last restart
    officer_confirmed = False
    marks: set[str] = set()                # from MarkRecorded since the last restart
    unresolved: list[AlarmKind] = []       # blocking alarms without a disposition yet
    box_alarm_resolved: list[bool] = []
    failures: dict[str, int] = {}          # consecutive no_match/read_failed per station
    for e, at in events:
        ended_before = h.step is Step.ENDED
        ds = h.handle(e, at)
        for d in ds:
            if isinstance(d, EscortVerified):
                verified.add(d.person_id)
            elif isinstance(d, OfficerConfirmed):
                officer_confirmed = True
            elif isinstance(d, MarkRecorded):
                marks.add(d.person_id)
            elif isinstance(d, TaskRestarted):
                marks.clear()
                verified.clear()
                officer_confirmed = False
                failures.clear()
            elif isinstance(d, DoorPermit) and d.raised:
                assert escorts <= verified, "door raised before every escort was verified"
            elif isinstance(d, AttemptRecorded):
                if d.outcome in ("no_match", "read_failed"):
                    failures[d.station] = failures.get(d.station, 0) + 1
                elif d.outcome == "verified":
                    failures[d.station] = 0
            elif isinstance(d, Alarm):
                if d.blocking:
                    unresolved.append(d.kind)
                if d.kind in BOX_ALARMS:
                    box_alarm_resolved.append(False)
            elif isinstance(d, RiskResolved):
                unresolved.clear()
                box_alarm_resolved = [True] * len(box_alarm_resolved)
            elif isinstance(d, HandoverEnded):
                event(f"ended {d.outcome.value}")
                if d.outcome is Outcome.COMPLETED:
                    assert escorts <= verified and officer_confirmed
                    assert box_alarm_resolved == []
                if d.outcome in (Outcome.COMPLETED, Outcome.COMPLETED_WITH_EXCEPTION):
                    assert unresolved == [] and all(box_alarm_resolved)
                    assert officer_confirmed and escorts <= verified
                    assert t.lead in marks and h.officer.person_id in marks
        # five consecutive failures at one station always restart the task
        assert all(n < FAILURE_LIMIT for n in failures.values()), failures
        if any(isinstance(d, TaskRestarted) for d in ds):
            event("restarted")
            assert h.step is Step.ARRIVAL and not h.door_raised
        # the door output follows the machine and is never up without every escort verified
        assert not h.door_raised or escorts <= verified
        if h.step is Step.ENDED:
            assert not h.door_raised
        if ended_before:
            assert [d for d in ds if not (isinstance(d, Alarm) and d.kind is AlarmKind.DURESS)] == [
                Refused(Step.ENDED, type(e).__name__, "handover_already_ended")]
        # duress never shows
        for d in ds:
            if isinstance(d, Alarm) and d.kind is AlarmKind.DURESS:
                event("duress")
                assert d.silent and not d.blocking
            if isinstance(d, Prompt):
                assert "duress" not in d.key and "duress" not in repr(d.params)


@SETTINGS
@given(worlds())
def test_a_duress_finger_changes_nothing_anyone_at_the_site_can_see(world):
    t, s, kw, events = world
    _, with_duress = run(world)
    _, plain = run((t, s, kw, [(_without_duress(e), at) for e, at in events]))
    for (e, _), ds, normal in zip(events, with_duress, plain):
        duress = [d for d in ds if isinstance(d, Alarm) and d.kind is AlarmKind.DURESS]
        assert all(d.silent and not d.blocking for d in duress)
        is_duress = isinstance(e, FingerPresented) and e.duress and e.outcome == "match"
        assert len(duress) == (1 if is_duress else 0)
        assert [d for d in ds if d not in duress] == normal


@SETTINGS
@given(worlds())
def test_replaying_the_same_events_gives_the_same_decisions(world):
    h1, first = run(world)
    h2, again = run(world)
    assert first == again
    assert (h1.step, h1.outcome, h1.verified, h1.boxes_read, h1.marks, h1.alarms, h1.dispositions,
            h1.door_raised, h1.failures) == (h2.step, h2.outcome, h2.verified, h2.boxes_read, h2.marks, h2.alarms,
                                             h2.dispositions, h2.door_raised, h2.failures)
