"""Staff actions at the screen and the screen's mode, as a pure machine (SPEC §2.2 manual arrival,
§2.3 risk handling, §6 kiosk mode). Typed events in, typed decisions out, the time passed in.

Theory of operation — three small parts that run side by side:
- mode: the screen serves handovers or the complaint kiosk. Staff enter the kiosk only while no
  handover runs; a truck's arrival takes the screen from the kiosk (kiosk_resume) and gives it back
  when its handover ends; leaving the kiosk otherwise needs an officer's credential.
- pending: at most one staff action waits for an officer's credential (finger or password). Its
  purpose (PURPOSES) says when it may be asked for, whether a password may sign it on a site that
  does not allow password confirmation, and what the credential then authorises.
- session: the staff member whose credential opened the kiosk's staff view; it lapses after
  STAFF_SESSION without use.

Every finger comes here first (`Finger`): it signs the pending action, or goes on to the handover, or
nobody is waiting for it. The duress rule (flows.duress) runs exactly once per finger, in the machine
the finger ends up in: the handover for the fingers it is given, this machine for the others.

The whole state is plain data (`snapshot`/`restore`) so the agent journals it with every change and a
restart shows what the screen showed.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Callable

from flows.decisions import Alarm, Prompt
from flows.dispositions import fitting
from flows.duress import duress_alarm
from flows.events import DISPOSITION_CODES, FingerPresented, PasswordPresented

STAFF_SESSION = timedelta(minutes=5)
TEXT_LIMIT = 500


class Mode(StrEnum):
    HANDOVER = "handover"
    KIOSK = "kiosk"


class Purpose(StrEnum):
    DISPOSITION = "disposition"           # risk handling: the officer's decision on the open exceptions
    MANUAL_ARRIVAL = "manual_arrival"     # BLE failed: the officer records the truck's arrival
    KIOSK_EXIT = "kiosk_exit"             # the screen leaves the complaint kiosk
    STAFF_VIEW = "staff_view"             # the kiosk's staff side (complaints' personal data)
    ENROLMENT = "enrolment"               # a person's finger enrolled at this terminal (SPEC §2.4)


# the fingers the enrolment screen offers (the store keys a template by person and finger)
ENROL_FINGERS = ("right_index", "right_middle", "right_thumb", "left_index", "left_middle", "left_thumb")


@dataclass(frozen=True)
class Context:
    """What the rest of the terminal knows when a staff action is asked for (the agent fills it in)."""
    handover_task: str | None = None      # the running handover's task id
    at_arrival: bool = False              # the running handover waits at step 1 (e.g. after a restart)
    risk_handling: bool = False           # the running handover waits for a disposition
    open_tasks: frozenset[str] = frozenset()   # today's tasks here not yet handed over
    open_alarms: frozenset[str] = frozenset()  # kinds of the running handover's open exceptions
    people: frozenset[str] = frozenset()       # the imported personnel (who may be enrolled)


@dataclass(frozen=True)
class Pending:
    purpose: Purpose
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Session:
    person_id: str
    expires: datetime


# --- events ---
@dataclass(frozen=True)
class Request:
    """Staff asked for an action that an officer's credential must sign."""
    purpose: Purpose
    params: dict
    context: Context


@dataclass(frozen=True)
class Finger:
    """A finger at either module, resolved to a person; `officer`: the person may sign staff actions."""
    finger: FingerPresented
    officer: bool
    handover_running: bool


@dataclass(frozen=True)
class Password:
    """An officer's password, already checked against its slow hash by the agent."""
    person_id: str
    ok: bool
    officer: bool
    site_allows: bool                     # the site allows password confirmation of handovers
    handover_running: bool


@dataclass(frozen=True)
class Cancel:
    pass


@dataclass(frozen=True)
class EnterKiosk:
    handover_running: bool


@dataclass(frozen=True)
class HandoverStarted:
    """A truck takes the screen."""


@dataclass(frozen=True)
class HandoverFinished:
    pass


@dataclass(frozen=True)
class EndSession:
    pass


@dataclass(frozen=True)
class Restarted:
    """The agent came back: keep what still holds, drop the rest with a prompt."""
    context: Context


StaffEvent = Request | Finger | Password | Cancel | EnterKiosk | HandoverStarted | HandoverFinished | EndSession \
    | Restarted


# --- decisions ---
@dataclass(frozen=True)
class ModeChanged:
    mode: Mode
    by: str | None = None
    method: str | None = None


@dataclass(frozen=True)
class AwaitingOfficer:
    purpose: Purpose
    params: dict


