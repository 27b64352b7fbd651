"""The route board (the vault manager's live view) and each monitor's voice announcements (issue 16).

GET /routes (the page), GET /api/routes?date=YYYY-MM-DD (JSON {"day", "at", "routes": the day's routes,
hq/routes.py; no date: today on the schedule's clock), live on the
board's event stream as `route` (a route's card again whenever one of its handover entries is committed,
at most one query a second however many arrive). GET/POST /api/voice/settings: whether the board speaks
officer confirmations and completed handovers for this user (audited); those go on the stream as
`announce` only to the users who turned them on, and GET /api/voice/announce?device=&id= is their WAV.
Alarms are always spoken (hq/web/app.py), and so is a route skip judged here (`announce` to every board,
GET /api/voice/route_skip?task=&site=)."""
from __future__ import annotations

import asyncio
import logging
import re
from datetime import date, datetime, timezone
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from aiohttp import web

from hq import routes
from hq.schedule import DEFAULT_TZ
from hq.web import i18n
from hq.web.auth import AUTH, SESSION, Session, in_db, require_role
from hq.web.page import DB, SETTINGS, lang, page
from hq.web.stream import STREAMS, put
from hq.web.voice import Voice

log = logging.getLogger("handover.hq.web.routes")
ROLES = ("monitor", "vault_manager", "admin")
MAX_KNOWN = 20_000      # routes whose spoken skips are remembered (a busy day's runs, and then some)
THROTTLE = 1.0          # seconds: at most one route query a second, however many entries are committed
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")     # ASCII digits: \d also takes other scripts' digits

VOICE_ON = web.AppKey("routes_voice_on", dict)          # user name -> {"confirmation": bool, "completion": bool}
PENDING = web.AppKey("routes_pending", dict)            # "tasks": task ids changed; "handle": the refresh scheduled
TASKS = web.AppKey("routes_tasks", set)                 # running pushes (held: the loop keeps weak references)
SPEAKER = web.AppKey("routes_voice", Voice)
SKIPS = web.AppKey("routes_skips", dict)                # task id -> the stops pushed as skipped (spoken once)


def add_routes(app: web.Application) -> None:
    app[VOICE_ON] = {}
    app[PENDING] = {"tasks": set(), "handle": None, "last": 0.0}
    app[TASKS] = set()
    app[SPEAKER] = Voice()
    app[SKIPS] = {}
    app.on_startup.append(_load_voice_settings)
    app.router.add_get("/routes", routes_page)
    app.router.add_get("/api/routes", day_routes)
    app.router.add_get("/api/voice/settings", voice_settings)
    app.router.add_post("/api/voice/settings", set_voice_settings)
    app.router.add_get("/api/voice/announce", announce_voice)
    app.router.add_get("/api/voice/route_skip", route_skip_voice)


async def _load_voice_settings(app: web.Application) -> None:
    app[VOICE_ON].update(await in_db(app, routes.all_voice_settings, app[DB]))


def _now() -> datetime:
    return datetime.now(timezone.utc)


def today() -> str:
    return datetime.now(ZoneInfo(DEFAULT_TZ)).date().isoformat()


def parse_day(value: str | None) -> str:
    """The `date` parameter: YYYY-MM-DD (ValueError naming what is wrong); none given is today."""
    if value is None or value == "":
        return today()
    if not _DATE.fullmatch(value):
        raise ValueError("date: give YYYY-MM-DD, e.g. 2026-11-30")
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise ValueError(f"date: {value} is not a day of the calendar") from None


@require_role(*ROLES)
async def routes_page(request: web.Request) -> web.Response:
    return page("routes.html", lang(request))


