"""Importing bundles into a real journal + store (SQLite file) and simulated fingerprint modules.

Every refusal is checked to change nothing: rows, bundle sequence numbers, photo files, module slots.
"""
from __future__ import annotations

import base64
import gc
import hashlib
import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.journal import Journal
from agent.sealing import Sealer
from agent.store import Store
from drivers.fingerprint.sim import SimulatedFingerprint
from flows.model import Task
from offline import usb
from protocol.bundle import pack_bundle
from offline.importers import apply_personnel, apply_tasks, import_bundle
from protocol.keys import DeviceKeys

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=timezone.utc)
MESSAGES = json.loads((Path(usb.__file__).parent / "messages.json").read_text(encoding="utf-8"))


def task(task_id="T1", version=1, **over) -> dict:
    t = {"task_id": task_id, "version": version, "kind": "delivery",
         "window_start": "2026-11-22T09:00:00+08:00", "window_end": "2026-11-22T11:00:00+08:00",
         "route": ["branch-01"], "vehicle": {"vehicle_id": "V1", "plate": "粤A12345", "beacon": "AA:BB"},
         "escorts": ["E1", "E2"], "boxes": [{"box_id": "B1", "tag": "04a1", "destination": "branch-01"}],
         "confirmers": ["O1"]}
    return {**t, **over}


def person(pid="E1", name="张三", fingers=("right_index", "left_index"), photo=True) -> dict:
    p = {"person_id": pid, "name": name, "role": "escort", "company": "安保押运",
         "valid_from": "2026-01-01", "valid_until": "2026-12-31",
         "templates": [{"finger": f, "data": base64.b64encode(os.urandom(512)).decode(), "duress": i == 1}
                       for i, f in enumerate(fingers)]}
    if photo:
        p["photo_data"] = base64.b64encode(os.urandom(2000)).decode()
    return p


class Device:
    def __init__(self, tmp: Path):
        self.state = tmp / "state"
        self.keys = DeviceKeys.load_or_create(self.state / "keys", "dev-1")
        self.journal = Journal(tmp / "journal.db")
        self.store = Store(self.journal.db, Sealer(self.state / "keys" / "data.key"), self.state / "photos")
        self.modules = [SimulatedFingerprint("door"), SimulatedFingerprint("counter")]
        self.hq = Ed25519PrivateKey.generate()

    def pack(self, kind, payload, seq, *, signer=None, device_id="dev-1", public=None, expires=None):
        return pack_bundle(kind, payload, device_id, public or self.keys.bundle_public, signer or self.hq, seq,
                           expires or NOW + timedelta(days=3), NOW)

    async def load(self, data, now=NOW):
        return await import_bundle(data, journal=self.journal, store=self.store, device_keys=self.keys,
                                   trusted_signers=[self.hq.public_key()], fingerprint_modules=self.modules,
                                   now=now, state_dir=self.state)

    def snapshot(self) -> dict:
        c = self.journal.db
        return {t: c.execute(f"SELECT count(*) FROM {t}").fetchall() for t in
                ("tasks", "people", "templates", "journal")} | {
            "seqs": c.execute("SELECT kind, seq FROM bundle_seq ORDER BY kind").fetchall(),
            "photos": sorted(p.name for p in (self.state / "photos").iterdir()),
            "slots": [dict(m._slots) for m in self.modules]}


@pytest.fixture
def dev(tmp_path):
    d = Device(tmp_path)
    yield d
    d.journal.close()


async def test_tasks_round_trip_and_journal_entry(dev):
    out = await dev.load(dev.pack("tasks", {"tasks": [task("T1"), task("T2", 3)]}, seq=1))
    assert out.ok and out.kind == "tasks" and out.message_key == "bundle.imported.tasks"
    assert out.summary == {"received": 2, "stored": 2, "unchanged": 0}
    assert dev.store.task("T2").version == 3 and dev.store.task("T1").vehicle.plate == "粤A12345"
    assert dev.store.last_bundle_seq("tasks") == 1
    entry = dev.journal.head()
    assert entry.kind == "import" and entry.body["what"] == "tasks" and entry.body["bundle_seq"] == 1
    assert entry.body["tasks"] == [["T1", 1], ["T2", 3]]


