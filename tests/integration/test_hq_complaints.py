"""Complaints handled at head office (issue 16) on real stacks: the real agent process registers a complaint
at its kiosk, its sync carries the entries through a real mosquitto (mutual TLS, ACL) into `handover-hq
serve`'s database (SQLite, and PostgreSQL in a throwaway cluster); head office opens the sealed details with
its complaint key, works the lifecycle through the `complaint` downlink, sees the terminal record each step,
flags the complaint overdue by its working-day deadline, and writes the half-year report. The terminal
holds nothing that opens what it sent up, and head office's database and log hold no detail in clear."""
from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.calendar_data import build_calendar
from agent.complaints import ComplaintBook
from agent.journal import Journal
from agent.sealing import Sealer
from flows.workdays import DeadlineRules
from hq.complaints import ComplaintDesk, create_key, deliver, load_key
from hq.db import Database
from hq.serve import Server
from protocol.complaint import SealedDetailsError, open_details
from protocol.keys import public_pem

sys.path.insert(0, str(Path(__file__).parent))
from broker import HQ_IDENTITY, env_with_repo, mqtt_config  # noqa: E402
from mqtt_fixtures import broker  # noqa: E402,F401 (fixture)
from postgres import db_url, postgres  # noqa: E402,F401 (fixtures)

pytestmark = pytest.mark.mqtt
ROOT = Path(__file__).resolve().parents[2]

NAME, PHONE = "欧阳娜娜", "13712345678"
DESCRIPTION, REQUEST = "办理跨行汇款时被多收了二十元手续费", "退还多收的手续费并道歉"
NOTES, CAUSE, REMEDY = "调取流水核实多收属实", "柜员未按规定公示收费标准", "全辖张贴收费标准并培训"
REPLY = "已电话告知客户并退还二十元"
SECRETS = (NAME, PHONE, DESCRIPTION, REQUEST, NOTES, CAUSE, REMEDY, REPLY)
FORM = {"channel": "walk_in", "category": "irregular_fees", "description": DESCRIPTION, "request": REQUEST,
        "name": NAME, "contact": PHONE, "counter": "2号窗口"}


@pytest.fixture
def office(broker, tmp_path):
    """`handover-hq serve` in this process (its log captured), and head office's complaint key."""
    servers = []

    def start(db_url: str) -> Server:
        cert, key = broker.pki.issue(HQ_IDENTITY)
        server = Server(db_url, "127.0.0.1", broker.port, ca_file=broker.pki.ca_file, cert_file=cert,
                        key_file=key, resend_after=1.0).start()
        server.tls, server.port = (broker.pki.ca_file, cert, key), broker.port
        servers.append(server)
        return server
    create_key(tmp_path / "hq-keys")
    yield start
    for s in servers:
        s.stop()


def start_terminal(agent, broker, device: str, site: str, hq_key: Path | None):
    config = mqtt_config(broker, device, site, agent.state_dir)
    if hq_key is not None:
        with open(agent.state_dir / "agent.toml", "a", encoding="utf-8") as f:
            f.write(f'[complaints]\nhq_key = "{hq_key}"\n')
    agent.start("--config", str(agent.state_dir / "agent.toml"))
    return config


def wait(predicate, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.1)


def health_of(db: Database, device: str) -> str | None:
    row = db.run(lambda cur: cur.one("SELECT health FROM devices WHERE device = ?", (device,)))
    return row[0] if row else None


def step(desk: ComplaintDesk, server: Server, ref: str, action: str, params: dict) -> dict:
    """An officer's step sent down, answered by the terminal, and back up as its journal entry."""
    before = len(desk.open(ref, date.today())["steps"])
    device, payload = desk.act(ref, action, params, "hq-officer-7")
    reply = deliver("127.0.0.1", server.port, server.tls, device, payload, timeout=30)
    assert reply is not None, f"{device} never answered {action}"
    if reply["ok"]:
        steps = wait(lambda: desk.open(ref, date.today())["steps"][before:], f"{action} back at head office")
        assert [s["action"] for s in steps] == [action]
        assert desk.list(date.today())[0].status == steps[0]["after"] == reply["result"]["status"]
    return reply


