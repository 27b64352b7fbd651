"""What the screen shows, as one JSON document rebuilt on every change (the page only renders it).

Its size follows what is on screen, not the day: a vault sees thousands of tasks, so the staff face
lists a bounded window of them with a summary, and the simulator panel (every truck, finger and tag of
the day) is a document of its own (SimPanel), sent on its own stream only when it changes.

A silent alarm (duress) never appears here: the screen must look normal to whoever is watching it.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from agent.config import settings_view
from agent.enrolment import STAGE_PROMPTS
from agent.i18n import render
from agent.sample import STRANGER_BEACON
from agent.terminal import prompt_key
from flows.decisions import Step
from flows.dispositions import fitting
from flows.events import DISPOSITION_CODES
from flows.handover import Handover
from flows.staff import ENROL_FINGERS, PURPOSES


# How long the last handover's report stays on the idle screen without a staff credential.
REPORT_SHOWN = timedelta(minutes=3)
# Staff actions a password may sign even where handovers must be confirmed by finger.
PASSWORD_ALWAYS = tuple(p.value for p, rule in PURPOSES.items() if rule.password_anywhere)
# The staff face's window of today's tasks: the next due, earliest window end first (a truck less than
# LATE_SHOWN late keeps its row and its manual-arrival button), and the last finished (what just
# happened); the rest are counted in the summary. At 800x480 five rows are in sight, a sixth a short scroll.
DUE_SHOWN = 5
FINISHED_SHOWN = 1
LATE_SHOWN = timedelta(hours=1)
# How long the idle screen says "schedule updated HH:MM" after head office sent a new version.
NOTICE_SHOWN = timedelta(hours=2)


def staff_active(t) -> bool:
    """A staff credential opened the staff view and it has not lapsed (read without renewing it)."""
    s = t.staff_session
    return s is not None and t.clock() <= s.expires


def build_view(t, lang: str) -> dict:
    staff = staff_active(t)
    report = t.last_report is not None and not t.active and (staff or _recent(t))
    # the idle screen faces the public: no names or plates in what was said, and alarms by kind only
    public = not (t.active or staff or report or t.pending_auth or t.enrolment.status)   # enrolment: staff are there
    # the day's cash-in-transit schedule is for staff: the idle screen faces the public
    tasks, summary = _tasks(t) if staff and not t.active else ([], None)
    return {
        "version": t.version, "lang": lang, "now": t.clock().isoformat(timespec="seconds"),
        "site": {"id": t.site.site_id, "type": t.site.site_type.value, "name": t.site_name()},
        "simulate": t.config.simulate, "tasks": tasks, "task_summary": summary, "mode": t.mode,
        "staff": t.name(t.staff_session.person_id) if staff else None,
        "staff_until": t.staff_session.expires.isoformat(timespec="seconds") if staff else None,
        "from_kiosk": bool(t.active and t.staff.kiosk_resume),
        "handover": _handover(t, t.active, lang) if t.active else None,
        "report": _report(t, lang) if report else None,
        "instruction": _instruction(t, lang),
        "prompts": [{"key": p.key, "text": render(p.key, p.params, lang), "urgent": p.urgent,
                     "at": p.at.strftime("%H:%M:%S"), "latest": p.version == t.prompts[0].version}
                    for p in t.prompts if not public or not p.params],
        "site_alarms": [{"kind": a.kind.value, "at": at.strftime("%H:%M:%S"),
                         "text": None if public else render(f"alarm_{a.kind.value}", t.prompt_params(a.detail), lang),
                         "hq_seen": None if public else _hq_seen(t, a, lang)}
                        for a, at in t.site_alarms],
        "door": t.devices.door.raised,
        "pending_auth": _pending(t, lang),
        "password_allowed": t.site.allow_password_confirmation,
        "password_for_pending": bool(t.pending_auth) and (t.site.allow_password_confirmation
                                                          or t.pending_auth.purpose in PASSWORD_ALWAYS),
        "officers": [{"person_id": p.person_id, "name": p.name} for p in t.people.values()
                     if p.role.value in ("officer", "manager")],
        "disposition_codes": list(fitting(a.kind for a in t.active.open_alarms)) if t.active
                             else list(DISPOSITION_CODES),
        "enrolment": _enrolment(t, staff),
        "health": [{"device": h.device, "state": h.state, "error": h.last_error,
                    "text": render("storage_low", {}, lang) if h.device == "storage" and h.state != "connected"
                    else None} for h in t.health.values()],
        "settings": settings_view(t.config),     # what head office may change, as now in effect
        "complaints_due": _complaints_due(t) if staff else None,    # the staff indicator: never the public's
        # that the schedule changed, and when: no task, plate or name, so the public face may show it too
        "schedule_notice": render("schedule_updated", {"time": t.schedule_updated_at.strftime("%H:%M")}, lang)
                           if t.schedule_updated_at and t.clock() - t.schedule_updated_at <= NOTICE_SHOWN else None,
    }


def _tasks(t) -> tuple[list[dict], dict]:
    """The staff face's window of today's tasks (DUE_SHOWN, FINISHED_SHOWN) and the day's counts.
    Costs the tasks shown and the day's finished ones, never a walk over the whole day."""
    now, cache = t.clock(), t.tasks_today
    day = cache.on(now.date(), t.site.site_id)
    running = t.active.task.task_id if t.active else None
    finished = [x for x in map(cache.get, t.outcomes) if x is not None]     # in the order they ended
    shown = {x.task_id: x for x in finished[-FINISHED_SHOWN:]}
    shown.update((x.task_id, x) for x in cache.due(now - LATE_SHOWN, DUE_SHOWN,
                                                    lambda x: x.task_id not in t.outcomes and x.task_id != running))
    rows = []
    for task in sorted(shown.values(), key=lambda x: (x.window_start, x.task_id)):
        status = "in_progress" if task.task_id == running else t.outcomes.get(task.task_id, "planned")
        rows.append({
            "task_id": task.task_id, "kind": task.kind.value, "status": status,
            "window_start": task.window_start.strftime("%H:%M"), "window_end": task.window_end.strftime("%H:%M"),
            "plate": task.vehicle.plate, "escorts": [t.name(e) for e in task.escorts],
            "boxes": len(task.boxes_for(t.site.site_id, t.site.site_type)),
            "late": task.window_end < now, "window_start_iso": task.window_start.isoformat()})
    current = cache.get(running) if running else None
    not_open = finished + ([current] if current else [])
    return rows, {"total": len(day), "finished": len(finished), "open": len(day) - len(not_open),
                  "overdue": cache.ended_before(now) - sum(x.window_end < now for x in not_open),   # open, window over
                  "shown": len(rows)}


