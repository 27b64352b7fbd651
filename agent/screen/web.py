"""What the screen's request handlers share (server.py and kiosk.py): the app's terminal, the 400 error
and how a request's JSON body (checked before any handler sees it) and language are read. Its own
module so neither handler module imports the other's."""
from __future__ import annotations

import json
import math

from aiohttp import web

from agent.i18n import LANGUAGES
from agent.terminal import Terminal

TERMINAL = web.AppKey("terminal", Terminal)


class BadRequest(web.HTTPBadRequest):
    def __init__(self, message: str):
        super().__init__(text=json.dumps({"error": message}, ensure_ascii=False), content_type="application/json")


MAX_BODY_DEPTH = 8               # the page's bodies are flat: objects of texts, lists of ids


def parse_body(raw: bytes) -> dict:
    """A request body from the page: a JSON object of storable text, nested at most MAX_BODY_DEPTH deep.
    JSON lets a body carry a lone surrogate ("\\ud800") that sealing and the journal cannot encode, and
    nesting that the parser meets with RecursionError: each is a BadRequest naming it, before any handler."""
    try:
        body = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise BadRequest("body is not UTF-8 text") from None
    except ValueError:
        raise BadRequest("body is not valid JSON") from None
    except RecursionError:
        raise BadRequest(f"body nests deeper than {MAX_BODY_DEPTH} levels") from None
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    stack = [(body, 1, "body")]
    while stack:
        value, depth, where = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > MAX_BODY_DEPTH:
                raise BadRequest(f"body nests deeper than {MAX_BODY_DEPTH} levels")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, child in items:
                name = key if isinstance(key, str) else where
                if isinstance(key, str):
                    _encodable(key, f"a field name in {where}")
                stack.append((child, depth + 1, name))
        elif isinstance(value, str):
            _encodable(value, where)
        elif isinstance(value, float) and not math.isfinite(value):
            raise BadRequest(f"{where} is a number out of range")
    return body


def _no_constant(name: str):
    raise BadRequest(f"body holds {name}, which is not a JSON number")


def _encodable(text: str, where: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(f"{where} holds an unpaired surrogate, not text") from None


async def _json(request: web.Request) -> dict:
    return parse_body(await request.read())


def _lang(request: web.Request) -> str:
    lang = request.query.get("lang") or request.app[TERMINAL].lang
    if lang not in LANGUAGES:
        raise BadRequest(f"lang must be one of {', '.join(LANGUAGES)}")
    return lang
