"""The complaint lifecycle: every transition, and every refusal (illegal steps, recusal, repeats)."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from flows import complaint as fc
from flows.complaint import Complaint, Status, TransitionRefused
from flows.workdays import DeadlineRules, WorkCalendar

CAL = WorkCalendar(holidays=frozenset({date(2026, 12, 25)}), workdays=frozenset({date(2026, 12, 26)}))
RULES = DeadlineRules()
TZ = timezone(timedelta(hours=8))
T0 = datetime(2026, 12, 23, 9, 41, 37, tzinfo=TZ)       # Wednesday


def new(channel="walk_in", concerned=("O02",)) -> Complaint:
    return Complaint.register("C1", T0, channel, "service_attitude", calendar=CAL, rules=RULES,
                              staff_concerned=concerned, first_responder="O01")


def step(c: Complaint, event, minutes: int = 1):
    return c.handle(event, T0 + timedelta(minutes=minutes), calendar=CAL, rules=RULES)


def to_status(status: Status) -> Complaint:
    """A complaint walked along the main path up to `status`."""
    path = [fc.Classify("O01", "general", "valid"), fc.Transfer("O01", "个人金融部", "O01"), fc.Investigate("O01"),
            fc.Handle("O01", "已核实", "柜员操作不规范", "加强培训"), fc.Reply("O01", "已致歉"),
            fc.RecordSatisfaction("O01", True), fc.Archive("O01")]
    c = new()
    for ev in path:
        if c.status is status:
            break
        step(c, ev)
    assert c.status is status
    return c


def test_registration_records_the_minute_and_deadlines():
    c = new()
    assert c.status is Status.REGISTERED
    assert c.received_at == datetime(2026, 12, 23, 9, 41, tzinfo=TZ)
    assert c.deadlines.acknowledge_by == date(2026, 12, 23)
    assert c.promised_reply == date(2026, 12, 24)
    assert c.deadlines.outer_limit == date(2027, 3, 23)


@pytest.mark.parametrize("channel, category, message", [
    ("pigeon", "other", "channel must be one of"), ("phone", "weather", "category must be one of")])
def test_registration_refuses_unknown_lists(channel, category, message):
    with pytest.raises(TransitionRefused, match=message):
        Complaint.register("C1", T0, channel, category, calendar=CAL, rules=RULES)


def test_main_path_every_transition():
    c = new()
    seen = []
    for ev in [fc.Classify("O01", "complex", "valid"), fc.Transfer("O01", "个人金融部"), fc.Investigate("O01"),
               fc.Handle("O01", "notes"), fc.Reply("O01", "reply"), fc.RecordSatisfaction("O01", True),
               fc.Archive("O01")]:
        t = step(c, ev)
        seen.append((t.before.value, t.after.value))
    assert seen == [("registered", "classified"), ("classified", "transferred"), ("transferred", "investigating"),
                    ("investigating", "handled"), ("handled", "replied"), ("replied", "satisfied"),
                    ("satisfied", "archived")]
    assert c.complexity == "complex" and c.validity == "valid"
    assert [h[0] for h in c.history] == ["register", "classify", "transfer", "investigate", "handle", "reply",
                                         "satisfaction", "archive"]


def test_complex_classification_moves_the_reply_date():
    c = new()
    step(c, fc.Classify("O01", "complex", "special"))
    # 24, 26 (Saturday worked), 28, 29, 30 — the 25th is a holiday
    assert c.promised_reply == date(2026, 12, 30)


def test_supervision_form_has_its_own_limits():
    c = new(channel="referral")
    assert c.deadlines.acknowledge_by == date(2026, 12, 26)
    assert c.promised_reply == CAL.add_workdays(date(2026, 12, 23), 7)


def test_unsatisfied_reopens_with_a_new_reply_date():
    c = to_status(Status.REPLIED)
    later = T0 + timedelta(days=7)
    t = c.handle(fc.RecordSatisfaction("O01", False), later, calendar=CAL, rules=RULES)
    assert (t.before, t.after, t.reopened) == (Status.REPLIED, Status.INVESTIGATING, True)
    assert c.reopened == 1
    assert c.promised_reply == CAL.add_workdays(later.date(), 1)
    step(c, fc.Handle("O01", "复查"))
    step(c, fc.Reply("O01", "再次答复"))
    step(c, fc.RecordSatisfaction("O01", True))
    assert c.status is Status.SATISFIED


@pytest.mark.parametrize("status", [Status.REGISTERED, Status.CLASSIFIED])
def test_not_accepted_with_approver_and_reason(status):
    c = to_status(status)
    t = step(c, fc.NotAccept("O01", "M01", "不属于本行业务范围"))
    assert t.after is Status.NOT_ACCEPTED
    step(c, fc.Archive("O01"))
    assert c.status is Status.ARCHIVED


@pytest.mark.parametrize("status", sorted(fc.OPEN, key=lambda s: s.value))
@pytest.mark.parametrize("voluntary", [True, False])
def test_withdrawn_from_any_open_state(status, voluntary):
    c = to_status(status)
    assert step(c, fc.Withdraw("O01", "客户撤回", voluntary)).after is Status.WITHDRAWN
    assert step(c, fc.Archive("O01")).after is Status.ARCHIVED


@pytest.mark.parametrize("original", sorted(fc.DECIDED, key=lambda s: s.value))
def test_repeat_on_same_facts_after_a_decision(original):
    c = new()
    t = step(c, fc.MarkRepeat("O01", "C0", original, "国家金融监督管理总局12378热线"))
    assert t.after is Status.REPEAT and t.appeal_to == "国家金融监督管理总局12378热线"
    assert c.repeat_of == "C0"
    assert step(c, fc.Archive("O01")).after is Status.ARCHIVED


@pytest.mark.parametrize("original", [Status.REGISTERED, Status.INVESTIGATING, Status.HANDLED, Status.WITHDRAWN])
def test_not_a_repeat_when_the_first_was_not_decided(original):
    c = new()
    with pytest.raises(TransitionRefused, match="no decision yet"):
        step(c, fc.MarkRepeat("O01", "C0", original, "12378"))
    assert c.status is Status.REGISTERED


def test_repeat_refusals():
    c = new()
    with pytest.raises(TransitionRefused, match="cannot repeat itself"):
        step(c, fc.MarkRepeat("O01", "C1", Status.REPLIED, "12378"))
    with pytest.raises(TransitionRefused, match="where the customer may appeal"):
        step(c, fc.MarkRepeat("O01", "C0", Status.REPLIED, " "))


# every (state, action) pair outside the table is refused and changes nothing
SAMPLE = {"classify": fc.Classify("O01", "general", "valid"), "transfer": fc.Transfer("O01", "部门"),
          "investigate": fc.Investigate("O01"), "handle": fc.Handle("O01", "n"), "reply": fc.Reply("O01", "r"),
          "satisfaction": fc.RecordSatisfaction("O01", True), "not_accept": fc.NotAccept("O01", "M01", "r"),
          "withdraw": fc.Withdraw("O01", "r", True), "mark_repeat": fc.MarkRepeat("O01", "C0", Status.REPLIED, "a"),
          "escalate": fc.Escalate("O01", ("group",)), "archive": fc.Archive("O01")}
MAIN = [Status.REGISTERED, Status.CLASSIFIED, Status.TRANSFERRED, Status.INVESTIGATING, Status.HANDLED,
        Status.REPLIED, Status.SATISFIED, Status.ARCHIVED]


@pytest.mark.parametrize("status", MAIN)
@pytest.mark.parametrize("action", list(SAMPLE))
def test_illegal_transitions_are_refused(status, action):
    c = to_status(status)
    before = c.to_dict()
    if action in c.allowed():
        step(c, SAMPLE[action])
        return
    with pytest.raises(TransitionRefused, match=f"cannot {action} a complaint that is {status.value}"):
        step(c, SAMPLE[action])
    assert c.to_dict() == before


def test_allowed_actions_match_the_table():
    assert new().allowed() == ["classify", "not_accept", "mark_repeat", "withdraw", "escalate"]
    assert to_status(Status.ARCHIVED).allowed() == []
    assert to_status(Status.REPLIED).allowed() == ["satisfaction", "withdraw", "escalate"]


@pytest.mark.parametrize("event", [
    fc.Classify("O02", "general", "valid"), fc.NotAccept("O02", "M01", "r"), fc.Withdraw("O02", "r", True),
    fc.MarkRepeat("O02", "C0", Status.REPLIED, "12378")])
def test_recusal_staff_concerned_cannot_act(event):
    c = new(concerned=("O02",))
    with pytest.raises(TransitionRefused, match="O02 is concerned by this complaint.*recusal"):
        step(c, event)
    assert c.status is Status.REGISTERED


def test_recusal_no_handler_or_approver_from_the_staff_concerned():
    c = to_status(Status.CLASSIFIED)
    with pytest.raises(TransitionRefused, match="O02 is concerned.*recusal"):
        step(c, fc.Transfer("O01", "个人金融部", handler="O02"))
    c = new()
    with pytest.raises(TransitionRefused, match="O02 is concerned.*cannot approve"):
        step(c, fc.NotAccept("O01", "O02", "理由"))
    c = to_status(Status.INVESTIGATING)
    with pytest.raises(TransitionRefused, match="recusal"):
        step(c, fc.Handle("O02", "notes"))


@pytest.mark.parametrize("status, event, message", [
    (Status.REGISTERED, fc.Classify("O01", "simple", "valid"), "complexity must be one of"),
    (Status.REGISTERED, fc.Classify("O01", "general", "maybe"), "validity must be one of"),
    (Status.CLASSIFIED, fc.Transfer("O01", "  "), "department"),
    (Status.INVESTIGATING, fc.Handle("O01", ""), "notes"),
    (Status.HANDLED, fc.Reply("O01", " "), "text"),
    (Status.REGISTERED, fc.NotAccept("O01", "", "r"), "approver"),
    (Status.REGISTERED, fc.NotAccept("O01", "M01", ""), "reason"),
    (Status.REGISTERED, fc.Withdraw("O01", "", True), "reason"),
    (Status.REGISTERED, fc.Classify("", "general", "valid"), "must be named"),
])
def test_content_refusals_name_what_is_missing(status, event, message):
    c = to_status(status)
    with pytest.raises(TransitionRefused, match=message):
        step(c, event)
    assert c.status is status


def test_overdue_only_while_awaiting_a_reply():
    c = new()
    assert not c.overdue(date(2026, 12, 24))
    assert c.overdue(date(2026, 12, 28))
    step(c, fc.Classify("O01", "complex", "valid"))
    assert not c.overdue(date(2026, 12, 28))           # complex: due 30 Dec
    c = to_status(Status.REPLIED)
    assert not c.overdue(date(2027, 2, 1))


def test_round_trip_through_storage():
    c = to_status(Status.HANDLED)
    again = Complaint.from_dict(c.to_dict())
    assert again == c
    assert "柜员操作不规范" not in str(c.to_dict())       # free text is not part of the machine's state