def _complaints_due(t) -> dict:
    """How many complaints have a limit near-due or overdue (the background check's last finding)."""
    states: dict[str, str] = {}
    for d in t.complaints.due_now:
        states[d.ref] = "overdue" if d.state == "overdue" or states.get(d.ref) == "overdue" else "near"
    return {"near": sum(s == "near" for s in states.values()), "overdue": sum(s == "overdue" for s in states.values())}


def _enrolment(t, staff: bool) -> dict:
    """The branch enrolment screen: whom it may enrol, which fingers, and the running capture's stage."""
    status = t.enrolment.status
    # names are for staff: the idle screen faces the public
    enrolling = status is not None or (t.pending_auth is not None and t.pending_auth.purpose.value == "enrolment")
    return {"people": [{"person_id": p.person_id, "name": p.name, "role": p.role.value}
                       for p in sorted(t.people.values(), key=lambda p: p.person_id)] if staff or enrolling else [],
            "fingers": list(ENROL_FINGERS), "station": t.enrolment.station,
            "current": {"person_id": status.person_id, "name": t.name(status.person_id), "finger": status.finger,
                        "slot": status.slot, "stage": status.stage, "running": status.running}
            if status else None}


def _recent(t) -> bool:
    ended = t.last_report.ended_at
    try:
        return ended is not None and t.clock() - datetime.fromisoformat(ended) <= REPORT_SHOWN
    except (TypeError, ValueError):      # a report journaled without a time zone or time
        return False


