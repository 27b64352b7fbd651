"""Outside bytes at the monitoring page (issue 16): whatever a browser (or anyone on the network) sends to
the login form, the acknowledgement and the voice endpoint, the answer is a clear 4xx — never a 500 — and
nothing is recorded unless the request was good. The real app on a real port (`WebBoard`), real SQLite."""
from __future__ import annotations

import json
import sqlite3
import urllib.error
import urllib.parse
import urllib.request

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hq.db import Database
from hq.web.app import WebBoard
from hq.web.auth import CSRF_HEADER, Auth
from protocol.chain import GENESIS_HASH, entry_hash
from tests.conftest import free_port

PASSWORD = "fuzzing password"
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    db_url = str(tmp_path_factory.mktemp("hqfuzz") / "hq.db")
    db = Database(db_url).create_schema()
    Auth(db).add_user("monitor", "monitor", PASSWORD)
    ts = "2026-11-30T09:00:00.000Z"
    body = {"alarm": "wrong_box", "silent": False, "site_id": "BR-001", "detail": {}}
    assert db.urgent("dev-1", {"id": "dev-1:1", "seq": 1, "ts": ts, "kind": "alarm", "task_id": None, "body": body,
                               "prev_hash": GENESIS_HASH,
                               "hash": entry_hash(1, ts, "alarm", None, body, GENESIS_HASH)})
    db.close()
    port = free_port()
    web = WebBoard(db_url, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}"
    opener = urllib.request.build_opener(NoRedirect)
    try:
        opener.open(urllib.request.Request(base + "/login", urllib.parse.urlencode(
            {"name": "monitor", "password": PASSWORD}).encode()), timeout=10)
    except urllib.error.HTTPError as exc:
        cookie = exc.headers["Set-Cookie"].split(";")[0]
    with urllib.request.urlopen(urllib.request.Request(base + "/api/me", headers={"Cookie": cookie}), timeout=10) as r:
        csrf = json.load(r)["csrf"]
    yield base, cookie, csrf, db_url, opener
    web.stop()


def call(opener, url: str, data: bytes | None = None, headers: dict | None = None) -> int:
    try:
        with opener.open(urllib.request.Request(url, data=data, headers=headers or {}), timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def acks(db_url: str) -> int:
    conn = sqlite3.connect(db_url)
    try:
        return conn.execute("SELECT count(*) FROM alarm_acks").fetchone()[0]
    finally:
        conn.close()


@FUZZ
@given(st.binary(max_size=300) | st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=300),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.sampled_from(["device", "id", "note", "x"]), kids,
                                                               max_size=4), max_leaves=8).map(
    lambda v: json.dumps(v).encode()))
def test_any_acknowledgement_body_is_answered_4xx_or_recorded(page, raw):
    base, cookie, csrf, db_url, opener = page
    before = acks(db_url)
    status = call(opener, base + "/api/ack", raw, {"Cookie": cookie, CSRF_HEADER: csrf,
                                                    "Content-Type": "application/json"})
    assert status in (200, 400, 404, 409), status
    assert acks(db_url) == before + (status == 200)


@FUZZ
@given(st.text(max_size=200), st.text(max_size=200))
def test_any_login_form_is_refused_or_let_in_never_an_error(page, name, password):
    base, _, _, _, opener = page
    status = call(opener, base + "/login", urllib.parse.urlencode({"name": name, "password": password}).encode())
    assert status == 302


@FUZZ
@given(st.text(max_size=100), st.text(max_size=100))
def test_any_voice_request_is_a_wav_or_not_found(page, device, entry_id):
    base, cookie, _, _, opener = page
    query = urllib.parse.urlencode({"device": device, "id": entry_id})
    assert call(opener, f"{base}/api/voice?{query}", headers={"Cookie": cookie}) == 404
