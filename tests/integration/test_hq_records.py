"""Head office's records (hq/records.py) on SQLite and PostgreSQL: handovers journaled by a terminal's own
Journal, sent as the wire carries them and applied by `serve`'s Database, are found by date, site, truck,
person and box; one opens with its report, timeline, alarms and faces; its chain verifies, and an entry
altered in head office's database shows as broken at that entry; the export re-verifies on its own; a
sealed face is kept once and opens only to the photo its hash names."""
from __future__ import annotations

import base64
import dataclasses
import json
import sys
from pathlib import Path

import pytest

from agent.journal import Journal
from agent.sample import placeholder_photo
from flows.report import HandoverReport, PersonLine
from hq import records
from hq.db import Database
from protocol import messages, snapshot
from protocol.chain import GENESIS_HASH, chain_problem
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

sys.path.insert(0, str(Path(__file__).resolve().parent))
from postgres import db_url, postgres  # noqa: E402,F401 (fixtures)

DEVICE = "dev-rec-1"
FACE = placeholder_photo("E01", (200, 80, 90))
FACE_HASH = snapshot.seal_snapshot(X25519PrivateKey.generate().public_key(), DEVICE, FACE)[0]


def report(task_id: str, plate: str, site: str, day: str, boxes: tuple[str, ...], exceptions=(), outcome="completed"):
    people = (PersonLine("E01", "escort_lead", f"{day}T09:05:00+08:00", f"{day}T09:20:00+08:00", FACE_HASH),
              PersonLine("E02", "escort", f"{day}T09:06:00+08:00", None, None),
              PersonLine("O01", "officer", f"{day}T09:15:00+08:00", f"{day}T09:21:00+08:00"))
    return dataclasses.asdict(HandoverReport(
        task_id=task_id, kind="delivery", site_id=site, site_type="branch", plate=plate,
        arrived_at=f"{day}T09:00:00+08:00", arrival_manual=False, ended_at=f"{day}T09:22:00+08:00", outcome=outcome,
        people=people, officer_method="fingerprint", boxes_planned=boxes, boxes_counted=boxes, uid_only_boxes=(),
        exceptions=tuple(exceptions), dispositions=(), restarts=0))


def handover(journal: Journal, task_id: str, plate: str, site: str, day: str, boxes, *, hour: int, duress=False):
    """A handover's entries as the terminal journals them, from `hour` UTC of `day` (site time +08:00)."""
    minute = iter(range(60))
    append = lambda kind, body: journal.append(kind, body, task_id=task_id,  # noqa: E731
                                               ts=f"{day}T{hour:02d}:{next(minute):02d}:00.000Z")
    tags = [{"box_id": b, "tag": f"04A1{i:02d}{task_id[-1]}", "destination": site} for i, b in enumerate(boxes)]
    append("handover_started", {"task": {"task_id": task_id, "boxes": tags}})
    append("arrival", {"event": {"type": "VehicleArrived", "plate": plate}})
    append("staff_session", {"who": "O01"})
    silent = [{"type": "Alarm", "kind": "duress", "silent": True, "detail": {"person_id": "E01"}}] if duress else []
    append("finger_attempt", {"event": {"type": "FingerPresented", "station": "door", "outcome": "match",
                                        "person_id": "E01", "duress": duress, "snapshot": FACE_HASH},
                              "decisions": [{"type": "AttemptRecorded", "outcome": "verified"}, *silent]})
    if duress:
        append("alarm", {"alarm": "duress", "silent": True, "blocking": False, "site_id": site,
                         "detail": {"person_id": "E01"}})
    append("alarm", {"alarm": "wrong_box", "silent": False, "blocking": True, "site_id": site,
                     "detail": {"box": "XB9-01"}})
    # as the terminal builds it: a silent alarm never appears among the report's exceptions
    exceptions = [{"kind": "wrong_box", "at": f"{day}T09:10:00+08:00", "box": "XB9-01"}]
    for b in boxes:
        append("box_read", {"event": {"type": "BoxPresented", "uid": "x", "box": {"box_id": b}}})
    append("handover_ended", {"report": report(task_id, plate, site, day, tuple(boxes), exceptions)})


