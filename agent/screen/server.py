"""The local screen: one page, live updates over Server-Sent Events, and in simulation the small
JSON API the simulator panel (and demo scripts) use to play the devices. The panel's own document
comes on a stream of its own (/api/sim/events), sent again only when it changes: at a vault it lists
thousands of trucks and tags, and the handover's updates must not carry them.

Reachable only from the device itself: bound to loopback by default, and every request is checked
for a loopback peer and a loopback Host header (so a web page elsewhere cannot rebind its name to
us and read the screen). Photos are personal data: decrypted per request, never cached.
"""
from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import re
import sqlite3
from collections import OrderedDict
from pathlib import Path

from aiohttp import web

from agent.i18n import LANGUAGES, catalog
from agent.journal import JournalError
from agent.storage import is_storage_error
from agent.terminal import ActionRefused, Terminal
from agent.screen.kiosk import add_kiosk_routes
from agent.screen.records import add_records_routes
from agent.screen.web import TERMINAL, BadRequest, _json, _lang
from agent.view import SimPanel, build_view

log = logging.getLogger("handover.screen")
STATIC = Path(__file__).parent / "static"
SIM = web.AppKey("sim", SimPanel)
KEEP_ALIVE = 15                   # seconds between keep-alives on an idle stream
STREAMS = web.AppKey("streams", set)


def _loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


@web.middleware
async def local_only(request: web.Request, handler):
    allow_remote = request.app[TERMINAL].config.screen.allow_remote
    if not allow_remote:
        peer = request.remote
        host = (request.host or "").rsplit(":", 1)[0] if not (request.host or "").startswith("[") \
            else (request.host or "").split("]")[0] + "]"
        if not _loopback(peer) or not _loopback(host):
            raise web.HTTPForbidden(text="the terminal's screen is served to the device itself only")
    if request.method == "POST" and request.content_type != "application/json":
        raise BadRequest("requests must be application/json")
    try:
        return await handler(request)
    except ActionRefused as e:              # a staff action that cannot be taken now, and why
        raise BadRequest(str(e)) from None
    except (JournalError, sqlite3.OperationalError) as e:
        if not is_storage_error(e):
            raise
        # not journaled, so not done: the screen stays as journaled, and staff see why (agent.storage)
        request.app[TERMINAL].storage_failed(e)
        raise web.HTTPServiceUnavailable(text=json.dumps({"error": f"storage: the journal could not be written ({e})"},
                                                         ensure_ascii=False), content_type="application/json") from None


REQUEST_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
REMEMBERED = 256                 # answers kept for repeated request ids (a double tap comes within seconds)
ANSWERS = web.AppKey("answers", OrderedDict)


@web.middleware
async def idempotent(request: web.Request, handler):
    """A POST carrying X-Request-Id is done once: a repeat of the id (a double tap, a retry after a lost
    answer) gets the first answer back and changes nothing. A repeat that arrives while the first is
    still running waits for it."""
    rid = request.headers.get("X-Request-Id")
    if request.method != "POST" or rid is None:
        return await handler(request)
    if not REQUEST_ID.fullmatch(rid):
        raise BadRequest("X-Request-Id must be 8-64 letters, digits, '-' or '_'")
    answers = request.app[ANSWERS]
    key = (request.path, rid)
    if key in answers:
        status, body, ctype = await asyncio.shield(answers[key])
        return web.Response(status=status, body=body, content_type=ctype, headers={"X-Request-Repeated": "1"})
    done: asyncio.Future = asyncio.get_running_loop().create_future()
    answers[key] = done
    while len(answers) > REMEMBERED:
        answers.popitem(last=False)
    try:
        try:
            resp = await handler(request)
        except ActionRefused as e:
            resp = BadRequest(str(e))
        except web.HTTPException as e:
            resp = e
    except BaseException as e:          # not answered: a retry with the same id may try again
        answers.pop(key, None)
        done.set_exception(e)
        done.exception()                # retrieved, so no "never retrieved" warning when nobody waits
        raise
    body = resp.body if isinstance(resp.body, bytes) else b""
    done.set_result((resp.status, body, resp.content_type))
    if isinstance(resp, web.HTTPException):
        raise resp
    return resp


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})


async def i18n(request: web.Request) -> web.Response:
    lang = request.match_info["lang"]
    if lang not in LANGUAGES:
        raise web.HTTPNotFound()
    return web.json_response(catalog(lang)["ui"], dumps=lambda o: json.dumps(o, ensure_ascii=False))


async def view(request: web.Request) -> web.Response:
    """The screen's view once, with the simulator panel under `sim` (for scripts and tests)."""
    t = request.app[TERMINAL]
    return web.json_response({**build_view(t, _lang(request)), "sim": request.app[SIM].get(t) if t.config.simulate
                              else None}, dumps=lambda o: json.dumps(o, ensure_ascii=False))


