"""The complaint lifecycle (SPEC §6) as a pure state machine: events in, a transition out, or a
refusal that says why. No I/O, no clock: the time of each event is passed in.

    registered ─classify─▶ classified ─transfer─▶ transferred ─investigate─▶ investigating
    investigating ─handle─▶ handled ─reply─▶ replied ─satisfaction─▶ satisfied ─archive─▶ archived
                                              (unsatisfied reopens: back to investigating)
    registered|classified ─not_accept (approver, reason)─▶ not_accepted ─archive─▶ archived
    any open state ─withdraw (reason, voluntary?)─▶ withdrawn ─archive─▶ archived
    registered|classified ─mark_repeat (same facts as a decided complaint)─▶ repeat ─archive─▶ archived
    any open state ─escalate (triggers, flows.complaint_rules)─▶ the same state, now urgent

Staff who are the subject of a complaint (staff_concerned) cannot act on it (recusal).
Free text (notes, causes, remedies, reasons, replies) rides on the events; the machine keeps only
what it needs to decide, so whoever stores it can seal the text apart.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import Enum

from flows.complaint_rules import RESPONSIBILITIES, TRIGGERS, Due, HourRules, due_states
from flows.workdays import DeadlineRules, Deadlines, WorkCalendar, deadlines

CHANNELS = ("walk_in", "phone", "letter", "email", "fax", "comment_book", "internet", "referral", "media")
CATEGORIES = ("service_attitude", "business_error", "transaction_delay", "irregular_fees", "privacy_leak",
              "product", "rule_violation", "financial_crime", "internal_management", "service_channel", "other")
COMPLEXITIES = ("general", "complex")
VALIDITIES = ("valid", "special")
SUPERVISION_CHANNEL = "referral"        # a regulator's supervision form follows its own time limits


class Status(str, Enum):
    REGISTERED = "registered"
    CLASSIFIED = "classified"
    TRANSFERRED = "transferred"
    INVESTIGATING = "investigating"
    HANDLED = "handled"
    REPLIED = "replied"
    SATISFIED = "satisfied"
    NOT_ACCEPTED = "not_accepted"
    WITHDRAWN = "withdrawn"
    REPEAT = "repeat"
    ARCHIVED = "archived"


AWAITING_REPLY = frozenset({Status.REGISTERED, Status.CLASSIFIED, Status.TRANSFERRED, Status.INVESTIGATING,
                            Status.HANDLED})
OPEN = AWAITING_REPLY | {Status.REPLIED}
CLOSED_UNARCHIVED = frozenset({Status.SATISFIED, Status.NOT_ACCEPTED, Status.WITHDRAWN, Status.REPEAT})
DECIDED = frozenset({Status.REPLIED, Status.SATISFIED, Status.NOT_ACCEPTED, Status.ARCHIVED})
RESOLVED = frozenset({Status.REPLIED, Status.SATISFIED, Status.ARCHIVED})


class TransitionRefused(Exception):
    """The event does not apply to the complaint as it is; the message says why. Nothing changed."""


# --- events: each names the staff member (or "head_office") who records it ---
@dataclass(frozen=True)
class Classify:
    actor: str
    complexity: str
    validity: str


@dataclass(frozen=True)
class Transfer:
    actor: str
    to: str                       # department or office taking the case
    handler: str | None = None    # person id of the handler, when known


@dataclass(frozen=True)
class Investigate:
    actor: str


@dataclass(frozen=True)
class Handle:
    actor: str
    notes: str
    cause: str = ""
    remedy: str = ""
    responsibility: str = ""          # the finding: at_fault (有责), not_at_fault (无责), shared (双方)
    handler_phone: str = ""           # how the customer or the upper level reaches the handler
    staff_opinion: str = ""           # the opinion on the responsible staff member


@dataclass(frozen=True)
class Reply:
    actor: str
    reply: str


@dataclass(frozen=True)
class RecordSatisfaction:
    actor: str
    satisfied: bool


@dataclass(frozen=True)
class NotAccept:
    actor: str
    approver: str
    reason: str


@dataclass(frozen=True)
class Withdraw:
    actor: str
    reason: str
    voluntary: bool


@dataclass(frozen=True)
class MarkRepeat:
    actor: str
    original_ref: str
    original_status: Status       # as the caller found it
    appeal_to: str                # where the customer may appeal (e.g. the regulator's hotline)


@dataclass(frozen=True)
class Escalate:
    """Staff found escalation triggers (flows.complaint_rules.TRIGGERS): the complaint becomes urgent."""
    actor: str
    triggers: tuple[str, ...]


@dataclass(frozen=True)
class Archive:
    actor: str


Event = (Classify | Transfer | Investigate | Handle | Reply | RecordSatisfaction | NotAccept | Withdraw | MarkRepeat
         | Escalate | Archive)
# free text and the handler's phone: sealed by whoever stores it
TEXT_FIELDS = ("notes", "cause", "remedy", "reply", "reason", "handler_phone", "staff_opinion")
ACTIONS: dict[str, type] = {"classify": Classify, "transfer": Transfer, "investigate": Investigate,
                            "handle": Handle, "reply": Reply, "satisfaction": RecordSatisfaction,
                            "not_accept": NotAccept, "withdraw": Withdraw, "mark_repeat": MarkRepeat,
                            "escalate": Escalate, "archive": Archive}
ACTION_OF = {cls: name for name, cls in ACTIONS.items()}

# (state, event) -> next state; RecordSatisfaction is decided by its content (see _target)
_TABLE: dict[tuple[Status, type], Status] = {
    (Status.REGISTERED, Classify): Status.CLASSIFIED,
    (Status.CLASSIFIED, Transfer): Status.TRANSFERRED,
    (Status.TRANSFERRED, Investigate): Status.INVESTIGATING,
    (Status.INVESTIGATING, Handle): Status.HANDLED,
    (Status.HANDLED, Reply): Status.REPLIED,
    (Status.REPLIED, RecordSatisfaction): Status.SATISFIED,
    (Status.REGISTERED, NotAccept): Status.NOT_ACCEPTED,
    (Status.CLASSIFIED, NotAccept): Status.NOT_ACCEPTED,
    (Status.REGISTERED, MarkRepeat): Status.REPEAT,
    (Status.CLASSIFIED, MarkRepeat): Status.REPEAT,
    **{(s, Withdraw): Status.WITHDRAWN for s in OPEN},
    **{(s, Escalate): s for s in OPEN},           # urgent from now on; the lifecycle goes on as it was
    **{(s, Archive): Status.ARCHIVED for s in CLOSED_UNARCHIVED},
}


@dataclass(frozen=True)
class Transition:
    ref: str
    action: str
    before: Status
    after: Status
    at: datetime
    reopened: bool = False
    appeal_to: str | None = None        # repeat on the same facts: tell the customer where to appeal


@dataclass
class Complaint:
    ref: str
    received_at: datetime
    channel: str
    category: str
    deadlines: Deadlines
    staff_concerned: tuple[str, ...] = ()
    first_responder: str | None = None
    status: Status = Status.REGISTERED
    complexity: str | None = None
    validity: str | None = None
    department: str | None = None
    handler: str | None = None
    reopened: int = 0
    repeat_of: str | None = None
    updated_at: datetime | None = None
    escalations: tuple[str, ...] = ()       # triggers found (flows.complaint_rules.TRIGGERS)
    escalated_at: datetime | None = None    # the urgent limits run from here
    responsibility: str | None = None       # the handling's finding (RESPONSIBILITIES)
    history: list[tuple[str, str, str]] = field(default_factory=list)     # (action, status after, at)

    @classmethod
    def register(cls, ref: str, received_at: datetime, channel: str, category: str, *,
                 calendar: WorkCalendar, rules: DeadlineRules, staff_concerned: tuple[str, ...] = (),
                 first_responder: str | None = None, escalations: tuple[str, ...] = ()) -> "Complaint":
        if channel not in CHANNELS:
            raise TransitionRefused(f"channel must be one of {', '.join(CHANNELS)}")
        if category not in CATEGORIES:
            raise TransitionRefused(f"category must be one of {', '.join(CATEGORIES)}")
        received_at = received_at.replace(second=0, microsecond=0)      # recorded to the minute
        _check_triggers(escalations)
        d = deadlines(calendar, rules, received_at.date(), supervision=channel == SUPERVISION_CHANNEL)
        return cls(ref, received_at, channel, category, d, tuple(staff_concerned), first_responder,
                   updated_at=received_at, history=[("register", Status.REGISTERED.value, received_at.isoformat())],
                   escalations=tuple(escalations), escalated_at=received_at if escalations else None)

    @property
    def promised_reply(self) -> date:
        return self.deadlines.reply_by

    def overdue(self, today: date) -> bool:
        """Still waiting for its reply after the day it was due."""
        return self.status in AWAITING_REPLY and today > self.deadlines.reply_by

    def due(self, now: datetime, calendar: WorkCalendar, rules: HourRules) -> list[Due]:
        """Its hour limits and reply deadline that are near-due or overdue at `now`."""
        return due_states(self.ref, self.received_at, self.escalated_at, {a for a, _, _ in self.history},
                          self.deadlines.reply_by, self.status in AWAITING_REPLY, self.status in OPEN, now,
                          calendar, rules)

    def allowed(self) -> list[str]:
        """The actions that apply now (recusal aside)."""
        return [ACTION_OF[ev] for (s, ev) in _TABLE if s is self.status]

    def handle(self, event: Event, now: datetime, *, calendar: WorkCalendar, rules: DeadlineRules) -> Transition:
        target = _TABLE.get((self.status, type(event)))
        if target is None:
            raise TransitionRefused(f"cannot {ACTION_OF.get(type(event), type(event).__name__)} "
                                    f"a complaint that is {self.status.value}")
        self._check(event)
        before, reopened, appeal_to = self.status, False, None
        if isinstance(event, Classify):
            self.complexity, self.validity = event.complexity, event.validity
            self.deadlines = deadlines(calendar, rules, self.received_at.date(),
                                       complex_case=event.complexity == "complex",
                                       supervision=self.channel == SUPERVISION_CHANNEL)
        elif isinstance(event, Transfer):
            self.department, self.handler = event.to, event.handler
        elif isinstance(event, RecordSatisfaction) and not event.satisfied:
            # an unsatisfied customer reopens the case; the reply clock starts again today
            target, reopened = Status.INVESTIGATING, True
            self.reopened += 1
            again = deadlines(calendar, rules, now.date(), complex_case=self.complexity == "complex",
                              supervision=self.channel == SUPERVISION_CHANNEL)
            self.deadlines = dataclasses.replace(again, reply_by=min(again.reply_by, self.deadlines.outer_limit),
                                                 outer_limit=self.deadlines.outer_limit)
        elif isinstance(event, MarkRepeat):
            self.repeat_of, appeal_to = event.original_ref, event.appeal_to
        elif isinstance(event, Escalate):
            self.escalations = tuple(t for t in TRIGGERS if t in {*self.escalations, *event.triggers})
            self.escalated_at = self.escalated_at or now
        elif isinstance(event, Handle) and event.responsibility:
            self.responsibility = event.responsibility
        self.status, self.updated_at = target, now
        action = ACTION_OF[type(event)]
        self.history.append((action, target.value, now.isoformat()))
        return Transition(self.ref, action, before, target, now, reopened, appeal_to)

    def _check(self, event: Event) -> None:
        """Refusals that depend on the event's content, each naming what is wrong."""
        if not event.actor:
            raise TransitionRefused("the staff member recording this action must be named")
        if event.actor in self.staff_concerned:
            raise TransitionRefused(f"{event.actor} is concerned by this complaint and cannot handle it (recusal)")
        if isinstance(event, Classify):
            if event.complexity not in COMPLEXITIES:
                raise TransitionRefused(f"complexity must be one of {', '.join(COMPLEXITIES)}")
            if event.validity not in VALIDITIES:
                raise TransitionRefused(f"validity must be one of {', '.join(VALIDITIES)}")
        elif isinstance(event, Transfer):
            if not event.to.strip():
                raise TransitionRefused("transfer needs the department taking the case")
            if event.handler and event.handler in self.staff_concerned:
                raise TransitionRefused(f"{event.handler} is concerned by this complaint and cannot handle it "
                                        "(recusal)")
        elif isinstance(event, Handle):
            if not event.notes.strip():
                raise TransitionRefused("handling needs notes on what was done")
            if event.responsibility and event.responsibility not in RESPONSIBILITIES:
                raise TransitionRefused(f"responsibility must be one of {', '.join(RESPONSIBILITIES)}")
        elif isinstance(event, Escalate):
            _check_triggers(event.triggers)
            if not event.triggers:
                raise TransitionRefused("an escalation needs at least one trigger")
            if set(event.triggers) <= set(self.escalations):
                raise TransitionRefused(f"complaint {self.ref} is escalated for {', '.join(event.triggers)} already")
        elif isinstance(event, Reply) and not event.reply.strip():
            raise TransitionRefused("a reply needs its text")
        elif isinstance(event, NotAccept):
            if not event.approver:
                raise TransitionRefused("not accepting a complaint needs the approver")
            if event.approver in self.staff_concerned:
                raise TransitionRefused(f"{event.approver} is concerned by this complaint and cannot approve (recusal)")
            if not event.reason.strip():
                raise TransitionRefused("not accepting a complaint needs a reason")
        elif isinstance(event, Withdraw) and not event.reason.strip():
            raise TransitionRefused("a withdrawal needs a reason")
        elif isinstance(event, MarkRepeat):
            if event.original_ref == self.ref:
                raise TransitionRefused("a complaint cannot repeat itself")
            if event.original_status not in DECIDED:
                raise TransitionRefused(f"complaint {event.original_ref} has no decision yet "
                                        f"({event.original_status.value}); this is not a repeat after a decision")
            if not event.appeal_to.strip():
                raise TransitionRefused("a repeat complaint needs where the customer may appeal")

    # --- stored form (no free text in it) ---
    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["received_at"] = self.received_at.isoformat()
        d["updated_at"] = self.updated_at.isoformat() if self.updated_at else None
        d["status"] = self.status.value
        d["deadlines"] = {k: v.isoformat() for k, v in dataclasses.asdict(self.deadlines).items()}
        d["history"] = [list(h) for h in self.history]
        d["escalated_at"] = self.escalated_at.isoformat() if self.escalated_at else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Complaint":
        d = dict(d)
        d["received_at"] = datetime.fromisoformat(d["received_at"])
        d["updated_at"] = datetime.fromisoformat(d["updated_at"]) if d.get("updated_at") else None
        d["status"] = Status(d["status"])
        d["deadlines"] = Deadlines(**{k: date.fromisoformat(v) for k, v in d["deadlines"].items()})
        d["staff_concerned"] = tuple(d["staff_concerned"])
        d["history"] = [tuple(h) for h in d["history"]]
        d["escalations"] = tuple(d.get("escalations", ()))
        d["escalated_at"] = datetime.fromisoformat(d["escalated_at"]) if d.get("escalated_at") else None
        return cls(**d)


def _check_triggers(triggers: tuple[str, ...]) -> None:
    unknown = [t for t in triggers if t not in TRIGGERS]
    if unknown:
        raise TransitionRefused(f"escalation trigger(s) {', '.join(unknown)} unknown; one of {', '.join(TRIGGERS)}")
