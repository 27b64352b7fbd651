"""The route board's live feed (hq/web/routes.py) on the real page server (`WebBoard`, its own thread and loop)
and real SQLite, fed as `serve` feeds it: each batch's committed entries handed to `WebBoard.entries`. A burst
of entries is one route query and push, then one more for what came meanwhile — not one per entry — and the
last push holds the final state; an officer's confirmation is announced on the streams of the users who
turned that on, and nobody else's, while a route skip is spoken to everyone (an alarm), once."""
from __future__ import annotations

import json
import queue
import socket
import sys
import threading
import time
import urllib.parse
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from agent.journal import Journal
from hq.db import Database
from hq.schedule import import_schedule, import_sites
from hq.web.app import Settings, WebBoard
from hq.web.auth import CSRF_HEADER, Auth
from tests.conftest import free_port

sys.path.insert(0, str(Path(__file__).parent))
from route_day import SITES, as_uplink, dispatch, end_stop, start_stop  # noqa: E402

SHANGHAI = ZoneInfo("Asia/Shanghai")
PASSWORD = "route board password"


class Events:
    """One user's event stream, read on a thread: (event, data) pairs in a queue."""

    def __init__(self, port: int, cookie: str):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.sock.sendall(f"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\n\r\n".encode())
        self.lines = self.sock.makefile("rb")
        assert b" 200 " in self.lines.readline()
        self.got: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        name = None
        try:
            for raw in self.lines:
                line = raw.decode().strip()
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: ") and name:
                    self.got.put((name, json.loads(line[6:])))
                    name = None
        except (OSError, ValueError):
            pass

    def collect(self, seconds: float) -> list[tuple[str, dict]]:
        out, deadline = [], time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                out.append(self.got.get(timeout=left))
            except queue.Empty:
                break
        return out

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)        # wakes the reader; the server sees the board go
        self.sock.close()


def login(base: str, name: str) -> tuple[str, str]:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None
    opener = urllib.request.build_opener(NoRedirect)
    try:
        opener.open(urllib.request.Request(base + "/login", urllib.parse.urlencode(
            {"name": name, "password": PASSWORD}).encode()), timeout=30)
    except urllib.error.HTTPError as exc:
        cookie = exc.headers["Set-Cookie"].split(";")[0]
    with urllib.request.urlopen(urllib.request.Request(base + "/api/me", headers={"Cookie": cookie}), timeout=30) as r:
        return cookie, json.load(r)["csrf"]


@pytest.fixture
def office(tmp_path):
    db_url = str(tmp_path / "hq.db")
    db = Database(db_url).create_schema()
    auth = Auth(db)
    for name, role in (("wang", "monitor"), ("li", "monitor"), ("zhao", "vault_manager")):
        auth.add_user(name, role, PASSWORD)
    import_sites(db, SITES.encode())
    day = datetime.now(SHANGHAI).date()
    import_schedule(db, dispatch(day, [("00:00", "23:56"), ("00:01", "23:57"), ("00:02", "23:58"),
                                       ("00:03", "23:59")]), "day.csv")
    port = free_port()
    web = WebBoard(db_url, "127.0.0.1", port, Settings(sites={})).start()     # names from the schedule's sites
    yield web, db, day, f"http://127.0.0.1:{port}", tmp_path
    web.stop()
    db.close()


def test_a_burst_of_entries_is_two_route_pushes_and_the_last_holds_the_final_state(office):
    web, db, day, base, folder = office
    manager = Events(web.port, login(base, "zhao")[0])
    journal = Journal(folder / "dev-001.db")
    db.status("dev-001", "BR-001", "online")
    try:
        at = datetime.now(SHANGHAI) - timedelta(minutes=5)
        start_stop(journal, day, "BR-001", at)
        end_stop(journal, day, "BR-001", at, at + timedelta(minutes=4))
        entries = as_uplink("dev-001", list(journal.entries()))
        for i, entry in enumerate(entries):            # one batch an entry, as a slow link delivers them
            web.entries("dev-001", db.apply("dev-001", [entry]).committed)
        routes = [data for name, data in manager.collect(4.0) if name == "route"]
        assert 1 <= len(routes) <= 2, f"{len(entries)} entries made {len(routes)} route pushes"
        last = routes[-1]
        assert last["route"] == "R07" and last["day"] == day.isoformat()
        assert [s["state"] for s in last["stops"]] == ["skipped", "done", "next", "pending"]   # BR-001 before the vault
        assert last["skipped_names"] == ["中心金库"]
    finally:
        manager.close()
        journal.close()


def test_an_officer_s_confirmation_is_announced_only_to_whoever_turned_it_on(office):
    web, db, day, base, folder = office
    cookie, csrf = login(base, "wang")
    request = urllib.request.Request(base + "/api/voice/settings", json.dumps(
        {"confirmation": True, "completion": False}).encode(), {"Cookie": cookie, CSRF_HEADER: csrf,
                                                                 "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as r:
        assert json.load(r) == {"confirmation": True, "completion": False}
    wang, li = Events(web.port, cookie), Events(web.port, login(base, "li")[0])
    journal = Journal(folder / "dev-002.db")
    db.status("dev-002", "BR-002", "online")
    try:
        at = datetime.now(SHANGHAI)
        start_stop(journal, day, "BR-002", at)
        end_stop(journal, day, "BR-002", at, at + timedelta(minutes=3))
        web.entries("dev-002", db.apply("dev-002", as_uplink("dev-002", list(journal.entries()))).committed)
        heard = [data for name, data in wang.collect(3.0) if name == "announce"]
        assert [(a["what"], a["site"]) for a in heard if a["what"] != "route_skip"] == [
            ("confirmation", "城西支行")]                                             # the completion is off
        assert [a for a in heard if a["what"] == "confirmation"][0]["speech"].startswith("城西支行，营业专员认证成功，")
        # li chose nothing: only the alarm of this route, whose first two stops had no handover, is spoken to her
        assert sorted(data["site"] for name, data in li.collect(1.0) if name == "announce") == ["中心金库", "城东支行"]
        assert sorted(a["site"] for a in heard if a["what"] == "route_skip") == ["中心金库", "城东支行"]
        for a in heard:
            with urllib.request.urlopen(urllib.request.Request(base + a["voice"], headers={"Cookie": cookie}),
                                        timeout=60) as r:
                assert r.headers["Content-Type"] == "audio/wav" and r.read(4) == b"RIFF"
    finally:
        wang.close()
        li.close()
        journal.close()