async def test_a_task_is_stored_as_sent_without_its_box_keys_or_unknown_fields(dev):
    """The quick path stores the sender's dict as the task's body: the box keys it carries are sealed
    apart and a field no task has is left out; the task reads back as sent."""
    meta, file = os.urandom(16), os.urandom(16)
    sent = task("T1", box_keys={"04a1": {"meta": meta.hex(), "file": file.hex()}}, remark="秘密备注")
    assert (await dev.load(dev.pack("tasks", {"tasks": [sent]}, seq=1))).ok
    assert dev.store.box_keys("04A1") == (meta, file) and dev.store.task("T1") == Task.from_dict(task("T1"))
    body = dev.journal.db.execute("SELECT body FROM tasks WHERE task_id='T1'").fetchone()[0]
    assert json.loads(body) == task("T1") and meta.hex() not in body and "秘密备注" not in body


async def test_a_replanned_task_leaves_nothing_of_its_old_stops_and_boxes(dev):
    """Stored as sent (a lower-case tag in its body), then re-planned to another branch with another box:
    the old stop and box go, found from the old body's keys; then withdrawn, nothing of it is left."""
    day = datetime(2026, 11, 22).date()
    assert (await dev.load(dev.pack("tasks", {"tasks": [task("T1"), task("T2")]}, seq=1))).ok
    assert dev.store.box_for_tag("04A1", day).box_id == "B1"
    moved = task("T1", 2, route=["branch-02"], boxes=[{"box_id": "B9", "tag": "04b9", "destination": "branch-02"}])
    assert (await dev.load(dev.pack("tasks", {"tasks": [moved]}, seq=2))).ok
    assert [t.task_id for t in dev.store.tasks_on(day, "branch-01")] == ["T2"]
    assert [t.task_id for t in dev.store.tasks_on(day, "branch-02")] == ["T1"]
    assert dev.store.box_for_tag("04B9", day).box_id == "B9"
    rows = lambda table: dev.journal.db.execute(f"SELECT * FROM {table} WHERE task_id='T1'").fetchall()  # noqa: E731
    assert rows("task_stops") == [("branch-02", "T1")] and [r[0] for r in rows("task_boxes")] == ["04B9"]
    with dev.journal.transaction():
        dev.store.withdraw_tasks(["T1"])
    assert rows("tasks") == rows("task_stops") == rows("task_boxes") == []
    assert dev.store.task("T2") is not None and dev.store.box_for_tag("04A1", day).box_id == "B1"


async def test_an_import_leaves_the_cycle_collector_as_it_found_it(dev):
    """The collector is held off while a bundle is parsed and its tasks applied, and back on after,
    whether the bundle was imported or refused; one that was off before stays off."""
    assert gc.isenabled()
    assert (await dev.load(dev.pack("tasks", {"tasks": [task("T1")]}, seq=1))).ok and gc.isenabled()
    assert not (await dev.load(dev.pack("tasks", {"tasks": [task("T2", escorts=["E1"])]}, seq=2))).ok
    assert gc.isenabled()
    gc.disable()
    try:
        assert (await dev.load(dev.pack("tasks", {"tasks": [task("T3")]}, seq=3))).ok and not gc.isenabled()
    finally:
        gc.enable()


async def test_tasks_merge_with_mqtt_by_version(dev):
    apply_tasks(dev.journal, dev.store, [task("T1", 2), task("T3", 1)], "mqtt")
    out = await dev.load(dev.pack("tasks", {"tasks": [task("T1", 1), task("T2", 1), task("T3", 2)]}, seq=1))
    assert out.summary == {"received": 3, "stored": 2, "unchanged": 1}
    assert [dev.store.task(t).version for t in ("T1", "T2", "T3")] == [2, 1, 2]
    assert dev.store.task_count() == 3  # no duplicates
    apply_tasks(dev.journal, dev.store, [task("T2", 5)], "mqtt")
    assert dev.store.task("T2").version == 5


