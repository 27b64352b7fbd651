"""The working-day calendar for complaint deadlines: China's official holidays and make-up working
days (调休) from the maintained `chinese-calendar` package, overridable by head office.

Head office's calendar (configuration downlink) is a dict {"holidays": [...], "workdays": [...]} of
ISO dates; its days win over the package's, so a year the package does not know yet can be added
without a software update. Years nobody has data for follow Monday–Friday.
"""
from __future__ import annotations

from datetime import date

import chinese_calendar

from flows.workdays import WorkCalendar


def _dates(override: dict, key: str) -> set[date]:
    values = override.get(key, [])
    if not isinstance(values, list):
        raise ValueError(f"calendar {key} must be a list of ISO dates")
    out = set()
    for v in values:
        try:
            out.add(date.fromisoformat(v))
        except (TypeError, ValueError):
            raise ValueError(f"calendar {key}: {v!r} is not an ISO date (YYYY-MM-DD)") from None
    return out


def build_calendar(override: dict | None = None) -> WorkCalendar:
    override = override or {}
    unknown = sorted(set(override) - {"holidays", "workdays"})
    if unknown:
        raise ValueError(f"calendar override has unknown key(s): {', '.join(unknown)}")
    extra_off, extra_on = _dates(override, "holidays"), _dates(override, "workdays")
    if extra_off & extra_on:
        raise ValueError(f"calendar override lists {min(extra_off & extra_on)} as both holiday and working day")
    # the package lists every day off (weekends too) and every working day it has data for;
    # only the exceptions to Monday–Friday matter here
    off = {d for d in chinese_calendar.holidays if d.weekday() < 5}
    on = {d for d in chinese_calendar.workdays if d.weekday() >= 5}
    off = (off - extra_on) | extra_off
    on = (on - extra_off) | extra_on
    return WorkCalendar(frozenset(off), frozenset(on))
