"""The monitoring centre's login (issue 16): scrypt-hashed passwords, sessions that lapse when idle,
roles refused, CSRF-checked POSTs, and an audit row for each of these — against the real aiohttp app
and a real SQLite database."""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given, settings
from hypothesis import strategies as st

from hq.db import Database
from hq.web.app import Settings, create_app
from hq.web.auth import COOKIE, CSRF_HEADER, Auth, AuthError, check_password, hash_password, require_role
from hq.web.sites import SitesError, parse_sites
from protocol import messages
from protocol.chain import GENESIS_HASH, entry_hash

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"


class Clock:
    def __init__(self):
        self.now = datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def db_path(tmp_path) -> str:
    return str(tmp_path / "hq.db")


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
async def board(db_path, clock):
    """The app with users of every role, a wrong-box alarm and a silent duress alarm committed."""
    db = Database(db_path).create_schema()
    auth = Auth(db, idle=timedelta(minutes=15), clock=clock)
    for role in ("monitor", "vault_manager", "complaint_officer", "admin"):
        auth.add_user(role.replace("_", "-"), role, PASSWORD)
    _alarm(db, "dev-1", 7, {"alarm": "wrong_box", "silent": False, "site_id": "BR-001",
                            "detail": {"box_id": "XB2-01", "destination": "BR-002"}})
    _alarm(db, "dev-1", 5, {"alarm": "duress", "silent": True, "site_id": "BR-001", "detail": {"person_id": "E02"}})
    sent = []
    app = create_app(db_path, Settings(sites={"BR-001": "城东支行"},
                                       send_downlink=lambda *downlink: sent.append(downlink)), auth=auth)
    client = TestClient(TestServer(app))
    await client.start_server()
    client.sent = sent
    yield client
    await client.close()
    db.close()


def _alarm(db: Database, device: str, seq: int, body: dict) -> None:
    ts = "2026-11-30T09:00:00.000Z"
    entry = {"id": messages.entry_id(device, seq), "seq": seq, "ts": ts, "kind": "alarm", "task_id": "T1",
             "body": body, "prev_hash": GENESIS_HASH}
    entry["hash"] = entry_hash(seq, ts, "alarm", "T1", body, GENESIS_HASH)
    assert db.urgent(device, entry)


def audit(db_path: str) -> list[tuple]:
    conn = sqlite3.connect(db_path)
    try:
        return conn.execute("SELECT name, action, detail FROM audit ORDER BY rowid").fetchall()
    finally:
        conn.close()


async def login(client: TestClient, name: str, password: str = PASSWORD) -> dict:
    r = await client.post("/login", data={"name": name, "password": password}, allow_redirects=False)
    assert r.status == 302
    return {"location": r.headers["Location"], "set_cookie": r.headers.getall("Set-Cookie", [])}


async def me(client: TestClient) -> dict:
    r = await client.get("/api/me")
    assert r.status == 200
    return await r.json()


def test_passwords_are_scrypt_hashes_with_their_own_salt():
    a, b = hash_password(PASSWORD), hash_password(PASSWORD)
    assert a.startswith("scrypt$") and PASSWORD not in a and a != b
    assert check_password(PASSWORD, a) and not check_password(PASSWORD + "x", a)
    assert not check_password(PASSWORD, "not a hash")


async def test_a_wrong_password_opens_no_session_and_is_audited(board, db_path):
    out = await login(board, "monitor", "wrong password")
    assert out["location"] == "/login?failed=1"
    assert not any(c.startswith(COOKIE) for c in out["set_cookie"])
    assert (await board.get("/api/alarms")).status == 401
    page = await board.get("/login?failed=1")
    assert 'data-failed="true"' in await page.text() and "用户名或密码错误" in await page.text()
    assert audit(db_path)[-1][:2] == (None, "login_refused")
    assert "wrong password" not in json.dumps(audit(db_path), ensure_ascii=False)
    await login(board, "nobody-here", "wrong password")      # an unknown name: refused the same way
    assert audit(db_path)[-1][:2] == (None, "login_refused")


async def test_the_session_cookie_is_httponly_samesite_strict_and_not_stored(board, db_path):
    out = await login(board, "monitor")
    assert out["location"] == "/board"
    cookie = next(c for c in out["set_cookie"] if c.startswith(COOKIE + "="))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    token = cookie.split(";")[0].split("=", 1)[1]
    conn = sqlite3.connect(db_path)
    stored = [r[0] for r in conn.execute("SELECT token_hash FROM web_sessions")]
    conn.close()
    assert stored and token not in stored          # the database holds a hash: a copy of it opens nothing
    assert (await me(board))["role"] == "monitor"
    assert audit(db_path)[-1][:2] == ("monitor", "login")


async def test_an_idle_session_expires(board, db_path, clock):
    await login(board, "monitor")
    clock.now += timedelta(minutes=14)
    await me(board)                                 # used: the idle timer starts again
    clock.now += timedelta(minutes=14)
    await me(board)
    clock.now += timedelta(minutes=16)
    assert (await board.get("/api/me")).status == 401
    r = await board.get("/board", headers={"Accept": "text/html"}, allow_redirects=False)
    assert r.status == 302 and r.headers["Location"] == "/login"
    assert ("monitor", "session_expired") in [row[:2] for row in audit(db_path)]


