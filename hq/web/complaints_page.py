"""The complaint officers' pages (issue 16, SPEC §6): the list with overdue flags and working-day
deadlines, one complaint opened (its details decrypted with head office's complaint key, and its
timeline), officers' steps through the lifecycle (hq.complaints.ComplaintDesk.act, sent to the terminal
that holds the complaint as the `complaint` downlink), and the half-year report. Role complaint_officer
only: the details are personal data, so monitors, vault managers and admins get 403 (and an audit row).
Opening a complaint and every step are audited (the reference and the action, never the content).

Routes: GET /complaints (page), GET /api/complaints/me, GET /api/complaints, GET /api/complaints/report
?year=&half=1|2[&download=1], GET /api/complaints/{ref}, POST /api/complaints/{ref}/act (JSON {"action",
"params": {...}} or the params beside "action").
"""
from __future__ import annotations

import json
from datetime import date, datetime
from zoneinfo import ZoneInfo

from aiohttp import web

from hq.complaints import ComplaintDesk, ComplaintDeskError, half_year
from hq.web import i18n
from hq.web.auth import AUTH, SESSION, Session, in_db, require_role
from hq.web.page import DB, SETTINGS, lang, page
from protocol import safejson
from protocol.complaint import ACTIONS

OFFICER = "complaint_officer"
TZ = ZoneInfo("Asia/Shanghai")      # the bank's working days are judged on its local date
MAX_BODY = 64 * 1024


def add_routes(app: web.Application) -> None:
    app.router.add_get("/complaints", complaints_page)
    app.router.add_get("/api/complaints/me", me)
    app.router.add_get("/api/complaints", listing)
    app.router.add_get("/api/complaints/report", report)
    app.router.add_get("/api/complaints/{ref}", one)
    app.router.add_post("/api/complaints/{ref}/act", act)


def _today() -> date:
    return datetime.now(TZ).date()


def _desk(app: web.Application) -> ComplaintDesk:
    return ComplaintDesk(app[DB], app[SETTINGS].complaint_key)


def _refused(exc: ComplaintDeskError) -> web.HTTPException:
    text = str(exc)
    return (web.HTTPNotFound if text.startswith("no complaint") else web.HTTPBadRequest)(text=text)


@require_role(OFFICER)
async def complaints_page(request: web.Request) -> web.Response:
    return page("complaints.html", lang(request))


@require_role(OFFICER)
async def me(request: web.Request) -> web.Response:
    """The officer's name, CSRF token and catalog (the board's /api/me is for the board's roles)."""
    s: Session = request[SESSION]
    language = lang(request)
    return web.json_response({"name": s.name, "role": s.role, "csrf": s.csrf, "lang": language,
                              "role_text": i18n.render(f"role_{s.role}", lang=language),
                              "text": i18n.catalog(language), "actions": list(ACTIONS),
                              "today": _today().isoformat(), "sites": request.app[SETTINGS].sites,
                              "key": request.app[SETTINGS].complaint_key is not None})


@require_role(OFFICER, renew=False)      # polled by the page
async def listing(request: web.Request) -> web.Response:
    rows = await in_db(request.app, lambda: [s.to_dict() for s in _desk(request.app).list(_today())])
    return web.json_response(rows)


def _local(found: dict) -> dict:
    """Times at the complaint's site: terminals stamp steps in UTC, its receipt carries the site's offset."""
    site = datetime.fromisoformat(found["received_at"]).tzinfo
    for item in (found, *found["steps"], *found["sent"]):
        for key in ("at", "updated"):
            if item.get(key):
                item[key] = datetime.fromisoformat(item[key]).astimezone(site).isoformat()
    return found


def _open(app: web.Application, ref: str, who: str) -> dict:
    desk = _desk(app)
    found = _local(desk.open(ref, _today()))
    # what the terminal answered to each step sent from here (a refusal says why)
    for sent in found["sent"]:
        row = app[DB].run(lambda cur: cur.one("SELECT payload FROM replies WHERE msg_id = ?", (sent["msg_id"],)))
        reply = json.loads(row[0]) if row else None
        sent["answer"] = None if reply is None else ("ok" if reply.get("ok") else str(reply.get("error", "")))
    app[AUTH].audit(who, "complaint_opened", {"ref": ref})
    return found


