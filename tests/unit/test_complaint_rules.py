"""Issue 17 items 4-5: the guidelines' hour-level limits and escalation triggers, as data. Business hours
count on the calendar's working days only (weekends, official holidays and 调休 make-up days from the real
calendar data); urgent limits run on the clock from the escalation."""
from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

import protocol
from agent.calendar_data import build_calendar
from flows import complaint as fc
from flows.complaint import Complaint, Status, TransitionRefused
from flows.complaint_rules import (LIMITS, TRIGGERS, EscalationRules, Facts, HourRules, LookupGuard, add_work_hours,
                                   escalations, hour_limits)
from flows.model import Person, Role
from flows.workdays import DeadlineRules

TZ = ZoneInfo("Asia/Shanghai")
CAL = build_calendar()              # China's official holidays and 调休 days (chinese-calendar)
RULES = HourRules()
NINE, FIVE = time(9), time(17)


def at(y, m, d, hh, mm=0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=TZ)


# --- working hours on the calendar ---
@pytest.mark.parametrize("start, hours, due", [
    (at(2026, 11, 25, 10, 15), 1, at(2026, 11, 25, 11, 15)),     # a Wednesday morning: the same hour
    (at(2026, 11, 25, 16, 30), 2, at(2026, 11, 26, 10, 30)),     # past closing: the rest on Thursday
    (at(2026, 11, 27, 16, 30), 1, at(2026, 11, 30, 9, 30)),      # Friday afternoon: due Monday, not Saturday
    (at(2026, 11, 28, 11, 0), 2, at(2026, 11, 30, 11, 0)),       # left on a Saturday: counts from Monday's opening
    (at(2026, 11, 25, 7, 40), 1, at(2026, 11, 25, 10, 0)),       # before opening: from 09:00
    (at(2026, 11, 25, 19, 0), 1, at(2026, 11, 26, 10, 0)),       # after closing: from the next opening
    (at(2026, 9, 30, 16, 45), 2, at(2026, 10, 8, 10, 45)),       # National Day (1-7 Oct) does not count
    (at(2026, 10, 9, 16, 30), 1, at(2026, 10, 10, 9, 30)),       # Sat 10 Oct 2026 is a 调休 working day
    (at(2026, 2, 13, 16, 30), 1, at(2026, 2, 14, 9, 30)),        # Sat 14 Feb 2026 too (Spring Festival make-up)
])
def test_business_hours_skip_nights_weekends_and_holidays_and_count_make_up_days(start, hours, due):
    assert add_work_hours(CAL, start, hours, NINE, FIVE) == due


def test_calendar_facts_the_cases_rely_on():
    assert not CAL.is_workday(date(2026, 10, 1)) and not CAL.is_workday(date(2026, 10, 7))
    assert CAL.is_workday(date(2026, 10, 10)) and date(2026, 10, 10).weekday() == 5      # a Saturday worked


# --- limits as a table: ordinary ones in business hours, urgent ones on the clock from the escalation ---
def test_ordinary_limits_are_the_guidelines_defaults_and_urgent_ones_need_an_escalation():
    received = at(2026, 11, 27, 16, 30)                     # a Friday
    limits = hour_limits(received, None, CAL, RULES)
    assert limits == {"pass_on": at(2026, 11, 30, 9, 30), "start_handling": at(2026, 11, 30, 10, 30)}
    escalated = at(2026, 11, 28, 20, 0)                     # Saturday night: urgent limits do not wait for Monday
    limits = hour_limits(received, escalated, CAL, RULES)
    assert limits["urgent_response"] == at(2026, 11, 28, 21, 0)
    assert limits["urgent_reply"] == at(2026, 11, 29, 0, 0)
    assert limits["urgent_report"] == at(2026, 11, 29, 4, 0)


def test_a_bank_sets_its_own_hours_and_the_bad_ones_are_refused_by_name():
    r = HourRules.from_dict({"pass_on": 2, "opens": "08:30", "closes": "17:30", "near_due_minutes": 15})
    assert (r.pass_on, r.opens, r.closes, r.start_handling) == (2, time(8, 30), time(17, 30), 2)
    assert add_work_hours(CAL, at(2026, 11, 25, 17, 0), r.pass_on, r.opens, r.closes) == at(2026, 11, 26, 10, 0)
    for bad, msg in (({"pass_on": 0}, "pass_on must be a whole number from 1"), ({"reply_in_a_hurry": 1}, "unknown"),
                     ({"urgent_reply": True}, "urgent_reply"), ({"opens": "9am"}, "opens must be a time"),
                     ({"opens": "18:00"}, "closes must be after opens")):
        with pytest.raises(ValueError, match=msg):
            HourRules.from_dict(bad)