def _pending(t, lang: str) -> dict | None:
    """The staff action waiting for a signature, with what the officer signs spelled out."""
    p = t.pending_auth
    if p is None:
        return None
    out = {"purpose": str(p.purpose), **p.params}
    if p.purpose == "manual_arrival":
        task = t.store.task(p.params.get("task_id", ""))
        out["plate"] = task.vehicle.plate if task else None
    elif p.purpose == "enrolment":
        out["name"] = t.name(p.params.get("person_id"))
    return out


def _instruction(t, lang: str) -> dict:
    """What to do now, from the state itself (not from the last prompt, which may be stale)."""
    def say(key: str, tone: str = "normal", **params) -> dict:
        return {"key": key, "tone": tone, "text": render(key, params, lang)}
    pw = t.site.allow_password_confirmation
    p = t.pending_auth
    if p is not None:
        if p.purpose == "disposition":
            return say("now_sign_disposition_pw" if pw else "now_sign_disposition", "risk")
        password = pw or p.purpose in PASSWORD_ALWAYS
        return say("now_officer_credential_pw" if password else "now_officer_credential", "wait")
    h = t.active
    e = t.enrolment.status
    if h is None and e is not None:         # the enrolment's own step is what to do now
        return say(STAGE_PROMPTS[e.stage], "risk" if e.stage in ("duplicate", "failed") else "normal",
                   name=t.name(e.person_id))
    if h is None:
        if t.site_alarms:
            return say("now_site_alarm", "risk")
        return say("now_idle", "idle")
    if h.in_risk_handling:
        return say("now_risk", "risk")
    if h.step is Step.ARRIVAL:
        return say("now_arrival_again" if h.restarts else "now_arrival", "normal")
    if h.step is Step.ESCORT_VERIFICATION:
        waiting = [t.name(e) for e in h.task.escorts if e not in h.verified]
        return say("now_escorts", names="、".join(waiting), count=len(waiting))
    if h.step is Step.BOX_HANDOVER:
        return say("now_boxes", counted=len(h.boxes_read), planned=len(h.expected))
    if h.step is Step.OFFICER_CONFIRMATION:
        return say("now_officer_confirm_pw" if pw else "now_officer_confirm")
    if h.step is Step.SIGN_OFF:
        officer = h.officer.person_id if h.officer else None
        waiting = [t.name(x) for x in (h.lead, officer) if x and x not in h.marks]
        return say("now_sign_off", names="、".join(waiting))
    return say("now_idle", "idle")


# an enrolment this close to its end is shown on the person's card, so staff can have it renewed
VALIDITY_SHOWN_DAYS = 30


def _person(t, pid: str, **extra) -> dict:
    p = t.people.get(pid)
    left = p.validity_ends_within(t.today(), VALIDITY_SHOWN_DAYS) if p else None
    return {"person_id": pid, "name": t.name(pid), "company": p.company if p else "",
            "employee_no": pid,         # the escort company's id is the 工号 the printed report carries
            "valid_until": p.valid_until.isoformat() if left is not None else None, "days_left": left,
            "role": p.role.value if p else None, "photo": f"/photos/{p.photo}" if p and p.photo else None, **extra}