async def test_a_role_not_listed_is_refused_and_audited(board, db_path):
    await login(board, "complaint-officer")
    r = await board.get("/api/alarms")
    assert r.status == 403
    assert audit(db_path)[-1][:2] == ("complaint-officer", "refused")
    assert json.loads(audit(db_path)[-1][2])["path"] == "/api/alarms"


async def test_only_a_monitor_sees_a_silent_duress_alarm(board):
    await login(board, "vault-manager")
    kinds = [a["kind"] for a in await (await board.get("/api/alarms")).json()]
    assert kinds == ["wrong_box"]
    r = await board.get("/api/voice", params={"device": "dev-1", "id": "dev-1:5"})
    assert r.status == 404                          # not even its voice
    await login(board, "monitor")
    alarms = await (await board.get("/api/alarms")).json()
    assert sorted(a["kind"] for a in alarms) == ["duress", "wrong_box"]
    wrong_box = next(a for a in alarms if a["kind"] == "wrong_box")
    assert wrong_box["site"] == "城东支行" and wrong_box["kind_text"] == "错箱报警"
    assert wrong_box["speech"].startswith("城东支行，错箱报警，")


async def test_a_post_without_the_session_csrf_token_is_refused(board, db_path):
    await login(board, "monitor")
    body = {"device": "dev-1", "id": "dev-1:7", "note": "已电话联系网点"}
    r = await board.post("/api/ack", json=body)
    assert r.status == 403
    r = await board.post("/api/ack", json=body, headers={CSRF_HEADER: "guessed"})
    assert r.status == 403
    assert [row[1] for row in audit(db_path)[-2:]] == ["csrf_refused", "csrf_refused"]
    assert board.sent == []
    r = await board.post("/api/ack", json=body, headers={CSRF_HEADER: (await me(board))["csrf"]})
    assert r.status == 200


async def test_a_monitor_acknowledges_journaled_audited_and_sent_to_the_terminal(board, db_path):
    await login(board, "monitor")
    csrf = {CSRF_HEADER: (await me(board))["csrf"]}
    r = await board.post("/api/ack", json={"device": "dev-1", "id": "dev-1:7", "note": "已派员处理"}, headers=csrf)
    assert r.status == 200
    [(device, kind, payload)] = board.sent
    assert (device, kind, payload["command"], payload["seq"], payload["entry_id"], payload["note"]) == \
        ("dev-1", "command", "alarm_seen", 7, "dev-1:7", "已派员处理")
    messages.check("command", payload)
    assert payload["site_id"] == "BR-001"
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT name, note, msg_id FROM alarm_acks").fetchall() == [
        ("monitor", "已派员处理", payload["msg_id"])]
    conn.close()
    name, action, detail = audit(db_path)[-1]
    assert (name, action, json.loads(detail)["entry_id"]) == ("monitor", "alarm_acknowledged", "dev-1:7")
    again = await board.post("/api/ack", json={"device": "dev-1", "id": "dev-1:7", "note": "再次"}, headers=csrf)
    assert again.status == 409 and len(board.sent) == 1
    alarms = await (await board.get("/api/alarms")).json()
    assert next(a for a in alarms if a["id"] == "dev-1:7")["ack"]["note"] == "已派员处理"


async def test_the_ack_of_a_silent_alarm_is_journaled_but_never_sent(board, db_path):
    await login(board, "monitor")
    csrf = {CSRF_HEADER: (await me(board))["csrf"]}
    r = await board.post("/api/ack", json={"device": "dev-1", "id": "dev-1:5", "note": "已报警"}, headers=csrf)
    assert r.status == 200 and (await r.json())["ack"]["sent"] is False
    assert board.sent == []
    assert audit(db_path)[-1][1] == "alarm_acknowledged"


async def test_only_a_monitor_may_acknowledge(board, db_path):
    await login(board, "vault-manager")
    csrf = {CSRF_HEADER: (await me(board))["csrf"]}
    r = await board.post("/api/ack", json={"device": "dev-1", "id": "dev-1:7", "note": "看到了"}, headers=csrf)
    assert r.status == 403 and board.sent == []
    assert audit(db_path)[-1][:2] == ("vault-manager", "refused")


async def test_a_cross_site_login_form_is_refused(board):
    r = await board.post("/login", data={"name": "monitor", "password": PASSWORD},
                         headers={"Origin": "https://evil.example"}, allow_redirects=False)
    assert r.status == 403


def test_users_are_checked_when_created(db_path):
    auth = Auth(Database(db_path).create_schema())
    with pytest.raises(AuthError, match="role must be one of"):
        auth.add_user("x", "janitor", PASSWORD)
    with pytest.raises(AuthError, match="password must be"):
        auth.add_user("x", "monitor", "short")
    auth.add_user("x", "monitor", PASSWORD)
    with pytest.raises(AuthError, match="exists already"):
        auth.add_user("x", "admin", PASSWORD)
    with pytest.raises(ValueError, match="unknown role"):
        require_role("janitor")


