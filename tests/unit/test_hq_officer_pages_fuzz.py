"""Outside bytes at the schedule upload and the complaint officers' routes (issue 16), against the real app
on a real port (`WebBoard`) and real SQLite: any upload — random bytes, any file name, no file, a body
over the cap — gets a 4xx naming what is wrong and imports nothing (audited as refused); any step body or
report query is a 4xx and sends nothing; every complaint route is 403 to monitors, vault managers and
admins (complaint details are personal data), the schedule routes 403 to anyone but an admin."""
from __future__ import annotations

import json
import sqlite3
import urllib.error
import urllib.parse
import urllib.request

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hq.db import Database
from hq.schedule import MAX_FILE_SIZE, import_sites
from hq.web.app import WebBoard
from hq.web.auth import CSRF_HEADER, Auth
from hq.web.page import Settings
from tests.conftest import free_port
from tests.unit.test_schedule_import import GOOD, SITES, xlsx_of

PASSWORD = "fuzzing password"
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
ROLES = ("monitor", "vault_manager", "admin", "complaint_officer")
REF, LATE = "BR-001-TS20261201-001", "BR-001-TS20200101-001"
BOUNDARY = "fuzzboundary7MA4YWxkTrZu0gW"
DEADLINES = {"acknowledge_by": "2099-12-01", "reply_by": "2099-12-02", "outer_limit": "2099-12-31"}   # never overdue


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def call(opener, url: str, data: bytes | None = None, headers: dict | None = None) -> tuple[int, bytes]:
    try:
        with opener.open(urllib.request.Request(url, data=data, headers=headers or {}), timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def seed(db: Database) -> None:
    """The users of every role, the schedule's sites, and two complaints (one long overdue) as if synced."""
    for role in ROLES:
        Auth(db).add_user(role, role, PASSWORD)
    import_sites(db, SITES.encode())
    late = {k: "2020-01-02" for k in DEADLINES}         # long past its reply date, and still not replied
    for ref, received, status, deadlines in ((REF, "2026-12-01T06:26:00+08:00", "registered", DEADLINES),
                                             (LATE, "2020-01-01T10:00:00+08:00", "investigating", late)):
        db.run(lambda cur: cur.execute(
            "INSERT INTO hq_complaints (device, ref, site_id, received_at, channel, category, status, anonymous, "
            "deadlines, escalations, updated, sealed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ("dev-1", ref, "BR-001", received, "walk_in", "irregular_fees", status, True, json.dumps(deadlines), "[]",
             received, None)))


def log_in(base: str, opener) -> dict[str, dict]:
    """Each role's session headers (cookie and CSRF token)."""
    sessions = {}
    for role in ROLES:
        try:
            opener.open(urllib.request.Request(base + "/login", urllib.parse.urlencode(
                {"name": role, "password": PASSWORD}).encode()), timeout=10)
        except urllib.error.HTTPError as exc:
            cookie = exc.headers["Set-Cookie"].split(";")[0]
        me = "/api/complaints/me" if role == "complaint_officer" else "/api/me"
        _, body = call(opener, base + me, headers={"Cookie": cookie})
        sessions[role] = {"Cookie": cookie, CSRF_HEADER: json.loads(body)["csrf"]}
    return sessions


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    db_url = str(tmp_path_factory.mktemp("hqofficer") / "hq.db")
    db = Database(db_url).create_schema()
    seed(db)
    db.close()
    port = free_port()
    web = WebBoard(db_url, "127.0.0.1", port, Settings(complaint_key=X25519PrivateKey.generate())).start()
    base = f"http://127.0.0.1:{port}"
    opener = urllib.request.build_opener(NoRedirect)
    yield base, opener, log_in(base, opener), db_url
    web.stop()


def rows(db_url: str, sql: str) -> list:
    conn = sqlite3.connect(db_url)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def multipart(field: str, filename: str | None, data: bytes) -> bytes:
    disposition = f'form-data; name="{field}"' + (f'; filename="{filename}"' if filename is not None else "")
    return (f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\nContent-Type: application/octet-stream\r\n\r\n"
            .encode() + data + f"\r\n--{BOUNDARY}--\r\n".encode())