@require_role(*ROLES, renew=False)      # refreshed by the page itself (windows run out without an entry)
async def day_routes(request: web.Request) -> web.Response:
    try:
        day = parse_day(request.query.get("date"))
    except ValueError as exc:
        raise web.HTTPBadRequest(text=str(exc))
    now = _now()
    found = await in_db(request.app, routes.day_routes, request.app[DB], day, now, request.app[SETTINGS].sites)
    # the day and the time as the schedule's clock says them: the browser's own zone may be another
    return web.json_response({"day": day, "at": now.astimezone(ZoneInfo(DEFAULT_TZ)).strftime("%H:%M:%S"),
                              "routes": found})


@require_role(*ROLES)
async def voice_settings(request: web.Request) -> web.Response:
    s: Session = request[SESSION]
    return web.json_response(await in_db(request.app, routes.voice_settings, request.app[DB], s.name))


def parse_voice_settings(data) -> dict[str, bool]:
    """The POSTed settings: {"confirmation": bool, "completion": bool}, nothing else (ValueError says what)."""
    if not isinstance(data, dict) or set(data) != set(routes.ANNOUNCED):
        raise ValueError(f"give exactly {', '.join(routes.ANNOUNCED)} as JSON")
    bad = [k for k, v in data.items() if not isinstance(v, bool)]
    if bad:
        raise ValueError(f"{bad[0]} must be true or false")
    return {k: data[k] for k in routes.ANNOUNCED}


@require_role(*ROLES)
async def set_voice_settings(request: web.Request) -> web.Response:
    s: Session = request[SESSION]
    try:
        settings = parse_voice_settings(await request.json())
    except ValueError as exc:           # a body that is not JSON is a ValueError too
        raise web.HTTPBadRequest(text=str(exc))
    app = request.app
    stored = await in_db(app, routes.set_voice, app[DB], s.name, settings, _now().isoformat(timespec="milliseconds"),
                         app[AUTH].audit_in)
    app[VOICE_ON][s.name] = stored
    return web.json_response(stored)


@require_role(*ROLES)
async def announce_voice(request: web.Request) -> web.Response:
    """The WAV of an announcement, for a user who turned that kind on (404 otherwise, as for no such entry)."""
    s: Session = request[SESSION]
    app = request.app
    device, entry_id = request.query.get("device", ""), request.query.get("id", "")
    found = await in_db(app, routes.entry, app[DB], device, entry_id)
    said = routes.announcement(found) if found else None
    if said is None or not app[VOICE_ON].get(s.name, {}).get(said[0]):
        raise web.HTTPNotFound(text="no such announcement")
    view = await _announcement_view(app, device, found, *said)
    return await _wav(app, view["speech"])


@require_role(*ROLES)
async def route_skip_voice(request: web.Request) -> web.Response:
    """The WAV of a route skip, while the route is judged so (404 otherwise): an alarm, spoken to everyone."""
    app = request.app
    task_id, site_id = request.query.get("task", ""), request.query.get("site", "")
    cards = await in_db(app, routes.routes_of, app[DB], [task_id], _now(), app[SETTINGS].sites) if task_id else []
    card = next((c for c in cards if site_id in c["skipped"]), None)
    if card is None:
        raise web.HTTPNotFound(text="no such route skip")
    return await _wav(app, _skip_view(card, site_id)["speech"])


async def _wav(app: web.Application, sentence: str) -> web.Response:
    try:
        wav = await app[SPEAKER].wav(sentence)
    except RuntimeError as exc:
        raise web.HTTPServiceUnavailable(text=str(exc))
    return web.Response(body=wav, content_type="audio/wav", headers={"Cache-Control": "private, max-age=3600"})


def _skip_view(card: dict, site_id: str) -> dict:
    site = next(s["site"] for s in card["stops"] if s["site_id"] == site_id)
    params = {"site": site, "plate": card["plate"], "route": card["route"]}
    return {"id": f"{card['task_id']}|{site_id}", "what": "route_skip", **params,
            "speech": i18n.render("routes_speech_route_skip", params, "zh-CN"),
            "voice": "/api/voice/route_skip?" + urlencode({"task": card["task_id"], "site": site_id})}


# -- live: what a committed entry changes -------------------------------------------------------------

