"""The composition root at run time: device events in, flows decisions out, journal first, then effects.

    device ──event──▶ Terminal._on_device_event ──▶ Handover.handle(event, now) ──▶ decisions
    journal.append (committed) ──▶ screen · voice · door · printer

One handover runs at a time: the interlock door serves one truck. A restart rebuilds the handover in
progress by replaying its journaled events through the same pure machine.
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
from agent.config import Config
from agent.devices import Devices
from agent.i18n import render
from agent.journal import Journal
from agent.sealing import Sealer
from agent.store import Store
from drivers.events import CardRead, DeviceHealth, FingerRead, VehicleArrived, VehicleDeparted
from flows import events as fe
from flows.arrival import match_arrival
from flows.decisions import Alarm, AlarmKind, Decision, DoorPermit, HandoverEnded, Prompt, Step
from flows.handover import Handover
from flows.model import Person, Site, Task
from flows.report import HandoverReport, build_report
from flows.workdays import DeadlineRules

log = logging.getLogger("handover.terminal")

_EVENT_KINDS = {fe.VehicleArrived: "arrival", fe.FingerPresented: "finger_attempt",
                fe.PasswordPresented: "password_attempt", fe.BoxPresented: "box_read",
                fe.DispositionRecorded: "disposition"}


@dataclasses.dataclass(frozen=True)
class PendingAuth:
    """A staff action waiting for an officer's credential: the next officer finger (or password) signs it."""
    purpose: str                 # "disposition" or "manual_arrival"
    params: dict


@dataclasses.dataclass(frozen=True)
class StaffSession:
    """A staff member who presented a credential at the screen; lapses after a few idle minutes."""
    person_id: str
    expires: datetime


STAFF_SESSION = timedelta(minutes=5)
KIOSK_PURPOSES = ("kiosk_exit", "staff_view")


class ActionRefused(Exception):
    """A screen action that cannot be taken now; the message names why."""


@dataclasses.dataclass(frozen=True)
class ShownPrompt:
    key: str
    params: dict
    urgent: bool
    at: datetime


def prompt_key(key: str, params: dict) -> str:
    """The catalog key for a prompt; a wrong person whose only fault is an expired enrolment reads differently."""
    if key == "alarm_wrong_person" and params.get("reason") == "outside_validity":
        return "alarm_person_not_valid"
    return key