def upload(site, body: bytes, content_type: str = f"multipart/form-data; boundary={BOUNDARY}") -> tuple[int, dict]:
    base, opener, sessions, _ = site
    status, raw = call(opener, base + "/api/schedule", body, {**sessions["admin"], "Content-Type": content_type})
    return status, json.loads(raw)


def imported(db_url: str) -> int:
    return rows(db_url, "SELECT count(*) FROM schedule_versions")[0][0] + \
        rows(db_url, "SELECT count(*) FROM schedule_tasks")[0][0]


def refusals(db_url: str) -> int:
    return rows(db_url, "SELECT count(*) FROM audit WHERE action = 'schedule_refused'")[0][0]


@FUZZ
@given(st.binary(max_size=2000) | st.text(max_size=500).map(str.encode),
       st.sampled_from(["d.csv", "d.xlsx", "d.txt", "d.xls", "d.exe", "", "排班.csv", "x.xlsm"]),
       st.sampled_from(["file", "upload"]))
def test_any_upload_is_refused_with_its_problems_named_and_nothing_imported(site, data, filename, field):
    db_url = site[3]
    before, stored = refusals(db_url), imported(db_url)
    status, answer = upload(site, multipart(field, filename, data))
    assert status == 400, (status, answer)
    assert answer["errors"] and all(isinstance(e["row"], int) and e["message"] for e in answer["errors"])
    assert answer["version"] is None and answer["published"] == answer["bundles"] == []
    assert imported(db_url) == stored
    assert refusals(db_url) == before + 1, "every upload is audited"


def test_an_upload_over_the_cap_is_refused_saying_the_limit(site):
    stored = imported(site[3])
    status, answer = upload(site, multipart("file", "big.csv", b"date,route\n" + b"x" * (MAX_FILE_SIZE + 10)))
    assert status == 413 and "20 MiB" in answer["errors"][0]["message"]
    assert imported(site[3]) == stored


def test_a_good_xlsx_is_stored_once_and_says_which_sites_no_terminal_reported(site):
    db_url = site[3]
    status, answer = upload(site, multipart("file", "排班.xlsx", xlsx_of(GOOD)))
    assert status == 200 and answer["errors"] == [], answer
    assert answer["versions"] == {"2026-11-30": {"BR-001": 1, "BR-002": 1, "VLT-01": 1}} and answer["version"] == 1
    assert answer["no_terminal"] == ["BR-001", "BR-002", "VLT-01"] and answer["published"] == answer["bundles"] == []
    assert (answer["rows"], answer["tasks"]) == (4, 2)
    again = upload(site, multipart("file", "排班.xlsx", xlsx_of(GOOD)))[1]
    assert again["versions"] == {} and again["unchanged"] == {"2026-11-30": ["BR-001", "BR-002", "VLT-01"]}
    audit = rows(db_url, "SELECT name, detail FROM audit WHERE action = 'schedule_imported'")
    assert [json.loads(d)["file"] for _, d in audit][-2:] == ["排班.xlsx", "排班.xlsx"] and audit[-1][0] == "admin"


@pytest.mark.parametrize("body, content_type", [
    (b"date,route\n", "text/csv"), (b"", f"multipart/form-data; boundary={BOUNDARY}"),
    (b"--nope\r\n\r\n", "multipart/form-data; boundary=nope")])
def test_a_body_that_is_not_a_multipart_file_is_named(site, body, content_type):
    status, answer = upload(site, body, content_type)
    assert status == 400 and ("multipart" in answer["errors"][0]["message"]
                              or "no field 'file'" in answer["errors"][0]["message"])


def sent(db_url: str) -> int:
    return rows(db_url, "SELECT count(*) FROM hq_complaint_sent")[0][0]


@FUZZ
@given(st.binary(max_size=300) | st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=50),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(
        st.sampled_from(["action", "params", "note", "to", "reply", "x"]), kids, max_size=4), max_leaves=10).map(
    lambda v: json.dumps(v).encode()),
       st.sampled_from([REF, "no-such-ref", "%00", "x" * 80]))