def test_a_complaint_from_the_kiosk_is_handled_to_archive_at_head_office(agent, broker, office, db_url, tmp_path,
                                                                          caplog):
    caplog.set_level(logging.DEBUG)
    server = office(db_url)
    keys = tmp_path / "hq-keys"
    start_terminal(agent, broker, "dev-cmp-1", "BR-061", keys / "complaint.pub.pem")
    agent.post("api/kiosk/enter", {})
    ref = agent.post("api/kiosk/complaints", FORM)["ref"]

    desk = ComplaintDesk(Database(db_url), load_key(keys))
    [summary] = wait(lambda: desk.list(date.today()), "the complaint at head office")
    assert (summary.ref, summary.site_id, summary.category, summary.status) == (ref, "BR-061", "irregular_fees",
                                                                                "registered")
    assert not any(s in json.dumps(summary.to_dict(), ensure_ascii=False) for s in SECRETS), "a list is not personal"
    opened = desk.open(ref, date.today())
    assert opened["details"] == {"name": NAME, "contact": PHONE, "description": DESCRIPTION, "request": REQUEST,
                                 "counter": "2号窗口"}

    # overdue by the terminal's working-day deadline: judged against a day after it, then not once replied
    reply_by = date.fromisoformat(summary.deadlines["reply_by"])
    assert reply_by >= datetime.fromisoformat(summary.received_at).date()
    late = reply_by + timedelta(days=1)
    assert [s.ref for s in desk.list(late, overdue_only=True)] == [ref]
    assert desk.list(reply_by, overdue_only=True) == []

    refused = step(desk, server, ref, "archive", {})
    assert refused["ok"] is False and "registered" in refused["error"]
    assert desk.list(date.today())[0].status == "registered"          # a refused step changes nothing

    for action, params in [("classify", {"complexity": "general", "validity": "valid"}),
                           ("transfer", {"to": "总行消保部"}), ("investigate", {}),
                           ("handle", {"notes": NOTES, "cause": CAUSE, "remedy": REMEDY,
                                       "responsibility": "at_fault"}),
                           ("reply", {"reply": REPLY}), ("satisfaction", {"satisfied": True})]:
        answer = step(desk, server, ref, action, params)
        assert answer["ok"], answer
    assert desk.list(late, overdue_only=True) == []                     # replied: no longer overdue
    step(desk, server, ref, "archive", {})

    opened = desk.open(ref, date.today())
    assert opened["status"] == "archived"
    assert [s["action"] for s in opened["steps"]] == ["classify", "transfer", "investigate", "handle", "reply",
                                                      "satisfaction", "archive"]
    assert all(s["source"] == "head_office" for s in opened["steps"])
    handle = next(s for s in opened["steps"] if s["action"] == "handle")
    assert handle["texts"]["cause"] == CAUSE and handle["texts"]["notes"] == NOTES
    assert handle["params"]["responsibility"] == "at_fault"
    assert [s["officer"] for s in opened["sent"]] == ["hq-officer-7"] * 8
    assert opened["sent"][4]["params"]["remedy"] == REMEDY

    today = datetime.fromisoformat(opened["received_at"]).date()      # the site's day, not this machine's
    report = desk.report(today - timedelta(days=1), today + timedelta(days=1), today)
    assert (report["received"], report["resolved"], report["overdue"]) == (1, 1, 0)
    assert report["by_category"] == {"irregular_fees": {"received": 1, "resolved": 1, "overdue": 0}}
    assert report["main_issues"] == [{"category": "irregular_fees", "count": 1}]
    assert report["causes_and_remedies"] == [{"ref": ref, "site_id": "BR-061", "category": "irregular_fees",
                                              "cause": CAUSE, "remedy": REMEDY}]
    desk.db.close()
    server.stop()
    assert agent.stop() == 0

    # --- head office: no detail in clear in its log or, outside what stays sealed, in its database
    logged = caplog.text + "".join(r.getMessage() for r in caplog.records)
    for secret in SECRETS:
        assert secret not in logged, f"{secret} in head office's log"
    if not db_url.startswith("postgresql"):
        files = [p for p in tmp_path.glob("hq.db*") if p.is_file()]
        raw = b"".join(p.read_bytes() for p in files)
        assert "irregular_fees".encode() in raw and ref.encode() in raw, "the grep can see what is stored in clear"
        for secret in SECRETS:
            assert secret.encode() not in raw, f"{secret} in clear in head office's database"
    else:
        with psycopg.connect(db_url) as conn:
            dump = json.dumps([conn.execute(f"SELECT * FROM {t}").fetchall() for t in (
                "entries", "alarms", "replies", "quarantine", "devices", "hq_complaints", "hq_complaint_steps",
                "hq_complaint_due", "hq_complaint_sent")], ensure_ascii=False, default=str)
        assert ref in dump
        for secret in SECRETS:
            assert secret not in dump, f"{secret} in clear in head office's database"

    # --- the terminal: nothing it holds opens the copy it sent to head office
    journal = Journal(agent.state_dir / "journal.db")
    sealed = [(e.body["ref"], e.body.get("action", "register"), e.body["sealed"]) for e in journal.entries()
              if e.kind.startswith("complaint_") and "sealed" in e.body]
    journal.close()
    assert len(sealed) == 3                         # registration, handle, reply: the steps with texts
    hq_public = load_key(keys).public_key()
    private_keys = []
    for path in agent.state_dir.rglob("*"):
        if path.is_file():
            assert NAME.encode() not in path.read_bytes() and CAUSE.encode() not in path.read_bytes(), path
            try:
                private_keys.append(serialization.load_pem_private_key(path.read_bytes(), None))
            except (ValueError, TypeError):
                pass
    assert private_keys, "the terminal's own keys were found"
    raw_public = lambda k: k.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)  # noqa: E731
    for key in (k for k in private_keys if isinstance(k, X25519PrivateKey)):
        assert raw_public(key.public_key()) != raw_public(hq_public)
        for ref_, step_, blob in sealed:
            with pytest.raises(SealedDetailsError):
                open_details(key, ref_, step_, blob)
    for ref_, step_, blob in sealed:              # while head office's key opens every one
        assert open_details(load_key(keys), ref_, step_, blob)


