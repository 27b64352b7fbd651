"""The staff-only records view's routes (issue 17 item 1): find a past handover, see its report and
timeline, reprint it as a copy. Every route answers 403 without a staff credential (an officer's finger
or password opened a session); nothing here is reachable from the public faces.
"""
from __future__ import annotations

import json
from datetime import date, datetime

from aiohttp import web

from agent.i18n import catalog, label
from agent.journal import Entry
from agent.records import Record, Records, RecordsError
from agent.report_text import report_lines
from agent.screen.web import TERMINAL, BadRequest, _lang
from agent.terminal import Terminal

_dumps = lambda o: json.dumps(o, ensure_ascii=False)       # noqa: E731
RECORDS = web.AppKey("records", Records)


def _staff(request: web.Request) -> str:
    staff = request.app[TERMINAL].current_staff()
    if staff is None:
        raise web.HTTPForbidden(text=_dumps({"error": "a staff credential is needed"}), content_type="application/json")
    return staff


def _ui(lang: str, key: str, **params) -> str:
    return catalog(lang)["ui"].get(key, key).format(**params)


def _hms(iso: str | None) -> str:
    return (iso or "")[11:19] or "—"


def _row(t: Terminal, r: Record, lang: str) -> dict:
    rep = r.report
    return {"task_id": rep.task_id, "kind": rep.kind, "plate": rep.plate, "outcome": rep.outcome,
            "day": (rep.arrived_at or rep.ended_at or "")[:10], "arrived": _hms(rep.arrived_at)[:5],
            "ended": _hms(rep.ended_at)[:5], "boxes": len(rep.boxes_counted), "planned": len(rep.boxes_planned),
            "alarms": [label("alarm." + x["kind"], lang) for x in rep.exceptions],
            "dispositions": [label("disposition." + d["code"], lang) for d in rep.dispositions],
            "reprints": r.reprints}


def _event_text(t: Terminal, e: Entry, lang: str) -> str | None:
    """One timeline line; None for what the screen must not show (a silent alarm: duress looks normal)."""
    b, ev = e.body, e.body.get("event") or {}
    if e.kind == "alarm":
        return None if b.get("silent") else _ui(lang, "records.ev.alarm", what=label("alarm." + b.get("alarm", ""), lang))
    if e.kind == "finger_attempt":
        return _ui(lang, "records.ev.finger", station=label("records.station." + str(ev.get("station")), lang),
                   name=t.name(ev.get("person_id")) if ev.get("person_id") else "—",
                   outcome=label("records.outcome." + str(ev.get("outcome")), lang))
    if e.kind == "password_attempt":
        return _ui(lang, "records.ev.password", name=t.name(ev.get("person_id")),
                   outcome=label("records.outcome." + ("match" if ev.get("ok") else "no_match"), lang))
    if e.kind == "box_read":
        box = ev.get("box") or {}
        return _ui(lang, "records.ev.box", box=box.get("box_id") or ev.get("tag", ""))
    if e.kind == "arrival":
        return _ui(lang, "records.ev.arrival_manual" if ev.get("manual_by") else "records.ev.arrival",
                   name=t.name(ev.get("manual_by")))
    if e.kind == "disposition":
        return _ui(lang, "records.ev.disposition", name=t.name(ev.get("officer_id")),
                   code=label("disposition." + str(ev.get("code")), lang),
                   resolution=label("disposition." + str(ev.get("resolution")), lang))
    if e.kind == "handover_ended":
        return _ui(lang, "records.ev.ended", outcome=label("status." + str(b["report"].get("outcome")), lang))
    if e.kind == "report_reprinted":
        return _ui(lang, "records.ev.reprinted", copy=b.get("copy"), name=t.name(b.get("by")))
    key = "records.ev." + e.kind
    return _ui(lang, key) if key in catalog(lang)["ui"] else _ui(lang, "records.ev.other", kind=e.kind)