def test_any_step_body_is_refused_and_nothing_is_sent(site, raw, ref):
    base, opener, sessions, db_url = site
    status, text = call(opener, f"{base}/api/complaints/{urllib.parse.quote(ref)}/act", raw,
                        {**sessions["complaint_officer"], "Content-Type": "application/json"})
    # a well-formed step still finds no broker here (503): head office records a step only when it can send it
    assert status in (400, 404, 503), (status, text)
    assert text.strip()
    assert sent(db_url) == 0


@FUZZ
@given(st.dictionaries(st.sampled_from(["year", "half", "download"]), st.text(max_size=12), max_size=3))
def test_any_report_query_is_a_report_or_a_named_refusal(site, query):
    base, opener, sessions, _ = site
    status, body = call(opener, f"{base}/api/complaints/report?{urllib.parse.urlencode(query)}",
                        headers=sessions["complaint_officer"])
    assert status in (200, 400), status
    if status == 200:
        assert {"received", "resolved", "by_category", "main_issues", "causes_and_remedies", "due"} <= set(json.loads(body))
    else:
        assert b"year=YYYY" in body


def test_complaint_routes_are_for_complaint_officers_only_and_each_refusal_is_audited(site):
    base, opener, sessions, db_url = site
    gets = ["/complaints", "/api/complaints", f"/api/complaints/{REF}", "/api/complaints/report?year=2027&half=1",
            "/api/complaints/me"]
    for role in ("monitor", "vault_manager", "admin"):
        before = rows(db_url, f"SELECT count(*) FROM audit WHERE action = 'refused' AND name = '{role}'")[0][0]
        for path in gets:
            status, body = call(opener, base + path, headers={**sessions[role], "Accept": "text/html"})
            assert status == 403 and REF.encode() not in body, (role, path)
        status, _ = call(opener, f"{base}/api/complaints/{REF}/act", b'{"action": "investigate"}',
                         {**sessions[role], "Content-Type": "application/json"})
        assert status == 403
        after = rows(db_url, f"SELECT count(*) FROM audit WHERE action = 'refused' AND name = '{role}'")[0][0]
        assert after == before + len(gets) + 1
    status, body = call(opener, base + "/api/complaints", headers=sessions["complaint_officer"])
    assert status == 200
    # oldest first, each with its working-day deadlines and overdue flag
    assert [(c["ref"], c["overdue"], c["deadlines"]["reply_by"]) for c in json.loads(body)] == [
        (LATE, True, "2020-01-02"), (REF, False, "2099-12-02")]
    # opening one is audited with its reference only
    status, body = call(opener, f"{base}/api/complaints/{REF}", headers=sessions["complaint_officer"])
    assert status == 200 and json.loads(body)["anonymous"] is True
    opened = rows(db_url, "SELECT detail FROM audit WHERE action = 'complaint_opened'")
    assert opened[-1][0] == json.dumps({"ref": REF})
    # what the page polls after a step: where it stands, nothing personal, so not an opening
    status, body = call(opener, f"{base}/api/complaints/{REF}?progress=1", headers=sessions["complaint_officer"])
    assert status == 200 and json.loads(body) == {"ref": REF, "status": "registered", "steps": 0, "answers": {}}
    assert len(rows(db_url, "SELECT detail FROM audit WHERE action = 'complaint_opened'")) == len(opened)
    assert call(opener, f"{base}/api/complaints/nope?progress=1", headers=sessions["complaint_officer"])[0] == 404


def test_schedule_routes_are_for_admins_only(site):
    base, opener, sessions, _ = site
    for role in ("monitor", "vault_manager", "complaint_officer"):
        for path in ("/schedule", "/api/schedule/status?day=2026-12-01", "/api/schedule/bundle/dev-1/x.htb"):
            assert call(opener, base + path, headers=sessions[role])[0] == 403, (role, path)
        assert call(opener, base + "/api/schedule", multipart("file", "d.csv", b"date\n"),
                    {**sessions[role], "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})[0] == 403
    # a bundle name that is not one head office packs never reaches the file system
    for path in ("/api/schedule/bundle/dev-1/..%2F..%2Fhq.db", "/api/schedule/bundle/..%2F/tasks-BR-1-2026-12-01-v1.htb",
                 "/api/schedule/bundle/dev-1/tasks-BR-1-2026-12-01-v1.htb"):
        assert call(opener, base + path, headers=sessions["admin"])[0] == 404
