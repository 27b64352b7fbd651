"""People at head office (hq/distribute.py): the escort company's encrypted export imported (a replay or a
bad person refused, nothing stored), and each offline site's USB bundles carrying only the people its tasks
name — which the terminal's own USB import then takes, people first, tasks after; a template enrolled at a
branch taken in and sent where its person is needed. The CLI names bad rows."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.journal import Journal
from agent.sealing import Sealer
from agent.store import Store
from hq.cli import main
from hq.db import Database
from hq.distribute import BundleKit, hq_bundle_key, hq_enrolment_key, import_personnel, publish, redistribute, status
from hq.schedule import import_schedule, import_sites
from offline.importers import import_bundle_file
from offline.provisioning import identity_document
from protocol.bundle import BundleRefused, open_bundle, pack_bundle
from protocol.chain import GENESIS_HASH, entry_hash
from protocol.enrolment import seal_for_hq
from protocol.keys import DeviceKeys, HqKeys

from test_schedule_import import GOOD, SITES, csv_of

NOW = datetime(2026, 11, 30, 6, 0, tzinfo=timezone.utc)
PEOPLE = ("E01", "E02", "E03", "E04", "E09", "O01")


def person(pid: str) -> dict:
    return {"person_id": pid, "name": f"name-{pid}", "role": "officer" if pid.startswith("O") else "escort",
            "company": "company", "photo_data": base64.b64encode(b"\xff\xd8photo-" + pid.encode()).decode(),
            "templates": [{"finger": "right_index", "data": base64.b64encode(pid.encode() * 100).decode()}]}


@pytest.fixture
def office(tmp_path):
    db = Database(tmp_path / "hq.db").create_schema()
    import_sites(db, SITES.encode())
    company = Ed25519PrivateKey.generate()
    key = hq_bundle_key(tmp_path / "hq-keys")

    def export(people: list[dict], seq: int) -> bytes:
        return pack_bundle("personnel", {"people": people}, "hq", key.public_key(), company, seq,
                           NOW + timedelta(days=1), NOW)
    yield db, export, key, company.public_key()
    db.close()


def test_the_export_is_imported_once_and_a_bad_one_changes_nothing(office):
    db, export, key, signer = office
    assert import_personnel(db, export([person(p) for p in PEOPLE], 5), key=key, signers=[signer], now=NOW) == 6
    with pytest.raises(BundleRefused) as replay:
        import_personnel(db, export([person("E01")], 5), key=key, signers=[signer], now=NOW)
    assert replay.value.code == "replayed"
    nameless = person("E07")
    del nameless["role"]
    with pytest.raises(ValueError, match=r"people\[1\] \(E07\)"):
        import_personnel(db, export([person("E08"), nameless], 6), key=key, signers=[signer], now=NOW)
    with pytest.raises(BundleRefused) as stranger:
        import_personnel(db, export([person("E08")], 7), key=key, signers=[Ed25519PrivateKey.generate().public_key()],
                         now=NOW)
    assert stranger.value.code == "unknown_signer"
    ids = [r[0] for r in db.run(lambda cur: cur.all("SELECT person_id FROM hq_people ORDER BY person_id"))]
    assert ids == sorted(PEOPLE), "nothing of a refused export is stored"


def test_an_offline_site_gets_only_the_people_its_tasks_name(office, tmp_path):
    db, export, key, signer = office
    import_personnel(db, export([person(p) for p in PEOPLE], 1), key=key, signers=[signer], now=NOW)
    import_schedule(db, csv_of(GOOD), "d.csv")
    hq_keys = HqKeys.create(tmp_path / "signing")
    ids = tmp_path / "ids"
    ids.mkdir()
    device = DeviceKeys.load_or_create(tmp_path / "dev-a-keys", "dev-a")
    (ids / "identity-dev-a.json").write_text(json.dumps(identity_document(device, NOW)))
    db.status("dev-a", "BR-001", "offline")
    db.status("dev-b", "BR-002", "offline")                 # no identity: named, not packed
    lines = publish(db, "2026-11-30", publisher=None, kit=BundleKit(hq_keys, ids, tmp_path / "usb"), now=NOW)
    assert any("dev-b: no USB bundle: no usable identity" in line for line in lines), lines
    folder = tmp_path / "usb" / "dev-a"
    people = open_bundle((folder / "personnel-BR-001-2026-11-30-v1.htb").read_bytes(), device,
                         [hq_keys.signing.public_key()], NOW, 0).payload["people"]
    assert [p["person_id"] for p in people] == ["E01", "E02", "O01"], "R07's escorts and its confirmer, no one else"

    (tmp_path / "dev-a").mkdir()
    journal = Journal(tmp_path / "dev-a" / "journal.db")
    store = Store(journal.db, Sealer(tmp_path / "dev-a" / "device.key"), tmp_path / "dev-a" / "photos")
    for what in ("personnel", "tasks"):
        outcome = asyncio.run(import_bundle_file(
            folder / f"{what}-BR-001-2026-11-30-v1.htb", journal=journal, store=store, device_keys=device,
            trusted_signers=[hq_keys.signing.public_key()], fingerprint_modules=[], now=NOW,
            state_dir=tmp_path / "dev-a"))
        assert outcome.ok, outcome.message
    assert store.person("E02").name == "name-E02" and store.person("E02").photo
    assert store.task("R07-20261130").escorts == ("E01", "E02")
    assert store.person("E03") is None
    (row,) = [r for r in status(db, "2026-11-30") if r["device"] == "dev-a"]
    assert row["state"] == "bundle packed, not yet imported", "applied only once its journal reaches head office"


def test_the_cli_names_bad_rows_and_stores_nothing(tmp_path, capsys):
    sites = tmp_path / "sites.csv"
    sites.write_text(SITES, encoding="utf-8")
    bad = [list(r) for r in GOOD]
    bad[1][5], bad[1][6] = "10:00", "09:00"
    (tmp_path / "bad.csv").write_bytes(csv_of(bad))
    (tmp_path / "good.csv").write_bytes(csv_of(GOOD))
    db = str(tmp_path / "hq.db")
    assert main(["schedule", "sites", str(sites), "--db", db]) == 0
    assert main(["schedule", "import", str(tmp_path / "bad.csv"), "--db", db]) == 1
    err = capsys.readouterr().err
    assert "row 3, window_end: 09:00 is not after window_start 10:00" in err and "nothing imported" in err
    assert main(["schedule", "status", "--db", db, "--day", "2026-11-30"]) == 0
    assert "no schedule stored for 2026-11-30" in capsys.readouterr().out
    assert main(["schedule", "import", str(tmp_path / "good.csv"), "--db", db]) == 0
    assert "BR-001: new version 1" in capsys.readouterr().out
    assert main(["schedule", "status", "--db", db, "--day", "2026-11-30"]) == 0
    assert "BR-001  latest v1  not sent" in capsys.readouterr().out


def test_a_template_enrolled_at_a_branch_goes_where_its_person_is_needed(office, tmp_path):
    db, export, key, signer = office
    import_personnel(db, export([person(p) for p in PEOPLE], 1), key=key, signers=[signer], now=NOW)
    import_schedule(db, csv_of(GOOD), "d.csv")
    enrolment_key = hq_enrolment_key(tmp_path / "hq-keys")
    hq_keys = HqKeys.create(tmp_path / "signing")
    ids = tmp_path / "ids"
    ids.mkdir()
    vault = DeviceKeys.load_or_create(tmp_path / "dev-v-keys", "dev-v")
    (ids / "identity-dev-v.json").write_text(json.dumps(identity_document(vault, NOW)))
    for device, site in (("dev-a", "BR-001"), ("dev-b", "BR-002"), ("dev-v", "VLT-01")):
        db.status(device, site, "offline")
    # E01 (R07: the vault and BR-001) enrols a thumb at BR-001's terminal; the entry arrives as serve applies it
    template = bytes(range(200)) * 2
    body = {"person_id": "E01", "finger": "right_thumb", "slot": 40, "station": "counter", "officer_id": "O01",
            "method": "finger", "template_sha256": hashlib.sha256(template).hexdigest(), "template_bytes": 400,
            "not_stored": []}
    body["template_for_hq"] = seal_for_hq(template, enrolment_key.public_key(), "dev-a", body)
    ts = NOW.isoformat()
    entry = {"id": "dev-a:1", "seq": 1, "ts": ts, "kind": "finger_enrolled", "task_id": None, "body": body,
             "prev_hash": GENESIS_HASH, "hash": entry_hash(1, ts, "finger_enrolled", None, body, GENESIS_HASH)}
    assert db.apply("dev-a", [entry]).applied == 1

    lines = redistribute(db, enrolment_key, "2026-11-30", publisher=None, kit=BundleKit(hq_keys, ids, tmp_path / "usb"),
                         now=NOW)
    assert [p.name for p in (tmp_path / "usb").rglob("*.htb")] == ["personnel-VLT-01-2026-11-30-v1.htb"], \
        "to the vault, where E01 is needed; not to BR-002, nor back to the terminal that enrolled it"
    assert any("VLT-01 dev-v: personnel" in line for line in lines), lines
    people = open_bundle(next((tmp_path / "usb").rglob("*.htb")).read_bytes(), vault,
                         [hq_keys.signing.public_key()], NOW, 0).payload["people"]
    assert [p["person_id"] for p in people] == ["E01"]
    thumb = next(t for t in people[0]["templates"] if t["finger"] == "right_thumb")
    assert base64.b64decode(thumb["data"]) == template and len(people[0]["templates"]) == 2
    assert redistribute(db, enrolment_key, "2026-11-30", publisher=None, kit=None) == \
        ["no new template enrolled at a branch"], "each enrolment is taken once"
