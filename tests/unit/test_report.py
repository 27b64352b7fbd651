"""The handover report (SPEC §2.2 step 5): people with their times, boxes, exceptions, dispositions."""
from __future__ import annotations

import dataclasses
from datetime import timedelta

from flows.events import BoxPresented, VehicleArrived
from flows.report import HandoverReport, PersonLine, build_report
from flows_fixtures import BR1, BR2, T0, TRUCK, WINDOW, Run, box, counter, dispose, door, site, tag, task


def _iso(t):
    return t.isoformat(timespec="seconds")


def test_a_clean_handover_report():
    r = Run.of(task(escorts=("E1", "E2", "E3"))).walk()
    # the log: arrival, door E1, E2, E3, box B1, B2, officer confirms, lead marks, officer marks
    t = [_iso(at) for _, at, _ in r.log]
    assert build_report(r.h) == HandoverReport(
        task_id="T1", kind="delivery", site_id=BR1, site_type="branch", plate=TRUCK.plate,
        arrived_at=t[0], arrival_manual=False, ended_at=t[8], outcome="completed",
        people=(PersonLine("E1", "escort_lead", t[1], t[7], "snap-E1"), PersonLine("E2", "escort", t[2], None, "snap-E2"),
                PersonLine("E3", "escort", t[3], None, "snap-E3"), PersonLine("O1", "officer", t[6], t[8])),
        officer_method="fingerprint", boxes_planned=("B1", "B2"), boxes_counted=("B1", "B2"),
        uid_only_boxes=(), exceptions=(), dispositions=(), restarts=0)


def test_exceptions_and_dispositions_are_on_the_report():
    r = Run.of().to_boxes()
    r.feed(tag(box("B3", BR2)))
    r.feed(dispose(code="box_set_aside", text="B3 kept apart for BR-002"))
    r.feed(BoxPresented("TAG-NOWHERE", None))
    r.feed(dispose(officer="O2", code="other", text="reader misread"))
    r.count_boxes()
    r.confirm()
    r.sign_off()
    rep = build_report(r.h)
    assert rep.outcome == "completed_with_exception"
    assert [(e["kind"], e.get("box_id"), e["tag"]) for e in rep.exceptions] == [
        ("wrong_box", "B3", "TAG-B3"), ("unknown_box", None, "TAG-NOWHERE")]
    assert all(e["at"] for e in rep.exceptions)
    assert [(d["officer_id"], d["code"], d["text"], d["resolution"]) for d in rep.dispositions] == [
        ("O1", "box_set_aside", "B3 kept apart for BR-002", "continue"),
        ("O2", "other", "reader misread", "continue")]
    assert rep.boxes_counted == ("B1", "B2")       # the wrong and unknown boxes are not counted


def test_a_missing_box_is_on_the_report_with_the_counts():
    r = Run.of().to_boxes()
    r.feed(tag(box("B2", BR1)))
    r.confirm()
    r.feed(dispose(code="box_count_corrected", text="B1 left on the truck"))
    r.sign_off()
    rep = build_report(r.h)
    assert rep.boxes_planned == ("B1", "B2") and rep.boxes_counted == ("B2",)
    [exc] = rep.exceptions
    assert exc["kind"] == "missing_box" and exc["missing"] == ["B1"] and (exc["counted"], exc["planned"]) == (1, 2)


def test_an_aborted_handover_report_says_aborted_and_who_was_not_verified():
    r = Run.of()
    r.arrive(at=WINDOW[1] + timedelta(minutes=5))
    r.feed(dispose(code="police_called", text="truck came at night", resolution="abort"))
    rep = build_report(r.h)
    assert rep.outcome == "aborted" and rep.exceptions[0]["kind"] == "outside_window"
    assert [(p.person_id, p.verified_at) for p in rep.people] == [("E1", None), ("E2", None)]
    assert rep.officer_method is None and rep.boxes_counted == ()


def test_manual_arrival_shows_on_the_report():
    r = Run.of()
    r.feed(VehicleArrived(manual_by="O1", stops_done=frozenset({"VLT-01"})))
    assert build_report(r.h).arrival_manual is True


def test_duress_is_never_on_the_report():
    r = Run.of()
    r.arrive()
    r.feed(door("E1", duress=True))
    r.feed(door("E2"))
    r.count_boxes()
    r.feed(counter("O1", duress=True))
    r.sign_off()
    rep = build_report(r.h)
    assert rep.outcome == "completed" and rep.exceptions == ()
    assert "duress" not in repr(rep)
    assert [a.alarm.kind.value for a in r.h.alarms] == ["duress", "duress"]   # head office still gets them


def test_the_report_before_the_end_has_no_outcome():
    r = Run.of(s=site()).to_boxes()
    rep = build_report(r.h)
    assert rep.outcome is None and rep.ended_at is None and rep.arrived_at == _iso(T0 + timedelta(minutes=1))


def test_a_report_round_trips_through_its_journal_form():
    import dataclasses
    import json
    rep = build_report(Run.of(task(escorts=("E1", "E2", "E3"))).walk().h)
    assert HandoverReport.from_dict(json.loads(json.dumps(dataclasses.asdict(rep)))) == rep


def test_each_verified_escort_is_on_the_report_with_the_face_taken_at_the_door():
    r = Run.of()
    r.arrive()
    r.feed(door("E1", snapshot="ab" * 32))
    r.feed(door("E2"))                                  # no camera, or no face in front of it
    rep = build_report(r.h)
    assert [(p.person_id, p.snapshot) for p in rep.people] == [("E1", "ab" * 32), ("E2", None)]
    journaled = {**dataclasses.asdict(rep)}
    assert HandoverReport.from_dict(journaled) == rep
    for person in journaled["people"]:                  # a report journaled before snapshots were on it
        del person["snapshot"]
    assert [p.snapshot for p in HandoverReport.from_dict(journaled).people] == [None, None]
