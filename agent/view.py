"""What the screen shows, as one JSON document rebuilt on every change (the page only renders it).

A silent alarm (duress) never appears here: the screen must look normal to whoever is watching it.
"""
from __future__ import annotations

from agent.config import settings_view
from agent.i18n import render
from agent.sample import DEMO_SITE_NAME, STRANGER_BEACON
from agent.terminal import prompt_key
from flows.decisions import Step
from flows.events import DISPOSITION_CODES
from flows.handover import Handover
from flows.staff import ENROL_FINGERS


def build_view(t, lang: str) -> dict:
    today = t.today()
    tasks = []
    for task in t.store.tasks_on(today, t.site.site_id):
        status = ("in_progress" if t.active and t.active.task.task_id == task.task_id
                  else t.outcomes.get(task.task_id, "planned"))
        tasks.append({
            "task_id": task.task_id, "kind": task.kind.value, "status": status,
            "window_start": task.window_start.strftime("%H:%M"), "window_end": task.window_end.strftime("%H:%M"),
            "plate": task.vehicle.plate, "escorts": [t.name(e) for e in task.escorts],
            "boxes": len(task.boxes_for(t.site.site_id, t.site.site_type)),
            "window_start_iso": task.window_start.isoformat()})
    return {
        "version": t.version, "lang": lang, "now": t.clock().isoformat(timespec="seconds"),
        "site": {"id": t.site.site_id, "type": t.site.site_type.value, "name": t.config.site.name or (DEMO_SITE_NAME if t.config.simulate else t.site.site_id)},
        "simulate": t.config.simulate, "tasks": tasks, "mode": t.mode,
        "staff": t.name(t.staff_session.person_id) if t.staff_session else None,
        "handover": _handover(t, t.active, lang) if t.active else None,
        "report": _report(t, lang) if t.last_report and not t.active else None,
        "prompts": [{"key": p.key, "text": render(p.key, p.params, lang), "urgent": p.urgent,
                     "at": p.at.strftime("%H:%M:%S")} for p in t.prompts],
        "site_alarms": [{"kind": a.kind.value, "at": at.strftime("%H:%M:%S"),
                         "text": render(f"alarm_{a.kind.value}", t.prompt_params(a.detail), lang)}
                        for a, at in t.site_alarms],
        "door": t.devices.door.raised,
        "pending_auth": {"purpose": t.pending_auth.purpose, **t.pending_auth.params} if t.pending_auth else None,
        "password_allowed": t.site.allow_password_confirmation,
        "officers": [{"person_id": p.person_id, "name": p.name} for p in t.people.values()
                     if p.role.value in ("officer", "manager")],
        "disposition_codes": list(DISPOSITION_CODES),
        "enrolment": _enrolment(t),
        "health": [{"device": h.device, "state": h.state, "error": h.last_error,
                    "text": render("storage_low", {}, lang) if h.device == "storage" and h.state != "connected"
                    else None} for h in t.health.values()],
        "settings": settings_view(t.config),     # what head office may change, as now in effect
        "sim": _sim(t) if t.config.simulate else None,
    }


def _enrolment(t) -> dict:
    """The branch enrolment screen: whom it may enrol, which fingers, and the running capture's stage."""
    status = t.enrolment.status
    return {"people": [{"person_id": p.person_id, "name": p.name, "role": p.role.value}
                       for p in sorted(t.people.values(), key=lambda p: p.person_id)],
            "fingers": list(ENROL_FINGERS), "station": t.enrolment.station,
            "current": {"person_id": status.person_id, "name": t.name(status.person_id), "finger": status.finger,
                        "slot": status.slot, "stage": status.stage, "running": status.running}
            if status else None}


def _person(t, pid: str, **extra) -> dict:
    p = t.people.get(pid)
    return {"person_id": pid, "name": t.name(pid), "company": p.company if p else "",
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
                                                              t.prompt_params(a.detail), lang)}
                        for a in h.open_alarms],
        "failures": dict(h.failures), "door": h.door_raised,
        "route_unverified": list(h.route_unverified),     # earlier stops nobody has reported (offline)
    }


def _report(t, lang: str) -> dict:
    from agent.report_text import report_lines
    title, lines = report_lines(t.last_report, t.people, lang)
    return {"title": title, "lines": lines, "outcome": t.last_report.outcome, "task_id": t.last_report.task_id,
            "printed": t.last_report_printed}


def _sim(t) -> dict:
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
    trucks, tags = {}, {}
    for task in t.store.tasks_on(t.today(), t.site.site_id):   # the trucks due here, and what they carry
        trucks[task.vehicle.beacon] = task.vehicle.plate
        for b in task.boxes:
            tags[b.tag] = {"box_id": b.box_id, "tag": b.tag, "destination": b.destination}
    return {"trucks": [{"beacon": k, "plate": v} for k, v in trucks.items()],
            "stranger_beacon": STRANGER_BEACON, "people": people,
            "tags": sorted(tags.values(), key=lambda x: x["box_id"]), "unknown_tag": "04DEADBEEF0001"}


