"""The monitoring centre's web app (aiohttp): login, the live alarm board with its Mandarin voice and
acknowledgements, and the devices board. `WebBoard` runs it on an event loop of its own thread beside
`hq.serve.Server`, whose MQTT threads hand it each alarm at its commit (`WebBoard.alarm`, thread-safe).

Routes: GET /login, POST /login, POST /logout, GET /board (the page), GET /api/me, GET /api/alarms,
GET /api/events (Server-Sent Events: `alarm` and `ack`; `route` and `announce` from hq/web/routes.py),
GET /api/voice?device=&id= (WAV),
POST /api/ack, GET /api/devices, /static/*. Every page and API is behind `require_role`.
"""
from __future__ import annotations

import asyncio
import json
import threading
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from hq.db import Database
from hq.web import board, complaints_page, i18n, records, routes, schedule_page
from hq.web.auth import AUTH, COOKIE, DB_THREAD, ROLES, SESSION, Auth, Session, in_db, require_role
from hq.web.page import DB, SETTINGS, STATIC, Settings, lang, page, same_origin
from hq.web.stream import STREAMS, Stream as _Stream, end as _end, put as _put
from hq.web.voice import Voice

KEEP_ALIVE = 15         # seconds between keep-alives on an idle event stream
BOARD_ROLES = ("monitor", "vault_manager", "admin")
VOICE = web.AppKey("voice", Voice)


def create_app(db_url: str, settings: Settings | None = None, *, auth: Auth | None = None) -> web.Application:
    db = Database(db_url).create_schema()
    app = web.Application()
    app.on_response_prepare.append(_security_headers)
    app[SETTINGS] = settings = settings or Settings()
    app[DB] = db
    app[AUTH] = auth or Auth(db, idle=settings.idle)
    app[DB_THREAD] = ThreadPoolExecutor(1, thread_name_prefix="hq-web-db")    # the one thread `db` is used on
    app[VOICE] = Voice()
    app[STREAMS] = set()
    app.router.add_get("/", home)
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/board", board_page)
    app.router.add_get("/api/me", me)
    app.router.add_get("/api/alarms", alarms)
    app.router.add_get("/api/events", events)
    app.router.add_get("/api/voice", voice)
    app.router.add_post("/api/ack", ack)
    app.router.add_get("/api/devices", devices)
    schedule_page.add_routes(app)
    complaints_page.add_routes(app)
    routes.add_routes(app)
    records.add_routes(app)
    app.router.add_static("/static", STATIC)
    app.on_shutdown.append(_end_streams)
    app.on_cleanup.append(_close)
    return app


async def _end_streams(app: web.Application) -> None:
    """At shutdown, before the server waits for its handlers: each open board's stream ends now, not at its
    next keep-alive (WebBoard.stop waited out its join for that)."""
    for stream in list(app[STREAMS]):
        _end(stream)


async def _close(app: web.Application) -> None:
    await in_db(app, app[DB].close)
    app[DB_THREAD].shutdown()


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """On every response, as it is prepared (the event stream included)."""
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Content-Security-Policy", "default-src 'self'; media-src 'self' blob:; "
                                "frame-ancestors 'none'")
    # same-origin, not no-referrer: with no-referrer a browser posts the login form with "Origin: null"
    response.headers.setdefault("Referrer-Policy", "same-origin")


async def home(request: web.Request) -> web.Response:
    session = await in_db(request.app, request.app[AUTH].session, request.cookies.get(COOKIE), renew=False)
    raise web.HTTPFound(_landing(session.role) if session else "/login")


def _landing(role: str) -> str:
    # complaint officers have no board: their page is the complaints
    return "/complaints" if role == "complaint_officer" else "/board"


async def login_page(request: web.Request) -> web.Response:
    response = page("login.html", lang(request))
    if request.query.get("failed"):
        response.text = response.text.replace('data-failed="false"', 'data-failed="true"')
    return response


async def login(request: web.Request) -> web.Response:
    if not same_origin(request):
        raise web.HTTPForbidden(text="cross-site login refused")
    form = await request.post()
    name, password = str(form.get("name", ""))[:64], str(form.get("password", ""))
    found = await in_db(request.app, request.app[AUTH].login, name, password)
    if found is None:
        raise web.HTTPFound("/login?failed=1")
    token, session = found
    response = web.HTTPFound(_landing(session.role))
    response.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/",
                        secure=request.app[SETTINGS].secure_cookie)
    raise response


@require_role(*ROLES)
async def logout(request: web.Request) -> web.Response:
    await in_db(request.app, request.app[AUTH].logout, request.cookies[COOKIE], request[SESSION])
    response = web.json_response({"ok": True})
    response.del_cookie(COOKIE, path="/")
    return response


@require_role(*BOARD_ROLES)
async def board_page(request: web.Request) -> web.Response:
    return page("board.html", lang(request))


@require_role(*BOARD_ROLES)
async def me(request: web.Request) -> web.Response:
    s: Session = request[SESSION]
    language = lang(request)
    return web.json_response({"name": s.name, "role": s.role, "role_text": i18n.render(f"role_{s.role}", lang=language),
                              "csrf": s.csrf, "may_ack": s.role == "monitor", "lang": language,
                              "text": i18n.catalog(language)})


@require_role(*BOARD_ROLES)
async def alarms(request: web.Request) -> web.Response:
    s: Session = request[SESSION]
    return web.json_response(await in_db(request.app, board.recent_alarms, request.app[DB], s.role,
                                         request.app[SETTINGS].sites, lang(request)))


