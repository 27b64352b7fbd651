"""Poison on a USB stick (issue 19 items 1, 2, 11): no file, signed or not, wedges the inbox.

Each case: the bad file is refused with a code naming what is wrong, journaled, moved out of the inbox
into refused/ (kept for the technician, counted), and the good bundles beside it still import.
"""
from __future__ import annotations

import struct

import pytest

from offline import usb
from protocol.bundle import BundleRefused, FormatError, Malformed, SequenceError, peek_header
from test_import import NOW, Device, person, task  # noqa: F401  (fixture helpers)


@pytest.fixture
def dev(tmp_path):
    d = Device(tmp_path)
    yield d
    d.journal.close()


async def drain(dev):
    return await usb.drain_inbox(dev.state / "inbox", journal=dev.journal, store=dev.store, device_keys=dev.keys,
                                 trusted_signers=[dev.hq.public_key()], fingerprint_modules=dev.modules, now=NOW,
                                 state_dir=dev.state)


def deep_header_file(depth: int = 5000) -> bytes:
    header = b"[" * depth
    return b"HTB1" + struct.pack(">H", len(header)) + header + struct.pack(">Q", 0) + b"\0" * 64


def put(dev, name: str, data: bytes) -> None:
    (dev.state / "inbox").mkdir(parents=True, exist_ok=True)
    (dev.state / "inbox" / name).write_bytes(data)


async def test_unsigned_junk_with_a_deep_header_is_refused_and_the_rest_imports(dev):
    put(dev, "0-junk.htb", deep_header_file())
    put(dev, "1-tasks.htb", dev.pack("tasks", {"tasks": [task("T1")]}, seq=1))
    out = dict(await drain(dev))
    assert out["0-junk.htb"].code in ("malformed", "unknown_signer") and not out["0-junk.htb"].ok
    assert out["1-tasks.htb"].ok and dev.store.task("T1") is not None
    assert not list((dev.state / "inbox").glob("*.htb"))
    assert (dev.state / "refused" / "0-junk.htb").exists() and usb.refused_count(dev.state) == 1
    refused = [e.body for e in dev.journal.entries() if e.kind == "import_refused"]
    assert [r["file"] for r in refused] == ["0-junk.htb"]
    assert await drain(dev) == []       # nothing left to retry every 2 s


def test_a_deep_header_is_a_typed_refusal():
    with pytest.raises(Malformed) as caught:
        peek_header(deep_header_file())
    assert isinstance(caught.value, FormatError) and caught.value.code == "malformed"
    assert "nested" in caught.value.message


def test_refusals_are_typed_by_family():
    r = BundleRefused("replayed", "again")
    assert isinstance(r, SequenceError) and r.code == "replayed" and str(r) == "replayed: again"


TYPED = {
    "vehicle": ("tasks", {"vehicle": "TRUCK-9"}, "vehicle"),
    "boxes": ("tasks", {"boxes": [1]}, "boxes[0]"),
    "escorts": ("tasks", {"escorts": 7}, "escorts"),
    "route": ("tasks", {"route": 5}, "route"),
    "min_escorts": ("tasks", {"min_escorts": [3]}, "min_escorts"),
    "box_keys": ("tasks", {"box_keys": ["04AA"]}, "box_keys"),
    "task_id": ("tasks", {"task_id": {"a": 1}}, "task_id"),
    "version": ("tasks", {"version": 10**20}, "version"),          # SQLite would overflow
    "person_id": ("personnel", {"person_id": ["x"]}, "person_id"),
    "name": ("personnel", {"name": ["x"]}, "name"),
    "remove": ("personnel", None, "remove[0]"),
}


@pytest.mark.parametrize("case", sorted(TYPED))
async def test_a_signed_bundle_with_a_wrongly_typed_field_is_refused_naming_it(dev, case):
    kind, over, field = TYPED[case]
    if kind == "tasks":
        payload = {"tasks": [{**task("T7"), **over}]}
    elif over is None:
        payload = {"people": [], "remove": [["E1"]]}
    else:
        payload = {"people": [{**person("E1"), **over}]}
    put(dev, "bad.htb", dev.pack(kind, payload, seq=1))
    put(dev, "good.htb", dev.pack("tasks", {"tasks": [task("T1")]}, seq=2))
    out = dict(await drain(dev))
    bad = out["bad.htb"]
    assert not bad.ok and bad.code == "bad_payload" and field in bad.message, bad
    assert out["good.htb"].ok
    assert dev.store.task("T7") is None and dev.store.people() == []
    assert not any("[" in p.person_id for p in dev.store.people())
    assert (dev.state / "refused" / "bad.htb").exists()


async def test_a_stick_with_40_bundles_imports_all_40(dev, tmp_path):
    stick = tmp_path / "stick"
    stick.mkdir()
    for n in range(1, 41):
        (stick / f"tasks-{n:02}.htb").write_bytes(dev.pack("tasks", {"tasks": [task(f"T{n}")]}, seq=n))
    collected, outcomes = await usb.usb_import(stick, state_dir=dev.state, journal=dev.journal, store=dev.store,
                                               device_keys=dev.keys, trusted_signers=[dev.hq.public_key()],
                                               fingerprint_modules=dev.modules, now=NOW)
    assert len(outcomes) == 40 and all(o.ok for _, o in outcomes), [o.code for _, o in outcomes if not o.ok]
    assert dev.store.task_count() == 40 and dev.store.last_bundle_seq("tasks") == 40
    assert not collected.errors
