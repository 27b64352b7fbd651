"""The schedule upload page (issue 16, role admin): the escort company's dispatch (CSV/XLSX) in through
hq.schedule.import_schedule — checked whole, every bad row named, nothing applied if one is bad — then
each new version out through hq.distribute.publish: the `tasks` downlink to online terminals (over serve's
MQTT session, Settings.send_downlink) and USB bundles for offline ones (Settings.bundle_kit), offered here
for download. Every upload, taken or refused, is audited.

Routes: GET /schedule (page), POST /api/schedule (multipart field `file`) -> JSON {version, versions,
published, bundles, no_terminal, downloads, notes, errors}, GET /api/schedule/status?day= (what each
terminal applied), GET /api/schedule/bundle/{device}/{name} (a packed bundle).
"""
from __future__ import annotations

import re
import uuid

from aiohttp import web

from hq import distribute, schedule
from hq.db import Cursor
from hq.web.auth import AUTH, SESSION, in_db, require_role
from hq.web.page import DB, SETTINGS, lang, page
from protocol import messages

MAX_UPLOAD = schedule.MAX_FILE_SIZE
MAX_NAME = 200
_BUNDLE_NAME = re.compile(r"(tasks|personnel)-[A-Za-z0-9_.\-]{1,32}-\d{4}-\d{2}-\d{2}-v\d{1,9}\.htb")
_DEVICE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")


# hq.distribute.publish's lines the page says in its own words
_SHOWN = ("packed for USB", "published over MQTT", "no reply yet", "no terminal has reported")
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


class UploadRefused(ValueError):
    """The upload itself is unusable (no file, too big); nothing was read into the schedule."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


class _Downlinks:
    """hq.distribute.Publisher's shape over serve's own MQTT session: each downlink goes on the persistent
    QoS 1 session; the terminals' replies are recorded by serve from the reply topic (schedule status)."""

    def __init__(self, send):
        self._send = send

    def send(self, device: str, kind: str, payload: dict) -> str:
        payload = {"v": messages.VERSION, "msg_id": uuid.uuid4().hex, **payload}
        self._send(device, kind, payload)
        return payload["msg_id"]

    def wait(self, msg_ids: set[str], timeout: float) -> dict[str, dict]:
        return {}


def add_routes(app: web.Application) -> None:
    app.router.add_get("/schedule", schedule_page)
    app.router.add_post("/api/schedule", upload)
    app.router.add_get("/api/schedule/status", status)
    app.router.add_get("/api/schedule/bundle/{device}/{name}", bundle)


@require_role("admin")
async def schedule_page(request: web.Request) -> web.Response:
    return page("schedule.html", lang(request))


async def _read_file(request: web.Request) -> tuple[str, bytes]:
    """The multipart field `file`, read up to MAX_UPLOAD bytes (aiohttp's own 1 MiB body cap is not used:
    it answers without saying what the limit is)."""
    try:
        reader = await request.multipart()
    except (AssertionError, ValueError, KeyError):
        raise UploadRefused("send the dispatch as multipart/form-data with the field 'file'") from None
    while True:
        try:
            part = await reader.next()
        except (ValueError, AssertionError, KeyError, RuntimeError):
            raise UploadRefused("the multipart body is malformed") from None
        if part is None:
            raise UploadRefused("no field 'file' in the upload")
        if getattr(part, "name", None) != "file":
            continue
        name = (part.filename or "")[:MAX_NAME]
        data = bytearray()
        while True:
            try:
                chunk = await part.read_chunk(64 * 1024)
            except (ValueError, AssertionError, RuntimeError):
                raise UploadRefused("the multipart body is malformed") from None
            if not chunk:
                break
            data += chunk
            if len(data) > MAX_UPLOAD:
                raise UploadRefused(f"the file is larger than {MAX_UPLOAD // (1024 * 1024)} MiB, the upload limit",
                                    status=413)
        return name, bytes(data)


def _answer(errors: list[dict], status: int = 200, **found) -> web.Response:
    body = {"version": None, "versions": {}, "published": [], "bundles": [], "downloads": [], "notes": [],
            "errors": errors, **found}
    return web.json_response(body, status=status)


