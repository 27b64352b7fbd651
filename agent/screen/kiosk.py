"""The complaint kiosk's routes (SPEC §6): the customer-facing form and receipt, the sealed draft that
survives a truck's arrival, and the staff view behind an officer's credential.

Customer routes never return another customer's data: the only complaint data they give back is the
receipt of the complaint just registered and the draft being typed on this screen. Staff routes
answer 403 unless a staff member's credential opened a session (Terminal.current_staff()).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import date, datetime, timedelta
from pathlib import Path

from aiohttp import web

from agent.complaints import FORM_LIMITS, ComplaintBook, ComplaintError, Receipt
from agent.i18n import catalog
from agent.screen.web import TERMINAL, BadRequest, _json, _lang
from agent.terminal import Terminal
from flows import complaint as fc
from flows.complaint_rules import RESPONSIBILITIES

log = logging.getLogger("handover.kiosk")
STATIC = Path(__file__).parent / "static"
DRAFT_SWEEP_SECONDS = 5           # how often drafts past the idle timeout are deleted, page open or not
DUE_CHECK_SECONDS = 20            # how often hour limits are checked, staff view open or not
_dumps = lambda o: json.dumps(o, ensure_ascii=False)       # noqa: E731

# what each staff action asks for: (field, kind) where kind is "text", "long", "staff", "bool" or a choice list
ACTION_FIELDS = {
    "classify": [("complexity", list(fc.COMPLEXITIES)), ("validity", list(fc.VALIDITIES))],
    "transfer": [("to", "text"), ("handler", "staff")],
    "investigate": [],
    "handle": [("notes", "long"), ("cause", "long"), ("remedy", "long"), ("responsibility", list(RESPONSIBILITIES)),
               ("handler_phone", "text"), ("staff_opinion", "long")],
    "reply": [("reply", "long")],
    "satisfaction": [("satisfied", "bool")],
    "not_accept": [("approver", "staff"), ("reason", "long")],
    "withdraw": [("reason", "long"), ("voluntary", "bool")],
    "mark_repeat": [("original_ref", "text"), ("appeal_to", "text")],
    "escalate": [("people", "int"), ("amount_yuan", "int"), ("public_figure", "bool"), ("media", "bool"),
                 ("threat", "bool")],
    "archive": [],
}


def _day(d: date, lang: str) -> str:
    ui = catalog(lang)["ui"]
    return ui["kiosk.date"].format(y=d.year, m=d.month, d=d.day, mm=f"{d.month:02d}", dd=f"{d.day:02d}",
                                   weekday=ui[f"kiosk.weekday.{d.weekday()}"])


def _minute(t: datetime, lang: str) -> str:
    return f"{_day(t.date(), lang)} {t:%H:%M}"


def _book(request: web.Request) -> ComplaintBook:
    return request.app[TERMINAL].complaints


def _staff(request: web.Request) -> str:
    staff = request.app[TERMINAL].current_staff()
    if staff is None:
        raise web.HTTPForbidden(text=_dumps({"error": "a staff credential is needed"}), content_type="application/json")
    return staff


def _staff_people(t: Terminal) -> list[dict]:
    return [{"person_id": p.person_id, "name": p.name} for p in t.people.values()
            if p.role.value in ("officer", "manager")]


# --- the customer's side ---
async def page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "kiosk.html", headers={"Cache-Control": "no-store"})


def contacts(t: Terminal) -> dict:
    """Where customers can call or appeal, as configured (and as head office last set it): public."""
    c = t.config.complaints
    return {k: v for k, v in (("hotline", c.hotline), ("supervision_phone", c.supervision_phone),
                              ("appeal_body", c.appeal_body)) if v}


async def options(request: web.Request) -> web.Response:
    t = request.app[TERMINAL]
    return web.json_response({"channels": list(fc.CHANNELS), "categories": list(fc.CATEGORIES),
                              "staff": _staff_people(t), "limits": FORM_LIMITS, "contacts": contacts(t)}, dumps=_dumps)


async def enter(request: web.Request) -> web.Response:
    request.app[TERMINAL].enter_kiosk()          # refusals become 400 in the screen's middleware
    _book(request).clear_draft()                 # a new kiosk session is a new customer
    return web.json_response({"ok": True})


def _draft_age(t: Terminal) -> timedelta:
    return timedelta(seconds=t.config.screen.idle_timeout_seconds)


def _in_kiosk(t: Terminal) -> None:
    if t.mode != "kiosk":
        raise BadRequest("the screen is not in kiosk mode")


async def get_draft(request: web.Request) -> web.Response:
    t = request.app[TERMINAL]
    draft = _book(request).load_draft(t.clock(), _draft_age(t)) if t.mode == "kiosk" else None
    return web.json_response({"draft": draft}, dumps=_dumps)


async def save_draft(request: web.Request) -> web.Response:
    draft = (await _json(request)).get("draft")
    book, t = _book(request), request.app[TERMINAL]
    try:
        if draft:
            book.save_draft(draft, t.clock())
        else:
            book.clear_draft()
    except ComplaintError as e:
        raise BadRequest(str(e)) from None
    return web.json_response({"ok": True})


def contact_lines(found: dict, lang: str) -> list[str]:
    p = catalog(lang)["prompts"]
    return [p[f"kiosk_receipt_{k}"].format(value=found[k]) for k in ("hotline", "supervision_phone", "appeal_body")
            if k in found]


def receipt_lines(r: Receipt, site_name: str, lang: str, found: dict | None = None) -> tuple[str, list[str]]:
    p = catalog(lang)["prompts"]
    return p["kiosk_receipt_title"], [
        p["kiosk_receipt_site"].format(site=site_name),
        p["kiosk_receipt_ref"].format(ref=r.ref),
        p["kiosk_receipt_received"].format(at=_minute(r.received_at, lang)),
        p["kiosk_receipt_reply_by"].format(day=_day(r.promised_reply, lang)),
        p["kiosk_receipt_keep"], *contact_lines(found or {}, lang)]


async def register(request: web.Request) -> web.Response:
    t, book = request.app[TERMINAL], _book(request)
    _in_kiosk(t)
    lang = _lang(request)
    try:
        receipt = book.register(await _json(request), t.clock())
    except ComplaintError as e:
        raise BadRequest(str(e)) from None
    book.clear_draft()
    title, lines = receipt_lines(receipt, t.site_name(), lang, contacts(t))
    printed = True
    try:
        await t.devices.printer.print_lines(title, lines)
    except Exception as exc:        # the receipt is on screen even if the paper jams
        printed = False
        t.journal.append("print_failed", {"complaint": receipt.ref, "error": str(exc)})
    return web.json_response({"ref": receipt.ref, "received_at": _minute(receipt.received_at, lang),
                              "promised_reply": _day(receipt.promised_reply, lang),
                              "title": title, "lines": lines, "printed": printed}, dumps=_dumps)


async def lookup(request: web.Request) -> web.Response:
    """Progress by reference + the contact's last 4 digits: status and promised date, nothing else. Any
    wrong pair gets the same answer as an unknown reference; repeated wrong pairs lock the lookup a while."""
    t = request.app[TERMINAL]
    _in_kiosk(t)
    lang, body = _lang(request), await _json(request)
    found = _book(request).lookup(body.get("ref"), body.get("digits"), t.clock())
    if found is None:
        return web.json_response({"found": False}, dumps=_dumps)
    return web.json_response({"found": True, "ref": found["ref"], "status": found["status"],
                              "promised_reply": _day(found["promised_reply"], lang)}, dumps=_dumps)


async def request_exit(request: web.Request) -> web.Response:
    request.app[TERMINAL].request_kiosk_exit()
    return web.json_response({"ok": True, "waiting_for": "officer"})


async def request_staff(request: web.Request) -> web.Response:
    t = request.app[TERMINAL]
    _in_kiosk(t)
    t.request_staff_view()
    return web.json_response({"ok": True, "waiting_for": "officer"})


# --- the staff view: personal data, behind a credential ---
def _row(book: ComplaintBook, c: fc.Complaint, staff: str, today: date, lang: str) -> dict:
    recused = staff in c.staff_concerned
    due = [{"limit": d.limit, "due": d.due[:16].replace("T", " "), "state": d.state} for d in book.due_now
           if d.ref == c.ref]
    return {"ref": c.ref, "received_at": _minute(c.received_at, lang), "channel": c.channel,
            "category": c.category, "status": c.status.value, "complexity": c.complexity, "validity": c.validity,
            "department": c.department, "reopened": c.reopened, "repeat_of": c.repeat_of,
            "reply_by": _day(c.deadlines.reply_by, lang), "overdue": c.overdue(today), "recused": recused,
            "staff_concerned": list(c.staff_concerned), "first_responder": c.first_responder,
            "escalations": list(c.escalations), "responsibility": c.responsibility, "due": due,
            "actions": [] if recused else c.allowed(), **book.details(c.ref)}


async def staff_complaints(request: web.Request) -> web.Response:
    staff, t, book = _staff(request), request.app[TERMINAL], _book(request)
    lang, today = _lang(request), t.today()
    rows = [_row(book, c, staff, today, lang) for c in book.open_complaints()]
    return web.json_response({"staff": staff, "name": t.name(staff), "complaints": rows,
                              "action_fields": ACTION_FIELDS, "officers": _staff_people(t)}, dumps=_dumps)


async def staff_action(request: web.Request) -> web.Response:
    staff, t, book = _staff(request), request.app[TERMINAL], _book(request)
    ref, action = request.match_info["ref"], request.match_info["action"]
    try:
        tr = book.act(ref, action, await _json(request), staff, t.clock())
    except ComplaintError as e:
        raise BadRequest(str(e)) from None
    if tr.appeal_to:        # a repeat on the same facts: the customer is told where to appeal, on paper
        p = catalog(_lang(request))["prompts"]
        try:
            await t.devices.printer.print_lines(p["kiosk_repeat_title"], [
                p["kiosk_receipt_ref"].format(ref=ref), p["kiosk_repeat_original"].format(ref=book.get(ref).repeat_of),
                p["kiosk_repeat_appeal"].format(appeal_to=tr.appeal_to)])
        except Exception as exc:
            t.journal.append("print_failed", {"complaint": ref, "error": str(exc)})
    return web.json_response({"ok": True, "status": tr.after.value, "reopened": tr.reopened,
                              "appeal_to": tr.appeal_to}, dumps=_dumps)


async def staff_report(request: web.Request) -> web.Response:
    _staff(request)
    t = request.app[TERMINAL]
    try:
        start = date.fromisoformat(request.query.get("start", ""))
        end = date.fromisoformat(request.query.get("end", ""))
    except ValueError:
        raise BadRequest("start and end must be dates as YYYY-MM-DD") from None
    try:
        return web.json_response(_book(request).report(start, end, t.today()), dumps=_dumps)
    except ComplaintError as e:
        raise BadRequest(str(e)) from None


async def staff_logout(request: web.Request) -> web.Response:
    request.app[TERMINAL].end_staff_session()
    return web.json_response({"ok": True})


async def _check_due(app: web.Application):
    """Near-due and overdue complaints go on the staff indicator and up to head office (each state once),
    whether or not anyone opens the staff view."""
    async def check():
        while True:
            t = app[TERMINAL]
            try:
                before = t.complaints.due_now
                if t.complaints.check_due(t.clock()) != before:
                    t._changed()
            except Exception:
                log.exception("complaint due check failed")
            await asyncio.sleep(DUE_CHECK_SECONDS)
    task = asyncio.create_task(check(), name="complaint-due-check")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _sweep_drafts(app: web.Application):
    """A half-typed complaint is deleted once the idle timeout passes, even with no page open to clear it."""
    async def sweep():
        while True:
            await asyncio.sleep(DRAFT_SWEEP_SECONDS)
            t = app[TERMINAL]
            try:
                t.complaints.expire_drafts(t.clock(), _draft_age(t))
            except Exception:
                log.exception("draft sweep failed")
    task = asyncio.create_task(sweep(), name="kiosk-draft-sweep")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def add_kiosk_routes(app: web.Application) -> None:
    app.cleanup_ctx.append(_sweep_drafts)
    app.cleanup_ctx.append(_check_due)
    r = app.router
    r.add_get("/kiosk", page)
    r.add_get("/api/kiosk/options", options)
    r.add_post("/api/kiosk/enter", enter)
    r.add_get("/api/kiosk/draft", get_draft)
    r.add_post("/api/kiosk/draft", save_draft)
    r.add_post("/api/kiosk/complaints", register)
    r.add_post("/api/kiosk/exit", request_exit)
    r.add_post("/api/kiosk/lookup", lookup)
    r.add_post("/api/kiosk/staff", request_staff)
    r.add_get("/api/staff/complaints", staff_complaints)
    r.add_post("/api/staff/complaints/{ref}/{action}", staff_action)
    r.add_get("/api/staff/report", staff_report)
    r.add_post("/api/staff/logout", staff_logout)