@dataclass(frozen=True)
class PendingCleared:
    purpose: Purpose
    reason: str          # "cancelled", "authorised", "replaced", "truck_took_screen", "no_longer_applies"


@dataclass(frozen=True)
class Authorised:
    """The pending action is signed; the agent performs what the purpose asks (disposition, arrival)."""
    purpose: Purpose
    params: dict
    officer_id: str
    method: str
    finger: FingerPresented | None = None


@dataclass(frozen=True)
class SessionOpened:
    person_id: str
    method: str
    expires: datetime


@dataclass(frozen=True)
class SessionEnded:
    reason: str          # "logout", "kiosk_left", "truck_took_screen", "restart"


@dataclass(frozen=True)
class AuthFailed:
    person_id: str
    method: str
    purpose: Purpose


@dataclass(frozen=True)
class ToHandover:
    """The event is the running handover's: the agent feeds it there."""
    event: FingerPresented | PasswordPresented


@dataclass(frozen=True)
class Unclaimed:
    """A finger nobody is waiting for (no handover, no pending action)."""
    finger: FingerPresented


@dataclass(frozen=True)
class Refused:
    """The event does not apply now; nothing changed. `reason` is a catalog key."""
    state: str
    event: str
    reason: str


StaffDecision = ModeChanged | AwaitingOfficer | PendingCleared | Authorised | SessionOpened | SessionEnded \
    | AuthFailed | ToHandover | Unclaimed | Refused | Prompt | Alarm


# --- the purposes, as a table a reader can check ---
@dataclass(frozen=True)
class PurposeRule:
    allowed: Callable[["Staff", dict, Context], str | None]   # None, or the refusal's reason
    password_anywhere: bool          # a password may sign it even where handovers need a finger
    still_holds: Callable[["Staff", dict, Context], bool]     # after a restart


def _disposition_allowed(s: "Staff", p: dict, c: Context) -> str | None:
    if not c.risk_handling:
        return "no_open_exception"
    if p.get("code") not in DISPOSITION_CODES:
        return "disposition_invalid"
    if p.get("resolution") not in ("continue", "abort"):
        return "disposition_invalid"
    if not isinstance(p.get("text"), str) or len(p["text"]) > TEXT_LIMIT:
        return "disposition_invalid"
    if p["code"] not in fitting(c.open_alarms):
        return "disposition_does_not_fit"
    return None


def _manual_arrival_allowed(s: "Staff", p: dict, c: Context) -> str | None:
    task_id = p.get("task_id")
    if c.handover_task is not None:
        # after five failures the truck is still parked at step 1: its beacon arrives no more
        return None if c.at_arrival and c.handover_task == task_id else "handover_in_progress"
    return None if task_id in c.open_tasks else "task_not_open"


def _in_kiosk(s: "Staff", p: dict, c: Context) -> str | None:
    return None if s.mode is Mode.KIOSK else "not_in_kiosk"


def _enrolment_allowed(s: "Staff", p: dict, c: Context) -> str | None:
    if c.handover_task is not None:       # the counter module is the handover's while a truck is here
        return "handover_in_progress"
    if p.get("person_id") not in c.people:
        return "person_unknown"
    return None if p.get("finger") in ENROL_FINGERS else "finger_invalid"


PURPOSES: dict[Purpose, PurposeRule] = {
    Purpose.DISPOSITION: PurposeRule(_disposition_allowed, False, lambda s, p, c: c.risk_handling),
    Purpose.MANUAL_ARRIVAL: PurposeRule(_manual_arrival_allowed, False,
                                        lambda s, p, c: _manual_arrival_allowed(s, p, c) is None),
    Purpose.KIOSK_EXIT: PurposeRule(_in_kiosk, True, lambda s, p, c: s.mode is Mode.KIOSK),
    # the kiosk's page asks only in kiosk mode; the staff view is the staff side of the kiosk
    Purpose.STAFF_VIEW: PurposeRule(lambda s, p, c: None, True, lambda s, p, c: s.mode is Mode.KIOSK),
    # a capture cannot outlive a restart: the person is asked to come back and the officer to sign again
    Purpose.ENROLMENT: PurposeRule(_enrolment_allowed, False, lambda s, p, c: False),
}


