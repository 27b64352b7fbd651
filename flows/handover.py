"""The handover (交接) as a pure state machine: SPEC §2.2 steps 1-5, §2.3 alarms and risk handling.

One machine serves every task kind at both site types: the kind and site only decide which boxes
change hands here (Task.boxes_for) and the wording. Like h11: typed events in, typed decisions out,
the time passed in; no clock, no I/O. Replaying the journaled events rebuilds the same state.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Mapping

from flows.decisions import (
    Alarm, AlarmKind, AttemptRecorded, BoxAccepted, Decision, DoorPermit, EscortVerified, HandoverEnded,
    MarkRecorded, OfficerConfirmed, Outcome, Prompt, RiskResolved, Step, StepChanged, TaskRestarted)
from flows.events import (
    DISPOSITION_CODES, BoxPresented, DispositionRecorded, Event, FingerPresented, PasswordPresented,
    VehicleArrived)
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


class Handover:
    def __init__(self, task: Task, site: Site, people: Mapping[str, Person],
                 failure_limit: int = FAILURE_LIMIT, min_escorts: int = 2):
        if len(task.escorts) < max(min_escorts, task.min_escorts):
            raise ValueError(f"task {task.task_id}: {len(task.escorts)} escorts assigned, "
                             f"at least {max(min_escorts, task.min_escorts)} required")
        self.task = task
        self.site = site
        self.people = dict(people)
        self.failure_limit = failure_limit
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

    # --- what the screen and report read ---
    @property
    def in_risk_handling(self) -> bool:
        return bool(self.open_alarms)

    @property
    def lead(self) -> str:
        return self.task.lead

    # --- the one entry point ---
    def handle(self, event: Event, now: datetime) -> list[Decision]:
        # a duress finger alarms head office whatever the step: the person is in danger now
        silent: list[Decision] = []
        if isinstance(event, FingerPresented) and event.duress and event.outcome == "match":
            silent.append(self._silent_duress(event.person_id, event.station, now))
        return silent + self._dispatch(event, now)

    def _dispatch(self, event: Event, now: datetime) -> list[Decision]:
        if self.step is Step.ENDED:
            return [Prompt("handover_already_ended")]
        if isinstance(event, DispositionRecorded):
            return self._disposition(event, now)
        if self.in_risk_handling:
            out: list[Decision] = []
            if isinstance(event, FingerPresented):
                out.append(self._attempt(event, "blocked"))
            return out + [Prompt("risk_handling_pending")]
        if isinstance(event, VehicleArrived):
            return self._arrival(event, now)
        if isinstance(event, FingerPresented):
            return self._finger(event, now)
        if isinstance(event, PasswordPresented):
            return self._password(event, now)
        if isinstance(event, BoxPresented):
            return self._box(event, now)
        raise TypeError(f"not a handover event: {type(event).__name__}")

    # --- step 1: arrival ---
    def _arrival(self, ev: VehicleArrived, now: datetime) -> list[Decision]:
        if self.step is not Step.ARRIVAL:
            return []                                   # the beacon is seen again: nothing new
        if ev.manual_by is not None and not self._may_confirm(ev.manual_by):
            return [Prompt("manual_arrival_needs_officer")]
        self.arrived_at, self.arrival_manual_by = now, ev.manual_by
        arrived = "vehicle_arrived_manual" if ev.manual_by is not None else "vehicle_arrived"
        out: list[Decision] = [Prompt(arrived, {"plate": self.task.vehicle.plate}),
                               *self._enter(Step.ESCORT_VERIFICATION)]
        if not (self.task.window_start <= now <= self.task.window_end):
            out += self._raise(Alarm(AlarmKind.OUTSIDE_WINDOW, {
                "window_start": self.task.window_start.isoformat(),
                "window_end": self.task.window_end.isoformat(), "arrived": now.isoformat()}), now)
        skipped = self._skipped_stops(ev.stops_done)
        if skipped:
            out += self._raise(Alarm(AlarmKind.ROUTE_SKIP, {"skipped": skipped}), now)
        if not self.in_risk_handling:
            out.append(Prompt("present_escort_fingers", {"count": len(self.task.escorts)}))
        return out

    def _skipped_stops(self, stops_done: frozenset[str]) -> list[str]:
        here = self.task.route.index(self.site.site_id) if self.site.site_id in self.task.route else 0
        return [s for s in self.task.route[:here] if s not in stops_done]

    # --- fingerprints: escorts at the door, the officer at the counter, marks at sign-off ---
    def _finger(self, ev: FingerPresented, now: datetime) -> list[Decision]:
        if self.step is Step.ARRIVAL:
            return [self._attempt(ev, "not_expected"), Prompt("wait_for_arrival")]
        if ev.outcome == "unreadable":
            return [self._attempt(ev, "unreadable"), Prompt("finger_press_again")]
        if ev.outcome != "match":
            return self._failure(ev, ev.outcome, now)
        pid = ev.person_id
        assert pid is not None
        if self.step is Step.ESCORT_VERIFICATION:
            return self._escort(ev, now)
        if self.step in (Step.BOX_HANDOVER, Step.OFFICER_CONFIRMATION):
            if self._may_confirm(pid):
                self.failures[ev.station] = 0
                return [self._attempt(ev, "verified")] + self._confirm(pid, "fingerprint", now)
            if pid in self.task.escorts:
                return [self._attempt(ev, "not_expected"), Prompt("officer_needed")]
            return self._wrong_person(ev, now)
        if self.step is Step.SIGN_OFF:
            return self._mark(ev, now)
        return []

    def _escort(self, ev: FingerPresented, now: datetime) -> list[Decision]:
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

    def _silent_duress(self, pid: str, station: str, now: datetime) -> Alarm:
        alarm = Alarm(AlarmKind.DURESS, {"person_id": pid, "station": station}, silent=True, blocking=False)
        self.alarms.append(RaisedAlarm(alarm, now))
        return alarm

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
        if self.step not in (Step.BOX_HANDOVER, Step.OFFICER_CONFIRMATION):
            return [Prompt("not_box_step")]
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

    def _password(self, ev: PasswordPresented, now: datetime) -> list[Decision]:
        if not self.site.allow_password_confirmation:
            return [Prompt("password_not_allowed")]
        if self.step not in (Step.BOX_HANDOVER, Step.OFFICER_CONFIRMATION) or not self._may_confirm(ev.person_id):
            return [Prompt("officer_needed")]
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
            return [Prompt("no_open_exception")]
        if not self._may_confirm(ev.officer_id):
            return [Prompt("disposition_needs_officer")]
        if ev.code not in DISPOSITION_CODES or ev.resolution not in ("continue", "abort"):
            return [Prompt("disposition_invalid")]
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