def test_user_add_takes_the_password_from_stdin_never_argv(db_path):
    r = subprocess.run([sys.executable, "-m", "hq.cli", "user", "add", "wang", "--role", "monitor", "--db", db_path],
                       input=PASSWORD + "\n", capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "user wang added with role monitor" in r.stdout and PASSWORD not in r.stdout + r.stderr
    auth = Auth(Database(db_path))
    assert auth.login("wang", PASSWORD) is not None
    assert ("cli", "user_added") in [row[:2] for row in audit(db_path)]
    bad = subprocess.run([sys.executable, "-m", "hq.cli", "user", "add", "li", "--role", "monitor", "--db", db_path],
                         input="short\n", capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert bad.returncode == 2 and "password must be" in bad.stderr


def test_a_good_sites_file_loads():
    assert parse_sites('{"BR-001": "城东支行"}'.encode()) == {"BR-001": "城东支行"}


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=200),
                 st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=80),
                              lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=70), kids,
                                                                                        max_size=4),
                              max_leaves=10).map(lambda v: json.dumps(v).encode())))
def test_a_sites_file_is_loaded_whole_or_refused_with_a_reason(raw):
    try:
        sites = parse_sites(raw)
    except SitesError as exc:
        assert str(exc).startswith("sites file")
        return
    assert all(isinstance(k, str) and isinstance(v, str) and 0 < len(v) <= 64 for k, v in sites.items())


async def test_the_devices_board_flags_a_terminal_quiet_for_too_long(db_path):
    from hq.web.board import devices
    db = Database(db_path).create_schema()
    db.status("dev-1", "BR-001", "online")
    db.health("dev-1", {"v": 1, "device": "dev-1", "ts": datetime.now(timezone.utc).isoformat(),
                        "journal": {"last_seq": 12, "acked_seq": 9, "backlog": 3},
                        "disk": {"free_bytes": 5 * 2 ** 30, "total_bytes": 16 * 2 ** 30},
                        "drivers": {"door_reader": {"state": "connected"}, "printer": {"state": "missing"},
                                    "complaint_sealing": {"state": "missing"}, "x_new": {"state": "degraded"}}})
    db.status("dev-2", "BR-002", "offline")
    sites = {"BR-001": "城东支行"}
    now = datetime.now(timezone.utc)
    [one, two] = devices(db, sites, "zh-CN", timedelta(minutes=5), now=now)
    assert (one["device"], one["site"], one["state_text"], one["backlog"]) == ("dev-1", "城东支行", "在线", 12)
    # drivers are named as the terminal's screen names them; a name this version does not know is shown as sent
    assert one["faults"] == ["complaint_sealing", "printer", "x_new"]
    assert one["drivers_text"] == "投诉加密密钥、打印机、x_new异常"
    assert one["disk_free"] == 5 * 2 ** 30 and not one["quiet"]
    assert two["state_text"] == "离线" and two["drivers_text"] == ""        # no health report from it yet
    [one, _] = devices(db, sites, "en", timedelta(minutes=5), now=now + timedelta(minutes=6))
    assert one["quiet"] and one["quiet_text"] == "quiet for more than 5.0 min"
    assert one["drivers_text"] == "fault: complaint sealing key, printer, x_new"
    db.close()


async def test_the_page_is_chinese_by_default_and_english_on_request(board):
    await login(board, "admin")
    zh = await (await board.get("/board")).text()
    assert "实时报警" in zh and "Live alarms" not in zh
    en = await (await board.get("/board", params={"lang": "en"})).text()
    assert "Live alarms" in en
    assert (await me(board))["text"]["alarms_title"] == "Live alarms"      # the choice is kept in a cookie


def test_both_catalogs_have_the_same_keys():
    from hq.web.i18n import catalog
    assert set(catalog("zh-CN")) == set(catalog("en"))


async def test_what_the_page_polls_by_itself_keeps_no_idle_session_alive(board, clock):
    await login(board, "monitor")
    for _ in range(4):                              # the devices board polls: 20 minutes of it
        clock.now += timedelta(minutes=5)
        r = await board.get("/api/devices")
    assert r.status == 401                          # nobody was there: the session lapsed on its own
    assert (await board.get("/api/me")).status == 401


async def test_the_address_alone_takes_each_role_to_its_own_page(board):
    """A complaint officer who typed the bare address was sent to the board, which refuses them."""
    r = await board.get("/", allow_redirects=False)
    assert (r.status, r.headers["Location"]) == (302, "/login")
    for name, landing in (("complaint-officer", "/complaints"), ("monitor", "/board"), ("admin", "/board")):
        assert (await login(board, name))["location"] == landing
        r = await board.get("/", allow_redirects=False)
        assert (r.status, r.headers["Location"]) == (302, landing), name
        assert (await board.get(landing)).status == 200, name
        board.session.cookie_jar.clear()