def _handover(t, h: Handover, lang: str) -> dict:
    escorts = []
    for pid in h.task.escorts:
        v = h.verified.get(pid)
        escorts.append(_person(t, pid, lead=pid == h.lead, verified=v is not None,
                               verified_at=v.at.strftime("%H:%M:%S") if v else None,
                               snapshot=f"/photos/{v.snapshot}" if v and v.snapshot else None))
    officer = None
    if h.officer:
        officer = _person(t, h.officer.person_id, verified_at=h.officer.at.strftime("%H:%M:%S"),
                          method=h.officer_method)
    return {
        "task_id": h.task.task_id, "kind": h.task.kind.value, "step": h.step.value,
        "steps": [s.value for s in Step if s is not Step.ENDED],
        "plate": h.task.vehicle.plate, "arrived_at": h.arrived_at.strftime("%H:%M:%S") if h.arrived_at else None,
        "manual": h.arrival_manual_by is not None, "escorts": escorts,
        "boxes": [{"box_id": b.box_id, "tag": tag, "read": tag in h.boxes_read}
                  for tag, b in sorted(h.expected.items(), key=lambda kv: kv[1].box_id)],
        "counted": len(h.boxes_read), "planned": len(h.expected), "officer": officer,
        "marks": [t.name(pid) for pid in h.marks],
        "risk": h.in_risk_handling,
        "open_alarms": [{"kind": a.kind.value, "text": render(prompt_key(f"alarm_{a.kind.value}", a.detail),
                                                              t.prompt_params(a.detail), lang),
                         "hq_seen": _hq_seen(t, a, lang)}
                        for a in h.open_alarms],
        "failures": dict(h.failures), "door": h.door_raised, "restarts": h.restarts,
        "route_unverified": list(h.route_unverified),     # earlier stops nobody has reported (offline)
    }


def _hq_seen(t, alarm, lang: str) -> str | None:
    """"总部已确认：<note>" once a monitor at head office acknowledged this alarm (the `alarm_seen` downlink)."""
    note = t.hq_seen_note(alarm)
    return None if note is None else render("alarm_hq_seen", {"note": note}, lang)


def _report(t, lang: str) -> dict:
    from agent.report_text import report_lines
    title, lines = report_lines(t.last_report, t.people, lang, t.site_name())
    return {"title": title, "lines": lines, "outcome": t.last_report.outcome, "task_id": t.last_report.task_id,
            "printed": t.last_report_printed}


class SimPanel:
    """The simulator panel's document, rebuilt only when what it lists changed: today's tasks (their
    trucks, tags and outcomes) or the people and their enrolled fingers. `version` counts the rebuilds."""

    def __init__(self):
        self.version = 0
        self._doc: dict | None = None
        self._inputs: tuple = ()

    def get(self, t) -> dict:
        tasks = t.tasks_today.on(t.today(), t.site.site_id)
        # the same lists (a reload makes new ones) and the same counts: nothing it shows changed
        inputs = (tasks, t.people, t.store.people_version, len(t.outcomes))
        if self._doc is None or not (inputs[0] is self._inputs[0] and inputs[1] is self._inputs[1]
                                     and inputs[2:] == self._inputs[2:]):
            self.version += 1
            self._doc, self._inputs = {"version": self.version, **_sim(t, tasks)}, inputs
        return self._doc


def _sim(t, tasks) -> dict:
    """What the simulator panel offers: trucks, fingers (slot numbers) and tags of today's tasks."""
    slots: dict[str, dict] = {}
    for slot, owner in t.store.slots():
        entry = slots.setdefault(owner.person_id, {})
        if owner.duress:
            entry["duress_slot"] = slot
        else:                           # the first finger is the panel's; enrolled ones come after
            entry.setdefault("slot", slot)
            entry.setdefault("fingers", {})[owner.finger] = slot
    people = [{"person_id": pid, "name": t.name(pid), "role": t.people[pid].role.value if pid in t.people else None,
               **s} for pid, s in sorted(slots.items())]
    trucks, tags, windows = {}, {}, []
    for task in tasks:                  # the trucks due here, and what they carry
        trucks[task.vehicle.beacon] = task.vehicle.plate
        windows.append({"task_id": task.task_id, "kind": task.kind.value, "plate": task.vehicle.plate,
                        "status": t.outcomes.get(task.task_id, "planned"),
                        "window_start": task.window_start.strftime("%H:%M"),
                        "window_start_iso": task.window_start.isoformat(),
                        "window_end_iso": task.window_end.isoformat()})
        for b in task.boxes:
            tags[b.tag] = {"box_id": b.box_id, "tag": b.tag, "destination": b.destination}
    return {"trucks": [{"beacon": k, "plate": v} for k, v in trucks.items()], "tasks": windows,
            "stranger_beacon": STRANGER_BEACON, "people": people,
            "tags": sorted(tags.values(), key=lambda x: x["box_id"]), "unknown_tag": "04DEADBEEF0001"}


