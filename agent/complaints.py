"""The complaint book (SPEC §6): registration, transitions, drafts and reports, kept in the journal's
SQLite file so each change commits with the journal entry that records it.

The customer's name, contact, description and request, the counter named, and every free text staff
record (notes, causes, remedies, replies, reasons) are sealed at rest with the device data key
(agent.sealing); journal entries carry in clear only what is not personal (reference, channel, category,
states, staff ids, deadlines). With head office's complaint public key configured, each entry that records
personal text also carries it sealed to that key (protocol.complaint, field `sealed`): head office can work
the complaint, and nothing this terminal holds can open that copy. Without the key the details stay here.
"""
from __future__ import annotations

import hmac
import json
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from agent.journal import Journal
from agent.sealing import Sealer
from flows import complaint as fc
from flows.complaint import Complaint, Status, Transition, TransitionRefused
from flows.complaint_rules import Due, EscalationRules, Facts, HourRules, LookupGuard, escalations, hour_limits
from flows.workdays import DeadlineRules, WorkCalendar
from protocol.complaint import REGISTER_STEP, key_id, seal_details

# what a customer may type, and how much (characters)
FORM_LIMITS = {"name": 50, "contact": 100, "description": 2000, "request": 1000, "counter": 100}
REQUIRED = ("description", "request")
TEXT_LIMIT = 2000           # staff free text
SHORT_LIMIT = 100           # department, appeal body, ids
DRAFT_LIMIT = 10_000        # a draft keeps what was typed, even past the limits, until submit says why
HEAD_OFFICE = "head_office"
ESCALATION_ALARM = "complaint_escalation"     # the alarm kind head office sees for an escalated complaint


class ComplaintError(ValueError):
    """Bad input or a refused action; the message names what is wrong. Nothing was changed."""


@dataclass(frozen=True)
class Receipt:
    ref: str
    received_at: datetime
    promised_reply: date
    acknowledge_by: date


def _is_text(value) -> bool:
    """A str that can be sealed and journaled: JSON lets a body carry a lone surrogate ("\\ud800"),
    which no UTF-8 encoder takes."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _text(params: dict, key: str, limit: int, *, required: bool = False) -> str:
    value = params.get(key, "")
    if value is None:
        value = ""
    if not _is_text(value):
        raise ComplaintError(f"{key} must be text")
    if len(value) > limit:
        raise ComplaintError(f"{key} is too long: {len(value)} characters, at most {limit}")
    if required and not value.strip():
        raise ComplaintError(f"{key} is required")
    return value


def _ids(params: dict, key: str) -> tuple[str, ...]:
    value = params.get(key) or []
    if not isinstance(value, list) or not all(_is_text(v) and 0 < len(v) <= SHORT_LIMIT for v in value) \
            or len(value) > 10:
        raise ComplaintError(f"{key} must be a list of at most 10 staff ids")
    return tuple(value)


def _facts(value) -> Facts:
    """Escalation facts from the screen or head office; each field optional, each checked by name."""
    if value is None:
        return Facts()
    if not isinstance(value, dict):
        raise ComplaintError("escalation must be an object of people, amount_yuan, public_figure, media, threat")
    unknown = sorted(set(value) - {"people", "amount_yuan", "public_figure", "media", "threat"})
    if unknown:
        raise ComplaintError(f"escalation: unknown field(s) {', '.join(unknown)}")
    out = {}
    for key, lo, hi in (("people", 1, 100_000), ("amount_yuan", 0, 10**12)):
        v = value.get(key, lo)
        if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
            raise ComplaintError(f"escalation.{key} must be a whole number from {lo} to {hi}")
        out[key] = v
    for key in ("public_figure", "media", "threat"):
        v = value.get(key, False)
        if not isinstance(v, bool):
            raise ComplaintError(f"escalation.{key} must be true or false")
        out[key] = v
    return Facts(**out)


@dataclass(frozen=True)
class FormFields:
    personal: dict                  # sealed: name, contact, description, request, counter
    channel: object                 # checked by the lifecycle (flows.complaint) on registration
    category: object
    staff_concerned: tuple[str, ...]
    first_responder: str | None


def read_form(form) -> FormFields:
    """The complaint form's fields, checked; ComplaintError names the first one that is wrong."""
    if not isinstance(form, dict):
        raise ComplaintError("the complaint must be a JSON object")
    personal = {k: _text(form, k, n, required=k in REQUIRED) for k, n in FORM_LIMITS.items()}
    first_responder = form.get("first_responder")
    if first_responder in (None, ""):
        first_responder = None
    elif not _is_text(first_responder) or len(first_responder) > SHORT_LIMIT:
        raise ComplaintError("first_responder must be a staff id")
    return FormFields(personal, form.get("channel"), form.get("category"), _ids(form, "staff_concerned"),
                      first_responder)