async def events(request: web.Request) -> web.StreamResponse:
    """SSE: the view after every change, in the screen's current language; resent when idle, which
    also tells the page of a staff session that lapsed (the page ignores an unchanged view)."""
    terminal = request.app[TERMINAL]

    def payload(idle: bool) -> str:
        return f"data: {json.dumps(build_view(terminal, terminal.lang), ensure_ascii=False)}\n\n"
    return await _stream(request, payload)


async def sim_events(request: web.Request) -> web.StreamResponse:
    """SSE: the simulator panel (simulation only), sent when what it lists changed."""
    terminal, panel = request.app[TERMINAL], request.app[SIM]
    sent = None

    def payload(idle: bool) -> str | None:
        nonlocal sent
        doc = panel.get(terminal)
        if doc is sent:
            return ": keep-alive\n\n" if idle else None        # a comment: the page sees nothing
        sent = doc
        return f"data: {json.dumps(doc, ensure_ascii=False)}\n\n"
    return await _stream(request, payload)


async def _stream(request: web.Request, payload) -> web.StreamResponse:
    """An SSE stream of payload(idle) at the start and after each change of the terminal (idle: none for
    KEEP_ALIVE seconds); None writes nothing. Ended by the client or by the app's shutdown."""
    terminal = request.app[TERMINAL]
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
    await resp.prepare(request)
    queue = terminal.subscribe()
    streams = request.app[STREAMS]
    streams.add(asyncio.current_task())
    try:
        idle = False
        while True:
            data = payload(idle)
            if data is not None:
                await resp.write(data.encode())
            try:
                await asyncio.wait_for(queue.get(), timeout=KEEP_ALIVE)
                idle = False
            except asyncio.TimeoutError:
                idle = True
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        terminal.unsubscribe(queue)
        streams.discard(asyncio.current_task())
    return resp


async def _end_streams(app: web.Application) -> None:
    # a stream waits up to KEEP_ALIVE seconds for a change: without this a stop would wait for it too
    for task in list(app[STREAMS]):
        task.cancel()


async def set_language(request: web.Request) -> web.Response:
    lang = (await _json(request)).get("lang")
    if lang not in LANGUAGES:
        raise BadRequest(f"lang must be one of {', '.join(LANGUAGES)}")
    request.app[TERMINAL].set_language(lang)
    return web.json_response({"ok": True, "lang": lang})


async def photo(request: web.Request) -> web.Response:
    data = request.app[TERMINAL].store.photo(request.match_info["digest"])
    if data is None:
        raise web.HTTPNotFound()
    return web.Response(body=data, content_type="image/jpeg", headers={"Cache-Control": "no-store"})


# --- staff actions (each signed by an officer's finger or password before it takes effect) ---
def _str(body: dict, key: str, max_len: int = 200) -> str:
    value = body.get(key)
    if not isinstance(value, str) or len(value) > max_len:
        raise BadRequest(f"{key} must be a string of at most {max_len} characters")
    return value


async def disposition(request: web.Request) -> web.Response:
    body = await _json(request)
    request.app[TERMINAL].request_disposition(_str(body, "code", 40), _str(body, "text", 500),
                                              _str(body, "resolution", 10))
    return web.json_response({"ok": True, "waiting_for": "officer"})


async def manual_arrival(request: web.Request) -> web.Response:
    body = await _json(request)
    request.app[TERMINAL].request_manual_arrival(_str(body, "task_id", 80))
    return web.json_response({"ok": True, "waiting_for": "officer"})


async def password(request: web.Request) -> web.Response:
    body = await _json(request)
    ok = await request.app[TERMINAL].password(_str(body, "person_id", 80), _str(body, "password", 128))
    return web.json_response({"ok": ok})


async def enrolment(request: web.Request) -> web.Response:
    """Enrol a person's finger here (SPEC §2.4): waits for an officer's credential, then the captures."""
    body = await _json(request)
    request.app[TERMINAL].request_enrolment(_str(body, "person_id", 80), _str(body, "finger", 20))
    return web.json_response({"ok": True, "waiting_for": "officer"})


async def enrolment_close(request: web.Request) -> web.Response:
    """Stop a running capture, or put away a finished enrolment's screen."""
    request.app[TERMINAL].enrolment.cancel()
    return web.json_response({"ok": True})


async def cancel(request: web.Request) -> web.Response:
    request.app[TERMINAL].cancel_pending()
    return web.json_response({"ok": True})


def _no_handover(t: Terminal) -> None:
    # while a handover runs the next officer finger belongs to it, not to a staff sign-in
    if t.active is not None:
        raise BadRequest("a handover is in progress; staff sign in after it")


async def open_staff(request: web.Request) -> web.Response:
    """The schedule and staff actions need a staff credential: the next officer finger or password opens them."""
    t = request.app[TERMINAL]
    if t.current_staff() is not None:
        return web.json_response({"ok": True, "staff": t.current_staff()})
    _no_handover(t)
    t.request_staff_view()
    return web.json_response({"ok": True, "waiting_for": "officer"})


