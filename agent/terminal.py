"""The composition root at run time: device events in, flows decisions out, journal first, then effects.

    device ──event──▶ Terminal._on_device_event ──▶ Handover.handle(event, now) ──▶ decisions
    journal.append (committed) ──▶ screen · voice · door · printer

One handover runs at a time: the interlock door serves one truck. A restart rebuilds the handover in
progress from the inputs journaled when it started and its journaled events, through the same pure
machine. Staff actions and the screen's mode are flows.staff's: the terminal dispatches to it, journals
its decisions with its state, and performs their effects; a restart restores that state.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
from collections import deque
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Callable
from zoneinfo import ZoneInfo

from agent.calendar_data import build_calendar
from agent.codec import alarm_body, decode_event, encode
from agent.complaints import ComplaintBook
from agent.config import Config, ConfigError, check_files, load_complaint_key, provisioned_config
from agent.devices import Devices
from agent.enrolment import BranchEnrolment, load_hq_key
from agent.i18n import render
from agent.journal import JournalError
from agent.report_text import report_lines
from agent.sealing import Sealer
from agent.snapshots import RECORDS_KEY_FILE, SnapshotOutbox, cap_jpeg
from agent.storage import MIB, Storage, is_storage_error
from agent.store import Store
from agent.sync import Sync
from agent.today import TodaysTasks
from drivers.events import (
    CardRead, CardReadIncomplete, DeviceHealth, FingerRead, FingerTouched, VehicleArrived, VehicleDeparted)
from flows import events as fe
from flows import staff as fs
from flows.arrival import match_arrival
from flows.complaint_rules import EscalationRules, HourRules
from flows.decisions import Alarm, Decision, DoorPermit, HandoverEnded, Prompt, Refused, RouteUnverified, Step
from flows.handover import Handover, HandoverInputs
from flows.model import Person, Site, Task
from flows.report import HandoverReport, build_report
from flows.workdays import DeadlineRules
from offline.provisioning import load_trusted_signers
from offline.usb import drain_inbox
from protocol.keys import DeviceKeys

log = logging.getLogger("handover.terminal")

_EVENT_KINDS = {fe.VehicleArrived: "arrival", fe.FingerPresented: "finger_attempt",
                fe.PasswordPresented: "password_attempt", fe.BoxPresented: "box_read",
                fe.DispositionRecorded: "disposition", fe.RouteProgress: "route_rechecked"}

# flows.staff decisions as journal entries; each also carries the machine's state after it, so the
# last one of these tells a restart what the screen showed
_STAFF_KINDS = {fs.ModeChanged: "screen_mode", fs.AwaitingOfficer: "staff_pending",
                fs.PendingCleared: "staff_pending_cleared", fs.SessionOpened: "staff_session",
                fs.SessionEnded: "staff_session_ended", fs.AuthFailed: "auth_failed"}

# why a staff action is refused, for the screen's 400 answer
_REFUSALS = {
    "no_open_exception": "no handover is waiting for a disposition",
    "disposition_invalid": f"code must be one of {', '.join(fe.DISPOSITION_CODES)}, resolution continue or abort, "
                           f"text at most {fs.TEXT_LIMIT} characters",
    "disposition_does_not_fit": "disposition {code} does not fit the open alarm",
    "handover_in_progress": "a handover is already in progress",
    "task_not_open": "task {task_id} is not an open task for this site today",
    "not_in_kiosk": "the screen is not in kiosk mode",
    "already_in_kiosk": "the screen is in kiosk mode already",
    "password_not_allowed": "this site does not allow password confirmation",
    "no_handover_in_progress": "no handover in progress",
    "person_unknown": "person {person_id} is not in the imported personnel",
    "finger_invalid": f"finger must be one of {', '.join(fs.ENROL_FINGERS)}",
}


class ActionRefused(Exception):
    """A screen action that cannot be taken now; the message names why."""


@dataclasses.dataclass(frozen=True)
class ShownPrompt:
    key: str
    params: dict
    urgent: bool
    at: datetime
    version: int = 0             # the screen version it was raised in: one event's prompts share it


# A keyed box tag that showed no SUN message at all, or an old one, says so (drivers/cards/pcsc.py reasons)
_CLONED_TAG_KEYS = {"no_ndef_app": "alarm_cloned_tag_no_sun", "read_error": "alarm_cloned_tag_no_sun",
                    "no_sun": "alarm_cloned_tag_no_sun", "replayed": "alarm_cloned_tag_replayed"}


def prompt_key(key: str, params: dict) -> str:
    """The catalog key for a prompt; a wrong person whose only fault is an expired enrolment reads differently."""
    if key == "alarm_wrong_person" and params.get("reason") == "outside_validity":
        return "alarm_person_not_valid"
    if key == "alarm_cloned_tag":
        return _CLONED_TAG_KEYS.get(params.get("reason"), key)
    return key


def _alarm_key(kind: str, detail: dict) -> str:
    """One alarm as journaled (its kind and details), to match head office's acknowledgement to what is shown."""
    return json.dumps([kind, detail], sort_keys=True, ensure_ascii=False, default=str)


def _site_of(config: Config) -> Site:
    return Site(config.site.id, config.site.type, config.site.name,
                allow_password_confirmation=config.site.allow_password_confirmation,
                allow_uid_only_tags=config.site.allow_uid_only_tags)