def new(received=at(2026, 11, 27, 16, 30), channel="walk_in", triggers=()) -> Complaint:
    return Complaint.register("C1", received, channel, "service_attitude", calendar=CAL, rules=DeadlineRules(),
                              escalations=triggers)


def step(c: Complaint, event, now: datetime):
    return c.handle(event, now, calendar=CAL, rules=DeadlineRules())


def states(c: Complaint, now: datetime) -> dict[str, str]:
    return {d.limit: d.state for d in c.due(now, CAL, RULES)}


def test_near_due_then_overdue_then_met_by_the_step_that_meets_it():
    c = new()               # Friday 16:30: pass on by Monday 09:30, reply by Monday (1 working day)
    assert states(c, at(2026, 11, 28, 12, 0)) == {}          # Saturday: nothing is due yet
    monday = {"reply_by": "near"}                            # the working-day reply deadline is today
    assert states(c, at(2026, 11, 30, 9, 0)) == {**monday, "pass_on": "near"}       # 30 minutes before
    assert states(c, at(2026, 11, 30, 9, 31)) == {**monday, "pass_on": "overdue"}
    assert states(c, at(2026, 11, 30, 10, 5)) == {**monday, "pass_on": "overdue", "start_handling": "near"}
    step(c, fc.Classify("O01", "general", "valid"), at(2026, 11, 30, 10, 6))
    step(c, fc.Transfer("O01", "dept"), at(2026, 11, 30, 10, 7))                     # passed on (late)
    assert states(c, at(2026, 11, 30, 10, 8)) == {**monday, "start_handling": "near"}
    step(c, fc.Investigate("O01"), at(2026, 11, 30, 10, 9))
    assert states(c, at(2026, 11, 30, 10, 10)) == monday
    assert states(c, at(2026, 12, 1, 9, 0)) == {"reply_by": "overdue"}               # Tuesday: no reply yet


def test_a_closed_complaint_has_nothing_due():
    c = new()
    step(c, fc.Withdraw("O01", "r", True), at(2026, 11, 27, 16, 40))
    assert states(c, at(2026, 12, 20, 9, 0)) == {}


def test_an_escalated_complaint_runs_on_the_clock_and_each_urgent_limit_has_its_step():
    c = new(received=at(2026, 11, 27, 16, 30))
    step(c, fc.Escalate("O01", ("group",)), at(2026, 11, 27, 18, 0))                 # after hours, Friday
    assert c.escalated_at == at(2026, 11, 27, 18, 0) and c.escalations == ("group",)
    assert states(c, at(2026, 11, 27, 18, 40)) == {"urgent_response": "near"}
    assert states(c, at(2026, 11, 27, 19, 1)) == {"urgent_response": "overdue"}
    step(c, fc.Classify("O01", "complex", "valid"), at(2026, 11, 27, 19, 2))
    step(c, fc.Transfer("O01", "dept"), at(2026, 11, 27, 19, 3))
    step(c, fc.Investigate("O01"), at(2026, 11, 27, 19, 4))
    assert states(c, at(2026, 11, 27, 21, 45)) == {"urgent_reply": "near"}
    step(c, fc.Handle("O01", "n", responsibility="shared", handler_phone="021-5555", staff_opinion="o"),
         at(2026, 11, 27, 21, 50))
    assert c.responsibility == "shared"
    step(c, fc.Reply("O01", "r"), at(2026, 11, 27, 21, 55))
    assert states(c, at(2026, 11, 28, 2, 0)) == {}           # reply and report both made in time
    assert Complaint.from_dict(c.to_dict()).to_dict() == c.to_dict()                 # stored and read back


def test_limits_table_names_a_step_for_every_limit():
    assert set(LIMITS) == {"pass_on", "start_handling", "urgent_response", "urgent_reply", "urgent_report"}
    assert all(limit.met_by <= set(fc.ACTIONS) for limit in LIMITS.values())


# --- escalation triggers ---
@pytest.mark.parametrize("facts, channel, found", [
    (Facts(), "walk_in", ()),
    (Facts(people=2), "walk_in", ()),
    (Facts(people=3), "walk_in", ("group",)),                 # 3 or more people on the same issue
    (Facts(amount_yuan=50_000), "walk_in", ()),
    (Facts(amount_yuan=50_001), "walk_in", ("large_amount",)),  # over ¥50,000
    (Facts(public_figure=True), "walk_in", ("public_figure",)),
    (Facts(media=True), "walk_in", ("media",)),
    (Facts(), "media", ("media",)),                            # the media channel is media involvement
    (Facts(threat=True), "phone", ("threat",)),
    (Facts(people=5, amount_yuan=80_000, threat=True), "media", ("group", "large_amount", "media", "threat")),
])
def test_each_trigger_at_its_boundary(facts, channel, found):
    assert escalations(facts, channel, EscalationRules()) == found