def check_draft(draft) -> None:
    """A draft keeps what was typed, past the form's limits, but only as text or lists of ids."""
    if not isinstance(draft, dict) or not all(_is_text(k) and len(k) <= 40 for k in draft) or len(draft) > 20:
        raise ComplaintError("a draft must be an object of at most 20 fields")
    for k, v in draft.items():
        if isinstance(v, str):
            if not _is_text(v):
                raise ComplaintError(f"draft field {k} must be text")
            if len(v) > DRAFT_LIMIT:
                raise ComplaintError(f"draft field {k} is too long: at most {DRAFT_LIMIT} characters")
        elif not (isinstance(v, list) and all(_is_text(x) and len(x) <= SHORT_LIMIT for x in v)):
            raise ComplaintError(f"draft field {k} must be text or a list of ids")


class ComplaintBook:
    def __init__(self, journal: Journal, sealer: Sealer, calendar: WorkCalendar,
                 rules: DeadlineRules = DeadlineRules(), *, site_id: str = "", hours: HourRules = HourRules(),
                 escalation: EscalationRules = EscalationRules(), hq_key: X25519PublicKey | None = None):
        self.journal = journal
        self.hq_key = hq_key                 # head office's complaint public key: None keeps details here
        self.hours = hours
        self.escalation = escalation
        self.lookups = LookupGuard()
        self.due_now: list[Due] = []         # the last check's near-due and overdue limits (staff indicator)
        self._conn = journal.db
        self._sealer = sealer
        self.calendar = calendar
        self.rules = rules
        self.site_id = site_id
        self._conn.execute("CREATE TABLE IF NOT EXISTS complaints (ref TEXT PRIMARY KEY, received_at TEXT NOT NULL,"
                           " status TEXT NOT NULL, state TEXT NOT NULL, sealed BLOB NOT NULL)")
        self._conn.execute("CREATE TABLE IF NOT EXISTS complaint_drafts (slot TEXT PRIMARY KEY,"
                           " updated TEXT NOT NULL, sealed BLOB NOT NULL)")
        # which near-due/overdue states were reported up already: each is sent once
        self._conn.execute("CREATE TABLE IF NOT EXISTS complaint_due_sent (ref TEXT NOT NULL, lim TEXT NOT NULL,"
                           " state TEXT NOT NULL, PRIMARY KEY (ref, lim, state))")

    # --- sealing ---
    def _seal(self, ref: str, data: dict) -> bytes:
        return self._sealer.seal(json.dumps(data, ensure_ascii=False).encode(), ref.encode())

    def _open(self, ref: str, blob: bytes) -> dict:
        return json.loads(self._sealer.open(blob, ref.encode()))

    def _for_head_office(self, body: dict, ref: str, step: str, details: dict) -> dict:
        """The entry body with `details` sealed to head office's complaint key, when there is one."""
        if self.hq_key is not None:
            body["sealed"] = seal_details(self.hq_key, ref, step, details)
            body["sealed_to"] = key_id(self.hq_key)
        return body

    # --- registration ---
    def register(self, form: dict, now: datetime) -> Receipt:
        """A new complaint from the kiosk form (or staff on the customer's behalf)."""
        fields = read_form(form)
        personal = dict(fields.personal)
        triggers = escalations(_facts(form.get("escalation")), fields.channel, self.escalation)
        with self.journal.transaction():
            ref = self._next_ref(now)
            try:
                c = Complaint.register(ref, now, fields.channel, fields.category,
                                       calendar=self.calendar, rules=self.rules,
                                       staff_concerned=fields.staff_concerned,
                                       first_responder=fields.first_responder, escalations=triggers)
            except TransitionRefused as e:
                raise ComplaintError(str(e)) from None
            personal["texts"] = []
            self._conn.execute("INSERT INTO complaints (ref, received_at, status, state, sealed) VALUES (?,?,?,?,?)",
                               (ref, c.received_at.isoformat(), c.status.value, json.dumps(c.to_dict()),
                                self._seal(ref, personal)))
            self.journal.append("complaint_registered", self._for_head_office({
                "ref": ref, "site_id": self.site_id, "received_at": c.received_at.isoformat(),
                "channel": c.channel, "category": c.category, "staff_concerned": list(c.staff_concerned),
                "first_responder": c.first_responder, "anonymous": not personal["name"].strip(),
                "deadlines": c.to_dict()["deadlines"], "status": c.status.value,
                "escalations": list(c.escalations)}, ref, REGISTER_STEP, fields.personal))
            if c.escalations:
                self._escalated(c, c.escalations, now, "registration")
        return Receipt(ref, c.received_at, c.promised_reply, c.deadlines.acknowledge_by)

    def _next_ref(self, now: datetime) -> str:
        day = now.strftime("%Y%m%d")
        prefix = f"{self.site_id}-TS{day}-" if self.site_id else f"TS{day}-"
        n = self._conn.execute("SELECT COUNT(*) FROM complaints WHERE ref LIKE ?", (prefix + "%",)).fetchone()[0]
        return f"{prefix}{n + 1:03d}"

    def _escalated(self, c: Complaint, triggers: tuple[str, ...], now: datetime, source: str) -> None:
        """An alarm-class entry (the alarm body's shape, agent.codec.alarm_body): it goes up at once on the
        urgent lane and head office's alarm board shows it. Nothing personal: reference, triggers, limits."""
        limits = hour_limits(c.received_at, c.escalated_at, self.calendar, self.hours)
        self.journal.append("alarm", {
            "alarm": ESCALATION_ALARM, "silent": False, "blocking": False, "site_id": self.site_id,
            "detail": {"ref": c.ref, "triggers": list(triggers), "all_triggers": list(c.escalations),
                       "category": c.category, "channel": c.channel, "at": now.isoformat(), "source": source,
                       "limits": {k: v.isoformat() for k, v in limits.items() if k.startswith("urgent_")}}})

    # --- reading ---
    def get(self, ref: str) -> Complaint | None:
        row = self._conn.execute("SELECT state FROM complaints WHERE ref=?", (ref,)).fetchone()
        return Complaint.from_dict(json.loads(row[0])) if row else None

    def details(self, ref: str) -> dict:
        """The sealed part: for staff only."""
        row = self._conn.execute("SELECT sealed FROM complaints WHERE ref=?", (ref,)).fetchone()
        if row is None:
            raise ComplaintError(f"no complaint {ref}")
        return self._open(ref, row[0])

    def all(self) -> list[Complaint]:
        rows = self._conn.execute("SELECT state FROM complaints ORDER BY received_at, ref")
        return [Complaint.from_dict(json.loads(r[0])) for r in rows]

    def open_complaints(self) -> list[Complaint]:
        return [c for c in self.all() if c.status is not Status.ARCHIVED]

    # --- transitions ---
    def act(self, ref: str, action: str, params: dict, actor: str, now: datetime, *,
            source: str = "terminal") -> Transition:
        """One lifecycle step recorded by `actor`; journaled with the new state in one transaction."""
        if action not in fc.ACTIONS:
            raise ComplaintError(f"action must be one of {', '.join(fc.ACTIONS)}")
        if not isinstance(params, dict):
            raise ComplaintError("params must be a JSON object")
        with self.journal.transaction():
            c = self.get(ref)
            if c is None:
                raise ComplaintError(f"no complaint {ref}")
            event = self._event(action, params, actor, c)
            try:
                t = c.handle(event, now, calendar=self.calendar, rules=self.rules)
            except TransitionRefused as e:
                raise ComplaintError(str(e)) from None
            texts = {k: getattr(event, k) for k in fc.TEXT_FIELDS if getattr(event, k, "")}
            sealed = None
            if texts:
                personal = self.details(ref)
                personal["texts"].append({"action": action, "at": now.isoformat(), "by": actor, **texts})
                sealed = self._seal(ref, personal)
            self._conn.execute("UPDATE complaints SET status=?, state=?, sealed=COALESCE(?, sealed) WHERE ref=?",
                               (c.status.value, json.dumps(c.to_dict()), sealed, ref))
            if isinstance(event, fc.Escalate):
                self._escalated(c, event.triggers, now, source)
            clear = {k: v for k, v in vars(event).items() if k not in fc.TEXT_FIELDS and k != "actor"}
            if "original_status" in clear:
                clear["original_status"] = clear["original_status"].value
            body = {"ref": ref, "site_id": self.site_id, "action": action, "before": t.before.value,
                    "after": t.after.value, "actor": actor, "source": source, "at": now.isoformat(),
                    "params": clear, "reopened": t.reopened, "deadlines": c.to_dict()["deadlines"]}
            self.journal.append("complaint_transition",
                                self._for_head_office(body, ref, action, texts) if texts else body)
        return t

    def apply_downlink(self, ref: str, action: str, params: dict, now: datetime) -> Transition:
        """Head office updates a complaint (e.g. transferred and handled centrally)."""
        return self.act(ref, action, params, HEAD_OFFICE, now, source="head_office")

    def _event(self, action: str, p: dict, actor: str, c: Complaint) -> fc.Event:
        if action == "classify":
            return fc.Classify(actor, _text(p, "complexity", 20), _text(p, "validity", 20))
        if action == "transfer":
            return fc.Transfer(actor, _text(p, "to", SHORT_LIMIT, required=True),
                               _text(p, "handler", SHORT_LIMIT) or None)
        if action == "investigate":
            return fc.Investigate(actor)
        if action == "handle":
            return fc.Handle(actor, _text(p, "notes", TEXT_LIMIT, required=True), _text(p, "cause", TEXT_LIMIT),
                             _text(p, "remedy", TEXT_LIMIT), _text(p, "responsibility", 20),
                             _text(p, "handler_phone", 30), _text(p, "staff_opinion", TEXT_LIMIT))
        if action == "reply":
            return fc.Reply(actor, _text(p, "reply", TEXT_LIMIT, required=True))
        if action == "satisfaction":
            return fc.RecordSatisfaction(actor, self._bool(p, "satisfied"))
        if action == "not_accept":
            return fc.NotAccept(actor, _text(p, "approver", SHORT_LIMIT, required=True),
                                _text(p, "reason", TEXT_LIMIT, required=True))
        if action == "withdraw":
            return fc.Withdraw(actor, _text(p, "reason", TEXT_LIMIT, required=True), self._bool(p, "voluntary"))
        if action == "mark_repeat":
            original_ref = _text(p, "original_ref", SHORT_LIMIT, required=True)
            original = self.get(original_ref)
            if original is None:
                raise ComplaintError(f"no complaint {original_ref} to repeat")
            return fc.MarkRepeat(actor, original_ref, original.status,
                                 _text(p, "appeal_to", SHORT_LIMIT, required=True))
        if action == "escalate":
            found = escalations(_facts(p), c.channel, self.escalation)
            new = tuple(t for t in found if t not in c.escalations)
            if not new:
                raise ComplaintError("these facts meet no escalation trigger the complaint does not have already")
            return fc.Escalate(actor, new)
        return fc.Archive(actor)

    @staticmethod
    def _bool(p: dict, key: str) -> bool:
        value = p.get(key)
        if not isinstance(value, bool):
            raise ComplaintError(f"{key} must be true or false")
        return value

    # --- hour limits: near-due and overdue complaints, each state reported up once ---
    def check_due(self, now: datetime) -> list[Due]:
        """Every near-due or overdue limit now; states not reported before are journaled (and so sent up)."""
        dues = [d for c in self.open_complaints() for d in c.due(now, self.calendar, self.hours)]
        sent = set(self._conn.execute("SELECT ref, lim, state FROM complaint_due_sent"))
        new = [d for d in dues if (d.ref, d.limit, d.state) not in sent]
        if new:
            with self.journal.transaction():
                for d in new:
                    self._conn.execute("INSERT INTO complaint_due_sent (ref, lim, state) VALUES (?,?,?)",
                                       (d.ref, d.limit, d.state))
                    self.journal.append("complaint_due", {"ref": d.ref, "site_id": self.site_id, "limit": d.limit,
                                                          "due": d.due, "state": d.state, "at": now.isoformat()})
        self.due_now = dues
        return dues

    # --- progress lookup at the kiosk: reference + the contact's last 4 digits, status and date only ---
    def lookup(self, ref, digits, now: datetime) -> dict | None:
        """The complaint's status and promised reply date, or None: the same None for an unknown reference,
        a wrong pair, an anonymous complaint and a blocked screen, so a wrong guess learns nothing."""
        if self.lookups.blocked(now):
            self.journal.append("complaint_lookup", {"ok": False, "blocked": True, "at": now.isoformat()})
            return None
        ok = _is_text(ref) and _is_text(digits) and 0 < len(ref) <= SHORT_LIMIT \
            and len(digits) == 4 and digits.isascii() and digits.isdigit()
        c = self.get(ref) if ok else None
        if c is not None:
            contact = "".join(ch for ch in self.details(ref).get("contact", "") if ch in "0123456789")
            ok = len(contact) >= 4 and hmac.compare_digest(contact[-4:].encode(), digits.encode())
        if c is None or not ok:
            self.lookups.failed(now)
            self.journal.append("complaint_lookup", {"ok": False, "blocked": False, "at": now.isoformat()})
            return None
        self.journal.append("complaint_lookup", {"ok": True, "ref": ref, "at": now.isoformat()})
        return {"ref": c.ref, "status": c.status.value, "promised_reply": c.deadlines.reply_by}

    # --- the kiosk's draft: what was typed survives a truck's arrival ---
    def save_draft(self, draft: dict, now: datetime, slot: str = "kiosk") -> None:
        check_draft(draft)
        blob = self._sealer.seal(json.dumps(draft, ensure_ascii=False).encode(), b"draft:" + slot.encode())
        with self.journal.transaction():
            self._conn.execute("INSERT OR REPLACE INTO complaint_drafts (slot, updated, sealed) VALUES (?,?,?)",
                               (slot, now.isoformat(), blob))

    def load_draft(self, now: datetime, max_age: timedelta, slot: str = "kiosk") -> dict | None:
        """The draft typed on this screen, unless it was left longer than max_age ago: then it is another
        customer's, and it is deleted instead of shown."""
        self.expire_drafts(now, max_age)
        row = self._conn.execute("SELECT sealed FROM complaint_drafts WHERE slot=?", (slot,)).fetchone()
        return json.loads(self._sealer.open(row[0], b"draft:" + slot.encode())) if row else None

    def expire_drafts(self, now: datetime, max_age: timedelta) -> int:
        """Deletes drafts untouched for max_age (the kiosk's idle timeout), whether or not a page is open."""
        stale = [slot for slot, updated in self._conn.execute("SELECT slot, updated FROM complaint_drafts")
                 if now - datetime.fromisoformat(updated) > max_age]
        if stale:
            with self.journal.transaction():
                self._conn.executemany("DELETE FROM complaint_drafts WHERE slot=?", [(s,) for s in stale])
        return len(stale)

    def draft_saved_at(self, slot: str = "kiosk") -> datetime | None:
        row = self._conn.execute("SELECT updated FROM complaint_drafts WHERE slot=?", (slot,)).fetchone()
        return datetime.fromisoformat(row[0]) if row else None

    def clear_draft(self, slot: str = "kiosk") -> None:
        with self.journal.transaction():
            self._conn.execute("DELETE FROM complaint_drafts WHERE slot=?", (slot,))

    # --- reports ---
    def report(self, start: date, end: date, today: date) -> dict:
        """Received and resolved by category in [start, end], overdue counts, and the half-year
        report's content: main issues by category, causes and remedies as recorded."""
        if end < start:
            raise ComplaintError("the report period ends before it starts")
        inside = lambda iso: start <= datetime.fromisoformat(iso).date() <= end      # noqa: E731
        received, resolved, overdue = Counter(), Counter(), Counter()
        causes = []
        for c in self.all():
            if inside(c.received_at.isoformat()):
                received[c.category] += 1
                if c.overdue(today):
                    overdue[c.category] += 1
            if any(action == "reply" and inside(at) for action, _, at in c.history) and c.status in fc.RESOLVED:
                resolved[c.category] += 1
            if inside(c.received_at.isoformat()):
                for t in self.details(c.ref)["texts"]:
                    if t["action"] == "handle" and (t.get("cause") or t.get("remedy")):
                        causes.append({"ref": c.ref, "category": c.category, "cause": t.get("cause", ""),
                                       "remedy": t.get("remedy", "")})
        return {
            "period": {"start": start.isoformat(), "end": end.isoformat()},
            "received": sum(received.values()), "resolved": sum(resolved.values()),
            "overdue": sum(overdue.values()),
            "by_category": {cat: {"received": received[cat], "resolved": resolved[cat], "overdue": overdue[cat]}
                            for cat in fc.CATEGORIES if received[cat] or resolved[cat]},
            "main_issues": [{"category": cat, "count": n} for cat, n in received.most_common(3)],
            "causes_and_remedies": causes,
        }