class Terminal:
    def __init__(self, config: Config, devices: Devices, *, clock: Callable[[], datetime] | None = None):
        self.config = config
        self.devices = devices
        self.tz = ZoneInfo(config.site.timezone)
        self._wall = clock or (lambda: datetime.now(self.tz))
        self.clock_offset = timedelta(0)       # simulation only: the panel can jump to a later task
        self.site = _site_of(config)
        paths = config.paths
        for d in (paths.state_dir, paths.keys_dir, paths.reports_dir):
            Path(d).mkdir(parents=True, exist_ok=True, mode=0o700)
        self.storage = Storage(paths.state_dir, paths.min_free_mb * MIB)
        self.journal = self.storage.open_journal(paths.journal_path)
        sealer = Sealer(Path(paths.keys_dir) / "data.key")
        self.store = Store(self.journal.db, sealer, paths.photos_dir)
        self.tasks_today = TodaysTasks(self.store, lambda: self.journal.db.in_transaction)
        self.complaints = ComplaintBook(
            self.journal, sealer,
            build_calendar({"holidays": list(config.complaints.holidays), "workdays": list(config.complaints.workdays)}),
            DeadlineRules.from_dict(config.complaints.deadlines), site_id=config.site.id,
            hours=HourRules.from_dict(config.complaints.hours),
            escalation=EscalationRules.from_dict(config.complaints.escalation), hq_key=self._complaint_key())
        if hasattr(devices.cards, "verifier"):   # a PC/SC reader checks anti-clone tags with the box registry
            devices.cards.sun_keys = self.store.box_keys
            devices.cards.verifier.counters = self.store.tag_counters(self.journal)
            devices.cards.meta_read_keys = self.store.box_meta_read_keys
        self.lang = config.screen.language
        self.active: Handover | None = None
        self.schedule_updated_at: datetime | None = None     # when head office last sent a schedule version
        self.outcomes: dict[str, str] = {}             # task id -> outcome, today
        self.last_report: HandoverReport | None = None
        self.last_report_printed = True
        self.prompts: deque[ShownPrompt] = deque(maxlen=8)
        self.site_alarms: deque[tuple[Alarm, datetime]] = deque(maxlen=5)
        self.hq_seen: dict[str, str] = {}             # alarm (kind + detail) -> head office's note
        self.health: dict[str, DeviceHealth] = {}
        self.people: dict[str, Person] = {}
        self.staff = fs.Staff()
        self.enrolment = BranchEnrolment(self.store, self.journal, devices.fingerprints, self._prompt, self._changed,
                                         device_id=config.device.id, hq_key=load_hq_key(paths.keys_dir))
        records_key = load_hq_key(paths.keys_dir, RECORDS_KEY_FILE, "face snapshots")
        self.snapshots = SnapshotOutbox(self.journal, config.device.id, records_key)
        # head office's health view says whether door faces can reach it
        self.snapshot_sealing = {"state": "connected", "error": None} if records_key else {
            "state": "missing", "error": f"no keys/{RECORDS_KEY_FILE}: door faces stay on this terminal"}
        self.version = 0
        self._listeners: set[asyncio.Queue] = set()
        self._queue: asyncio.Queue = asyncio.Queue()
        self._worker: asyncio.Task | None = None
        self._inbox_watch: asyncio.Task | None = None
        self._storage_watch: asyncio.Task | None = None
        self.sync = None
        self._background: set[asyncio.Task] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._face: tuple[asyncio.Task, asyncio.Event] | None = None   # the door's snapshot in progress

    # --- life cycle ---
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self.config.simulate and not self.storage.low and not self.store.tasks_on(self.today(), self.site.site_id):
            # a demo on a new day gets a new sample day (imported here: it pulls in Pillow, which a
            # terminal in a branch never needs before READY)
            from agent.sample import seed
            with self.journal.transaction():
                tasks = seed(self.store, self.clock(), self.site)
                self.journal.append("sample_seeded", {"tasks": [t.task_id for t in tasks]})
        self.reload_people()
        # the modules catch up in the background (drivers/fingerprint/library.py): a missing module or a
        # thousand templates never hold up the start
        wanted = {slot: template.template for slot, template in self.store.templates()}
        for module in self.devices.fingerprints.values():
            module.sync_library(wanted)
        self._resume()
        await self._restore_screen()
        self.device_keys = DeviceKeys.load_or_create(self.config.paths.keys_dir, self.config.device.id)
        await self.import_inbox()
        for device in self.devices.inputs():
            await device.start(self._emit)
        self.health = {d.name: d.health() for d in self.devices.all()}
        if self.active is not None:                  # a handover resumed: its escorts may be at the door
            self.devices.camera.wake()
        if self.active is not None and self.active.door_raised:
            await self.devices.door.set_permit(True)
        try:
            self.journal.append("agent_started", {"site_id": self.site.site_id, "simulate": self.config.simulate,
                                                  "resumed_task": self.active.task.task_id if self.active else None,
                                                  "storage_low": self.storage.low})
        except JournalError as exc:            # a full disk: start anyway, and say so (agent.storage)
            self.storage_failed(exc)
        self._show_storage()
        self._worker = asyncio.create_task(self._run(), name="terminal-events")
        self._inbox_watch = asyncio.create_task(self._watch_inbox(), name="inbox")
        self._storage_watch = asyncio.create_task(self._watch_storage(), name="storage")
        if self.config.mqtt.enabled:
            self._start_sync()

    async def stop(self) -> None:
        """Stop taking device events, finish the ones queued, lower the door, close the journal."""
        for device in self.devices.inputs():
            await device.stop()
        await self._queue.join()
        if self.sync is not None:
            await asyncio.to_thread(self.sync.stop)      # unacked entries stay in the journal for next time
        for task in (self._worker, self._inbox_watch, self._storage_watch):
            if task:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self._face is not None:             # a touch the stopped module never decided
            self._face[1].set()
            await asyncio.gather(self._face[0], return_exceptions=True)
            self._face = None
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        await self.devices.door.set_permit(False)
        for output in (self.devices.camera, self.devices.voice, self.devices.door):
            release = getattr(output, "close", None) or getattr(output, "stop", None)
            if release is not None:        # cameras, the speaker thread and relays let go of their devices
                await release()
        try:
            self.journal.append("agent_stopped", {"in_progress": self.active.task.task_id if self.active else None})
        except JournalError as exc:
            log.warning("could not journal the stop: %s", exc)
        self.journal.close()

    def _emit(self, event) -> None:
        """Drivers call this from any thread."""
        assert self._loop is not None
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._queue.put_nowait(event)
        else:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, event)

    async def _run(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                await self._on_device_event(event)
            except Exception as exc:
                if is_storage_error(exc):     # not journaled, so it did not happen: say why on screen
                    self.storage_failed(exc)
                else:
                    log.exception("device event %s could not be handled", type(event).__name__)
            finally:
                self._queue.task_done()

    def clock(self) -> datetime:
        return self._wall() + self.clock_offset

    # --- device events to domain events ---
    async def _on_device_event(self, ev) -> None:
        if isinstance(ev, DeviceHealth):
            return self._on_health(ev)
        if isinstance(ev, VehicleArrived):
            return await self._on_vehicle(ev)
        if isinstance(ev, VehicleDeparted):
            self.journal.append("vehicle_departed", {"beacon": ev.identity})
            return
        if isinstance(ev, FingerTouched):
            return self._on_touch(ev)
        if isinstance(ev, FingerRead):
            return await self._on_finger(ev)
        if isinstance(ev, CardRead):
            return await self._on_card(ev)
        if isinstance(ev, CardReadIncomplete):       # lifted mid-read: nothing was read, ask again
            self._prompt(Prompt("card_present_again"))
            return self._changed()
        log.warning("ignored device event %s", type(ev).__name__)

    def _on_health(self, ev: DeviceHealth) -> None:
        before = self.health.get(ev.device)
        if before is None or before.state != ev.state:
            self.journal.append("device_health", {"device": ev.device, "state": ev.state, "error": ev.last_error})
        self.health[ev.device] = ev
        self._changed()

    async def _on_vehicle(self, ev: VehicleArrived) -> None:
        now = self.clock()
        if self.active is not None:
            if self.active.task.vehicle.beacon == ev.identity:
                if self.active.step is Step.ARRIVAL:       # back at step 1 after a restart
                    await self.feed(self.active, self._arrival(self.active.task, beacon=ev.identity))
                return
            self.journal.append("vehicle_seen", {"beacon": ev.identity, "rssi": ev.rssi, "busy": True})
            self._prompt(Prompt("handover_in_progress"))
            return self._changed()
        match = match_arrival(ev.identity, self.open_tasks(now.date()),
                              self.store.tasks_on(now.date(), beacon=ev.identity), now)
        if match.task is None:
            assert match.alarm is not None
            self.journal.append("alarm", alarm_body(match.alarm, self.site.site_id))
            self.site_alarms.appendleft((match.alarm, now))
            self._prompt(Prompt(f"alarm_{match.alarm.kind.value}", dict(match.alarm.detail), urgent=True))
            return self._changed()
        await self.start_handover(match.task, self._arrival(match.task, beacon=ev.identity))

    def _arrival(self, task: Task, *, beacon: str | None = None, manual_by: str | None = None) -> fe.VehicleArrived:
        """The arrival with what is known of the earlier stops: done (head office, a bundle, our own
        records), skipped (head office's judgement), and the rest unknown — offline that is every one."""
        done = self.store.stops_done(task.task_id)
        skipped = self.store.stops_skipped(task.task_id)
        here = task.route.index(self.site.site_id) if self.site.site_id in task.route else 0
        unknown = {s for s in task.route[:here] if s not in done and s not in skipped}
        return fe.VehicleArrived(beacon, manual_by=manual_by, stops_done=frozenset(done),
                                 stops_unknown=frozenset(unknown))

    def _inputs_today(self, task: Task) -> HandoverInputs:
        return HandoverInputs(task, self.site, self.people, self.config.site.max_failed_attempts,
                              self.config.site.min_escorts)

    async def start_handover(self, task: Task, arrival: fe.VehicleArrived) -> None:
        self._storage_changed(self.storage.check())
        if self.storage.low:                  # refused while the journal can still say so
            self._prompt(Prompt("storage_handover_refused", urgent=True))
            self.journal.append("handover_refused", {"task_id": task.task_id, "reason": "storage_low",
                                                     "storage": self.storage.describe()}, task_id=task.task_id)
            return self._changed()
        handover = Handover.from_inputs(self._inputs_today(task))
        # everything the machine reads is journaled with the start: a restart rebuilds it from this alone
        self.journal.append("handover_started", {"task": task.to_dict(), "site_id": self.site.site_id,
                                                 "inputs": handover.inputs.to_dict()}, task_id=task.task_id)
        self.active = handover
        self.devices.camera.wake()                   # the escorts come to the door next (drivers/camera/process.py)
        await self._staff(fs.HandoverStarted())      # a truck takes the screen from the kiosk
        await self.feed(handover, arrival)

    def _on_touch(self, ev: FingerTouched) -> None:
        """A finger landed on the door module: the face is snapped while the module searches (issue 20),
        so the attempt is journaled once, with its face, as soon as the module decides."""
        if ev.station != "door":
            return
        if self._face is not None:          # a touch whose decision never came: its frames are not this one's
            self._face[1].set()
            self._background.add(self._face[0])
            self._face[0].add_done_callback(self._background.discard)
        decided = asyncio.Event()
        self._face = (asyncio.create_task(self._snapshot(decided), name="door-face"), decided)

    async def _on_finger(self, ev: FingerRead) -> None:
        snapshot = await self._face_of_attempt() if ev.station == "door" else None
        owner = self.store.slot_owner(ev.slot) if ev.outcome == "match" and ev.slot is not None else None
        outcome = ev.outcome if ev.outcome != "match" or owner else "no_match"
        event = fe.FingerPresented(ev.station, outcome, owner.person_id if owner else None,
                                   bool(owner and owner.duress), snapshot)
        # flows.staff routes the finger: it signs a waiting staff action, or is the handover's, or nobody's
        await self._staff(fs.Finger(event, owner is not None and self._is_officer(owner.person_id),
                                    self.active is not None))

    async def _face_of_attempt(self) -> str | None:
        face, self._face = self._face, None
        if face is None:                        # no touch came first (a failed image): one frame, now
            decided = asyncio.Event()
            decided.set()
            return await self._snapshot(decided)
        task, decided = face
        decided.set()                           # the module has decided: the face seen so far is the one
        return await task

    async def _snapshot(self, decided: asyncio.Event) -> str | None:
        """Each door attempt snaps the face; the photo is stored sealed and referenced by hash."""
        try:
            shot = await self.devices.camera.snapshot(decided)
        except Exception as exc:                # a camera fault never blocks a handover
            log.warning("camera snapshot failed: %s", exc)
            return None
        # written (and fsynced) off the loop: the search, or other devices' events, go on meanwhile
        return await asyncio.to_thread(self._keep_face, shot.jpeg) if shot.jpeg else None

    def _keep_face(self, jpeg: bytes) -> str:
        """The face as kept and as head office gets it (capped: one photo, one hash), in head office's outbox
        before the attempt's entry names it."""
        jpeg = cap_jpeg(jpeg)
        digest = self.store.put_photo(jpeg)
        try:
            self.snapshots.add(jpeg)
        except Exception as exc:        # head office then lacks this face; the attempt and its photo stand
            log.error("face snapshot %s not queued for head office: %s", digest[:12], type(exc).__name__)
        return digest

    async def _on_card(self, ev: CardRead) -> None:
        box = self.store.box_for_tag(ev.uid, self.today())
        refused = getattr(ev, "reason", None)      # drivers.cards.pcsc.CardRefused
        event = fe.BoxPresented(ev.uid, box, uid_only=ev.uid_only and not ev.sun_verified, refused=refused)
        if self.active is None:
            self.journal.append("card_read", {"event": encode(event), "handover": None})
            self._prompt(Prompt("no_handover_in_progress"))
            return self._changed()
        await self.feed(self.active, event)

    # --- staff actions from the screen, signed by an officer's finger or password ---
    def _is_officer(self, person_id: str) -> bool:
        p = self.people.get(person_id)
        return p is not None and p.role.value in ("officer", "manager")

    def _context(self) -> fs.Context:
        a = self.active
        return fs.Context(handover_task=a.task.task_id if a else None,
                          at_arrival=a is not None and a.step is Step.ARRIVAL,
                          risk_handling=a is not None and a.in_risk_handling,
                          open_alarms=frozenset(x.kind.value for x in a.open_alarms) if a else frozenset(),
                          open_tasks=frozenset(t.task_id for t in self.open_tasks(self.today())),
                          people=frozenset(self.people))

    def request_disposition(self, code: str, text: str, resolution: str) -> None:
        self._staff_now(fs.Request(fs.Purpose.DISPOSITION, {"code": code, "text": text, "resolution": resolution},
                                     self._context()))

    def request_manual_arrival(self, task_id: str) -> None:
        self._staff_now(fs.Request(fs.Purpose.MANUAL_ARRIVAL, {"task_id": task_id}, self._context()))

    def request_enrolment(self, person_id: str, finger: str) -> None:
        self._staff_now(fs.Request(fs.Purpose.ENROLMENT, {"person_id": person_id, "finger": finger},
                                   self._context()))

    def cancel_pending(self) -> None:
        self._staff_now(fs.Cancel())

    # --- kiosk mode (SPEC §6): entered by staff when no handover runs; left only with a credential ---
    @property
    def mode(self) -> str:
        return self.staff.mode.value

    @property
    def pending_auth(self) -> fs.Pending | None:
        return self.staff.pending

    @property
    def staff_session(self) -> fs.Session | None:
        return self.staff.session

    def enter_kiosk(self) -> None:
        self._staff_now(fs.EnterKiosk(self.active is not None))

    def request_kiosk_exit(self) -> None:
        self._staff_now(fs.Request(fs.Purpose.KIOSK_EXIT, {}, self._context()))

    def request_staff_view(self) -> None:
        self._staff_now(fs.Request(fs.Purpose.STAFF_VIEW, {}, self._context()))

    def current_staff(self) -> str | None:
        """The staff member whose credential opened the staff view, while it has not lapsed."""
        return self.staff.current_staff(self.clock())

    def acknowledge_site_alarms(self, person_id: str) -> None:
        """Staff saw the site's alarms (a wrong or unknown truck); journaled, then they leave the screen."""
        if self.site_alarms:
            self.journal.append("alarm_acknowledged", {"by": person_id, "alarms": [
                {"kind": a.kind.value, "at": at.isoformat()} for a, at in self.site_alarms]})
            self.site_alarms.clear()
        self._changed()

    def end_staff_session(self) -> None:
        self._staff_now(fs.EndSession())

    async def password(self, person_id: str, password: str) -> bool:
        """An officer's password: confirms a handover, or signs a pending action. Never logged."""
        if not self.staff.password_allowed(self.site.allow_password_confirmation):
            raise ActionRefused(_REFUSALS["password_not_allowed"])
        ok = await asyncio.to_thread(self.store.check_password, person_id, password)
        await self._staff(fs.Password(person_id, ok, self._is_officer(person_id),
                                      self.site.allow_password_confirmation, self.active is not None))
        return ok

    async def _staff(self, event: fs.StaffEvent) -> list:
        """Dispatch to the staff machine: its decisions are journaled first (with its state), then done."""
        decisions = self._staff_now(event)
        for d in decisions:
            if isinstance(d, fs.ToHandover):
                if self.active is not None:
                    await self.feed(self.active, d.event)
            elif isinstance(d, fs.Authorised):
                await self._authorised(d)
        if any(isinstance(d, (fs.ToHandover, fs.Authorised)) for d in decisions):
            self._changed()
        return decisions

    def _staff_now(self, event: fs.StaffEvent) -> list:
        """The staff machine's decisions journaled and shown; the handover's part is left to `_staff`."""
        before = self.staff.snapshot()
        decisions = self.staff.handle(event, self.clock())
        refused = [d for d in decisions if isinstance(d, fs.Refused)]
        if refused:
            reason = refused[0].reason
            params = event.params if isinstance(event, fs.Request) else {}
            raise ActionRefused(_REFUSALS.get(reason, reason).format(**params))
        task_id = self.active.task.task_id if self.active else None
        try:
            with self.journal.transaction():
                for d in decisions:
                    if type(d) in _STAFF_KINDS:
                        self.journal.append(_STAFF_KINDS[type(d)], {**encode(d), "state": self.staff.snapshot()},
                                            task_id=task_id)
                    elif isinstance(d, Alarm):     # duress on a finger no handover was given
                        self.journal.append("alarm", alarm_body(d, self.site.site_id), task_id=task_id)
                    elif isinstance(d, fs.Unclaimed):
                        self.journal.append("finger_attempt", {"event": encode(d.finger), "handover": None})
        except Exception:
            self.staff = fs.Staff.restore(before)       # what is not journaled did not happen
            raise
        for d in decisions:
            if isinstance(d, Prompt):
                self._prompt(d)
            elif isinstance(d, fs.Unclaimed):
                self._prompt(Prompt("no_handover_in_progress"))
        self._changed()
        return decisions

    async def _authorised(self, d: fs.Authorised) -> None:
        """What a signed staff action does beyond the staff machine's own state."""
        if d.purpose is fs.Purpose.DISPOSITION and self.active is not None:
            await self.feed(self.active, fe.DispositionRecorded(d.officer_id, **d.params))
        elif d.purpose is fs.Purpose.MANUAL_ARRIVAL:
            task = self.store.task(d.params["task_id"])
            if task is None:
                return
            arrival = self._arrival(task, manual_by=d.officer_id)
            if self.active is not None and self.active.task.task_id == task.task_id:
                await self.feed(self.active, arrival)
            elif self.active is None:
                await self.start_handover(task, arrival)
        elif d.purpose is fs.Purpose.ENROLMENT:      # captures take seconds: the loop keeps serving the door
            self._spawn(self.enrolment.run(d.params["person_id"], d.params["finger"], d.officer_id, d.method))

    # --- the one path every domain event takes ---
    async def feed(self, handover: Handover, event: fe.Event) -> list[Decision]:
        now = self.clock()
        task_id = handover.task.task_id
        decisions = handover.handle(event, now)
        try:
            with self.journal.transaction():
                self.journal.append(_EVENT_KINDS[type(event)], {
                    "event": encode(event), "at": now.isoformat(), "step": handover.step.value,
                    "decisions": [encode(d) for d in decisions]}, task_id=task_id)
                for d in decisions:
                    if isinstance(d, Alarm):
                        self.journal.append("alarm", alarm_body(d, self.site.site_id), task_id=task_id)
                    elif isinstance(d, RouteUnverified):   # for head office to judge from the fleet's records
                        self.journal.append("route_unverified", {"site_id": self.site.site_id,
                                                                 "stops": list(d.stops)}, task_id=task_id)
                if handover.step is Step.ENDED:
                    report = build_report(handover)
                    self.journal.append("handover_ended", {"report": dataclasses.asdict(report)}, task_id=task_id)
                    self.store.record_stop_done(task_id, self.site.site_id, now.isoformat())
        except Exception:
            # what is not journaled did not happen: rebuild the machine from what is
            self.active = self._replay(task_id)
            raise
        await self._effects(handover, decisions)
        return decisions

    async def _effects(self, handover: Handover, decisions: list[Decision]) -> None:
        for d in decisions:
            if isinstance(d, Prompt):
                self._prompt(d)
            elif isinstance(d, Refused):
                self._prompt(Prompt(d.reason))
            elif isinstance(d, DoorPermit):
                await self.devices.door.set_permit(d.raised)
            elif isinstance(d, HandoverEnded):
                await self._finish(handover)
        self._changed()

    async def _finish(self, handover: Handover) -> None:
        report = build_report(handover)
        # only today's tasks are looked up here: drop earlier days', or the dict grows for months
        today = {t.task_id for t in self.tasks_today.on(self.today(), self.site.site_id)}
        self.outcomes = {task_id: o for task_id, o in self.outcomes.items() if task_id in today}
        self.outcomes[handover.task.task_id] = report.outcome or ""
        self.last_report = report
        self.active = None
        await self._staff(fs.HandoverFinished())     # the kiosk gets its screen back
        self._write_report(report)
        title, lines = report_lines(report, self.people, "zh-CN", self.site_name())
        error = None
        try:
            await self.devices.printer.print_lines(title, lines)
            health = self.devices.printer.health()      # drivers report a failed print through health
            error = None if health.state == "connected" else (health.last_error or health.state)
        except Exception as exc:    # the report is kept as a file and shown even if paper jams
            error = str(exc)
        self.last_report_printed = error is None
        if error is not None:
            log.warning("report not printed: %s", error)
            self.journal.append("print_failed", {"task_id": report.task_id, "error": error}, task_id=report.task_id)

    def _write_report(self, report: HandoverReport) -> Path:
        path = Path(self.config.paths.reports_dir) / f"{report.task_id}-{report.site_id}.json"
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(dataclasses.asdict(report), f, ensure_ascii=False, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return path

    def _complaint_key(self, path: Path | None = None):
        """Head office's complaint public key, or None: then complaint details stay on this terminal, and
        head office's health view says so (self.complaint_sealing)."""
        path = path or self.config.complaints.hq_key
        try:
            key = load_complaint_key(path) if path is not None else None
        except ConfigError as e:
            log.error("complaint details will not go to head office: %s", e)
            self.complaint_sealing = {"state": "missing", "error": str(e)}
            return None
        self.complaint_sealing = {"state": "connected", "error": None} if key else {
            "state": "missing", "error": "no complaints.hq_key: complaint details stay on this terminal"}
        return key

    # --- head office (SPEC §4): the journal is the outbox; task progress and alarms go out at once ---
    URGENT_KINDS = ("alarm", "handover_started", "arrival", "finger_attempt", "box_read", "disposition",
                    "handover_ended", "route_unverified")

    def _start_sync(self) -> None:
        unusable = [p for p in check_files(self.config) if p.startswith("mqtt.")]
        if unusable:    # e.g. not provisioned yet: work offline and say why on the device bar
            log.error("head office link not started: %s", "; ".join(unusable))
            self._on_health(DeviceHealth("head_office", "missing", "; ".join(unusable)))
            return
        loop = asyncio.get_running_loop()
        self.sync = Sync(self.config, self.journal, self.store, urgent_kinds=self.URGENT_KINDS,
                         complaints=self.complaints, snapshots=self.snapshots,
                         on_downlink=lambda kind, payload: loop.call_soon_threadsafe(self._downlink_applied, kind,
                                                                                     payload),
                         health=lambda: {**{name: {"state": h.state, "error": h.last_error}
                                            for name, h in self.health.items()},
                                         "complaint_sealing": self.complaint_sealing,
                                         "snapshot_sealing": self.snapshot_sealing},
                         modules=list(self.devices.fingerprints.values()), loop=loop,
                         on_link=lambda up, error: loop.call_soon_threadsafe(self._on_health, DeviceHealth(
                             "head_office", "connected" if up else "missing", error)))
        self.sync.start()

    def _downlink_applied(self, kind: str, payload: dict | None = None) -> None:
        """Head office changed tasks, people or settings: show the new state."""
        if kind == "tasks" and payload is not None:
            self._schedule_changed(payload["tasks"])
        if kind == "command" and payload and payload["command"] == "alarm_seen":
            return self._alarm_seen(payload)
        if kind == "config" and self.sync is not None:
            self.reconfigure(self.sync.downlink.config)
        self.reload_people()
        if kind == "route_progress":
            self._spawn(self._route_news())
        self._changed()

    def _schedule_changed(self, tasks: list[dict]) -> None:
        """A new schedule version: the idle screen says so. A handover running on a task that changed
        finishes on the version it started with (its escorts are at the door, its boxes counted);
        the new version applies from the next arrival, and head office is told by the journal."""
        self.schedule_updated_at = self.clock()
        running = self.active.task if self.active else None
        for t in tasks:
            if running is not None and t["task_id"] == running.task_id and t.get("version", 1) > running.version:
                self.journal.append("task_change_deferred", {"task_id": running.task_id, "running_version":
                                    running.version, "new_version": t["version"]}, task_id=running.task_id)
    def _alarm_seen(self, payload: dict) -> None:
        """A monitor at head office acknowledged an alarm (journaled by the downlink): the screen says so on it."""
        entry = next(iter(self.journal.entries(after_seq=payload["seq"] - 1, limit=1)), None)
        if entry is not None and entry.kind == "alarm" and not entry.body.get("silent"):
            self.hq_seen[_alarm_key(entry.body["alarm"], entry.body["detail"])] = payload["note"]
            self._changed()

    def _restore_alarm_seen(self, after_seq: int) -> None:
        """After a restart: head office's acknowledgements journaled since the running handover began."""
        for e in self.journal.entries(after_seq=after_seq):
            result = e.body.get("result") if e.kind == "downlink_accepted" else None
            if isinstance(result, dict) and result.get("command") == "alarm_seen":
                self._alarm_seen(result)

    def hq_seen_note(self, alarm: Alarm) -> str | None:
        """Head office's note on an alarm shown here, once a monitor acknowledged it."""
        body = alarm_body(alarm, self.site.site_id)
        return self.hq_seen.get(_alarm_key(body["alarm"], body["detail"]))

    def reconfigure(self, config: Config) -> None:
        """Settings head office changed (agent.config.apply_settings). A running handover keeps the
        site rules it started with; the next one is built from these."""
        self.config = config
        self.site = _site_of(config)
        self.lang = config.screen.language

    def simulate_clock_jump(self, minutes: int) -> None:
        """Simulation only: the panel jumps the clock, e.g. to a later task's window."""
        offset = timedelta(minutes=minutes)
        self.journal.append("config_changed", {"simulation.clock_offset_minutes": minutes})
        self.staff.clock_jumped(offset - self.clock_offset)
        self.clock_offset = offset
        self._changed()

    def simulate_route_report(self, task_id: str, site_id: str, status: str) -> None:
        """Simulation only: the panel plays head office's route_progress report, as the downlink stores it."""
        at = self.clock().isoformat()
        with self.journal.transaction():
            record = self.store.record_stop_skipped if status == "skipped" else self.store.record_stop_done
            record(task_id, site_id, at)
            self.journal.append("route_progress", {"task_id": task_id, "site_id": site_id, "at": at,
                                                   "status": status, "source": "simulator"}, task_id=task_id)
        self._downlink_applied("route_progress")

    async def _route_news(self) -> None:
        """Progress that arrives after the arrival: stops that were unverified become known."""
        a = self.active
        if a is not None and a.route_unverified and a.step is not Step.ENDED:
            done = self.store.stops_done(a.task.task_id)
            if done & set(a.route_unverified):
                await self.feed(a, fe.RouteProgress(frozenset(done)))

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- offline bundles: `handover-agent usb-import` (run by udev) drops them in the inbox ---
    async def import_inbox(self) -> None:
        state = Path(self.config.paths.state_dir)
        inbox = state / "inbox"
        if not inbox.is_dir() or not any(inbox.iterdir()) or self.storage.low:
            return                      # a bundle waits on a full disk: its import could not be journaled
        if self.active is not None and self.active.step is not Step.ARRIVAL:
            return                      # never change tasks or people under a running handover
        results = await drain_inbox(state / "inbox", journal=self.journal, store=self.store,
                                    device_keys=self.device_keys, trusted_signers=load_trusted_signers(state),
                                    fingerprint_modules=list(self.devices.fingerprints.values()),
                                    now=self.clock(), state_dir=state)
        for name, outcome in results:
            log.info("bundle %s: %s", name, outcome.message)
            self._prompt(Prompt(outcome.message_key, dict(outcome.summary), urgent=not outcome.ok))
        if any(outcome.ok and outcome.kind == "provisioning" and "complaint_key" in outcome.summary
               for _, outcome in results):
            self._provisioned_complaint_key(state)
        if results:
            self.reload_people()
            self._changed()

    def _provisioned_complaint_key(self, state: Path) -> None:
        """A provisioning bundle brought head office's complaint key: complaints sealed to it from now on,
        not from the next start."""
        try:
            path = (provisioned_config(state) or {}).get("complaints", {}).get("hq_key")
        except (OSError, ValueError) as exc:
            log.error("the provisioned configuration cannot be read: %s", type(exc).__name__)
            return
        if path:
            self.complaints.hq_key = self._complaint_key(Path(path))

    async def _watch_inbox(self, interval: float = 2.0) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.import_inbox()
            except Exception:
                log.exception("inbox import failed")

    # --- voice and text together ---
    _NAMED = {"person_id": "name", "lead_id": "lead", "officer_id": "officer"}
    _SITES = ("destination", "origin", "skipped", "stops")       # params that carry site ids

    def prompt_params(self, params: dict) -> dict:
        """Names for ids, so a prompt says 王强, not E01. Flows and the journal carry ids only:
        names are personal data, sealed in the store."""
        out = dict(params)
        for id_key, name_key in self._NAMED.items():
            if id_key in out:
                out.setdefault(name_key, self.name(out[id_key]))
        names = self.store.site_names()         # a branch by its name; its code where no name is known
        for key in self._SITES:
            v = out.get(key)
            if isinstance(v, str):
                out[key] = names.get(v, v)
            elif isinstance(v, (list, tuple)):
                out[key] = [names.get(s, s) for s in v]
        return out

    def _prompt(self, p: Prompt) -> None:
        params = self.prompt_params(p.params)
        key = prompt_key(p.key, params)
        self.prompts.appendleft(ShownPrompt(key, params, p.urgent, self.clock(), self.version))
        self._spawn(self._speak(render(key, params, self.lang), p.urgent))

    async def _speak(self, text: str, urgent: bool) -> None:
        try:
            await self.devices.voice.say(text, self.lang, urgent=urgent)
        except Exception as exc:    # the text is on screen whatever the speaker does
            log.warning("voice failed: %s", exc)

    # --- what the screen reads ---
    def site_name(self) -> str:
        """This site as people know it: its configured name, else the one head office sent with the
        tasks (or the demo's); its code where none is known."""
        return self.config.site.name or self.store.site_name(self.site.site_id) or self.site.site_id

    def name(self, person_id: str | None) -> str:
        p = self.people.get(person_id or "")
        return p.name if p else (person_id or "—")

    def reload_people(self) -> None:
        self.people = {p.person_id: p for p in self.store.people()}

    def today(self) -> date:
        return self.clock().date()

    def open_tasks(self, day: date) -> list[Task]:
        return [t for t in self.tasks_today.on(day, self.site.site_id)
                if t.task_id not in self.outcomes and (self.active is None or self.active.task.task_id != t.task_id)]


    def set_language(self, lang: str) -> None:
        self.journal.append("config_changed", {"screen.language": lang})
        self.lang = lang
        self._changed()

    # --- storage (agent.storage): a full disk is shown and reported, never a crash ---
    def storage_failed(self, error: Exception) -> None:
        log.error("journal write failed: %s", error)
        self.storage.failed(error)
        self._prompt(Prompt("storage_write_failed", urgent=True))
        self._show_storage()

    def _show_storage(self) -> None:
        """The device bar and head office's health both read self.health."""
        low = self.storage.low
        self.health["storage"] = DeviceHealth("storage", "degraded" if low else "connected",
                                              self.storage.describe() if low else None)
        self._changed()

    async def _watch_storage(self, interval: float = 1.0) -> None:
        while True:
            await asyncio.sleep(interval)
            self._storage_changed(await asyncio.to_thread(self.storage.check))

    def _storage_changed(self, changed: bool) -> None:
        """Record and show a change of the storage state (Storage.check said whether there was one)."""
        if not changed:
            return
        try:
            self.journal.append("storage_low" if self.storage.low else "storage_ok",
                                {"storage": self.storage.describe()})
        except JournalError as exc:
            self.storage_failed(exc)
        if not self.storage.low:
            self._prompt(Prompt("storage_ok"))
        self._show_storage()

    def subscribe(self) -> asyncio.Queue:
        q: asyncio.Queue = asyncio.Queue(maxsize=1)
        self._listeners.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue) -> None:
        self._listeners.discard(q)

    def _changed(self) -> None:
        self.version += 1
        for q in self._listeners:
            if q.full():             # a slow screen gets the newest state, not a backlog
                q.get_nowait()
            q.put_nowait(self.version)

    # --- restart: rebuild from the journal ---
    def _resume(self) -> None:
        for task in self.tasks_today.on(self.today(), self.site.site_id):
            entries = self.journal.entries_for_task(task.task_id)
            ended = [e for e in entries if e.kind == "handover_ended"]
            if ended:
                self.outcomes[task.task_id] = ended[-1].body["report"]["outcome"]
                self.last_report = HandoverReport.from_dict(ended[-1].body["report"])
            elif any(e.kind == "handover_started" for e in entries):
                self.active = self._replay(task.task_id)
                if self.active is not None:
                    self._restore_alarm_seen(min(e.seq for e in entries if e.kind == "handover_started"))

    def _replay(self, task_id: str) -> Handover | None:
        entries = self.journal.entries_for_task(task_id)
        starts = [i for i, e in enumerate(entries) if e.kind == "handover_started"]
        if not starts:
            return None
        started = entries[starts[-1]]
        events = [(decode_event(e.body["event"]), datetime.fromisoformat(e.body["at"]))
                  for e in entries[starts[-1] + 1:] if "event" in e.body and "at" in e.body]
        task = Task.from_dict(started.body["task"])
        # today's inputs serve only a journal written before the inputs were journaled with the start
        handover = Handover.resume(started.body, events, self._inputs_today(task))
        return handover if handover.step is not Step.ENDED else None

    async def _restore_screen(self) -> None:
        """The screen as it was: kiosk mode, a truck's hold on the kiosk, a staff action waiting for an
        officer. What no longer holds is dropped with a prompt (flows.staff Restarted)."""
        last = self.journal.last_of(tuple(_STAFF_KINDS.values()))
        if last is not None and "state" in last.body:
            try:
                self.staff = fs.Staff.restore(last.body["state"])
            except ValueError as exc:
                log.warning("screen state not restored: %s", exc)
        elif last is not None and last.kind == "screen_mode":
            # written before the staff state was journaled: the mode is all there is
            self.staff = fs.Staff(fs.Mode(last.body["mode"]))
        await self._staff(fs.Restarted(self._context()))
        self._drop_stale_draft()

    def _drop_stale_draft(self) -> None:
        """A kiosk draft older than the idle timeout would have been cleared by the page, had the agent
        not stopped: the next customer must not see it. One the truck took the screen from waits."""
        if self.staff.mode is not fs.Mode.KIOSK:
            return
        saved = self.complaints.draft_saved_at()
        limit = timedelta(seconds=self.config.screen.idle_timeout_seconds)
        if saved is not None and self.clock() - saved > limit:
            self.complaints.clear_draft()
            self.journal.append("kiosk_draft_dropped", {"saved_at": saved.isoformat(), "reason": "idle_timeout"})
            self._prompt(Prompt("kiosk_draft_dropped"))
