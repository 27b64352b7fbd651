"""The schedule's tables and statements on PostgreSQL (production's head office), as on SQLite: a dispatch
stored with its versions, a bad one refused whole, a late change versioned only where it matters, a USB
bundle packed, and status reading back the terminal's import from its journal as `serve` stores it."""
from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from hq.db import Database
from hq.distribute import BundleKit, publish, status
from offline.provisioning import identity_document
from protocol.chain import GENESIS_HASH, entry_hash
from protocol.keys import DeviceKeys, HqKeys
from hq.schedule import ScheduleRejected, import_schedule, import_sites

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "unit"))
from postgres import Postgres  # noqa: E402
from test_schedule_import import GOOD, SITES, csv_of  # noqa: E402


@pytest.fixture(scope="module")
def pg():
    server = Postgres().start()
    yield server
    server.remove()


def test_the_schedule_on_postgresql(pg, tmp_path):
    db = Database(pg.url).create_schema()
    try:
        import_sites(db, SITES.encode())
        bad = [list(r) for r in GOOD]
        bad[2][4] = "teleport"
        with pytest.raises(ScheduleRejected):
            import_schedule(db, csv_of(bad), "d.csv")
        assert db.run(lambda cur: cur.one("SELECT count(*) FROM schedule_tasks"))[0] == 0
        assert import_schedule(db, csv_of(GOOD), "d.csv").changed == {
            "2026-11-30": {"BR-001": 1, "BR-002": 1, "VLT-01": 1}}
        swapped = [list(r) for r in GOOD]
        swapped[1][7] = swapped[0][7] = "沪A·Z9999"                  # R07's truck swapped
        assert import_schedule(db, csv_of(swapped), "d.csv").changed == {"2026-11-30": {"BR-001": 2, "VLT-01": 2}}
        db.status("dev-a", "BR-001", "offline")
        keys = DeviceKeys.load_or_create(tmp_path / "dev-a", "dev-a")
        (tmp_path / "ids").mkdir()
        (tmp_path / "ids" / "identity-dev-a.json").write_text(
            json.dumps(identity_document(keys, datetime.now(timezone.utc))))
        kit = BundleKit(HqKeys.create(tmp_path / "hq"), tmp_path / "ids", tmp_path / "usb")
        lines = publish(db, "2026-11-30", publisher=None, kit=kit)
        assert [p.name for p in (tmp_path / "usb").rglob("*.htb")] == ["tasks-BR-001-2026-11-30-v2.htb"], lines
        (row,) = [r for r in status(db, "2026-11-30") if r["device"] == "dev-a"]
        assert row["state"] == "bundle packed, not yet imported" and row["sent"] == 2
        seq = db.run(lambda cur: cur.one("SELECT bundle_seq FROM schedule_sends WHERE device = 'dev-a'"))[0]
        body = {"what": "tasks", "source": "usb", "bundle_seq": seq, "received": 1, "stored": 1, "unchanged": 0}
        ts = datetime.now(timezone.utc).isoformat()
        db.apply("dev-a", [{"id": "dev-a:1", "seq": 1, "ts": ts, "kind": "import", "task_id": None, "body": body,
                            "prev_hash": GENESIS_HASH, "hash": entry_hash(1, ts, "import", None, body, GENESIS_HASH)}])
        (row,) = [r for r in status(db, "2026-11-30") if r["device"] == "dev-a"]
        assert row["state"] == "applied"
    finally:
        db.close()