def test_a_bank_sets_its_own_trigger_numbers():
    rules = EscalationRules.from_dict({"group_min_people": 5, "amount_over_yuan": 100_000})
    assert escalations(Facts(people=4, amount_yuan=100_000), "walk_in", rules) == ()
    assert escalations(Facts(people=5, amount_yuan=100_001), "walk_in", rules) == ("group", "large_amount")
    for bad in ({"group_min_people": 1}, {"amount_over_yuan": -1}, {"crowd": 3}, {"group_min_people": "3"}):
        with pytest.raises(ValueError):
            EscalationRules.from_dict(bad)


def test_registration_with_a_trigger_is_urgent_from_receipt():
    c = new(received=at(2026, 11, 28, 11, 0), channel="media", triggers=("media",))    # a Saturday
    assert c.escalated_at == at(2026, 11, 28, 11, 0)
    assert states(c, at(2026, 11, 28, 11, 31)) == {"urgent_response": "near"}


def test_escalation_refusals_name_what_is_wrong():
    c = new()
    with pytest.raises(TransitionRefused, match="trigger"):
        step(c, fc.Escalate("O01", ()), at(2026, 11, 27, 17, 0))
    with pytest.raises(TransitionRefused, match="unknown"):
        step(c, fc.Escalate("O01", ("riot",)), at(2026, 11, 27, 17, 0))
    step(c, fc.Escalate("O01", ("threat",)), at(2026, 11, 27, 17, 0))
    with pytest.raises(TransitionRefused, match="already"):
        step(c, fc.Escalate("O01", ("threat",)), at(2026, 11, 27, 17, 5))
    step(c, fc.Escalate("O01", ("group",)), at(2026, 11, 27, 17, 10))
    assert c.escalations == ("group", "threat") and c.escalated_at == at(2026, 11, 27, 17, 0)   # clock from the first
    assert set(c.escalations) <= set(TRIGGERS) and c.status is Status.REGISTERED


def test_the_guidelines_categories_channels_and_responsibility_findings():
    assert {"financial_crime", "internal_management", "service_channel"} <= set(fc.CATEGORIES)
    assert "media" in fc.CHANNELS
    c = new()
    for ev in (fc.Classify("O01", "general", "valid"), fc.Transfer("O01", "d"), fc.Investigate("O01")):
        step(c, ev, at(2026, 11, 27, 16, 40))
    with pytest.raises(TransitionRefused, match="responsibility must be one of at_fault, not_at_fault, shared"):
        step(c, fc.Handle("O01", "n", responsibility="maybe"), at(2026, 11, 27, 16, 50))
    assert "handler_phone" in fc.TEXT_FIELDS and "staff_opinion" in fc.TEXT_FIELDS     # sealed by the store


# --- progress lookups: a few wrong pairs, then a pause ---
def test_lookup_guard_blocks_after_five_wrong_pairs_until_the_window_passes():
    g, t0 = LookupGuard(), at(2026, 11, 30, 10)
    for i in range(5):
        assert not g.blocked(t0 + timedelta(seconds=i))
        g.failed(t0 + timedelta(seconds=i))
    assert g.blocked(t0 + timedelta(minutes=9))
    assert not g.blocked(t0 + timedelta(minutes=10, seconds=5))


# --- item 2: an enrolment near its end ---
def test_enrolment_validity_shown_only_near_its_end():
    p = Person("E01", "x", Role.ESCORT, valid_until=date(2026, 12, 20))
    assert p.validity_ends_within(date(2026, 11, 1), 30) is None
    assert p.validity_ends_within(date(2026, 11, 30), 30) == 20
    assert p.validity_ends_within(date(2026, 12, 20), 30) == 0
    assert p.validity_ends_within(date(2026, 12, 21), 30) is None          # lapsed: the wrong-person rule says so
    assert Person("E02", "y", Role.ESCORT).validity_ends_within(date(2026, 11, 30), 30) is None


def test_head_office_may_send_every_lifecycle_action_escalate_included():
    schema = json.loads((Path(protocol.__file__).parent / "schemas" / "complaint.json").read_text(encoding="utf-8"))
    assert set(schema["properties"]["action"]["enum"]) == set(fc.ACTIONS)