@require_role(*BOARD_ROLES, renew=False)
async def events(request: web.Request) -> web.StreamResponse:
    """Alarms and acknowledgements as they are committed, filtered for this user's role. The stream ends
    when its session lapses (checked at each keep-alive); the page then finds itself logged out."""
    s: Session = request[SESSION]
    stream = _Stream(s.role, lang(request), asyncio.Queue(maxsize=1000), s.name)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    request.app[STREAMS].add(stream)
    try:
        await response.write(b": connected\n\n")
        while True:
            try:
                item = await asyncio.wait_for(stream.queue.get(), KEEP_ALIVE)
            except asyncio.TimeoutError:
                token = request.cookies.get(COOKIE)
                if await in_db(request.app, request.app[AUTH].session, token, renew=False) is None:
                    break
                await response.write(b": keep-alive\n\n")
                continue
            if item is None:
                break
            name, data = item
            await response.write(f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode())
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        request.app[STREAMS].discard(stream)
    return response


@require_role(*BOARD_ROLES)
async def voice(request: web.Request) -> web.Response:
    s: Session = request[SESSION]
    found = await in_db(request.app, board.alarm, request.app[DB], request.query.get("device", ""),
                        request.query.get("id", ""))
    if found is None or not board.visible(found[2], s.role):
        raise web.HTTPNotFound(text="no such alarm")
    seq, ts, body = found
    sentence = board.speech_of(body, request.query["device"], ts, request.app[SETTINGS].sites)
    try:
        wav = await request.app[VOICE].wav(sentence)
    except RuntimeError as exc:
        raise web.HTTPServiceUnavailable(text=str(exc))
    return web.Response(body=wav, content_type="audio/wav", headers={"Cache-Control": "private, max-age=3600"})


@require_role("monitor")
async def ack(request: web.Request) -> web.Response:
    s: Session = request[SESSION]
    try:
        data = await request.json()
        device, entry_id, note = str(data["device"]), str(data["id"]), str(data["note"])
    except (ValueError, KeyError, TypeError):
        raise web.HTTPBadRequest(text="give device, id and note as JSON")
    app = request.app
    try:
        done = await in_db(app, board.acknowledge, app[DB], device, entry_id, s.name, note, app[AUTH].audit_in)
    except board.AckRefused as exc:
        raise _status(exc.status, str(exc))
    if done.downlink is not None and app[SETTINGS].send_downlink is not None:
        # journaled above first: the MQTT session (persistent, QoS 1) carries it even across an outage
        app[SETTINGS].send_downlink(device, "command", done.downlink)
    payload = {"device": device, "id": entry_id, "silent": done.silent,
               "ack": {"name": done.name, "note": done.note, "at": done.at, "sent": done.downlink is not None}}
    _broadcast(app, "ack", payload, silent=payload["silent"])
    return web.json_response({"ok": True, **payload})


def _status(status: int, text: str) -> web.HTTPException:
    return {400: web.HTTPBadRequest, 404: web.HTTPNotFound, 409: web.HTTPConflict}[status](text=text)


@require_role(*BOARD_ROLES, renew=False)      # polled by the page every few seconds
async def devices(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    return web.json_response(await in_db(request.app, board.devices, request.app[DB], settings.sites, lang(request),
                                         settings.quiet_after))


def _broadcast(app: web.Application, name: str, payload: dict, *, silent: bool) -> None:
    for stream in list(app[STREAMS]):
        if silent and stream.role != "monitor":
            continue
        _put(stream, (name, payload))


def push_alarm(app: web.Application, device: str, entry: dict) -> None:
    """On the app's loop: one committed alarm to every open board allowed to see it."""
    body = entry["body"]
    sites = app[SETTINGS].sites
    for stream in list(app[STREAMS]):
        if not board.visible(body, stream.role):
            continue
        view = board.alarm_view(device, entry["id"], entry["seq"], entry["ts"], body, None, sites, stream.lang)
        _put(stream, ("alarm", view))


class WebBoard:
    """The app on its own thread and event loop, bound to host:port (loopback by default)."""

    def __init__(self, db_url: str, host: str, port: int, settings: Settings | None = None):
        self.host, self.port = host, port
        self._db_url, self.settings = db_url, settings or Settings()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._app: web.Application | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="hq-web", daemon=True)

    def start(self, timeout: float = 10.0) -> "WebBoard":
        self._thread.start()
        if not self._ready.wait(timeout) or self._error:
            raise RuntimeError(f"the monitoring page could not start on {self.host}:{self.port}: {self._error}")
        return self

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:        # reported to start(); the page is then not running
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    async def _serve(self) -> None:
        self._app = create_app(self._db_url, self.settings)
        self._runner = web.AppRunner(self._app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()

    def alarm(self, device: str, entry: dict) -> None:
        """Thread-safe: called by the MQTT threads at each alarm's commit."""
        if self._loop is not None and self._app is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(push_alarm, self._app, device, entry)

    def entries(self, device: str, entries: list[dict]) -> None:
        """Thread-safe: called by the MQTT threads with the entries of each batch at its commit (the route board)."""
        notable = routes.notable(entries)
        if notable and self._loop is not None and self._app is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(routes.entries_committed, self._app, device, notable)

    def stop(self) -> None:
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