class Staff:
    def __init__(self, mode: Mode = Mode.HANDOVER, kiosk_resume: bool = False, pending: Pending | None = None,
                 session: Session | None = None):
        self.mode = mode
        self.kiosk_resume = kiosk_resume      # a truck took the screen from the kiosk; give it back after
        self.pending = pending
        self.session = session

    # --- state as plain data, for the journal ---
    def snapshot(self) -> dict:
        return {"mode": self.mode.value, "kiosk_resume": self.kiosk_resume,
                "pending": {"purpose": self.pending.purpose.value, "params": dict(self.pending.params)}
                if self.pending else None,
                "session": {"person_id": self.session.person_id, "expires": self.session.expires.isoformat()}
                if self.session else None}

    @classmethod
    def restore(cls, data: dict) -> "Staff":
        """From `snapshot()`; raises ValueError naming what is wrong."""
        try:
            pending = data.get("pending")
            session = data.get("session")
            return cls(Mode(data["mode"]), bool(data.get("kiosk_resume", False)),
                       Pending(Purpose(pending["purpose"]), dict(pending["params"])) if pending else None,
                       Session(str(session["person_id"]), datetime.fromisoformat(session["expires"]))
                       if session else None)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"staff state: {exc!r}") from None

    def clock_jumped(self, by: timedelta) -> None:
        """Simulation only: the panel jumped the clock. No time passed for the person signed in, so an
        open session keeps the time it had left."""
        if self.session is not None:
            self.session = replace(self.session, expires=self.session.expires + by)

    def password_allowed(self, site_allows: bool) -> bool:
        """Whether a password is taken now (asked before the slow hash is checked)."""
        if self.pending is not None and PURPOSES[self.pending.purpose].password_anywhere:
            return True
        return site_allows

    def current_staff(self, now: datetime) -> str | None:
        """The staff member of the open session, while it has not lapsed; each use restarts its timer."""
        s = self.session
        if s is None or now > s.expires:
            self.session = None
            return None
        self.session = replace(s, expires=now + STAFF_SESSION)
        return s.person_id

    # --- the one entry point ---
    def handle(self, event: StaffEvent, now: datetime) -> list[StaffDecision]:
        handler = _TABLE.get(type(event))
        if handler is None:
            raise TypeError(f"not a staff event: {type(event).__name__}")
        return handler(self, event, now)

    def _state(self) -> str:
        return f"{self.mode.value}/{self.pending.purpose.value if self.pending else 'idle'}"

    def _refuse(self, event: StaffEvent, reason: str) -> list[StaffDecision]:
        return [Refused(self._state(), type(event).__name__, reason)]

    # --- handlers ---
    def _request(self, ev: Request, now: datetime) -> list[StaffDecision]:
        reason = PURPOSES[ev.purpose].allowed(self, ev.params, ev.context)
        if reason is not None:
            return self._refuse(ev, reason)
        out: list[StaffDecision] = []
        if self.pending is not None:
            out.append(PendingCleared(self.pending.purpose, "replaced"))
        self.pending = Pending(ev.purpose, dict(ev.params))
        return out + [AwaitingOfficer(ev.purpose, dict(ev.params)), Prompt("officer_auth_needed")]

    def _finger(self, ev: Finger, now: datetime) -> list[StaffDecision]:
        f = ev.finger
        if self.pending is not None and f.outcome == "match" and f.person_id is not None and ev.officer:
            return [*duress_alarm(f), *self._authorise(f.person_id, "fingerprint", f, now)]
        if ev.handover_running:
            return [ToHandover(f)]          # the handover decides duress for its own fingers
        return [*duress_alarm(f), Unclaimed(f)]

    def _password(self, ev: Password, now: datetime) -> list[StaffDecision]:
        if not self.password_allowed(ev.site_allows):
            return self._refuse(ev, "password_not_allowed")
        if self.pending is not None:
            if ev.ok and ev.officer:
                return self._authorise(ev.person_id, "password", None, now)
            return [AuthFailed(ev.person_id, "password", self.pending.purpose),
                    Prompt("password_wrong", {"remaining": "—"})]
        if not ev.handover_running:
            return self._refuse(ev, "no_handover_in_progress")
        return [ToHandover(PasswordPresented(ev.person_id, ev.ok))]

    def _authorise(self, officer_id: str, method: str, finger: FingerPresented | None,
                   now: datetime) -> list[StaffDecision]:
        pending, self.pending = self.pending, None
        assert pending is not None
        out: list[StaffDecision] = [PendingCleared(pending.purpose, "authorised"),
                                    Authorised(pending.purpose, dict(pending.params), officer_id, method, finger)]
        if pending.purpose is Purpose.KIOSK_EXIT:
            out += self._leave_kiosk(officer_id, method)
        elif pending.purpose is Purpose.STAFF_VIEW:
            self.session = Session(officer_id, now + STAFF_SESSION)
            # the feedback line still asked for the officer's credential after it was given
            out += [SessionOpened(officer_id, method, self.session.expires),
                    Prompt("staff_signed_in", {"person_id": officer_id})]
        return out

    def _leave_kiosk(self, by: str | None, method: str | None) -> list[StaffDecision]:
        self.mode, self.kiosk_resume = Mode.HANDOVER, False
        out: list[StaffDecision] = [ModeChanged(Mode.HANDOVER, by, method)]
        return out + self._end_session("kiosk_left")

    def _end_session(self, reason: str) -> list[StaffDecision]:
        if self.session is None:
            return []
        self.session = None
        return [SessionEnded(reason)]

    def _cancel(self, ev: Cancel, now: datetime) -> list[StaffDecision]:
        if self.pending is None:
            return []                     # a second tap on cancel: already nothing waits
        pending, self.pending = self.pending, None
        return [PendingCleared(pending.purpose, "cancelled"), Prompt("staff_action_cancelled")]

    def _enter_kiosk(self, ev: EnterKiosk, now: datetime) -> list[StaffDecision]:
        if ev.handover_running:
            return self._refuse(ev, "handover_in_progress")
        if self.mode is Mode.KIOSK:
            return self._refuse(ev, "already_in_kiosk")
        out: list[StaffDecision] = []
        if self.pending is not None:                  # a handover's staff action does not follow into the kiosk
            out.append(PendingCleared(self.pending.purpose, "no_longer_applies"))
            self.pending = None
        self.mode, self.kiosk_resume = Mode.KIOSK, False
        return out + [ModeChanged(Mode.KIOSK), *self._end_session("kiosk_entered")]

    def _handover_started(self, ev: HandoverStarted, now: datetime) -> list[StaffDecision]:
        out: list[StaffDecision] = []
        if self.mode is not Mode.KIOSK:       # the screen is the handover's already
            if self.pending is not None and self.pending.purpose is Purpose.MANUAL_ARRIVAL:
                # the beacon came after all: the arrival waiting for an officer is recorded already
                out.append(PendingCleared(self.pending.purpose, "no_longer_applies"))
                self.pending = None
            return out
        # the truck takes the screen; the kiosk page saved its draft and gets it back afterwards
        if self.pending is not None:
            out.append(PendingCleared(self.pending.purpose, "truck_took_screen"))
            self.pending = None
        self.mode, self.kiosk_resume = Mode.HANDOVER, True
        return out + [ModeChanged(Mode.HANDOVER), *self._end_session("truck_took_screen")]

    def _handover_finished(self, ev: HandoverFinished, now: datetime) -> list[StaffDecision]:
        out: list[StaffDecision] = []
        if self.pending is not None and self.pending.purpose is Purpose.DISPOSITION:
            out.append(PendingCleared(self.pending.purpose, "no_longer_applies"))
            self.pending = None
        if self.kiosk_resume:
            self.mode, self.kiosk_resume = Mode.KIOSK, False
            out.append(ModeChanged(Mode.KIOSK))
        return out

    def _logout(self, ev: EndSession, now: datetime) -> list[StaffDecision]:
        ended = self._end_session("logout")
        # the public face hides prompts that name anyone: without this it showed the old request again
        return ended + [Prompt("staff_signed_out")] if ended else ended

    def _restarted(self, ev: Restarted, now: datetime) -> list[StaffDecision]:
        out: list[StaffDecision] = []
        # personal data behind the staff view asks for a credential again after a restart
        if self.session is not None:
            out += self._end_session("restart") + [Prompt("staff_session_ended_restart")]
        if self.pending is not None and not PURPOSES[self.pending.purpose].still_holds(
                self, self.pending.params, ev.context):
            out += [PendingCleared(self.pending.purpose, "no_longer_applies"),
                    Prompt("staff_action_dropped_restart", {"purpose": self.pending.purpose.value})]
            self.pending = None
        if self.kiosk_resume and ev.context.handover_task is None:
            # the truck's handover ended (or never resumed) while the agent was down: the kiosk comes back
            self.mode, self.kiosk_resume = Mode.KIOSK, False
            out.append(ModeChanged(Mode.KIOSK))
        return out


_TABLE: dict[type, Callable[[Staff, StaffEvent, datetime], list[StaffDecision]]] = {
    Request: Staff._request,
    Finger: Staff._finger,
    Password: Staff._password,
    Cancel: Staff._cancel,
    EnterKiosk: Staff._enter_kiosk,
    HandoverStarted: Staff._handover_started,
    HandoverFinished: Staff._handover_finished,
    EndSession: Staff._logout,
    Restarted: Staff._restarted,
}
