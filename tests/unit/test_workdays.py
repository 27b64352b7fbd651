"""Working days with China's 调休 (make-up working days) and the complaint deadlines built on them."""
from __future__ import annotations

from datetime import date

import pytest

from agent.calendar_data import build_calendar
from flows.workdays import DeadlineRules, WorkCalendar, add_months, deadlines

CAL = build_calendar()


@pytest.mark.parametrize("day, working", [
    (date(2024, 2, 4), True),      # Sunday worked before the Spring Festival
    (date(2024, 2, 18), True),     # Sunday worked after it
    *[(date(2024, 2, d), False) for d in range(10, 18)],    # Spring Festival 10–17 Feb off
    (date(2024, 2, 9), True),      # the Friday before: an ordinary working day
    (date(2024, 10, 1), False), (date(2024, 10, 7), False),  # National Day
    (date(2024, 9, 29), True), (date(2024, 10, 12), True),   # Sunday and Saturday worked around it
    (date(2024, 10, 8), True),
    (date(2024, 1, 1), False),     # New Year's Day, a Monday
    (date(2024, 1, 6), False),     # an ordinary Saturday
])
def test_official_calendar(day, working):
    assert CAL.is_workday(day) is working


def test_general_reply_across_the_spring_festival():
    # received Friday 9 Feb 2024: the next working day is the make-up Sunday 18 Feb
    d = deadlines(CAL, DeadlineRules(), date(2024, 2, 9))
    assert d.acknowledge_by == date(2024, 2, 9)
    assert d.reply_by == date(2024, 2, 18)


def test_complex_reply_counts_the_make_up_sunday():
    d = deadlines(CAL, DeadlineRules(), date(2024, 2, 9), complex_case=True)
    assert d.reply_by == date(2024, 2, 22)          # 18, 19, 20, 21, 22


def test_received_on_a_holiday_counts_from_the_next_working_day():
    d = deadlines(CAL, DeadlineRules(), date(2024, 10, 3))
    assert d.reply_by == date(2024, 10, 8)


def test_supervision_form_deadlines():
    d = deadlines(CAL, DeadlineRules(), date(2024, 9, 27), supervision=True)   # Friday
    assert d.acknowledge_by == date(2024, 9, 30)     # 29 Sep (Sunday) worked, 30 Sep
    assert d.reply_by == date(2024, 10, 12)          # 29 Sep, 30 Sep, 8–11 Oct, 12 Oct (Saturday worked)

def test_month_and_year_boundaries():
    assert CAL.add_workdays(date(2024, 1, 31), 1) == date(2024, 2, 1)
    assert CAL.add_workdays(date(2023, 12, 29), 1) == date(2024, 1, 2)    # Friday; 1 Jan is a holiday
    assert CAL.add_workdays(date(2024, 12, 31), 1) == date(2025, 1, 2)
    assert add_months(date(2024, 1, 31), 1) == date(2024, 2, 29)
    assert add_months(date(2023, 11, 30), 3) == date(2024, 2, 29)
    assert add_months(date(2024, 12, 15), 3) == date(2025, 3, 15)


def test_never_past_three_months():
    rules = DeadlineRules(complex_reply=200)
    d = deadlines(CAL, rules, date(2024, 11, 30), complex_case=True)
    assert d.outer_limit == date(2025, 2, 28)
    assert d.reply_by == date(2025, 2, 28)


def test_rules_per_bank():
    rules = DeadlineRules.from_dict({"general_reply": 3, "max_months": 2})
    assert deadlines(CAL, rules, date(2024, 2, 9)).reply_by == date(2024, 2, 20)
    with pytest.raises(ValueError, match="general_repyl"):
        DeadlineRules.from_dict({"general_repyl": 3})
    with pytest.raises(ValueError, match="complex_reply must be a non-negative integer"):
        DeadlineRules.from_dict({"complex_reply": -1})
    with pytest.raises(ValueError, match="max_months"):
        DeadlineRules.from_dict({"max_months": 0})


def test_head_office_calendar_overrides_the_package():
    # a year the package may not know yet, and a one-off change to a known day
    cal = build_calendar({"holidays": ["2030-01-02"], "workdays": ["2030-01-05", "2024-02-12"]})
    assert not cal.is_workday(date(2030, 1, 2))
    assert cal.is_workday(date(2030, 1, 5))          # a Saturday made a working day
    assert cal.is_workday(date(2024, 2, 12))         # overrides the Spring Festival
    assert cal.add_workdays(date(2030, 1, 1), 2) == date(2030, 1, 4)
    with pytest.raises(ValueError, match="not an ISO date"):
        build_calendar({"holidays": ["2030-13-01"]})
    with pytest.raises(ValueError, match="both holiday and working day"):
        build_calendar({"holidays": ["2030-01-02"], "workdays": ["2030-01-02"]})
    with pytest.raises(ValueError, match="unknown key"):
        build_calendar({"holiday": []})


def test_plain_calendar_is_monday_to_friday():
    cal = WorkCalendar()
    assert [cal.is_workday(date(2031, 3, d)) for d in range(3, 10)] == [True] * 5 + [False] * 2
    with pytest.raises(ValueError, match="negative"):
        cal.add_workdays(date(2031, 3, 3), -1)
