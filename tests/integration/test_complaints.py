"""Complaints on real stacks: the running agent's HTTP API and SQLite file (encryption at rest, staff
routes behind a credential, refusals), and the ComplaintBook on a real journal (repeats, head-office
downlink, reports, drafts)."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from agent.calendar_data import build_calendar
from agent.complaints import ComplaintBook, ComplaintError
from agent.journal import Journal
from agent.sample import DEMO_PASSWORD
from agent.sealing import SealError, Sealer
from flows.workdays import DeadlineRules

NAME, PHONE = "欧阳娜娜", "13712345678"
CAUSE = "柜员未按规定公示收费标准"
FORM = {"channel": "walk_in", "category": "irregular_fees", "description": "办理汇款被多收手续费",
        "request": "退还手续费", "name": NAME, "contact": PHONE, "counter": "2号窗口", "staff_concerned": ["O02"]}


def call(agent, path: str, body: dict | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(agent.url + path.lstrip("/"), method="GET" if body is None else "POST",
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def complaint_entries(agent) -> list:
    j = Journal(agent.state_dir / "journal.db")
    try:
        return [e for e in j.entries() if e.kind.startswith("complaint")]
    finally:
        j.close()


def test_personal_data_is_encrypted_at_rest(agent):
    agent.start()
    assert call(agent, "api/kiosk/enter", {})[0] == 200
    status, receipt = call(agent, "api/kiosk/complaints", FORM)
    assert status == 200, receipt
    assert call(agent, "api/kiosk/draft", {"draft": {"name": "司马相如", "contact": "13600001111"}})[0] == 200
    # staff record a cause: free text is sealed too
    call(agent, "api/kiosk/staff", {})
    assert call(agent, "api/password", {"person_id": "O01", "password": DEMO_PASSWORD}) == (200, {"ok": True})
    ref = receipt["ref"]
    for action, params in [("classify", {"complexity": "general", "validity": "valid"}), ("transfer", {"to": "运营部"}),
                           ("investigate", {}), ("handle", {"notes": "已退费", "cause": CAUSE, "remedy": "张贴收费标准"})]:
        assert call(agent, f"api/staff/complaints/{ref}/{action}", params)[0] == 200
    status, staff = call(agent, "api/staff/complaints")
    assert status == 200
    row = next(c for c in staff["complaints"] if c["ref"] == ref)
    assert (row["name"], row["contact"]) == (NAME, PHONE)            # readable by staff, through the key

    files = [p for p in agent.state_dir.rglob("*") if p.is_file()]
    assert any(p.name == "journal.db-wal" for p in files)
    for secret in (NAME, PHONE, CAUSE, "司马相如", "13600001111"):
        for p in files:
            assert secret.encode() not in p.read_bytes(), f"{secret} in clear in {p.name}"
    agent.stop()
    for secret in (NAME, PHONE, CAUSE):      # after the WAL is checkpointed into the main file
        assert secret.encode() not in (agent.state_dir / "journal.db").read_bytes()
    entries = complaint_entries(agent)
    assert [e.kind for e in entries] == ["complaint_registered"] + ["complaint_transition"] * 4
    assert entries[0].body["anonymous"] is False and entries[0].body["staff_concerned"] == ["O02"]


def test_kiosk_refusals_change_nothing(agent):
    agent.start()
    status, body = call(agent, "api/kiosk/complaints", FORM)
    assert status == 400 and body["error"] == "the screen is not in kiosk mode"
    call(agent, "api/kiosk/enter", {})
    cases = [({**FORM, "description": "长" * 2001}, "description is too long: 2001 characters, at most 2000"),
             ({**FORM, "name": "<script>" * 10}, "name is too long: 80 characters, at most 50"),
             ({**FORM, "category": "weather"}, "category must be one of"),
             ({**FORM, "channel": None}, "channel must be one of"),
             ({**FORM, "request": "  "}, "request is required"),
             ({**FORM, "contact": 13712345678}, "contact must be text"),
             ({**FORM, "staff_concerned": "O02"}, "staff_concerned must be a list")]
    for form, message in cases:
        status, body = call(agent, "api/kiosk/complaints", form)
        assert status == 400 and message in body["error"], (form, body)
    assert complaint_entries(agent) == []
    # anonymous is fine
    status, receipt = call(agent, "api/kiosk/complaints", {**FORM, "name": "", "contact": ""})
    assert status == 200
    assert complaint_entries(agent)[0].body["anonymous"] is True


def test_staff_routes_need_a_credential(agent):
    agent.start()
    call(agent, "api/kiosk/enter", {})
    call(agent, "api/kiosk/complaints", FORM)
    for path, body in [("api/staff/complaints", None), ("api/staff/report?start=2026-01-01&end=2026-12-31", None),
                       ("api/staff/complaints/X/classify", {"complexity": "general", "validity": "valid"})]:
        status, answer = call(agent, path, body)
        assert status == 403 and NAME not in json.dumps(answer, ensure_ascii=False)
    call(agent, "api/kiosk/staff", {})
    assert call(agent, "api/password", {"person_id": "O01", "password": "nope"}) == (200, {"ok": False})
    assert call(agent, "api/staff/complaints")[0] == 403
    assert call(agent, "api/password", {"person_id": "O01", "password": DEMO_PASSWORD}) == (200, {"ok": True})
    assert call(agent, "api/staff/complaints")[0] == 200
    status, body = call(agent, "api/staff/report?start=2026-12-31&end=2026-01-01")
    assert status == 400 and "ends before it starts" in body["error"]
    call(agent, "api/staff/logout", {})
    assert call(agent, "api/staff/complaints")[0] == 403


# --- the book on a real journal ---
TZ = ZoneInfo("Asia/Shanghai")
MON = datetime(2024, 2, 5, 10, 0, tzinfo=TZ)


@pytest.fixture
def book(tmp_path):
    j = Journal(tmp_path / "journal.db")
    yield ComplaintBook(j, Sealer(tmp_path / "data.key"), build_calendar(), DeadlineRules(), site_id="BR-001")
    j.close()


def walk(book, ref, now, cause="原因", remedy="整改"):
    for action, params in [("classify", {"complexity": "general", "validity": "valid"}), ("transfer", {"to": "运营部"}),
                           ("investigate", {}), ("handle", {"notes": "n", "cause": cause, "remedy": remedy}),
                           ("reply", {"reply": "已答复"})]:
        book.act(ref, action, params, "O01", now)


def test_repeat_on_same_facts_and_head_office_downlink(book):
    first = book.register({**FORM}, MON)
    assert first.ref == "BR-001-TS20240205-001" and first.promised_reply == date(2024, 2, 6)
    second = book.register({**FORM}, MON + timedelta(hours=1))
    with pytest.raises(ComplaintError, match="has no decision yet"):
        book.act(second.ref, "mark_repeat", {"original_ref": first.ref, "appeal_to": "12378"}, "O01", MON)
    with pytest.raises(ComplaintError, match="no complaint NOPE"):
        book.act(second.ref, "mark_repeat", {"original_ref": "NOPE", "appeal_to": "12378"}, "O01", MON)
    # head office handles the first one centrally
    book.apply_downlink(first.ref, "classify", {"complexity": "complex", "validity": "valid"}, MON)
    book.apply_downlink(first.ref, "transfer", {"to": "总行消保部"}, MON)
    book.apply_downlink(first.ref, "investigate", {}, MON)
    book.apply_downlink(first.ref, "handle", {"notes": "总行核查"}, MON)
    book.apply_downlink(first.ref, "reply", {"reply": "总行答复"}, MON)
    t = book.act(second.ref, "mark_repeat", {"original_ref": first.ref, "appeal_to": "国家金融监督管理总局12378"},
                 "O01", MON + timedelta(days=1))
    assert t.after.value == "repeat" and t.appeal_to == "国家金融监督管理总局12378"
    entries = [e for e in book.journal.entries() if e.kind == "complaint_transition"]
    assert [e.body["source"] for e in entries] == ["head_office"] * 5 + ["terminal"]
    assert entries[0].body["actor"] == "head_office"
    assert "总行核查" not in json.dumps([e.body for e in entries], ensure_ascii=False)
    with pytest.raises(ComplaintError, match="action must be one of"):
        book.apply_downlink(first.ref, "delete", {}, MON)
    with pytest.raises(ComplaintError, match="O02 is concerned"):
        book.act(first.ref, "satisfaction", {"satisfied": True}, "O02", MON)


def test_reports_by_category_and_period(book):
    a = book.register({**FORM}, MON)
    b = book.register({**FORM, "category": "service_attitude"}, MON)
    book.register({**FORM, "category": "service_attitude"}, MON)
    book.register({**FORM, "category": "product"}, datetime(2024, 7, 1, 9, 0, tzinfo=TZ))   # next half-year
    walk(book, a.ref, MON + timedelta(hours=2), cause="收费标准未公示", remedy="公示收费标准")
    book.act(b.ref, "not_accept", {"approver": "M01", "reason": "不属于本行"}, "O01", MON)
    r = book.report(date(2024, 1, 1), date(2024, 6, 30), today=date(2024, 2, 20))
    assert r["received"] == 3 and r["resolved"] == 1
    assert r["overdue"] == 1                       # the third: due 6 Feb, still waiting on the 20th
    assert r["by_category"]["irregular_fees"] == {"received": 1, "resolved": 1, "overdue": 0}
    assert r["by_category"]["service_attitude"] == {"received": 2, "resolved": 0, "overdue": 1}
    assert r["main_issues"][0] == {"category": "service_attitude", "count": 2}
    assert r["causes_and_remedies"] == [{"ref": a.ref, "category": "irregular_fees", "cause": "收费标准未公示",
                                         "remedy": "公示收费标准"}]
    assert book.report(date(2024, 7, 1), date(2024, 12, 31), today=date(2024, 7, 1))["received"] == 1


IDLE = timedelta(seconds=120)


def test_drafts_are_sealed_and_bound(book, tmp_path):
    book.save_draft({"name": "林黛玉", "staff_concerned": ["O01"]}, MON)
    assert book.load_draft(MON, IDLE) == {"name": "林黛玉", "staff_concerned": ["O01"]}
    with pytest.raises(ComplaintError, match="draft field name is too long"):
        book.save_draft({"name": "x" * 10_001}, MON)
    assert book.load_draft(MON, IDLE)["name"] == "林黛玉"       # a refused draft changes nothing
    book.clear_draft()
    assert book.load_draft(MON, IDLE) is None
    # a sealed row moved onto another complaint does not open
    a, b = book.register({**FORM}, MON), book.register({**FORM}, MON)
    conn = book.journal.db
    blob = conn.execute("SELECT sealed FROM complaints WHERE ref=?", (a.ref,)).fetchone()[0]
    conn.execute("UPDATE complaints SET sealed=? WHERE ref=?", (blob, b.ref))
    with pytest.raises(SealError):
        book.details(b.ref)


def test_a_draft_left_past_the_idle_timeout_is_deleted_not_shown(book):
    """Issue 14: a half-typed name and phone came back for the next customer two minutes later."""
    book.save_draft({"name": "王建国", "contact": "13800000000"}, MON)
    assert book.load_draft(MON + IDLE, IDLE) == {"name": "王建国", "contact": "13800000000"}   # still the same customer
    assert book.expire_drafts(MON + IDLE, IDLE) == 0
    assert book.expire_drafts(MON + IDLE + timedelta(seconds=1), IDLE) == 1        # no page needs to be open
    rows = book.journal.db.execute("SELECT COUNT(*) FROM complaint_drafts").fetchone()[0]
    assert rows == 0, "the sealed draft is gone from the device, not only hidden"
    book.save_draft({"name": "王建国"}, MON)
    assert book.load_draft(MON + timedelta(minutes=2, seconds=1), IDLE) is None
