"""Fuzz head office's reading of complaint entries (hq.complaints.ComplaintDesk.sync) over a real SQLite
database: whatever body a terminal's complaint entry carries, the desk never raises; a body that breaks
its schema is set aside in `quarantine` with a reason and changes no complaint; the good ones around it
are all read; listing and reporting go on."""
from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hq.complaints import ComplaintDesk, ComplaintDeskError
from hq.db import Database
from protocol.chain import GENESIS_HASH, entry_hash
from protocol.complaint import seal_details

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KEY = X25519PrivateKey.generate()
DEADLINES = {"acknowledge_by": "2026-11-30", "reply_by": "2026-12-01", "outer_limit": "2027-02-28"}

scalars = st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
json_values = st.recursive(scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c,
                                                                                         max_size=4), max_leaves=20)


def registered(ref: str) -> dict:
    return {"ref": ref, "site_id": "BR-001", "received_at": "2026-11-30T10:00:00+08:00", "channel": "walk_in",
            "category": "product", "staff_concerned": [], "first_responder": None, "anonymous": False,
            "deadlines": DEADLINES, "status": "registered", "escalations": [],
            "sealed": seal_details(KEY.public_key(), ref, "register", {"name": "张三"}), "sealed_to": "0" * 16}


def transition(ref: str) -> dict:
    return {"ref": ref, "site_id": "BR-001", "action": "classify", "before": "registered", "after": "classified",
            "actor": "O01", "source": "terminal", "at": "2026-11-30T11:00:00+08:00",
            "params": {"complexity": "general", "validity": "valid"}, "reopened": False, "deadlines": DEADLINES}


def due(ref: str) -> dict:
    return {"ref": ref, "site_id": "BR-001", "limit": "pass_on", "due": "2026-11-30T11:00:00+08:00",
            "state": "overdue", "at": "2026-11-30T11:05:00+08:00"}


MAKERS = {"complaint_registered": registered, "complaint_transition": transition, "complaint_due": due}


@st.composite
def bodies(draw, ref: str):
    kind = draw(st.sampled_from(sorted(MAKERS)))
    body = MAKERS[kind](ref)
    how = draw(st.sampled_from(["keep", "drop", "replace", "text", "time", "junk"]))
    if how == "drop":
        body.pop(draw(st.sampled_from(sorted(body))))
    elif how == "replace":
        body[draw(st.sampled_from(sorted(body)))] = draw(json_values)
    elif how == "text":            # a string where a string belongs, but not the one the reader expects
        body[draw(st.sampled_from(sorted(body)))] = draw(st.text(max_size=12))
    elif how == "time":            # the fields a reader parses as dates: anything a terminal might have sent
        key = draw(st.sampled_from([k for k in ("received_at", "at", "deadlines") if k in body]))
        if key == "deadlines":
            body[key] = {**DEADLINES, draw(st.sampled_from(sorted(DEADLINES))): draw(st.text(max_size=12))}
        else:
            body[key] = draw(st.text(max_size=30))
    elif how == "junk":
        body = draw(st.dictionaries(st.text(max_size=10), json_values, max_size=5))
    return kind, body, how == "keep"


def chained(device: str, items: list[tuple[str, dict]]) -> list[dict]:
    out, prev = [], GENESIS_HASH
    for seq, (kind, body) in enumerate(items, 1):
        ts = f"2026-11-30T03:00:{seq % 60:02d}.000Z"
        h = entry_hash(seq, ts, kind, None, body, prev)
        out.append({"id": f"{device}:{seq}", "seq": seq, "ts": ts, "kind": kind, "task_id": None, "body": body,
                    "prev_hash": prev, "hash": h})
        prev = h
    return out


@FUZZ
@given(st.data())
def test_any_complaint_entry_body_is_read_or_set_aside_never_a_crash(data):
    with tempfile.TemporaryDirectory() as d:
        db = Database(Path(d) / "hq.db").create_schema()
        items, good_refs = [], set()
        for i in range(data.draw(st.integers(1, 8))):
            kind, body, good = data.draw(bodies(f"BR-001-TS20261130-{i:03d}"))
            items.append((kind, body))
            if good and kind == "complaint_registered":
                good_refs.add(body["ref"])
        db.apply("dev-1", chained("dev-1", items))
        desk = ComplaintDesk(db, KEY)
        desk.sync()
        listed = {s.ref for s in desk.list(date(2026, 12, 5))}
        assert good_refs <= listed
        stored = sum(db.run(lambda cur: cur.one(f"SELECT count(*) FROM {t}"))[0]
                     for t in ("hq_complaints", "hq_complaint_steps", "hq_complaint_due"))
        set_aside = db.run(lambda cur: cur.all("SELECT seq, reason FROM quarantine"))
        assert all(reason for _, reason in set_aside)
        assert stored + len(set_aside) <= len(items)           # a duplicate registration is read once
        assert desk.sync() == 0                                   # read once: the cursor moved past them
        desk.report(date(2026, 6, 1), date(2026, 12, 31), date(2026, 12, 5))
        for ref in listed:
            try:
                desk.open(ref, date(2026, 12, 5))
            except ComplaintDeskError as exc:        # a blob that does not open: said so, by name
                assert "sealed details" in str(exc) or "several terminals" in str(exc)
        db.close()
