"""Working days and complaint deadlines (SPEC §6), pure: the calendar is data, time is passed in.

A WorkCalendar knows the official holidays (days off that would otherwise be working days) and the
make-up working days (调休: weekend days that are worked). Days it has no data for follow the plain
Monday–Friday rule. Deadlines count whole working days after the day a complaint was received and
are never later than the outer limit (three months by default).
"""
from __future__ import annotations

import calendar as _cal
from dataclasses import dataclass, fields
from datetime import date, timedelta


@dataclass(frozen=True)
class WorkCalendar:
    holidays: frozenset[date] = frozenset()       # days off, including weekends inside a holiday
    workdays: frozenset[date] = frozenset()       # make-up working days (调休), usually weekends

    def __post_init__(self):
        both = self.holidays & self.workdays
        if both:
            raise ValueError(f"a day cannot be both a holiday and a working day: {min(both).isoformat()}")

    def is_workday(self, day: date) -> bool:
        if day in self.workdays:
            return True
        if day in self.holidays:
            return False
        return day.weekday() < 5

    def next_workday(self, day: date) -> date:
        """The first working day on or after `day`."""
        while not self.is_workday(day):
            day += timedelta(days=1)
        return day

    def add_workdays(self, day: date, count: int) -> date:
        """The `count`-th working day after `day` (0: `day` itself)."""
        if count < 0:
            raise ValueError(f"working days must not be negative, got {count}")
        while count:
            day += timedelta(days=1)
            if self.is_workday(day):
                count -= 1
        return day

    def workdays_between(self, start: date, end: date) -> int:
        """Working days after `start` up to and including `end` (0 when end <= start)."""
        n, day = 0, start
        while day < end:
            day += timedelta(days=1)
            n += self.is_workday(day)
        return n


def add_months(day: date, months: int) -> date:
    """Same day of the month `months` later, clamped to that month's last day (31 Jan + 1 = 28/29 Feb)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, _cal.monthrange(year, month)[1]))


MAX_MONTHS = 3                 # SPEC §6: never past three months
MAX_DEADLINE_WORKDAYS = 66     # about three months of working days: any longer passes the outer limit anyway


@dataclass(frozen=True)
class DeadlineRules:
    """Complaint time limits in working days; every bank may set its own (defaults from SPEC §6)."""
    acknowledge: int = 0          # acknowledge the same day
    general_reply: int = 1
    complex_reply: int = 5
    supervision_acknowledge: int = 2   # a regulator's supervision form (监管转办单): acknowledged within 2
    supervision_handling: int = 7      # and handled within 7 working days of receiving it
    max_months: int = 3                # never past three months

    @classmethod
    def from_dict(cls, data: dict) -> "DeadlineRules":
        """From a bank's configuration; unknown keys and bad values are refused by name."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown complaint deadline setting(s): {', '.join(unknown)}")
        for key, value in data.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"complaint deadline setting {key} must be a non-negative integer, got {value!r}")
            hi = MAX_MONTHS if key == "max_months" else MAX_DEADLINE_WORKDAYS
            if value > hi:
                raise ValueError(f"complaint deadline setting {key} must be at most {hi}, got {value!r}")
        if data.get("max_months", 3) < 1:
            raise ValueError("complaint deadline setting max_months must be at least 1")
        return cls(**data)


@dataclass(frozen=True)
class Deadlines:
    acknowledge_by: date
    reply_by: date
    outer_limit: date


def deadlines(calendar: WorkCalendar, rules: DeadlineRules, received: date, *,
              complex_case: bool = False, supervision: bool = False) -> Deadlines:
    """When a complaint received on `received` must be acknowledged and answered."""
    outer = add_months(received, rules.max_months)
    if supervision:
        ack, reply = rules.supervision_acknowledge, rules.supervision_handling
    else:
        ack, reply = rules.acknowledge, rules.complex_reply if complex_case else rules.general_reply
    cap = lambda d: min(d, outer)     # noqa: E731
    return Deadlines(cap(calendar.add_workdays(received, ack)), cap(calendar.add_workdays(received, reply)), outer)