def _when(t: Terminal, e: Entry) -> str:
    """The event's local time: its own `at` where it has one, else when it was journaled (UTC, converted)."""
    at = e.body.get("at")
    if isinstance(at, str):
        return _hms(at)
    try:
        return datetime.fromisoformat(e.ts).astimezone(t.tz).strftime("%H:%M:%S")
    except ValueError:
        return "—"


async def search(request: web.Request) -> web.Response:
    _staff(request)
    t, lang, q = request.app[TERMINAL], _lang(request), request.query
    try:
        day = date.fromisoformat(q["date"]) if q.get("date") else None
    except ValueError:
        raise BadRequest("date must be YYYY-MM-DD") from None
    plate, box = q.get("plate", ""), q.get("box", "")
    if len(plate) > 20 or len(box) > 40:
        raise BadRequest("plate at most 20 and box at most 40 characters")
    rows = request.app[RECORDS].search(day, plate, box)
    return web.json_response({"today": t.today().isoformat(), "records": [_row(t, r, lang) for r in rows]},
                             dumps=_dumps)


def _record(request: web.Request) -> Record:
    try:
        return request.app[RECORDS].get(request.match_info["task_id"])
    except RecordsError as e:
        raise web.HTTPNotFound(text=_dumps({"error": str(e)}), content_type="application/json") from None


async def detail(request: web.Request) -> web.Response:
    _staff(request)
    t, lang = request.app[TERMINAL], _lang(request)
    r = _record(request)
    title, lines = report_lines(r.report, t.people, lang, t.site_name())
    timeline = [{"at": _when(t, e), "kind": e.kind, "text": text}
                for e in request.app[RECORDS].timeline(r.report.task_id)
                if (text := _event_text(t, e, lang)) is not None]
    return web.json_response({**_row(t, r, lang), "title": title, "lines": lines, "timeline": timeline},
                             dumps=_dumps)


def copy_lines(t: Terminal, r: Record, copy: int, by: str, at: datetime, lang: str) -> tuple[str, list[str]]:
    """The report as first printed, marked as a copy on its title and first line."""
    title, lines = report_lines(r.report, t.people, lang, t.site_name())
    mark = catalog(lang)["prompts"]["report_copy_mark"].format(copy=copy, at=at.strftime("%Y-%m-%d %H:%M"),
                                                               name=t.name(by))
    return catalog(lang)["prompts"]["report_copy_title"].format(title=title), [mark, *lines]


async def reprint(request: web.Request) -> web.Response:
    staff, t = _staff(request), request.app[TERMINAL]
    r = _record(request)
    now = t.clock()
    copy = request.app[RECORDS].record_reprint(r.report.task_id, staff, now)      # journaled first
    title, lines = copy_lines(t, request.app[RECORDS].get(r.report.task_id), copy, staff, now, "zh-CN")
    printed = True
    try:
        await t.devices.printer.print_lines(title, lines)
        health = t.devices.printer.health()
        printed = health.state == "connected"
    except Exception as exc:       # journaled as asked for; the failure is journaled too
        printed = False
        t.journal.append("print_failed", {"task_id": r.report.task_id, "error": str(exc)}, task_id=r.report.task_id)
    return web.json_response({"ok": True, "copy": copy, "printed": printed}, dumps=_dumps)


async def sim_printed(request: web.Request) -> web.Response:
    """Simulation only: what the simulated printer has printed, newest last (a demo's paper roll)."""
    printed = getattr(request.app[TERMINAL].devices.printer, "printed", [])
    return web.json_response({"printed": [{"title": title, "lines": lines} for title, lines in printed[-20:]]},
                             dumps=_dumps)


def add_records_routes(app: web.Application) -> None:
    t = app[TERMINAL]
    app[RECORDS] = Records(t.journal)
    app.router.add_get("/api/staff/records", search)
    app.router.add_get("/api/staff/records/{task_id}", detail)
    app.router.add_post("/api/staff/records/{task_id}/reprint", reprint)
    if t.config.simulate:
        app.router.add_get("/api/sim/printed", sim_printed)