@pytest.fixture
def db(db_url, tmp_path):
    journal = Journal(tmp_path / "journal.db")
    journal.append("agent_started", {})
    handover(journal, "T-0601-A", "沪A·C1234", "BR-001", "2026-06-01", ["XB1-01", "XB1-02"], hour=1, duress=True)
    handover(journal, "T-0601-B", "沪B·77777", "BR-002", "2026-06-01", ["XB2-01"], hour=2)
    handover(journal, "T-0602-A", "沪A·C1234", "BR-002", "2026-06-02", ["XB3-01"], hour=1)
    wire = [json.loads(messages.encode_entry(DEVICE, e)) for e in journal.entries()]
    journal.close()
    database = Database(db_url).create_schema()
    database.run(lambda cur: cur.execute(
        "INSERT INTO hq_people (person_id, body, imported) VALUES (?, ?, ?)",
        ("E01", json.dumps({"person_id": "E01", "name": "张伟", "photo_data": base64.b64encode(b"\x89PNG-photo").decode()},
                           ensure_ascii=False), "2026-06-01")))
    assert database.apply(DEVICE, wire).applied == len(wire)
    yield database
    database.close()


def found(db, **terms) -> list[str]:
    return [r["handover"] for r in records.search(db, records.Query.parse(terms), {"BR-001": "城东支行"})]


def test_search_by_each_term_and_all_together(db):
    assert found(db) == ["T-0602-A", "T-0601-B", "T-0601-A"]           # newest first
    assert found(db, date="2026-06-01") == ["T-0601-B", "T-0601-A"]
    assert found(db, site="城东支行") == ["T-0601-A"] == found(db, site="br-001")
    assert found(db, truck="沪A C1234") == ["T-0602-A", "T-0601-A"]    # spaces and case do not matter
    assert found(db, person="张伟") == ["T-0602-A", "T-0601-B", "T-0601-A"] == found(db, person="e01")
    assert found(db, person="nobody") == []
    assert found(db, box="XB1-02") == ["T-0601-A"]
    assert found(db, box="04a100b") == ["T-0601-B"]                    # by the box's tag, from the task
    assert found(db, date="2026-06-01", truck="C1234", box="XB1-01", site="BR-001") == ["T-0601-A"]
    with pytest.raises(records.RecordsError, match="date"):
        records.Query.parse({"date": "06/01/2026"})
    with pytest.raises(records.RecordsError, match="truck"):
        records.Query.parse({"truck": "x" * 65})


def test_one_handover_with_its_timeline_faces_and_chain(db):
    d = records.detail(db, DEVICE, "T-0601-A", "monitor", {"BR-001": "城东支行"})
    assert d["site"] == "城东支行" and d["report"]["plate"] == "沪A·C1234"
    kinds = [line["kind"] for line in d["timeline"]]
    assert kinds[0] == "handover_started" and kinds[-1] == "handover_ended" and "staff_session" not in kinds
    attempt = next(line for line in d["timeline"] if line["kind"] == "finger_attempt")
    assert attempt["what"]["outcome"] == "verified" and attempt["what"]["person_id"] == "E01"
    assert [a["alarm"] for a in d["alarms"]] == ["duress", "wrong_box"]
    assert d["faces"] == [{"seq": attempt["seq"], "ts": attempt["ts"], "local": attempt["local"], "person_id": "E01",
                           "outcome": "verified", "hash": FACE_HASH, "held": False}]
    assert attempt["local"].endswith("+08:00"), "entry times shown in the site's offset, as the report's"
    assert d["people"]["E01"] == {"name": "张伟", "photo": True} and d["people"]["E02"]["photo"] is False
    assert d["chain"]["ok"] is True
    # the vault manager's view has no silent alarm, in the timeline or in the report
    vm = records.detail(db, DEVICE, "T-0601-A", "vault_manager")
    assert [a["alarm"] for a in vm["alarms"]] == ["wrong_box"]
    assert "duress" not in json.dumps(vm, ensure_ascii=False)
    with pytest.raises(records.RecordsError):
        records.detail(db, DEVICE, "T-none", "monitor")
    assert records.enrolled_photo(db, "E01") == b"\x89PNG-photo" and records.enrolled_photo(db, "E02") is None