def test_a_terminal_without_the_key_keeps_details_and_says_so_in_health(agent, broker, office, tmp_path):
    db_url = str(tmp_path / "hq.db")
    office(db_url)
    start_terminal(agent, broker, "dev-cmp-2", "BR-062", None)
    agent.post("api/kiosk/enter", {})
    ref = agent.post("api/kiosk/complaints", FORM)["ref"]
    db = Database(db_url)
    desk = ComplaintDesk(db, load_key(tmp_path / "hq-keys"))
    [summary] = wait(lambda: desk.list(date.today()), "the complaint at head office")
    assert summary.ref == ref
    assert desk.open(ref, date.today())["details"] is None           # nothing came up to open
    health = wait(lambda: health_of(db, "dev-cmp-2"), "health at head office")
    sealing = json.loads(health)["drivers"]["complaint_sealing"]
    assert sealing["state"] == "missing" and "hq_key" in sealing["error"]
    db.close()


def test_a_key_that_is_not_x25519_is_named_and_the_terminal_goes_on(agent, broker, office, tmp_path):
    db_url = str(tmp_path / "hq.db")
    office(db_url)
    wrong = tmp_path / "wrong.pub.pem"
    wrong.write_bytes(public_pem(Ed25519PrivateKey.generate().public_key()))      # a signing key, not X25519
    start_terminal(agent, broker, "dev-cmp-3", "BR-063", wrong)
    agent.post("api/kiosk/enter", {})
    assert agent.post("api/kiosk/complaints", FORM)["ref"]
    db = Database(db_url)
    health = wait(lambda: health_of(db, "dev-cmp-3"), "health at head office")
    sealing = json.loads(health)["drivers"]["complaint_sealing"]
    assert sealing["state"] == "missing" and "complaints.hq_key" in sealing["error"]
    db.close()


