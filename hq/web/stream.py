"""The open boards' event streams (GET /api/events, hq/web/app.py): what a page module pushes on them
(`put`) without importing the app that serves them."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiohttp import web


@dataclass(eq=False)      # one per open board, kept in a set by identity
class Stream:
    role: str
    lang: str
    queue: asyncio.Queue
    name: str = ""        # the user: per-user settings (voice announcements) pick their streams by it


STREAMS = web.AppKey("streams", set)


def put(stream: Stream, item) -> None:
    try:
        stream.queue.put_nowait(item)
    except asyncio.QueueFull:       # a browser that stopped reading: its stream ends; it reloads the list when back
        end(stream)


def end(stream: Stream) -> None:
    while not stream.queue.empty():
        stream.queue.get_nowait()
    stream.queue.put_nowait(None)