class Terminal:
    def __init__(self, config: Config, devices: Devices, *, clock: Callable[[], datetime] | None = None):
        self.config = config
        self.devices = devices
        self.tz = ZoneInfo(config.site.timezone)
        self._wall = clock or (lambda: datetime.now(self.tz))
        self.clock_offset = timedelta(0)       # simulation only: the panel can jump to a later task
        self.site = Site(config.site.id, config.site.type, config.site.name,
                         allow_password_confirmation=config.site.allow_password_confirmation,
                         allow_uid_only_tags=config.site.allow_uid_only_tags)
        paths = config.paths
        for d in (paths.state_dir, paths.keys_dir, paths.reports_dir):
            Path(d).mkdir(parents=True, exist_ok=True, mode=0o700)
        self.journal = Journal(paths.journal_path)
        sealer = Sealer(Path(paths.keys_dir) / "data.key")
        self.store = Store(self.journal.db, sealer, paths.photos_dir)
        self.complaints = ComplaintBook(
            self.journal, sealer,
            build_calendar({"holidays": list(config.complaints.holidays), "workdays": list(config.complaints.workdays)}),
            DeadlineRules.from_dict(config.complaints.deadlines), site_id=config.site.id)
        if hasattr(devices.cards, "verifier"):   # a PC/SC reader checks anti-clone tags with the box registry
            devices.cards.sun_keys = self.store.box_keys
            devices.cards.verifier.counters = self.store.tag_counters(self.journal)
        self.lang = config.screen.language
        self.active: Handover | None = None
        self.outcomes: dict[str, str] = {}             # task id -> outcome, today
        self.last_report: HandoverReport | None = None
        self.last_report_printed = True
        self.prompts: deque[ShownPrompt] = deque(maxlen=8)
        self.site_alarms: deque[tuple[Alarm, datetime]] = deque(maxlen=5)
        self.health: dict[str, DeviceHealth] = {}
        self.people: dict[str, Person] = {}
        self.pending_auth: PendingAuth | None = None
        self.mode = "handover"                  # or "kiosk": complaint capture while no handover runs
        self.kiosk_resume = False               # a truck took the screen from the kiosk; give it back after
        self.staff_session: StaffSession | None = None
        self.version = 0
        self._listeners: set[asyncio.Queue] = set()
        self._queue: asyncio.Queue = asyncio.Queue()
        self._worker: asyncio.Task | None = None
        self._inbox_watch: asyncio.Task | None = None
        self.sync = None
        self._background: set[asyncio.Task] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- life cycle ---
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self.config.simulate and not self.store.tasks_on(self.today(), self.site.site_id):
            # a demo on a new day gets a new sample day
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
        from offline.keys import DeviceKeys
        self.device_keys = DeviceKeys.load_or_create(self.config.paths.keys_dir, self.config.device.id)
        await self.import_inbox()
        for device in self.devices.inputs():
            await device.start(self._emit)
        self.health = {d.name: d.health() for d in self.devices.all()}
        if self.active is not None and self.active.door_raised:
            await self.devices.door.set_permit(True)
        self.journal.append("agent_started", {"site_id": self.site.site_id, "simulate": self.config.simulate,
                                              "resumed_task": self.active.task.task_id if self.active else None})
        self._worker = asyncio.create_task(self._run(), name="terminal-events")
        self._inbox_watch = asyncio.create_task(self._watch_inbox(), name="inbox")
        if self.config.mqtt.enabled:
            self._start_sync()

    async def stop(self) -> None:
        """Stop taking device events, finish the ones queued, lower the door, close the journal."""
        for device in self.devices.inputs():
            await device.stop()
        await self._queue.join()
        if self.sync is not None:
            await asyncio.to_thread(self.sync.stop)      # unacked entries stay in the journal for next time
        for task in (self._worker, self._inbox_watch):
            if task:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        await self.devices.door.set_permit(False)
        for output in (self.devices.camera, self.devices.voice, self.devices.door):
            release = getattr(output, "close", None) or getattr(output, "stop", None)
            if release is not None:        # cameras, the speaker thread and relays let go of their devices
                await release()
        self.journal.append("agent_stopped", {"in_progress": self.active.task.task_id if self.active else None})
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
            except Exception:
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
        if isinstance(ev, FingerRead):
            return await self._on_finger(ev)
        if isinstance(ev, CardRead):
            return await self._on_card(ev)
        log.warning("ignored device event %s", type(ev).__name__)

    def _on_health(self, ev: DeviceHealth) -> None:
        before = self.health.get(ev.device)
        self.health[ev.device] = ev
        if before is None or before.state != ev.state:
            self.journal.append("device_health", {"device": ev.device, "state": ev.state, "error": ev.last_error})
        self._changed()

    async def _on_vehicle(self, ev: VehicleArrived) -> None:
        now = self.clock()
        if self.active is not None:
            if self.active.task.vehicle.beacon == ev.identity:
                if self.active.step is Step.ARRIVAL:       # back at step 1 after a restart
                    await self.feed(self.active, fe.VehicleArrived(
                        ev.identity, stops_done=frozenset(self.store.stops_done(self.active.task.task_id))))
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
        await self.start_handover(match.task, fe.VehicleArrived(
            ev.identity, stops_done=frozenset(self.store.stops_done(match.task.task_id))))

    async def start_handover(self, task: Task, arrival: fe.VehicleArrived) -> None:
        handover = Handover(task, self.site, self.people, failure_limit=self.config.site.max_failed_attempts,
                            min_escorts=self.config.site.min_escorts)
        self.journal.append("handover_started", {"task": task.to_dict(), "site_id": self.site.site_id},
                            task_id=task.task_id)
        self.active = handover
        if self.mode == "kiosk":              # the truck takes the screen; the kiosk page saved its draft
            self.mode, self.kiosk_resume, self.staff_session = "handover", True, None
            self.pending_auth = None
        await self.feed(handover, arrival)

    async def _on_finger(self, ev: FingerRead) -> None:
        snapshot = await self._snapshot() if ev.station == "door" else None
        owner = self.store.slot_owner(ev.slot) if ev.outcome == "match" and ev.slot is not None else None
        outcome = ev.outcome if ev.outcome != "match" or owner else "no_match"
        event = fe.FingerPresented(ev.station, outcome, owner.person_id if owner else None,
                                   bool(owner and owner.duress), snapshot)
        if event.duress and (self.active is None or self.pending_auth is not None):
            self._silent_duress(event)        # no handover to raise it: the terminal does, just as silently
        if self.pending_auth is not None and owner is not None and self._is_officer(owner.person_id):
            return await self._authorised(owner.person_id, "fingerprint", event)
        if self.active is None:
            self.journal.append("finger_attempt", {"event": encode(event), "handover": None})
            self._prompt(Prompt("no_handover_in_progress"))
            return self._changed()
        await self.feed(self.active, event)

    def _silent_duress(self, event: fe.FingerPresented) -> None:
        alarm = Alarm(AlarmKind.DURESS, {"person_id": event.person_id, "station": event.station},
                      silent=True, blocking=False)
        self.journal.append("alarm", alarm_body(alarm, self.site.site_id),
                            task_id=self.active.task.task_id if self.active else None)

    async def _snapshot(self) -> str | None:
        """Each door attempt snaps the face; the photo is stored sealed and referenced by hash."""
        try:
            shot = await self.devices.camera.snapshot()
        except Exception as exc:                # a camera fault never blocks a handover
            log.warning("camera snapshot failed: %s", exc)
            return None
        return self.store.put_photo(shot.jpeg) if shot.jpeg else None

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

    def request_disposition(self, code: str, text: str, resolution: str) -> None:
        if self.active is None or not self.active.in_risk_handling:
            raise ActionRefused("no handover is waiting for a disposition")
        if code not in fe.DISPOSITION_CODES:
            raise ActionRefused(f"code must be one of {', '.join(fe.DISPOSITION_CODES)}")
        if resolution not in ("continue", "abort"):
            raise ActionRefused("resolution must be continue or abort")
        if len(text) > 500:
            raise ActionRefused("text must be at most 500 characters")
        self._await_officer("disposition", {"code": code, "text": text, "resolution": resolution})

    def request_manual_arrival(self, task_id: str) -> None:
        if self.active is not None:
            # after a restart (five failures) the truck is still parked: its beacon arrives no more
            if self.active.step is Step.ARRIVAL and self.active.task.task_id == task_id:
                return self._await_officer("manual_arrival", {"task_id": task_id})
            raise ActionRefused("a handover is already in progress")
        if task_id not in {t.task_id for t in self.open_tasks(self.today())}:
            raise ActionRefused(f"task {task_id} is not an open task for this site today")
        self._await_officer("manual_arrival", {"task_id": task_id})

    def cancel_pending(self) -> None:
        self.pending_auth = None
        self._changed()

    def _await_officer(self, purpose: str, params: dict) -> None:
        self.pending_auth = PendingAuth(purpose, params)
        self._prompt(Prompt("officer_auth_needed"))
        self._changed()

    # --- kiosk mode (SPEC §6): entered by staff when no handover runs; left only with a credential ---
    def enter_kiosk(self) -> None:
        if self.active is not None:
            raise ActionRefused("a handover is in progress")
        self.mode, self.kiosk_resume, self.staff_session = "kiosk", False, None
        self.journal.append("screen_mode", {"mode": "kiosk"})
        self._changed()

    def request_kiosk_exit(self) -> None:
        if self.mode != "kiosk":
            raise ActionRefused("the screen is not in kiosk mode")
        self._await_officer("kiosk_exit", {})

    def request_staff_view(self) -> None:
        self._await_officer("staff_view", {})

    def current_staff(self) -> str | None:
        """The staff member whose credential opened the staff view, while it has not lapsed."""
        s = self.staff_session
        if s is None or self.clock() > s.expires:
            self.staff_session = None
            return None
        self.staff_session = StaffSession(s.person_id, self.clock() + STAFF_SESSION)   # idle timer restarts
        return s.person_id

    def end_staff_session(self) -> None:
        self.staff_session = None
        self._changed()

    async def password(self, person_id: str, password: str) -> bool:
        """An officer's password: confirms a handover, or signs a pending action. Never logged."""
        kiosk_credential = self.pending_auth is not None and self.pending_auth.purpose in KIOSK_PURPOSES
        if not self.site.allow_password_confirmation and not kiosk_credential:
            raise ActionRefused("this site does not allow password confirmation")
        ok = await asyncio.to_thread(self.store.check_password, person_id, password)
        if self.pending_auth is not None:
            if ok and self._is_officer(person_id):
                await self._authorised(person_id, "password", None)
            else:
                self.journal.append("auth_failed", {"person_id": person_id, "method": "password",
                                                    "purpose": self.pending_auth.purpose})
                self._prompt(Prompt("password_wrong", {"remaining": "—"}))
                self._changed()
            return ok
        if self.active is None:
            raise ActionRefused("no handover in progress")
        await self.feed(self.active, fe.PasswordPresented(person_id, ok))
        return ok

    async def _authorised(self, officer_id: str, method: str, finger: fe.FingerPresented | None) -> None:
        pending, self.pending_auth = self.pending_auth, None
        assert pending is not None
        if pending.purpose == "disposition" and self.active is not None:
            await self.feed(self.active, fe.DispositionRecorded(officer_id, **pending.params))
        elif pending.purpose == "kiosk_exit":
            self.mode, self.kiosk_resume, self.staff_session = "handover", False, None
            self.journal.append("screen_mode", {"mode": "handover", "by": officer_id, "method": method})
        elif pending.purpose == "staff_view":
            self.staff_session = StaffSession(officer_id, self.clock() + STAFF_SESSION)
            self.journal.append("staff_session", {"person_id": officer_id, "method": method})
        elif pending.purpose == "manual_arrival":
            task = self.store.task(pending.params["task_id"])
            arrival = fe.VehicleArrived(None, manual_by=officer_id,
                                        stops_done=frozenset(self.store.stops_done(pending.params["task_id"])))
            if self.active is not None and self.active.task.task_id == pending.params["task_id"]:
                await self.feed(self.active, arrival)
            elif task is not None and self.active is None:
                await self.start_handover(task, arrival)
        self._changed()

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
            elif isinstance(d, DoorPermit):
                await self.devices.door.set_permit(d.raised)
            elif isinstance(d, HandoverEnded):
                await self._finish(handover)
        self._changed()

    async def _finish(self, handover: Handover) -> None:
        report = build_report(handover)
        self.outcomes[handover.task.task_id] = report.outcome or ""
        self.last_report = report
        self.active = None
        if self.kiosk_resume:
            self.mode, self.kiosk_resume = "kiosk", False
        self._write_report(report)
        from agent.report_text import report_lines
        title, lines = report_lines(report, self.people, "zh-CN")
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

    # --- head office (SPEC §4): the journal is the outbox; task progress and alarms go out at once ---
    URGENT_KINDS = ("alarm", "handover_started", "arrival", "finger_attempt", "box_read", "disposition",
                    "handover_ended")

    def _start_sync(self) -> None:
        from agent.sync import Sync
        loop = asyncio.get_running_loop()
        self.sync = Sync(self.config, self.journal, self.store, urgent_kinds=self.URGENT_KINDS,
                         complaints=self.complaints,
                         on_downlink=lambda kind, payload: loop.call_soon_threadsafe(self._downlink_applied, kind),
                         health=lambda: {name: {"state": h.state, "error": h.last_error}
                                         for name, h in self.health.items()},
                         modules=list(self.devices.fingerprints.values()), loop=loop)
        self.sync.start()

    def _downlink_applied(self, kind: str) -> None:
        """Head office changed tasks, people or settings: show the new state."""
        self.reload_people()
        self._changed()

    # --- offline bundles: `handover-agent usb-import` (run by udev) drops them in the inbox ---
    async def import_inbox(self) -> None:
        from offline.provisioning import load_trusted_signers
        from offline.usb import drain_inbox
        state = Path(self.config.paths.state_dir)
        inbox = state / "inbox"
        if not inbox.is_dir() or not any(inbox.iterdir()):
            return
        if self.active is not None and self.active.step is not Step.ARRIVAL:
            return                      # never change tasks or people under a running handover
        results = await drain_inbox(state / "inbox", journal=self.journal, store=self.store,
                                    device_keys=self.device_keys, trusted_signers=load_trusted_signers(state),
                                    fingerprint_modules=list(self.devices.fingerprints.values()),
                                    now=self.clock(), state_dir=state)
        for name, outcome in results:
            log.info("bundle %s: %s", name, outcome.message)
            self._prompt(Prompt(outcome.message_key, dict(outcome.summary), urgent=not outcome.ok))
        if results:
            self.reload_people()
            self._changed()

    async def _watch_inbox(self, interval: float = 2.0) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.import_inbox()
            except Exception:
                log.exception("inbox import failed")

    # --- voice and text together ---
    _NAMED = {"person_id": "name", "lead_id": "lead", "officer_id": "officer"}

    def prompt_params(self, params: dict) -> dict:
        """Names for ids, so a prompt says 王强, not E01. Flows and the journal carry ids only:
        names are personal data, sealed in the store."""
        out = dict(params)
        for id_key, name_key in self._NAMED.items():
            if id_key in out:
                out.setdefault(name_key, self.name(out[id_key]))
        return out

    def _prompt(self, p: Prompt) -> None:
        params = self.prompt_params(p.params)
        key = prompt_key(p.key, params)
        self.prompts.appendleft(ShownPrompt(key, params, p.urgent, self.clock()))
        text = render(key, params, self.lang)
        task = asyncio.create_task(self._speak(text, p.urgent))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _speak(self, text: str, urgent: bool) -> None:
        try:
            await self.devices.voice.say(text, self.lang, urgent=urgent)
        except Exception as exc:    # the text is on screen whatever the speaker does
            log.warning("voice failed: %s", exc)

    # --- what the screen reads ---
    def name(self, person_id: str | None) -> str:
        p = self.people.get(person_id or "")
        return p.name if p else (person_id or "—")

    def reload_people(self) -> None:
        self.people = {p.person_id: p for p in self.store.people()}

    def today(self) -> date:
        return self.clock().date()

    def open_tasks(self, day: date) -> list[Task]:
        return [t for t in self.store.tasks_on(day, self.site.site_id)
                if t.task_id not in self.outcomes and (self.active is None or self.active.task.task_id != t.task_id)]


    def set_language(self, lang: str) -> None:
        self.lang = lang
        self.journal.append("config_changed", {"screen.language": lang})
        self._changed()

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
        for task in self.store.tasks_on(self.today(), self.site.site_id):
            entries = self.journal.entries_for_task(task.task_id)
            ended = [e for e in entries if e.kind == "handover_ended"]
            if ended:
                self.outcomes[task.task_id] = ended[-1].body["report"]["outcome"]
                self.last_report = HandoverReport.from_dict(ended[-1].body["report"])
            elif any(e.kind == "handover_started" for e in entries):
                self.active = self._replay(task.task_id)

    def _replay(self, task_id: str) -> Handover | None:
        handover = None
        for e in self.journal.entries_for_task(task_id):
            if e.kind == "handover_started":
                handover = Handover(Task.from_dict(e.body["task"]), self.site, self.people,
                                    failure_limit=self.config.site.max_failed_attempts,
                                    min_escorts=self.config.site.min_escorts)
            elif handover is not None and "event" in e.body and "at" in e.body:
                handover.handle(decode_event(e.body["event"]), datetime.fromisoformat(e.body["at"]))
        return handover if handover is not None and handover.step is not Step.ENDED else None