async def acknowledge_alarms(request: web.Request) -> web.Response:
    """A site alarm (a wrong or unknown truck) stays on every face until staff acknowledge it."""
    t = request.app[TERMINAL]
    staff = t.current_staff()
    if staff is None:
        _no_handover(t)
        t.request_staff_view()
        return web.json_response({"ok": False, "waiting_for": "officer"})
    t.acknowledge_site_alarms(staff)
    return web.json_response({"ok": True})


# --- simulator panel API (simulation mode only) ---
async def sim_clock(request: web.Request) -> web.Response:
    """Jump the terminal's clock (simulation only), e.g. to a later task's window."""
    minutes = (await _json(request)).get("offset_minutes")
    if not isinstance(minutes, int) or isinstance(minutes, bool) or not -1440 <= minutes <= 1440:
        raise BadRequest("offset_minutes must be an integer between -1440 and 1440")
    request.app[TERMINAL].simulate_clock_jump(minutes)
    return web.json_response({"ok": True})


async def sim_route(request: web.Request) -> web.Response:
    """Head office's route_progress report for one stop (simulation only)."""
    body = await _json(request)
    status = body.get("status", "done")
    if status not in ("done", "skipped"):
        raise BadRequest("status must be done or skipped")
    request.app[TERMINAL].simulate_route_report(_str(body, "task_id", 80), _str(body, "site_id", 80), status)
    return web.json_response({"ok": True})


async def sim_beacon(request: web.Request) -> web.Response:
    body = await _json(request)
    beacon = body.get("beacon")
    if not isinstance(beacon, str) or not beacon:
        raise BadRequest("beacon must be a non-empty string")
    rssi = body.get("rssi", -55)
    if not isinstance(rssi, int) or isinstance(rssi, bool) or not -127 <= rssi <= 20:
        raise BadRequest("rssi must be an integer from -127 to 20 (dBm)")
    request.app[TERMINAL].devices.ble.approach(beacon, rssi)
    return web.json_response({"ok": True})


async def sim_finger(request: web.Request) -> web.Response:
    body = await _json(request)
    station = body.get("station")
    modules = request.app[TERMINAL].devices.fingerprints
    if station not in modules:
        raise BadRequest(f"station must be one of {', '.join(modules)}")
    slot = body.get("slot")
    new_finger = body.get("new_finger")
    if body.get("failed"):
        modules[station].touch_failed()
    elif new_finger is not None:          # a finger the module has not stored: plays an enrolment's capture
        if not isinstance(new_finger, str) or not 0 < len(new_finger) <= 40:
            raise BadRequest("new_finger must be a name of 1 to 40 characters")
        modules[station].touch_new(new_finger)
    elif slot is None or (isinstance(slot, int) and not isinstance(slot, bool) and slot >= 0):
        modules[station].touch(slot)
    else:
        raise BadRequest("slot must be a non-negative integer or null (an unknown finger)")
    return web.json_response({"ok": True})


async def sim_tag(request: web.Request) -> web.Response:
    tag = (await _json(request)).get("tag")
    if not isinstance(tag, str) or not tag or not all(c in "0123456789abcdefABCDEF" for c in tag):
        raise BadRequest("tag must be a hexadecimal UID")
    request.app[TERMINAL].devices.cards.present(tag)
    return web.json_response({"ok": True})


async def sim_camera(request: web.Request) -> web.Response:
    present = (await _json(request)).get("present")
    if not isinstance(present, bool):
        raise BadRequest("present must be true or false")
    request.app[TERMINAL].devices.camera.present = present
    return web.json_response({"ok": True})


def build_app(terminal: Terminal) -> web.Application:
    app = web.Application(middlewares=[local_only, idempotent], client_max_size=64 * 1024)
    app[TERMINAL] = terminal
    app[SIM] = SimPanel()
    app[STREAMS] = set()
    app.on_shutdown.append(_end_streams)
    app[ANSWERS] = OrderedDict()
    app.router.add_get("/", index)
    app.router.add_static("/static/", STATIC)
    app.router.add_get("/i18n/{lang}.json", i18n)
    app.router.add_get("/api/view", view)
    app.router.add_get("/api/events", events)
    app.router.add_post("/api/language", set_language)
    app.router.add_get("/photos/{digest}", photo)
    app.router.add_post("/api/disposition", disposition)
    app.router.add_post("/api/manual-arrival", manual_arrival)
    app.router.add_post("/api/password", password)
    app.router.add_post("/api/cancel", cancel)
    app.router.add_post("/api/staff/open", open_staff)
    app.router.add_post("/api/alarms/ack", acknowledge_alarms)
    app.router.add_post("/api/enrolment", enrolment)
    app.router.add_post("/api/enrolment/close", enrolment_close)
    add_kiosk_routes(app)
    add_records_routes(app)
    if terminal.config.simulate:
        app.router.add_get("/api/sim/events", sim_events)
        app.router.add_post("/api/sim/beacon", sim_beacon)
        app.router.add_post("/api/sim/route", sim_route)
        app.router.add_post("/api/sim/finger", sim_finger)
        app.router.add_post("/api/sim/tag", sim_tag)
        app.router.add_post("/api/sim/camera", sim_camera)
        app.router.add_post("/api/sim/clock", sim_clock)
    return app
