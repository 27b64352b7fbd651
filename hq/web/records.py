"""The records page (issue 16): search handovers by date, site, truck, person and box; open one to see its
report, timeline, alarms, dispositions and the door camera's faces beside the enrolled photos; export it;
verify its chain. The data work is hq/records.py; this is its HTTP face.

GET /records (the page), GET /api/records?date=&site=&truck=&person=&box=, GET /api/records/{device}/{handover},
GET /api/records/{device}/{handover}/export (a JSON file to keep), GET /api/snapshot/{device}/{hash} (a face,
opened for monitors and admins only, each view audited), GET /api/person-photo/{person_id} (enrolled photo).
"""
from __future__ import annotations

import json

from aiohttp import web

from hq import records
from hq.web import i18n
from hq.web.auth import AUTH, SESSION, Session, in_db, require_role
from hq.web.page import DB, SETTINGS, Settings, lang, page

ROLES = ("monitor", "vault_manager", "admin")
FACE_ROLES = ("monitor", "admin")        # faces are personal data: the vault manager's live view needs none
_NO_STORE = {"Cache-Control": "private, no-store"}


def add_routes(app: web.Application) -> None:
    app.router.add_get("/records", records_page)
    app.router.add_get("/api/records", search)
    app.router.add_get("/api/records/{device}/{handover}", detail)
    app.router.add_get("/api/records/{device}/{handover}/export", export)
    app.router.add_get("/api/snapshot/{device}/{hash}", snapshot)
    app.router.add_get("/api/person-photo/{person_id}", person_photo)


def _settings(request: web.Request) -> Settings:
    return request.app[SETTINGS]


def _db(request: web.Request):
    return request.app[DB]


@require_role(*ROLES)
async def records_page(request: web.Request) -> web.Response:
    """The page; its script words itself from the catalog /api/me gives (zh-CN unless chosen)."""
    return page("records.html", lang(request))


@require_role(*ROLES)
async def search(request: web.Request) -> web.Response:
    try:
        query = records.Query.parse(request.query)
    except records.RecordsError as exc:
        raise web.HTTPBadRequest(text=str(exc))
    return web.json_response(await in_db(request.app, records.search, _db(request), query,
                                         _settings(request).sites))


@require_role(*ROLES)
async def detail(request: web.Request) -> web.Response:
    s: Session = request[SESSION]
    device, handover = request.match_info["device"], request.match_info["handover"]
    try:
        found = await in_db(request.app, records.detail, _db(request), device, handover, s.role,
                            _settings(request).sites)
    except records.RecordsError as exc:
        raise web.HTTPNotFound(text=str(exc))
    found["faces_shown"] = s.role in FACE_ROLES
    return web.json_response(found, headers=_NO_STORE)


@require_role(*ROLES)
async def export(request: web.Request) -> web.Response:
    s: Session = request[SESSION]
    device, handover = request.match_info["device"], request.match_info["handover"]
    words_lang = lang(request)

    def work() -> dict:
        kept = records.export(_db(request), device, handover, s.role, s.name,
                              lambda shown: report_text(shown, words_lang), _settings(request).sites)
        request.app[AUTH].audit(s.name, "record_exported", {"device": device, "handover": handover})
        return kept
    try:
        kept = await in_db(request.app, work)
    except records.RecordsError as exc:
        raise web.HTTPNotFound(text=str(exc))
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"handover-{device}-{handover}")[:120]
    return web.Response(body=json.dumps(kept, ensure_ascii=False, indent=1).encode("utf-8"),
                        content_type="application/json",
                        headers={"Content-Disposition": f'attachment; filename="{name}.json"', **_NO_STORE})


@require_role(*FACE_ROLES)
async def snapshot(request: web.Request) -> web.Response:
    s: Session = request[SESSION]
    key = _settings(request).records_key
    if key is None:
        raise web.HTTPServiceUnavailable(text="head office was started without --records-key: faces cannot be opened")
    device, digest = request.match_info["device"], request.match_info["hash"]

    def work() -> bytes:
        jpeg = records.snapshot(_db(request), key, device, digest)
        request.app[AUTH].audit(s.name, "snapshot_viewed", {"device": device, "hash": digest})
        return jpeg
    try:
        jpeg = await in_db(request.app, work)
    except records.RecordsError as exc:
        raise web.HTTPNotFound(text=str(exc))
    return web.Response(body=jpeg, content_type="image/jpeg", headers=_NO_STORE)


@require_role(*ROLES)
async def person_photo(request: web.Request) -> web.Response:
    photo = await in_db(request.app, records.enrolled_photo, _db(request), request.match_info["person_id"])
    if photo is None:
        raise web.HTTPNotFound(text="no enrolled photo")
    kind = "image/png" if photo.startswith(b"\x89PNG") else "image/jpeg"
    return web.Response(body=photo, content_type=kind, headers=_NO_STORE)


def report_text(shown: dict, language: str) -> list[str]:
    """The report as lines a reviewer reads, in the page's language (the terminal prints its own copy)."""
    r, people = shown["report"], shown["people"]
    words = i18n.catalog(language)
    T = lambda key, **kw: words.get(f"records_{key}", key).format(**kw)  # noqa: E731  (an unknown word: as sent)
    name = lambda pid: f"{people.get(pid, {}).get('name') or ''} ({pid})".strip()  # noqa: E731
    lines = [T("line_task", task=r.get("task_id", "")), T("line_site", site=shown["site"]),
             T("line_plate", plate=r.get("plate", "")),
             T("line_times", arrived=r.get("arrived_at") or "—", ended=r.get("ended_at") or "—"),
             T("line_outcome", outcome=T(f"outcome_{r.get('outcome') or 'none'}"))]
    for p in r.get("people") or ():
        lines.append(T("line_person", role=T(f"role_{p.get('role')}"), name=name(p.get("person_id")),
                       verified=p.get("verified_at") or "—", marked=p.get("marked_at") or "—"))
    lines.append(T("line_boxes", planned=len(r.get("boxes_planned") or ()), counted=len(r.get("boxes_counted") or ()),
                   boxes=", ".join(r.get("boxes_counted") or ())))
    for x in r.get("exceptions") or ():
        lines.append(T("line_exception", at=x.get("at", ""), kind=i18n.alarm_kind(x.get("kind"), language)))
    for d in r.get("dispositions") or ():
        lines.append(T("line_disposition", at=d.get("at", ""), officer=name(d.get("officer_id")),
                       code=d.get("code", ""), resolution=d.get("resolution", ""), text=d.get("text") or ""))
    chain = shown["chain"]
    lines.append(T("chain_ok", start=chain["from"], end=chain["to"]) if chain["ok"]
                 else T("chain_broken", seq=chain["seq"], problem=chain["problem"]))
    return lines
