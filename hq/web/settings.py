"""What `handover-hq serve` tells the monitoring centre's page (hq.web.app.create_app keeps it at
app[SETTINGS]); a module of its own so every page module reads it without importing the app."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Callable

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from hq.web.auth import IDLE_TIMEOUT


@dataclass
class Settings:
    sites: dict[str, str] = field(default_factory=dict)
    quiet_after: timedelta = timedelta(minutes=5)
    # (device, kind, payload) -> None: publish a downlink to a terminal (hq.serve.Server.send_downlink)
    send_downlink: Callable[[str, str, dict], None] | None = None
    secure_cookie: bool = False     # set behind TLS (a reverse proxy): the cookie is then never sent in clear
    idle: timedelta = IDLE_TIMEOUT  # a session nobody used for this long lapses
    records_key: X25519PrivateKey | None = None     # opens face snapshots for those allowed (hq/records.py)


SETTINGS = web.AppKey("settings", Settings)