def notable(entries: list[dict]) -> list[dict]:
    """The entries the route board reads (called on the MQTT threads: nothing else is handed to the loop)."""
    return [e for e in entries if e.get("kind") in routes.KINDS]


def entries_committed(app: web.Application, device: str, entries: list[dict]) -> None:
    """On the app's loop: handover entries of `device` just committed. Announcements go out at once; the
    routes they touch are queried again at most once per THROTTLE and pushed as `route` events."""
    for entry in entries:
        said = routes.announcement(entry)
        if said is not None and any(on.get(said[0]) for on in app[VOICE_ON].values()):
            _spawn(app, _announce(app, device, entry, *said))
    app[PENDING]["tasks"].update(e["task_id"] for e in entries if e.get("task_id"))
    _schedule_push(app)


def _schedule_push(app: web.Application) -> None:
    """One route query for the tasks changed so far: now, or THROTTLE after the last one began."""
    pending = app[PENDING]
    if pending["tasks"] and pending["handle"] is None:
        loop = asyncio.get_running_loop()
        wait = max(0.0, pending["last"] + THROTTLE - loop.time())
        pending["handle"] = loop.call_later(wait, lambda: _spawn(app, _push_routes(app)))


def _spawn(app: web.Application, work) -> None:
    task = asyncio.ensure_future(work)
    app[TASKS].add(task)
    task.add_done_callback(app[TASKS].discard)


async def _push_routes(app: web.Application) -> None:
    pending = app[PENDING]
    task_ids, pending["tasks"] = pending["tasks"], set()
    pending["last"] = asyncio.get_running_loop().time()
    try:
        cards = await in_db(app, routes.routes_of, app[DB], task_ids, _now(), app[SETTINGS].sites)
    except Exception as exc:        # the database away: these tasks go with the next query, not lost
        log.warning("route board: routes not read (%s); tried again in %.0f s", type(exc).__name__, THROTTLE)
        pending["tasks"] |= task_ids
        cards = []
    finally:
        pending["handle"] = None
    for card in cards:
        known = app[SKIPS].pop(card["task_id"], set())
        app[SKIPS][card["task_id"]] = set(card["skipped"])          # re-inserted: the dict runs oldest first
        while len(app[SKIPS]) > MAX_KNOWN:
            del app[SKIPS][next(iter(app[SKIPS]))]
        skips = [_skip_view(card, site) for site in card["skipped"] if site not in known]
        for stream in list(app[STREAMS]):
            if stream.role in ROLES:
                put(stream, ("route", card))
                for view in skips:      # a route skip is an alarm: spoken on every board, whatever it chose
                    put(stream, ("announce", {**view, "text": i18n.render("routes_announce_route_skip", view,
                                                                          stream.lang)}))
    _schedule_push(app)             # what came while this query ran


async def _announcement_view(app: web.Application, device: str, entry: dict, what: str, facts: dict) -> dict:
    site_id = facts.get("site_id") or await in_db(app, routes.site_of_device, app[DB], device, entry.get("task_id"))
    site = (app[SETTINGS].sites.get(site_id or "") or await in_db(app, routes.site_name, app[DB], site_id)
            or site_id or device)
    at = routes.local_time(entry.get("ts"))
    key = f"routes_speech_{what}" if what == "confirmation" else f"routes_speech_{facts['outcome']}"
    params = {"site": site, "plate": facts.get("plate", ""), "time": at}
    return {"device": device, "id": entry["id"], "what": what, **params, "speech": i18n.render(key, params, "zh-CN"),
            "voice": "/api/voice/announce?" + urlencode({"device": device, "id": entry["id"]})}


async def _announce(app: web.Application, device: str, entry: dict, what: str, facts: dict) -> None:
    view = await _announcement_view(app, device, entry, what, facts)
    for stream in list(app[STREAMS]):
        if app[VOICE_ON].get(stream.name, {}).get(what):
            put(stream, ("announce", {**view, "text": i18n.render(f"routes_announce_{what}", view, stream.lang)}))