async def test_personnel_round_trip_loads_every_module(dev):
    people = [person("E1", "张三"), person("E2", "李四", fingers=("right_thumb",))]
    out = await dev.load(dev.pack("personnel", {"people": people}, seq=1))
    assert out.ok and out.summary["people"] == 2 and out.summary["templates"] == 3
    assert [p.name for p in dev.store.people()] == ["张三", "李四"]
    e1 = dev.store.person("E1")
    assert dev.store.photo(e1.photo) == base64.b64decode(people[0]["photo_data"])
    slots = dev.store.slots_of("E1")
    for m in dev.modules:
        assert await m.template_count() == 3
        assert m._slots[slots["right_index"]] == base64.b64decode(people[0]["templates"][0]["data"])
    assert dev.store.slot_owner(slots["left_index"]).duress is True
    body = json.dumps(dev.journal.head().body, ensure_ascii=False)
    assert "E1" in body and "张三" not in body and "李四" not in body  # ids, never names


async def test_personnel_removal_clears_module_slots(dev):
    await dev.load(dev.pack("personnel", {"people": [person("E1"), person("E2")]}, seq=1))
    gone = set(dev.store.slots_of("E1").values())
    out = await apply_personnel(dev.journal, dev.store, [], dev.modules, "mqtt", remove=["E1"])
    assert out["removed"] == 1 and dev.store.person("E1") is None
    for m in dev.modules:
        assert not gone & set(m._slots) and await m.template_count() == 2


async def test_update_without_photo_keeps_the_enrolled_photo(dev):
    await dev.load(dev.pack("personnel", {"people": [person("E1")]}, seq=1))
    photo = dev.store.person("E1").photo
    await apply_personnel(dev.journal, dev.store, [person("E1", "张三丰", photo=False)], dev.modules, "mqtt")
    assert dev.store.person("E1").name == "张三丰" and dev.store.person("E1").photo == photo


