"""The schedule upload and complaint officers' routes on both of head office's engines (SQLite and a real
PostgreSQL): an admin's XLSX is stored, packed as a USB bundle for the site's offline terminal (downloaded
from the page and opened with that device's key) and followed in the status; the officer's list, one
complaint and the half-year report read the same on both."""
from __future__ import annotations

import json
import sys
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from hq.db import Database
from hq.distribute import BundleKit
from hq.web.app import WebBoard
from hq.web.page import Settings
from offline.provisioning import identity_document
from protocol.bundle import open_bundle
from protocol.keys import DeviceKeys, HqKeys
from tests.conftest import free_port
from tests.unit.test_hq_officer_pages_fuzz import LATE, REF, NoRedirect, call, log_in, multipart, seed
from tests.unit.test_schedule_import import GOOD, xlsx_of

sys.path.insert(0, str(Path(__file__).parent))
from postgres import db_url, postgres  # noqa: E402,F401 (fixtures)

DAY = GOOD[0][0]


def test_the_pages_read_and_write_the_same_on_both_engines(db_url, tmp_path):
    db = Database(db_url).create_schema()
    seed(db)
    db.status("dev-b2", "BR-002", "offline")
    db.close()
    device = DeviceKeys.load_or_create(tmp_path / "dev-keys", "dev-b2")
    (tmp_path / "ids").mkdir()
    (tmp_path / "ids" / "identity-dev-b2.json").write_text(json.dumps(identity_document(device, datetime.now(timezone.utc))))
    hq_keys = HqKeys.create(tmp_path / "hq-keys")
    settings = Settings(complaint_key=X25519PrivateKey.generate(),
                        bundle_kit=BundleKit(hq_keys, tmp_path / "ids", tmp_path / "usb"))
    port = free_port()
    web = WebBoard(db_url, "127.0.0.1", port, settings).start()
    try:
        base, opener = f"http://127.0.0.1:{port}", urllib.request.build_opener(NoRedirect)
        sessions = log_in(base, opener)
        admin = {**sessions["admin"], "Content-Type": "multipart/form-data; boundary=fuzzboundary7MA4YWxkTrZu0gW"}
        status, raw = call(opener, base + "/api/schedule", multipart("file", "dispatch.xlsx", xlsx_of(GOOD)), admin)
        answer = json.loads(raw)
        assert status == 200 and answer["bundles"] == ["BR-002"] and answer["no_terminal"] == ["BR-001", "VLT-01"]
        [tasks] = [d for d in answer["downloads"] if d["what"] == "tasks"]
        status, bundle = call(opener, base + tasks["url"], headers=sessions["admin"])
        assert status == 200
        opened = open_bundle(bundle, device, [hq_keys.signing.public_key()], datetime.now(timezone.utc), 0)
        assert [t["task_id"] for t in opened.payload["tasks"]] == ["R08-20261130"]
        status, raw = call(opener, f"{base}/api/schedule/status?day={DAY}", headers=sessions["admin"])
        assert status == 200 and [(r["site"], r["device"], r["state"]) for r in json.loads(raw)
                                  if r["device"]] == [("BR-002", "dev-b2", "bundle packed, not yet imported")]

        officer = sessions["complaint_officer"]
        status, raw = call(opener, base + "/api/complaints", headers=officer)
        assert status == 200 and [(c["ref"], c["overdue"]) for c in json.loads(raw)] == [(LATE, True), (REF, False)]
        status, raw = call(opener, f"{base}/api/complaints/{REF}", headers=officer)
        assert status == 200 and json.loads(raw)["received_at"] == "2026-12-01T06:26:00+08:00"
        status, raw = call(opener, f"{base}/api/complaints/report?year=2027&half=1", headers=officer)
        report = json.loads(raw)
        assert status == 200 and (report["received"], report["due"]) == (1, "2027-06-15")
        assert report["by_category"] == {"irregular_fees": {"received": 1, "resolved": 0, "overdue": 0}}
    finally:
        web.stop()
