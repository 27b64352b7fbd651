"""Issue 17's parsers of outside input, fuzzed: escalation facts (screen and head office), the bank's hour
and escalation rules (configuration), and the kiosk's progress lookup (whatever a stranger types). Each either
parses or is refused with an error naming what is wrong, never anything else; a lookup never raises and a
wrong pair changes nothing but the failure count."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.complaints import ComplaintError, _facts
from flows.complaint_rules import EscalationRules, Facts, HourRules, LookupGuard

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
                    max_leaves=10)
KEYS = st.sampled_from(["people", "amount_yuan", "public_figure", "media", "threat", "pass_on", "start_handling",
                        "urgent_response", "urgent_reply", "urgent_report", "near_due_minutes", "opens", "closes",
                        "group_min_people", "amount_over_yuan", "other"])
DICTS = st.dictionaries(KEYS, JSON, max_size=5)


@given(JSON | DICTS)
def test_escalation_facts_parse_or_are_refused_by_name(value):
    try:
        facts = _facts(value)
    except ComplaintError as e:
        assert str(e).startswith("escalation")
        return
    assert isinstance(facts, Facts) and facts.people >= 1 and facts.amount_yuan >= 0


@given(DICTS)
def test_the_banks_rules_parse_or_are_refused_by_name(value):
    for cls, what in ((HourRules, "complaint hour setting"), (EscalationRules, "complaint escalation setting")):
        try:
            cls.from_dict(value)
        except ValueError as e:
            assert what in str(e) or "unknown" in str(e)


@settings(max_examples=300)
@given(st.lists(st.booleans(), max_size=30))
def test_the_lookup_guard_never_allows_more_than_five_failures_in_ten_minutes(outcomes):
    g, t = LookupGuard(), datetime(2026, 11, 30, 10, tzinfo=timezone(timedelta(hours=8)))
    tried = 0
    for fail in outcomes:
        t += timedelta(seconds=20)
        if g.blocked(t):
            continue
        tried += 1
        if fail:
            g.failed(t)
        assert len([x for x in g.failures if t - x < g.window]) <= g.max_failures
    assert tried <= len(outcomes)