def test_the_half_year_report_is_a_file_from_the_command_line(agent, broker, office, tmp_path):
    db_url = str(tmp_path / "hq.db")
    server = office(db_url)
    keys = tmp_path / "hq-keys"
    start_terminal(agent, broker, "dev-cmp-4", "BR-064", keys / "complaint.pub.pem")
    agent.post("api/kiosk/enter", {})
    ref = agent.post("api/kiosk/complaints", FORM)["ref"]
    desk = ComplaintDesk(Database(db_url), load_key(keys))
    [summary] = wait(lambda: desk.list(date.today()), "the complaint at head office")
    for action, params in [("classify", {"complexity": "general", "validity": "valid"}),
                           ("transfer", {"to": "总行消保部"}), ("investigate", {}),
                           ("handle", {"notes": NOTES, "cause": CAUSE, "remedy": REMEDY})]:
        assert step(desk, server, ref, action, params)["ok"]
    desk.db.close()

    today = datetime.fromisoformat(summary.received_at).date()      # the site's day, not this machine's
    due = date(today.year, 12, 15) if today.month >= 6 and today.month < 12 else \
        date(today.year + (today.month == 12), 6, 15)
    out = tmp_path / "half-year.json"
    cli = [sys.executable, "-m", "hq.cli", "complaints"]
    r = subprocess.run([*cli, "report", "--db", db_url, "--keys", str(keys), "--due", due.isoformat(),
                        "--out", str(out)], cwd=ROOT, env=env_with_repo(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    report = json.loads(out.read_text("utf-8"))
    assert report["due"] == due.isoformat()
    assert date.fromisoformat(report["period"]["start"]) <= today <= date.fromisoformat(report["period"]["end"])
    assert (report["received"], report["resolved"]) == (1, 0)       # handled, not yet replied
    assert report["causes_and_remedies"][0]["cause"] == CAUSE

    r = subprocess.run([*cli, "list", "--db", db_url, "--overdue", "--today", "2099-01-01"], cwd=ROOT,
                       env=env_with_repo(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and ref in r.stdout and "OVERDUE" in r.stdout, r.stdout + r.stderr
    assert NAME not in r.stdout and CAUSE not in r.stdout
    r = subprocess.run([*cli, "report", "--db", db_url, "--keys", str(keys), "--due", "2026-07-01",
                        "--out", str(out)], cwd=ROOT, env=env_with_repo(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "15 June and 15 December" in r.stderr


def test_every_complaint_entry_a_terminal_writes_is_read_by_head_office(tmp_path):
    """Both sides agree (protocol/schemas/complaint_*.json): every kind of step a terminal's book records,
    escalations and time limits included, is read at head office and none is set aside."""
    keys = tmp_path / "hq-keys"
    public = create_key(keys)
    journal = Journal(tmp_path / "journal.db")
    book = ComplaintBook(journal, Sealer(tmp_path / "data.key"), build_calendar(), DeadlineRules(), site_id="BR-070",
                         hq_key=public)
    monday = datetime(2024, 2, 5, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    a = book.register({**FORM, "escalation": {"people": 5}}, monday).ref
    b = book.register({**FORM, "name": "", "contact": ""}, monday).ref
    c = book.register(FORM, monday).ref
    book.check_due(monday + timedelta(days=3))                  # overdue limits, one entry each
    for action, params in [("classify", {"complexity": "complex", "validity": "special"}), ("transfer", {"to": "消保部"}),
                           ("investigate", {}), ("escalate", {"media": True}),
                           ("handle", {"notes": NOTES, "cause": CAUSE, "remedy": REMEDY, "handler_phone": "021-1"}),
                           ("reply", {"reply": REPLY}), ("satisfaction", {"satisfied": False})]:
        book.act(a, action, params, "O01", monday + timedelta(days=1))
    book.act(b, "not_accept", {"approver": "M01", "reason": "非本行业务"}, "O01", monday)
    book.act(c, "withdraw", {"reason": "客户撤回", "voluntary": True}, "O01", monday)
    entries = [{"id": f"dev-70:{e.seq}", "seq": e.seq, "ts": e.ts, "kind": e.kind, "task_id": e.task_id,
                "body": e.body, "prev_hash": e.prev_hash, "hash": e.hash} for e in journal.entries()]
    journal.close()
    kinds = {e["kind"] for e in entries}
    assert {"complaint_registered", "complaint_transition", "complaint_due"} <= kinds

    db = Database(tmp_path / "hq.db").create_schema()
    assert db.apply("dev-70", entries).applied == len(entries)
    desk = ComplaintDesk(db, load_key(keys))
    desk.sync()
    assert db.count("quarantine") == 0
    listed = {s.ref: s for s in desk.list(date(2024, 2, 5))}
    assert set(listed) == {a, b, c}
    assert listed[a].status == "investigating" and listed[a].escalations == ["group", "media"]
    assert (listed[b].status, listed[b].anonymous, listed[c].status) == ("not_accepted", True, "withdrawn")
    assert {d["limit"] for d in listed[a].due} >= {"pass_on", "start_handling"}
    opened = desk.open(a, date(2024, 2, 5))
    assert opened["details"]["name"] == NAME
    texts = {s["action"]: s["texts"] for s in opened["steps"]}
    assert texts["handle"]["handler_phone"] == "021-1" and texts["reply"] == {"reply": REPLY}
    assert texts["classify"] is None                           # no free text in it: nothing sealed
    assert desk.open(b, date(2024, 2, 5))["steps"][0]["texts"] == {"reason": "非本行业务"}
    db.close()