@require_role("admin")
async def upload(request: web.Request) -> web.Response:
    app, who = request.app, request[SESSION].name
    audit = app[AUTH].audit
    try:
        filename, data = await _read_file(request)
    except UploadRefused as exc:
        await in_db(app, audit, who, "schedule_refused", {"why": str(exc)})
        return _answer([{"row": 0, "message": str(exc)}], status=exc.status)
    safe_name = filename[:100] if filename.isprintable() else None      # never arbitrary bytes into the audit
    try:
        found = await in_db(app, _import_and_publish, app, data, filename)
    except schedule.ScheduleRejected as exc:
        errors = [{"row": p.row, "column": p.column, "why": p.why, "message": str(p)} for p in exc.problems]
        last = str(exc).splitlines()[-1]
        if last.startswith("... and"):         # beyond MAX_PROBLEMS the rest are counted, not named
            errors.append({"row": 0, "message": last.lstrip(". ")})
        await in_db(app, audit, who, "schedule_refused", {"file": safe_name, "bytes": len(data),
                                                           "problems": len(errors)})
        return _answer(errors, status=400)
    await in_db(app, audit, who, "schedule_imported", {"file": safe_name, "bytes": len(data),
                                                        "versions": found["versions"],
                                                        "published": found["published"],
                                                        "bundles": found["bundles"]})
    return _answer([], **found)


def _import_and_publish(app: web.Application, data: bytes, filename: str) -> dict:
    """On the database thread: store the dispatch (all or nothing), then send each new version."""
    db, settings = app[DB], app[SETTINGS]
    result = schedule.import_schedule(db, data, filename)
    publisher = _Downlinks(settings.send_downlink) if settings.send_downlink is not None else None
    notes = []
    for day in sorted(result.changed):
        lines = distribute.publish(db, day, publisher=publisher, kit=settings.bundle_kit,
                                   sites=sorted(result.changed[day]), timeout=0)
        # what the page shows by itself (a bundle's line also names the server's folder) is left out
        notes += [line for line in lines if not any(said in line for said in _SHOWN)]
    published, bundles, downloads, silent = set(), set(), [], set()
    reported = {site for (site,) in db.run(lambda cur: cur.all(
        "SELECT DISTINCT site_id FROM devices WHERE site_id IS NOT NULL"))}
    for day, sites in result.changed.items():
        sends = db.run(lambda cur: _sends(cur, day))       # one read per day, not one per site
        for site, version in sites.items():
            if site not in reported:
                silent.add(site)
            for device, channel, what in sends.get((site, version), ()):
                if channel == "mqtt" and what == "tasks":
                    published.add(site)
                elif channel == "usb":
                    bundles.add(site)
                    name = f"{what}-{site}-{day}-v{version}.htb"
                    downloads.append({"site": site, "device": device, "what": what, "name": name,
                                      "url": f"/api/schedule/bundle/{device}/{name}"})
    versions = {day: dict(sites) for day, sites in result.changed.items()}
    return {"version": max((v for sites in versions.values() for v in sites.values()), default=None),
            "versions": versions, "unchanged": result.unchanged, "dropped": result.dropped,
            "rows": result.rows, "tasks": result.tasks, "published": sorted(published), "bundles": sorted(bundles),
            "no_terminal": sorted(silent), "downloads": downloads, "notes": notes}


def _sends(cur: Cursor, day: str) -> dict[tuple[str, int], list[tuple[str, str, str]]]:
    """(site, version) -> its sends (device, channel, what) of the day."""
    out: dict[tuple[str, int], list[tuple[str, str, str]]] = {}
    for site, version, device, channel, what in cur.all(
            "SELECT DISTINCT site_id, version, device, channel, what FROM schedule_sends WHERE day = ? "
            "ORDER BY site_id, version, device, what", (day,)):
        out.setdefault((site, version), []).append((device, channel, what))
    return out


@require_role("admin", renew=False)      # polled by the page after an upload
async def status(request: web.Request) -> web.Response:
    """Published is not applied: per site and device, the version last sent and whether the terminal
    applied it (its reply over MQTT, or the import of the bundle in its journal)."""
    day = request.query.get("day", "")
    if not _DAY.fullmatch(day):
        raise web.HTTPBadRequest(text="give day=YYYY-MM-DD")
    return web.json_response(await in_db(request.app, distribute.status, request.app[DB], day))


@require_role("admin")
async def bundle(request: web.Request) -> web.StreamResponse:
    kit = request.app[SETTINGS].bundle_kit
    device, name = request.match_info["device"], request.match_info["name"]
    if kit is None or not _DEVICE.fullmatch(device) or not _BUNDLE_NAME.fullmatch(name):
        raise web.HTTPNotFound(text="no such bundle")
    path = kit.out / device / name
    if not path.is_file():
        raise web.HTTPNotFound(text="no such bundle")
    await in_db(request.app, request.app[AUTH].audit, request[SESSION].name, "schedule_bundle_downloaded",
                {"device": device, "name": name})
    return web.FileResponse(path, headers={"Content-Type": "application/octet-stream",
                                           "Content-Disposition": f'attachment; filename="{name}"'})
