"""The handover (交接) as a pure state machine: SPEC §2.2 steps 1-5, §2.3 alarms and risk handling.

One machine serves every task kind at both site types: the kind and site only decide which boxes
change hands here (Task.boxes_for) and the wording. Like h11: typed events in, typed decisions out,
the time passed in; no clock, no I/O.

Theory of operation — five parts run side by side, each with its own state:
- steps: ARRIVAL → ESCORT_VERIFICATION → BOX_HANDOVER → OFFICER_CONFIRMATION → SIGN_OFF → ENDED. What an
  event does is looked up in _TABLE by (step, event type); a pair the table does not list is a
  `Refused(step, event, reason)` decision, never a silent drop.
- risk handling: a blocking alarm opens it (open_alarms); until an officer's disposition closes it every
  event but a disposition is refused (a finger is still recorded as a blocked attempt).
- per-station failure counts (failures): consecutive failed attempts at the door, the counter and the
  password; FAILURE_LIMIT of them at one station restart the task from step 1 (illegal authentication).
- door: raised when every assigned escort is verified, lowered at a restart and at the end.
- duress: the rule in flows.duress, asked once for each finger this machine is given, at any step.
Route knowledge runs beside them: earlier stops unknown at arrival (route_unverified) become known
when progress arrives later (RouteProgress), at any step.

Everything the machine reads besides its events is `HandoverInputs` (task, site policy, the people
involved, the limits). The agent journals them when the handover starts; a restart rebuilds the
machine from that entry and replays the journaled events, whatever changed since (`resume`).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Callable, Iterable, Mapping

from flows.decisions import (
    Alarm, AlarmKind, AttemptRecorded, BoxAccepted, Decision, DoorPermit, EscortVerified, HandoverEnded,
    MarkRecorded, OfficerConfirmed, Outcome, Prompt, Refused, RiskResolved, RouteUnverified, RouteVerified, Step,
    StepChanged, TaskRestarted)
from flows.dispositions import fitting
from flows.duress import duress_alarm
from flows.events import (
    DISPOSITION_CODES, BoxPresented, DispositionRecorded, Event, FingerPresented, PasswordPresented,
    RouteProgress, VehicleArrived)
from flows.model import Box, Person, Role, Site, SiteType, Task, TaskKind

FAILURE_LIMIT = 5   # SPEC §2.3: five consecutive failures at one station in one task


@dataclass(frozen=True)
class Verification:
    person_id: str
    at: datetime
    snapshot: str | None


@dataclass(frozen=True)
class BoxRead:
    box: Box
    at: datetime
    uid_only: bool


@dataclass(frozen=True)
class RaisedAlarm:
    alarm: Alarm
    at: datetime


@dataclass(frozen=True)
class Disposition:
    officer_id: str
    code: str
    text: str
    resolution: str
    at: datetime


@dataclass(frozen=True)
class HandoverInputs:
    """Everything a handover reads besides its events, as journaled when it starts. People by id with
    role and validity only: names and photos stay in the store (personal data)."""
    task: Task
    site: Site
    people: Mapping[str, Person]
    failure_limit: int = FAILURE_LIMIT
    min_escorts: int = 2

    def to_dict(self) -> dict:
        """Without the task: the handover_started entry carries it already."""
        return {
            "site": {"site_id": self.site.site_id, "site_type": self.site.site_type.value,
                     "allow_password_confirmation": self.site.allow_password_confirmation,
                     "allow_uid_only_tags": self.site.allow_uid_only_tags},
            "people": [{"person_id": p.person_id, "role": p.role.value,
                        "valid_from": p.valid_from.isoformat() if p.valid_from else None,
                        "valid_until": p.valid_until.isoformat() if p.valid_until else None}
                       for _, p in sorted(self.people.items())],
            "failure_limit": self.failure_limit, "min_escorts": self.min_escorts}

    @classmethod
    def from_dict(cls, task: Task, d: dict) -> "HandoverInputs":
        """Raises ValueError naming what is wrong."""
        try:
            s = d["site"]
            site = Site(str(s["site_id"]), SiteType(s["site_type"]),
                        allow_password_confirmation=bool(s["allow_password_confirmation"]),
                        allow_uid_only_tags=bool(s["allow_uid_only_tags"]))
            people = {str(p["person_id"]): Person(
                str(p["person_id"]), "", Role(p["role"]),
                valid_from=date.fromisoformat(p["valid_from"]) if p.get("valid_from") else None,
                valid_until=date.fromisoformat(p["valid_until"]) if p.get("valid_until") else None)
                for p in d["people"]}
            return cls(task, site, people, int(d["failure_limit"]), int(d["min_escorts"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"handover inputs of task {task.task_id}: {exc!r}") from None


def involved(task: Task, people: Mapping[str, Person]) -> dict[str, Person]:
    """The people a handover of this task can read: its escorts and its confirming officers."""
    return {pid: people[pid] for pid in (*task.escorts, *task.confirmers) if pid in people}


class Handover:
    @classmethod
    def from_inputs(cls, inputs: HandoverInputs) -> "Handover":
        return cls(inputs.task, inputs.site, inputs.people, inputs.failure_limit, inputs.min_escorts)

    @property
    def inputs(self) -> HandoverInputs:
        return HandoverInputs(self.task, self.site, involved(self.task, self.people), self.failure_limit,
                              self.min_escorts)

    @classmethod
    def resume(cls, started: dict, events: Iterable[tuple[Event, datetime]], today: HandoverInputs) -> "Handover":
        """Rebuild a handover from its handover_started entry's body and its journaled events.

        The machine is built from the inputs journaled at the start, never from today's people and
        settings: a personnel update or a new limit must not change what already happened. A journal
        written before the inputs were journaled has only the task: then today's inputs are all there
        is (the old behaviour, the best that can be done for it)."""
        task = Task.from_dict(started["task"])
        if "inputs" in started:
            h = cls.from_inputs(HandoverInputs.from_dict(task, started["inputs"]))
        else:
            h = cls(task, today.site, today.people, today.failure_limit, today.min_escorts)
        for event, at in events:
            h.handle(event, at)
        return h

    def __init__(self, task: Task, site: Site, people: Mapping[str, Person],
                 failure_limit: int = FAILURE_LIMIT, min_escorts: int = 2):
        if len(task.escorts) < max(min_escorts, task.min_escorts):
            raise ValueError(f"task {task.task_id}: {len(task.escorts)} escorts assigned, "
                             f"at least {max(min_escorts, task.min_escorts)} required")
        self.task = task
        self.site = site
        self.people = dict(people)
        self.failure_limit = failure_limit
        self.min_escorts = min_escorts
        self.expected: dict[str, Box] = {b.tag: b for b in task.boxes_for(site.site_id, site.site_type)}
        self.step = Step.ARRIVAL
        self.arrived_at: datetime | None = None
        self.arrival_manual_by: str | None = None
        self.verified: dict[str, Verification] = {}
        self.boxes_read: dict[str, BoxRead] = {}
        self.officer: Verification | None = None
        self.officer_method: str | None = None
        self.marks: dict[str, datetime] = {}
        self.failures: dict[str, int] = {}
        self.alarms: list[RaisedAlarm] = []
        self.open_alarms: list[Alarm] = []
        self.dispositions: list[Disposition] = []
        self.restarts = 0
        self.door_raised = False
        self.outcome: Outcome | None = None
        self.ended_at: datetime | None = None
        self.route_unverified: tuple[str, ...] = ()     # earlier stops nobody has reported yet

    # --- what the screen and report read ---
    @property
    def in_risk_handling(self) -> bool:
        return bool(self.open_alarms)

    @property
    def lead(self) -> str:
        return self.task.lead

    # --- the one entry point ---
    def handle(self, event: Event, now: datetime) -> list[Decision]:
        if type(event) not in _EVENT_TYPES:
            raise TypeError(f"not a handover event: {type(event).__name__}")
        # a duress finger alarms head office whatever the step: the person is in danger now
        silent: list[Decision] = []
        if isinstance(event, FingerPresented):
            for alarm in duress_alarm(event):
                self.alarms.append(RaisedAlarm(alarm, now))
                silent.append(alarm)
        return silent + self._dispatch(event, now)

    def _dispatch(self, event: Event, now: datetime) -> list[Decision]:
        if self.step is Step.ENDED:
            return self._refuse(event, "handover_already_ended")
        if isinstance(event, RouteProgress):       # route knowledge runs beside the steps and risk handling
            return self._route_progress(event, now)
        if self.in_risk_handling and not isinstance(event, DispositionRecorded):
            out: list[Decision] = [self._attempt(event, "blocked")] if isinstance(event, FingerPresented) else []
            return out + self._refuse(event, "risk_handling_pending")
        handler = _TABLE.get((self.step, type(event)))
        if handler is None:
            return self._refuse(event, _NOT_NOW.get(type(event), "not_now"))
        return handler(self, event, now)

    def _refuse(self, event: Event, reason: str) -> list[Decision]:
        return [Refused(self.step, type(event).__name__, reason)]

    # --- step 1: arrival ---
    def _arrival(self, ev: VehicleArrived, now: datetime) -> list[Decision]:
        if ev.manual_by is not None and not self._may_confirm(ev.manual_by):
            return self._refuse(ev, "manual_arrival_needs_officer")
        self.arrived_at, self.arrival_manual_by = now, ev.manual_by
        arrived = "vehicle_arrived_manual" if ev.manual_by is not None else "vehicle_arrived"
        out: list[Decision] = [Prompt(arrived, {"plate": self.task.vehicle.plate}),
                               *self._enter(Step.ESCORT_VERIFICATION)]
        if not (self.task.window_start <= now <= self.task.window_end):
            out += self._raise(Alarm(AlarmKind.OUTSIDE_WINDOW, {
                "window_start": self.task.window_start.isoformat(),
                "window_end": self.task.window_end.isoformat(), "arrived": now.isoformat()}), now)
        # route skip (跳点) only on what is known: a stop nobody has reported is unverified, not skipped
        earlier = [s for s in self._earlier_stops() if s not in ev.stops_done]
        skipped = [s for s in earlier if s not in ev.stops_unknown]
        unknown = tuple(s for s in earlier if s in ev.stops_unknown)
        if unknown:
            self.route_unverified = unknown
            out += [RouteUnverified(unknown), Prompt("route_unverified", {"stops": list(unknown)})]
        if skipped:
            out += self._raise(Alarm(AlarmKind.ROUTE_SKIP, {"skipped": skipped}), now)
        if not self.in_risk_handling:
            out.append(Prompt("present_escort_fingers", {"count": len(self.task.escorts)}))
        return out

    def _earlier_stops(self) -> tuple[str, ...]:
        here = self.task.route.index(self.site.site_id) if self.site.site_id in self.task.route else 0
        return self.task.route[:here]

    def _route_progress(self, ev: RouteProgress, now: datetime) -> list[Decision]:
        known = tuple(s for s in self.route_unverified if s in ev.stops_done)
        if not known:
            return self._refuse(ev, "route_nothing_new")
        self.route_unverified = tuple(s for s in self.route_unverified if s not in known)
        out: list[Decision] = [RouteVerified(known)]
        if not self.route_unverified:
            out.append(Prompt("route_verified"))
        return out

    # --- fingerprints: escorts at the door, the officer at the counter, marks at sign-off ---
    def _finger_before_arrival(self, ev: FingerPresented, now: datetime) -> list[Decision]:
        return [self._attempt(ev, "not_expected"), Prompt("wait_for_arrival")]

    def _read(self, ev: FingerPresented, now: datetime) -> list[Decision] | None:
        """A finger that matched nobody, or could not be read: the same at every step after arrival."""
        if ev.outcome == "unreadable":
            return [self._attempt(ev, "unreadable"), Prompt("finger_press_again")]
        if ev.outcome != "match":
            return self._failure(ev, ev.outcome, now)
        assert ev.person_id is not None, "a match names its person"
        return None

    def _officer_finger(self, ev: FingerPresented, now: datetime) -> list[Decision]:
        failed = self._read(ev, now)
        if failed is not None:
            return failed
        pid = ev.person_id
        if self._may_confirm(pid):
            self.failures[ev.station] = 0
            return [self._attempt(ev, "verified")] + self._confirm(pid, "fingerprint", now)
        if pid in self.task.escorts:
            return [self._attempt(ev, "not_expected"), Prompt("officer_needed")]
        return self._wrong_person(ev, now)

    def _escort(self, ev: FingerPresented, now: datetime) -> list[Decision]:
        failed = self._read(ev, now)
        if failed is not None:
            return failed
        pid = ev.person_id
        if pid not in self.task.escorts:
            if self._may_confirm(pid):
                return [self._attempt(ev, "not_expected"), Prompt("escorts_first")]
            return self._wrong_person(ev, now)
        person = self.people.get(pid)
        if person is not None and not person.valid_on(now.date()):
            # assigned, but the escort company's enrolment does not cover today
            return self._wrong_person(ev, now, reason="outside_validity")
        if ev.station != "door":
            return [self._attempt(ev, "not_expected"), Prompt("escorts_use_door_reader")]
        self.failures[ev.station] = 0
        if pid in self.verified:
            return [self._attempt(ev, "verified"), Prompt("already_verified", {"person_id": pid})]
        self.verified[pid] = Verification(pid, now, ev.snapshot)
        out: list[Decision] = [self._attempt(ev, "verified"), EscortVerified(pid, ev.snapshot),
                               Prompt("escort_verified", {"person_id": pid})]
        if all(e in self.verified for e in self.task.escorts):
            self.door_raised = True
            out += [DoorPermit(True), Prompt("all_escorts_verified"), *self._enter(Step.BOX_HANDOVER)]
            out += self._boxes_prompt()
        return out

    def _boxes_prompt(self) -> list[Decision]:
        if not self.expected:
            return [*self._enter(Step.OFFICER_CONFIRMATION), Prompt("officer_confirm")]
        direction = "in" if self._boxes_come_in() else "out"
        return [Prompt(f"present_boxes_{direction}", {"count": len(self.expected)})]

    def _boxes_come_in(self) -> bool:
        if self.site.site_type is SiteType.VAULT:
            return self.task.kind is TaskKind.COLLECTION
        # at a branch boxes leave only when every one of them starts here (collection, allocation out)
        return not all(b.origin == self.site.site_id for b in self.expected.values())

    def _failure(self, ev: FingerPresented, outcome: str, now: datetime) -> list[Decision]:
        n = self.failures.get(ev.station, 0) + 1
        self.failures[ev.station] = n
        out: list[Decision] = [self._attempt(ev, outcome)]
        if n >= self.failure_limit:
            return out + self._restart(ev.station, now)
        key = "finger_read_failed" if outcome == "read_failed" else "finger_not_recognised"
        return out + [Prompt(key, {"remaining": self.failure_limit - n})]

    def _wrong_person(self, ev: FingerPresented, now: datetime, reason: str | None = None) -> list[Decision]:
        n = self.failures.get(ev.station, 0) + 1
        self.failures[ev.station] = n
        out: list[Decision] = [self._attempt(ev, "wrong_person")]
        detail = {"person_id": ev.person_id, "station": ev.station, "snapshot": ev.snapshot}
        out += self._raise(Alarm(AlarmKind.WRONG_PERSON, detail | ({"reason": reason} if reason else {})), now)
        return out

    def _restart(self, station: str, now: datetime) -> list[Decision]:
        """Illegal authentication: alarm head office and start the task again from arrival."""
        alarm = Alarm(AlarmKind.ILLEGAL_AUTHENTICATION, {"station": station, "attempts": self.failure_limit},
                      blocking=False)
        self.alarms.append(RaisedAlarm(alarm, now))
        self.restarts += 1
        self.verified.clear()
        self.boxes_read.clear()
        self.officer = self.officer_method = None
        self.marks.clear()                      # sign-off is redone too, not carried over
        self.failures.clear()
        self.arrived_at = self.arrival_manual_by = None
        out: list[Decision] = [alarm, TaskRestarted(station)]
        if self.door_raised:
            self.door_raised = False
            out.append(DoorPermit(False))
        return out + [Prompt("illegal_authentication_restart", urgent=True), *self._enter(Step.ARRIVAL)]

    # --- step 3: boxes ---
    def _box(self, ev: BoxPresented, now: datetime) -> list[Decision]:
        if ev.refused or (ev.uid_only and not self.site.allow_uid_only_tags):
            reason = ev.refused or "uid_only_not_allowed"
            return self._raise(Alarm(AlarmKind.CLONED_TAG, {"tag": ev.tag, "reason": reason}), now)
        if ev.tag in self.boxes_read:
            return [Prompt("box_already_counted", {"box_id": self.boxes_read[ev.tag].box.box_id})]
        if ev.tag in self.expected:
            box = self.expected[ev.tag]
            self.boxes_read[ev.tag] = BoxRead(box, now, ev.uid_only)
            out: list[Decision] = [BoxAccepted(box.box_id, ev.tag, ev.uid_only),
                                   Prompt("box_counted", {"box_id": box.box_id, "counted": len(self.boxes_read),
                                                          "planned": len(self.expected)})]
            if len(self.boxes_read) == len(self.expected) and self.step is Step.BOX_HANDOVER:
                out += [Prompt("all_boxes_counted"), *self._enter(Step.OFFICER_CONFIRMATION),
                        Prompt("officer_confirm")]
            return out
        if ev.box is not None:
            return self._raise(Alarm(AlarmKind.WRONG_BOX, {"tag": ev.tag, "box_id": ev.box.box_id,
                                                           "destination": ev.box.destination}), now)
        return self._raise(Alarm(AlarmKind.UNKNOWN_BOX, {"tag": ev.tag}), now)

    # --- step 4: officer confirmation ---
    def _may_confirm(self, pid: str | None) -> bool:
        person = self.people.get(pid or "")
        return pid in self.task.confirmers and person is not None and person.role is not Role.ESCORT

    def _password_out_of_step(self, ev: PasswordPresented, now: datetime) -> list[Decision]:
        if not self.site.allow_password_confirmation:
            return self._refuse(ev, "password_not_allowed")
        return self._refuse(ev, "officer_needed")

    def _password(self, ev: PasswordPresented, now: datetime) -> list[Decision]:
        if not self.site.allow_password_confirmation:
            return self._refuse(ev, "password_not_allowed")
        if not self._may_confirm(ev.person_id):
            return self._refuse(ev, "officer_needed")
        if not ev.ok:
            n = self.failures.get("password", 0) + 1
            self.failures["password"] = n
            if n >= self.failure_limit:
                return self._restart("password", now)
            return [Prompt("password_wrong", {"remaining": self.failure_limit - n})]
        self.failures["password"] = 0
        return self._confirm(ev.person_id, "password", now)

    def _confirm(self, pid: str, method: str, now: datetime) -> list[Decision]:
        self.officer, self.officer_method = Verification(pid, now, None), method
        out: list[Decision] = [OfficerConfirmed(pid, method), Prompt("officer_verified", {"person_id": pid})]
        missing = [b.box_id for t, b in self.expected.items() if t not in self.boxes_read]
        out += self._enter(Step.SIGN_OFF)
        if missing:
            out += self._raise(Alarm(AlarmKind.MISSING_BOX, {
                "missing": missing, "counted": len(self.boxes_read), "planned": len(self.expected)}), now)
        else:
            out.append(Prompt("sign_off", {"lead_id": self.lead, "officer_id": pid}))
        return out

    # --- step 5: sign-off (留痕) and the end ---
    def _mark(self, ev: FingerPresented, now: datetime) -> list[Decision]:
        failed = self._read(ev, now)
        if failed is not None:
            return failed
        pid = ev.person_id
        # the officer who confirmed marks the handover: the report names that officer
        officer = self.officer.person_id if self.officer else None
        role = "escort_lead" if pid == self.lead else "officer" if pid == officer else None
        if role is None:
            if pid in self.task.escorts or self._may_confirm(pid):
                return [self._attempt(ev, "not_expected"), Prompt("sign_off", {
                    "lead_id": self.lead, "officer_id": officer})]
            return self._wrong_person(ev, now)
        self.failures[ev.station] = 0
        out: list[Decision] = [self._attempt(ev, "verified")]
        if pid not in self.marks:
            self.marks[pid] = now
            out += [MarkRecorded(pid, role), Prompt("mark_recorded", {"person_id": pid})]
        if self.lead in self.marks and officer in self.marks:
            out += self._end(Outcome.COMPLETED_WITH_EXCEPTION if self._had_exceptions() else Outcome.COMPLETED, now)
        return out

    def _had_exceptions(self) -> bool:
        return any(not a.alarm.silent for a in self.alarms)

    def _end(self, outcome: Outcome, now: datetime) -> list[Decision]:
        self.outcome, self.ended_at = outcome, now
        out: list[Decision] = []
        if self.door_raised:
            self.door_raised = False
            out.append(DoorPermit(False))
        return out + [*self._enter(Step.ENDED), HandoverEnded(outcome), Prompt(f"handover_{outcome.value}")]

    # --- alarms and risk handling (风险处置) ---
    def _raise(self, alarm: Alarm, now: datetime) -> list[Decision]:
        self.alarms.append(RaisedAlarm(alarm, now))
        out: list[Decision] = [alarm]
        if alarm.blocking:
            self.open_alarms.append(alarm)
            out.append(Prompt(f"alarm_{alarm.kind.value}", dict(alarm.detail), urgent=True))
            out.append(Prompt("risk_handling_pending"))
        return out

    def _disposition(self, ev: DispositionRecorded, now: datetime) -> list[Decision]:
        if not self.in_risk_handling:
            return self._refuse(ev, "no_open_exception")
        if not self._may_confirm(ev.officer_id):
            return self._refuse(ev, "disposition_needs_officer")
        if ev.code not in DISPOSITION_CODES or ev.resolution not in ("continue", "abort"):
            return self._refuse(ev, "disposition_invalid")
        if ev.code not in fitting(a.kind for a in self.open_alarms):
            return self._refuse(ev, "disposition_does_not_fit")
        self.dispositions.append(Disposition(ev.officer_id, ev.code, ev.text, ev.resolution, now))
        self.open_alarms.clear()
        out: list[Decision] = [RiskResolved(ev.officer_id, ev.code, ev.text, ev.resolution)]
        if ev.resolution == "abort":
            return out + self._end(Outcome.ABORTED, now)
        out.append(Prompt("risk_resolved"))
        return out + self._resume_prompt()

    def _resume_prompt(self) -> list[Decision]:
        if self.step is Step.ESCORT_VERIFICATION:
            return [Prompt("present_escort_fingers", {"count": len(self.task.escorts) - len(self.verified)})]
        if self.step is Step.BOX_HANDOVER:
            return self._boxes_prompt()
        if self.step is Step.OFFICER_CONFIRMATION:
            return [Prompt("officer_confirm")]
        if self.step is Step.SIGN_OFF:
            return [Prompt("sign_off", {"lead_id": self.lead,
                                        "officer_id": self.officer.person_id if self.officer else None})]
        return []

    # --- helpers ---
    def _enter(self, step: Step) -> list[Decision]:
        self.step = step
        return [StepChanged(step)]

    def _attempt(self, ev: FingerPresented, outcome: str) -> AttemptRecorded:
        return AttemptRecorded(ev.station, outcome, ev.person_id, ev.snapshot, self.failures.get(ev.station, 0))


_Handler = Callable[[Handover, Event, datetime], list[Decision]]
_BOX_STEPS = (Step.BOX_HANDOVER, Step.OFFICER_CONFIRMATION)
_LIVE_STEPS = (Step.ARRIVAL, Step.ESCORT_VERIFICATION, *_BOX_STEPS, Step.SIGN_OFF)

# (step, event) -> what it does. Risk handling, the end and route progress are decided before the
# table (Handover._dispatch); a pair not listed here is refused with _NOT_NOW's reason.
_TABLE: dict[tuple[Step, type], _Handler] = {
    (Step.ARRIVAL, VehicleArrived): Handover._arrival,
    (Step.ARRIVAL, FingerPresented): Handover._finger_before_arrival,
    (Step.ESCORT_VERIFICATION, FingerPresented): Handover._escort,
    **{(step, FingerPresented): Handover._officer_finger for step in _BOX_STEPS},
    **{(step, BoxPresented): Handover._box for step in _BOX_STEPS},
    **{(step, PasswordPresented): Handover._password for step in _BOX_STEPS},
    **{(step, PasswordPresented): Handover._password_out_of_step
       for step in (Step.ARRIVAL, Step.ESCORT_VERIFICATION, Step.SIGN_OFF)},
    (Step.SIGN_OFF, FingerPresented): Handover._mark,
    **{(step, DispositionRecorded): Handover._disposition for step in _LIVE_STEPS},
}

_NOT_NOW: dict[type, str] = {
    VehicleArrived: "already_arrived",          # the beacon seen again, or a second manual arrival
    BoxPresented: "not_box_step",
}

_EVENT_TYPES = frozenset({VehicleArrived, FingerPresented, PasswordPresented, BoxPresented, DispositionRecorded,
                          RouteProgress})