def _progress(app: web.Application, ref: str) -> dict:
    """Where a complaint stands, without a word of its details (what the page polls for after a step)."""
    found = _desk(app).list(_today())
    mine = [s for s in found if s.ref == ref]
    if not mine:
        raise ComplaintDeskError(f"no complaint {ref!s:.64} at head office")
    device = mine[0].device
    steps, sent = app[DB].run(lambda cur: (
        cur.one("SELECT count(*) FROM hq_complaint_steps WHERE device = ? AND ref = ?", (device, ref))[0],
        cur.all("SELECT s.msg_id, r.payload FROM hq_complaint_sent s LEFT JOIN replies r ON r.msg_id = s.msg_id "
                "WHERE s.ref = ? ORDER BY s.at", (ref,))))
    answers = {}
    for msg_id, payload in sent:
        reply = json.loads(payload) if payload else None
        answers[msg_id] = None if reply is None else ("ok" if reply.get("ok") else str(reply.get("error", "")))
    return {"ref": ref, "status": mine[0].status, "steps": steps, "answers": answers}


@require_role(OFFICER)
async def one(request: web.Request) -> web.Response:
    """One complaint opened (audited), or with ?progress=1 only its status, step count and the terminal's
    answers to what was sent (nothing personal: polled by the page, not audited)."""
    ref = request.match_info["ref"][:64]
    try:
        if request.query.get("progress"):
            return web.json_response(await in_db(request.app, _progress, request.app, ref),
                                     headers={"Cache-Control": "no-store"})
        found = await in_db(request.app, _open, request.app, ref, request[SESSION].name)
    except ComplaintDeskError as exc:
        raise _refused(exc)
    return web.json_response(found, headers={"Cache-Control": "no-store"})


def _params(body) -> tuple[str, dict]:
    if not isinstance(body, dict) or not isinstance(body.get("action"), str):
        raise ComplaintDeskError("give the step as JSON {\"action\": ..., \"params\": {...}}")
    params = body["params"] if "params" in body else {k: v for k, v in body.items() if k != "action"}
    if not isinstance(params, dict):
        raise ComplaintDeskError("params must be a JSON object")
    return body["action"], params


def _act(app: web.Application, ref: str, action: str, params: dict, who: str) -> tuple[str, dict]:
    device, payload = _desk(app).act(ref, action, params, who)
    # recorded before it is sent: the MQTT session (persistent, QoS 1) carries it across an outage
    app[AUTH].audit(who, "complaint_act", {"ref": ref, "action": action, "msg_id": payload["msg_id"]})
    return device, payload


@require_role(OFFICER)
async def act(request: web.Request) -> web.Response:
    app, who = request.app, request[SESSION].name
    ref = request.match_info["ref"][:64]
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY, actual_size=len(raw),
                                            text=f"a step is at most {MAX_BODY} bytes")
    try:
        action, params = _params(safejson.loads(raw, max_depth=8, max_bytes=MAX_BODY))
    except ComplaintDeskError as exc:
        raise _refused(exc)
    except safejson.JsonRefused as exc:
        raise web.HTTPBadRequest(text=f"the body is not usable JSON: {exc}")
    if app[SETTINGS].send_downlink is None:
        raise web.HTTPServiceUnavailable(text="head office is not connected to the broker: no step can be sent")
    try:
        device, payload = await in_db(app, _act, app, ref, action, params, who)
    except ComplaintDeskError as exc:
        raise _refused(exc)
    app[SETTINGS].send_downlink(device, "complaint", payload)
    return web.json_response({"ok": True, "sent": True, "device": device, "msg_id": payload["msg_id"],
                              "action": action})


@require_role(OFFICER)
async def report(request: web.Request) -> web.Response:
    try:
        year, half = int(request.query.get("year", "")), int(request.query.get("half", ""))
        if half not in (1, 2) or not 2000 <= year <= 2999:
            raise ValueError
    except ValueError:
        raise web.HTTPBadRequest(text="give year=YYYY and half=1 (due 15 June) or 2 (due 15 December)")
    due = date(year, 6, 15) if half == 1 else date(year, 12, 15)
    start, end = half_year(due)

    def work() -> dict:
        found = _desk(request.app).report(start, end, _today())
        request.app[AUTH].audit(request[SESSION].name, "complaints_report", {"due": due.isoformat()})
        return found
    try:
        found = await in_db(request.app, work)
    except ComplaintDeskError as exc:
        raise _refused(exc)
    found["due"] = due.isoformat()
    headers = {"Cache-Control": "no-store"}
    if request.query.get("download"):
        headers["Content-Disposition"] = f'attachment; filename="complaints-report-{due.isoformat()}.json"'
    return web.Response(text=json.dumps(found, ensure_ascii=False, indent=2), content_type="application/json",
                        headers=headers)
