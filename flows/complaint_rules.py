"""The complaint guidelines' hour-level time limits and escalation triggers, as data (issue 17 items 4-5).

Pure, like flows.workdays: the calendar and the time are passed in. Every bank may set its own numbers
(configuration, head office's settings); the defaults are the guidelines'.

Hour limits. An ordinary complaint is passed on within 1 working hour and its handling starts within 2
working hours of receipt; working hours are the bank's business hours on the calendar's working days
(holidays off, 调休 weekend days worked), so a complaint left at 16:30 on a Friday is due on Monday.
An escalated (urgent) complaint runs on the clock from the moment it was escalated, nights and holidays
included: someone responds on site within 1 hour, the customer has a reply within 4 and the upper level a
report within 8. Each limit is met by a lifecycle step (LIMITS); a limit met, or a complaint closed, is
no longer due.

Escalation triggers (TRIGGERS): a group complaint (3 or more people on the same issue), a public figure,
an amount over ¥50,000, media involvement (or the media channel), a threat (to go to the media, harm,
or an extreme act). Any one of them makes the complaint urgent and is reported to head office at once.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, datetime, time, timedelta
from typing import Callable

from flows.workdays import WorkCalendar

MEDIA_CHANNEL = "media"
RESPONSIBILITIES = ("at_fault", "not_at_fault", "shared")      # 有责 / 无责 / 双方
MAX_HOURS = 72


def _check_settings(cls, data: dict, what: str) -> None:
    names = {f.name: f.type for f in fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ValueError(f"unknown {what} setting(s): {', '.join(unknown)}")


def _hhmm(value, key: str) -> time:
    try:
        out = time.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValueError(f"complaint hour setting {key} must be a time like \"09:00\", got {value!r}") from None
    if out.second or out.microsecond or out.tzinfo:
        raise ValueError(f"complaint hour setting {key} must be hours and minutes, got {value!r}")
    return out


@dataclass(frozen=True)
class HourRules:
    """Hour-level limits (the guidelines' defaults); ordinary ones count business hours on working days."""
    pass_on: int = 1                 # 转办: passed to whoever handles it
    start_handling: int = 2          # 开始处理
    urgent_response: int = 1         # urgent class: on-site response
    urgent_reply: int = 4            # urgent class: reply to the customer
    urgent_report: int = 8           # urgent class: written report to the upper level
    near_due_minutes: int = 30       # a limit this close is shown as near-due
    opens: time = time(9, 0)         # business hours, for the ordinary limits
    closes: time = time(17, 0)

    @classmethod
    def from_dict(cls, data: dict) -> "HourRules":
        """From a bank's configuration; unknown keys and bad values are refused by name."""
        _check_settings(cls, data, "complaint hour")
        out = {}
        for key, value in data.items():
            if key in ("opens", "closes"):
                out[key] = _hhmm(value, key)
                continue
            hi = 24 * 60 if key == "near_due_minutes" else MAX_HOURS
            lo = 0 if key == "near_due_minutes" else 1
            if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
                raise ValueError(f"complaint hour setting {key} must be a whole number from {lo} to {hi}, "
                                 f"got {value!r}")
            out[key] = value
        rules = cls(**out)
        if rules.closes <= rules.opens:
            raise ValueError("complaint hour setting closes must be after opens")
        return rules


@dataclass(frozen=True)
class EscalationRules:
    group_min_people: int = 3        # 群体性投诉: this many people or more on the same issue
    amount_over_yuan: int = 50_000   # 涉及金额: more than this

    @classmethod
    def from_dict(cls, data: dict) -> "EscalationRules":
        _check_settings(cls, data, "complaint escalation")
        for key, value in data.items():
            lo, hi = (2, 1000) if key == "group_min_people" else (0, 10**12)
            if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
                raise ValueError(f"complaint escalation setting {key} must be a whole number from {lo} to {hi}, "
                                 f"got {value!r}")
        return cls(**data)


@dataclass(frozen=True)
class Facts:
    """What staff (or the form) know about a complaint that may make it urgent."""
    people: int = 1
    amount_yuan: int = 0
    public_figure: bool = False
    media: bool = False
    threat: bool = False


# trigger -> does it hold for these facts (and the complaint's channel)? A table a reader can check.
TRIGGERS: dict[str, Callable[[Facts, str, EscalationRules], bool]] = {
    "group": lambda f, channel, r: f.people >= r.group_min_people,
    "public_figure": lambda f, channel, r: f.public_figure,
    "large_amount": lambda f, channel, r: f.amount_yuan > r.amount_over_yuan,
    "media": lambda f, channel, r: f.media or channel == MEDIA_CHANNEL,
    "threat": lambda f, channel, r: f.threat,
}


def escalations(facts: Facts, channel: str, rules: EscalationRules) -> tuple[str, ...]:
    """The triggers that hold, in TRIGGERS' order (empty: an ordinary complaint)."""
    return tuple(name for name, holds in TRIGGERS.items() if holds(facts, channel, rules))


def add_work_hours(calendar: WorkCalendar, start: datetime, hours: float, opens: time, closes: time) -> datetime:
    """The moment `hours` of business time after `start`; time outside business hours on working days
    does not count (a start out of hours counts from the next opening)."""
    remaining = timedelta(hours=hours)
    t = start
    for _ in range(3 * 366):               # at most three years of days: any calendar has working days
        day = t.date()
        if calendar.is_workday(day):
            o = datetime.combine(day, opens, tzinfo=t.tzinfo)
            c = datetime.combine(day, closes, tzinfo=t.tzinfo)
            t = max(t, o)
            if t < c:
                if t + remaining <= c:
                    return t + remaining
                remaining -= c - t
        t = datetime.combine(day + timedelta(days=1), time(0), tzinfo=t.tzinfo)
    raise ValueError("no working hours in three years: the calendar has no working days")


@dataclass(frozen=True)
class Limit:
    hours: str                    # the HourRules field
    urgent: bool                  # applies to escalated complaints (clock hours from the escalation) or ordinary ones
    met_by: frozenset[str]        # lifecycle actions that meet it


LIMITS: dict[str, Limit] = {
    "pass_on": Limit("pass_on", False, frozenset({"transfer"})),
    "start_handling": Limit("start_handling", False, frozenset({"investigate"})),
    "urgent_response": Limit("urgent_response", True, frozenset({"investigate"})),
    "urgent_reply": Limit("urgent_reply", True, frozenset({"reply"})),
    "urgent_report": Limit("urgent_report", True, frozenset({"handle"})),
}


@dataclass(frozen=True)
class Due:
    ref: str
    limit: str                    # a LIMITS name, or "reply_by" (the working-day reply deadline)
    due: str                      # ISO date-time (hour limits) or ISO date (reply_by)
    state: str                    # "near" or "overdue"


def hour_limits(received_at: datetime, escalated_at: datetime | None, calendar: WorkCalendar,
                rules: HourRules) -> dict[str, datetime]:
    """When each hour limit falls due for a complaint received (and perhaps escalated) then."""
    out = {}
    for name, limit in LIMITS.items():
        hours = getattr(rules, limit.hours)
        if limit.urgent:
            if escalated_at is not None:
                out[name] = escalated_at + timedelta(hours=hours)
        else:
            out[name] = add_work_hours(calendar, received_at, hours, rules.opens, rules.closes)
    return out


def due_states(ref: str, received_at: datetime, escalated_at: datetime | None, done_actions: set[str],
               reply_by: date, awaiting_reply: bool, is_open: bool, now: datetime, calendar: WorkCalendar,
               rules: HourRules) -> list[Due]:
    """The complaint's limits that are near-due or overdue at `now` (met ones and closed complaints: none)."""
    if not is_open:
        return []
    out = []
    near = timedelta(minutes=rules.near_due_minutes)
    for name, at in hour_limits(received_at, escalated_at, calendar, rules).items():
        if LIMITS[name].met_by & done_actions:
            continue
        if now > at:
            out.append(Due(ref, name, at.isoformat(), "overdue"))
        elif now >= at - near:
            out.append(Due(ref, name, at.isoformat(), "near"))
    if awaiting_reply:
        today = now.date()
        if today > reply_by:
            out.append(Due(ref, "reply_by", reply_by.isoformat(), "overdue"))
        elif today == reply_by:
            out.append(Due(ref, "reply_by", reply_by.isoformat(), "near"))
    return out


@dataclass
class LookupGuard:
    """Progress lookups at the kiosk by reference + the contact's last 4 digits: after `max_failures`
    wrong pairs within `window`, every lookup is refused until the window has passed since the last
    failure, so nobody can try the 10,000 digit combinations (or walk the references) at the screen."""
    max_failures: int = 5
    window: timedelta = timedelta(minutes=10)
    failures: list[datetime] = None          # type: ignore[assignment]

    def __post_init__(self):
        self.failures = list(self.failures or [])

    def _recent(self, now: datetime) -> list[datetime]:
        self.failures = [t for t in self.failures if now - t < self.window]
        return self.failures

    def blocked(self, now: datetime) -> bool:
        return len(self._recent(now)) >= self.max_failures

    def failed(self, now: datetime) -> None:
        self._recent(now).append(now)