def test_an_entry_altered_at_head_office_shows_the_chain_broken_there(db):
    d = records.detail(db, DEVICE, "T-0601-B", "monitor")
    box = next(line for line in d["timeline"] if line["kind"] == "box_read")
    db.run(lambda cur: cur.execute("UPDATE entries SET body = ? WHERE device = ? AND seq = ?",
                                   ('{"event":{"box":{"box_id":"XB2-99"}}}', DEVICE, box["seq"])))
    broken = records.detail(db, DEVICE, "T-0601-B", "monitor")["chain"]
    assert broken["ok"] is False and broken["seq"] == box["seq"] and "altered" in broken["problem"]
    assert records.detail(db, DEVICE, "T-0601-A", "monitor")["chain"]["ok"] is True    # the others still hold


def test_the_export_carries_every_entry_with_its_hash_and_re_verifies_alone(db):
    kept = records.export(db, DEVICE, "T-0602-A", "monitor", "wang", lambda shown: [shown["report"]["task_id"]])
    assert kept["report_text"] == ["T-0602-A"] and kept["exported_by"] == "wang" and kept["chain"]["ok"]
    entries = json.loads(json.dumps(kept, ensure_ascii=False))["entries"]     # as the file holds them
    assert entries[-1]["kind"] == "handover_ended" and any(e["kind"] == "handover_started" for e in entries)
    prev = entries[0]["prev_hash"]
    for e in entries:
        assert chain_problem(e, prev) is None
        prev = e["hash"]
    assert entries[0]["seq"] > 1 and entries[0]["prev_hash"] != GENESIS_HASH


def test_a_face_is_kept_once_sealed_and_opens_only_to_its_photo(db):
    key = X25519PrivateKey.generate()
    digest, sealed = snapshot.seal_snapshot(key.public_key(), DEVICE, FACE)
    payload = snapshot.parse_uplink(snapshot.uplink(key.public_key(), DEVICE, digest, sealed))
    assert records.store_snapshot(db, key, DEVICE, payload) and records.store_snapshot(db, key, DEVICE, payload)
    rows = db.run(lambda cur: cur.all("SELECT hash, sealed FROM hq_records_snapshots"))
    assert rows == [(digest, sealed)], "kept once, and sealed (the JPEG is not in the row)"
    assert records.snapshot(db, key, DEVICE, digest) == FACE
    assert records.detail(db, DEVICE, "T-0601-A", "monitor")["faces"][0]["held"] is True
    with pytest.raises(snapshot.SnapshotError, match="does not open"):    # another device's name: refused
        records.store_snapshot(db, key, "dev-other", payload)
    with pytest.raises(snapshot.SnapshotError):
        records.store_snapshot(db, X25519PrivateKey.generate(), DEVICE, payload)
    assert db.run(lambda cur: cur.one("SELECT count(*) FROM hq_records_snapshots"))[0] == 1
    with pytest.raises(records.RecordsError, match="holds no snapshot"):
        records.snapshot(db, key, DEVICE, "a" * 64)


def test_a_vault_managers_export_withholds_what_would_tell_a_silent_alarm(db):
    full = records.export(db, DEVICE, "T-0601-A", "monitor", "wang", lambda shown: [])
    assert "duress" in json.dumps(full["entries"])
    kept = records.export(db, DEVICE, "T-0601-A", "vault_manager", "zhao", lambda shown: [])
    assert "duress" not in json.dumps(kept, ensure_ascii=False)
    withheld = [e for e in kept["entries"] if e.get("withheld")]
    assert [e["seq"] for e in withheld] == [e["seq"] for e in full["entries"]
                                           if e["kind"] in ("finger_attempt", "alarm") and "duress" in json.dumps(e)]
    for before, after in zip(kept["entries"], kept["entries"][1:]):
        assert after["prev_hash"] == before["hash"], "the withheld entries keep their place in the chain"