def _refusals(dev):
    good = {"tasks": [task()]}
    other_device = X25519PrivateKey.generate().public_key()
    data = dev.pack("tasks", good, seq=2)
    flipped = bytearray(data)
    flipped[-80] ^= 0xFF
    return {
        "bad_signature": bytes(flipped),
        "tampered header": data.replace(b'"seq":2', b'"seq":7'),
        "unknown_signer": dev.pack("tasks", good, seq=2, signer=Ed25519PrivateKey.generate()),
        "tampered": dev.pack("tasks", good, seq=2, public=other_device),
        "expired": dev.pack("tasks", good, seq=2, expires=NOW + timedelta(seconds=1)),
        "replayed": dev.pack("tasks", good, seq=1),
        "wrong_device": dev.pack("tasks", good, seq=2, device_id="dev-2", public=other_device),
        "truncated": data[:len(data) // 2],
        "bad_magic": os.urandom(10_000),
        "bad_payload": dev.pack("tasks", {"tasks": [task(), task("T9", escorts=["E1"])]}, seq=2),
        "bad_payload personnel": dev.pack("personnel", {"people": [person("E5"), {**person("E6"),
                                          "photo_data": "not base64!"}]}, seq=2),
    }


REFUSAL_CASES = ["bad_signature", "tampered header", "unknown_signer", "tampered", "expired", "replayed",
                 "wrong_device", "truncated", "bad_magic", "bad_payload", "bad_payload personnel"]


@pytest.mark.parametrize("case", REFUSAL_CASES)
async def test_a_refused_bundle_changes_nothing(dev, case):
    await dev.load(dev.pack("tasks", {"tasks": [task("T0")]}, seq=1))
    await dev.load(dev.pack("personnel", {"people": [person("E0")]}, seq=1))
    bundles = _refusals(dev)
    before = dev.snapshot()
    later = NOW + timedelta(minutes=1)
    out = await dev.load(bundles[case], now=later)
    code = case.split()[0] if case != "tampered header" else "bad_signature"
    assert not out.ok and out.code == code, out
    assert out.message_key == f"bundle.refused.{code}" and out.message_key in MESSAGES["zh-CN"]
    assert out.message
    assert dev.snapshot() == before


async def test_rolled_back_bundle_changes_nothing(dev):
    await dev.load(dev.pack("tasks", {"tasks": [task("T1")]}, seq=7))
    before = dev.snapshot()
    out = await dev.load(dev.pack("tasks", {"tasks": [task("T1", 9)]}, seq=6))
    assert out.code == "rolled_back" and "(7)" in out.message
    assert dev.snapshot() == before and dev.store.task("T1").version == 1


async def test_bad_payload_message_names_the_field(dev):
    out = await dev.load(dev.pack("tasks", {"tasks": [task("T9", escorts=["E1"])]}, seq=1))
    assert out.code == "bad_payload" and "T9" in out.message and "escorts" in out.message


async def test_sequences_are_per_kind(dev):
    assert (await dev.load(dev.pack("tasks", {"tasks": [task()]}, seq=4))).ok
    assert (await dev.load(dev.pack("personnel", {"people": []}, seq=1))).ok
    assert (await dev.load(dev.pack("tasks", {"tasks": [task("T1", 2)]}, seq=5))).ok
    assert dev.store.task("T1").version == 2        # applied, not only answered


# --- USB -----------------------------------------------------------------------------------

async def test_usb_import_from_a_directory_standing_in_for_the_stick(dev, tmp_path):
    stick = tmp_path / "stick"
    stick.mkdir()
    (stick / "tasks-2.htb").write_bytes(dev.pack("tasks", {"tasks": [task("T2", 2)]}, seq=2))
    (stick / "tasks-1.htb").write_bytes(dev.pack("tasks", {"tasks": [task("T2", 1), task("T1")]}, seq=1))
    (stick / "notes.txt").write_text("hello")
    (stick / "junk.htb").write_bytes(b"garbage")
    os.symlink("/etc/passwd", stick / "link.htb")
    listing = sorted(p.name for p in stick.iterdir())
    stick_bytes = {p.name: p.read_bytes() for p in stick.iterdir() if not p.is_symlink()}
    collected, outcomes = await usb.usb_import(stick, state_dir=dev.state, journal=dev.journal, store=dev.store,
                                               device_keys=dev.keys, trusted_signers=[dev.hq.public_key()],
                                               fingerprint_modules=dev.modules, now=NOW)
    codes = sorted((o.code or "ok") for _, o in outcomes)
    assert codes == ["bad_magic", "ok", "ok"]  # both tasks bundles, in sequence order; the link was not followed
    assert dev.store.task("T2").version == 2 and dev.store.last_bundle_seq("tasks") == 2
    assert not list((dev.state / "inbox").glob("*.htb"))
    refused = [e for e in dev.journal.entries() if e.kind == "import_refused"]
    assert [e.body["code"] for e in refused] == ["bad_magic"]
    # The stick was only read, apart from the identity of this not-yet-provisioned device.
    assert sorted(p.name for p in stick.iterdir()) == sorted(listing + ["handover"])
    assert {p.name: p.read_bytes() for p in stick.iterdir() if p.is_file() and not p.is_symlink()} == stick_bytes


async def test_stick_removed_mid_read_imports_nothing(dev, tmp_path, monkeypatch):
    stick = tmp_path / "stick"
    stick.mkdir()
    data = dev.pack("personnel", {"people": [person("E1"), person("E2")]}, seq=1)
    (stick / "people.htb").write_bytes(data)
    before = dev.snapshot()
    real_fdopen = os.fdopen

    class PulledStick:
        """A file whose device vanishes after the first chunk (what the kernel reports: EIO)."""
        def __init__(self, f):
            self._f, self._reads = f, 0

        def read(self, n=-1):
            self._reads += 1
            if self._reads > 1:
                raise OSError(5, "Input/output error")
            return self._f.read(min(n, 1000))

        def __getattr__(self, name):
            return getattr(self._f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._f.close()

    monkeypatch.setattr(usb.os, "fdopen", lambda fd, mode: PulledStick(real_fdopen(fd, mode)))
    collected = usb.collect(stick, dev.state / "inbox")
    monkeypatch.undo()
    assert collected.copied == []
    [(name, key, message)] = collected.errors
    assert name == "people.htb" and key == "usb.read_failed" and "nothing" in message
    assert key in MESSAGES["zh-CN"]
    assert list((dev.state / "inbox").iterdir()) == []  # no partial file left behind
    outcomes = await usb.drain_inbox(dev.state / "inbox", journal=dev.journal, store=dev.store,
                                     device_keys=dev.keys, trusted_signers=[dev.hq.public_key()],
                                     fingerprint_modules=dev.modules, now=NOW, state_dir=dev.state)
    assert outcomes == [] and dev.snapshot() == before


def test_stick_gone_before_reading(dev, tmp_path):
    stick = tmp_path / "stick"
    stick.mkdir()
    (stick / "a.htb").write_bytes(b"HTB1")
    [src] = usb.find_bundles(stick)
    src.unlink()
    with pytest.raises(OSError):
        usb.copy_in(src, dev.state / "inbox")
    assert not list((dev.state / "inbox").iterdir())


def test_the_same_bundle_on_two_sticks_is_queued_once(dev, tmp_path):
    data = dev.pack("tasks", {"tasks": [task()]}, seq=1)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "t.htb").write_bytes(data)
        usb.collect(tmp_path / name, dev.state / "inbox")
    [queued] = (dev.state / "inbox").glob("*.htb")
    assert queued.read_bytes() == data and queued.name.startswith(hashlib.sha256(data).hexdigest()[:32])


def test_device_private_keys_are_0600_and_stable(dev):
    for name in ("bundle_x25519.pem", "mqtt_client.pem"):
        assert (dev.state / "keys" / name).stat().st_mode & 0o777 == 0o600
    again = DeviceKeys.load_or_create(dev.state / "keys", "dev-1")
    assert again.bundle_public.public_bytes_raw() == dev.keys.bundle_public.public_bytes_raw()
    assert "PRIVATE" not in repr(again) and "bundle_key" not in repr(again)



# --- route progress carried by a tasks bundle (issue 13: an offline site learns which stops are done) ---

STOP_AT = "2026-11-22T08:30:00+08:00"


async def test_a_tasks_bundle_carries_route_progress_for_an_offline_site(dev):
    progress = [{"task_id": "T1", "site_id": "vault-01", "at": STOP_AT},
                {"task_id": "T1", "site_id": "branch-00", "at": STOP_AT, "status": "skipped"}]
    out = await dev.load(dev.pack("tasks", {"tasks": [task("T1")], "route_progress": progress}, seq=1))
    assert out.ok and out.summary == {"received": 1, "stored": 1, "unchanged": 0, "stops": 2}
    # what the arrival will be judged on (agent/terminal.py builds VehicleArrived from these)
    assert dev.store.stops_done("T1") == {"vault-01"} and dev.store.stops_skipped("T1") == {"branch-00"}
    kinds = [e.kind for e in dev.journal.entries()]
    assert kinds[-3:] == ["route_progress", "route_progress", "import"]


@pytest.mark.parametrize("stop,named", [
    ({"task_id": "T1", "site_id": "vault-01"}, "route_progress[0].at"),
    ({"task_id": "T1", "site_id": ["vault-01"], "at": STOP_AT}, "route_progress[0].site_id"),
    ({"task_id": "T1", "site_id": "vault-01", "at": "2026-11-22T08:30:00"}, "no time zone"),
    ({"task_id": "T1", "site_id": "vault-01", "at": STOP_AT, "status": "maybe"}, "route_progress[0].status"),
    ("vault-01", "route_progress[0]: must be a JSON object"),
])
async def test_bad_route_progress_refuses_the_whole_bundle_naming_the_field(dev, stop, named):
    before = dev.snapshot()
    out = await dev.load(dev.pack("tasks", {"tasks": [task("T1")], "route_progress": [stop]}, seq=1))
    assert not out.ok and out.code == "bad_payload" and named in out.message
    assert dev.snapshot() == before and dev.store.stops_done("T1") == set() and dev.store.task("T1") is None
