"""What every module of the monitoring centre's page shares, apart from the app that wires them
(hq/web/app.py imports the page modules; they import this, so nothing imports app.py back): the app's
settings and database keys, and the static page filled with the catalog's strings."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from aiohttp import web

from hq.db import Database
from hq.web import i18n
from hq.web.auth import IDLE_TIMEOUT

STATIC = Path(__file__).parent / "static"


@dataclass
class Settings:
    sites: dict[str, str] = field(default_factory=dict)
    quiet_after: timedelta = timedelta(minutes=5)
    # (device, kind, payload) -> None: publish a downlink to a terminal (hq.serve.Server.send_downlink)
    send_downlink: Callable[[str, str, dict], None] | None = None
    secure_cookie: bool = False     # set behind TLS (a reverse proxy): the cookie is then never sent in clear
    idle: timedelta = IDLE_TIMEOUT  # a session nobody used for this long lapses
    complaint_key: Any = None       # X25519PrivateKey: opens complaint details for complaint officers only
    bundle_kit: Any = None          # hq.distribute.BundleKit: USB bundles of the schedule for offline sites
    records_key: Any = None         # X25519PrivateKey: opens door faces for monitors and admins (hq/records.py)


SETTINGS = web.AppKey("settings", Settings)
DB = web.AppKey("db", Database)


def lang(request: web.Request) -> str:
    return i18n.pick(request.query.get("lang") or request.cookies.get("hq_lang"))


def page(name: str, lang: str) -> web.Response:
    """A static page with the catalog's strings filled in (`{{key}}`); its script gets the catalog from /api/me."""
    html = (STATIC / name).read_text("utf-8")
    for key, text in i18n.catalog(lang).items():
        html = html.replace("{{" + key + "}}", escape(text))
    html = html.replace("{{lang}}", lang).replace("{{lang_next}}", "en" if lang == "zh-CN" else "zh-CN")
    response = web.Response(text=html, content_type="text/html")
    response.set_cookie("hq_lang", lang, httponly=True, samesite="Strict", path="/")
    return response


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def same_origin(request: web.Request) -> bool:
    """A form posted from another site (login CSRF) carries its own Origin: refused."""
    origin = request.headers.get("Origin")
    return origin is None or urlsplit(origin).netloc == request.host
