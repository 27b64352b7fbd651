"""What the screen's request handlers share (server.py and kiosk.py): the app's terminal, the 400 error
and how a request's JSON body and language are read. Its own module so neither handler module imports
the other's."""
from __future__ import annotations

import json

from aiohttp import web

from agent.i18n import LANGUAGES
from agent.terminal import Terminal

TERMINAL = web.AppKey("terminal", Terminal)


class BadRequest(web.HTTPBadRequest):
    def __init__(self, message: str):
        super().__init__(text=json.dumps({"error": message}, ensure_ascii=False), content_type="application/json")


async def _json(request: web.Request) -> dict:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadRequest("body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    return body


def _lang(request: web.Request) -> str:
    lang = request.query.get("lang") or request.app[TERMINAL].lang
    if lang not in LANGUAGES:
        raise BadRequest(f"lang must be one of {', '.join(LANGUAGES)}")
    return lang
