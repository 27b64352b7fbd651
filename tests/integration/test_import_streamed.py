"""Streamed (format 2) bundles, issue 19 item 14: imported without holding the payload in memory, and
refused with the same codes as format 1 — plus chunk-level tampering and a file changed mid-read."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import struct

import pytest

from protocol import bundle as B
from hq import cli as hq
from offline import usb
from protocol.keys import load_signers, public_pem
from test_import import NOW, Device, person, task  # noqa: F401
from test_import_poison import drain, dev  # noqa: F401  (fixture)


def pack(dev, tmp_path, kind, records, seq, *, name="b.htb", device_id="dev-1", public=None):
    jsonl = tmp_path / f"{name}.jsonl"
    jsonl.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    out = tmp_path / name
    B.pack_streamed(kind, jsonl, out, device_id, public or dev.keys.bundle_public, dev.hq, seq,
                    NOW + B.timedelta(days=3), NOW)
    return out


def inbox(dev, path):
    (dev.state / "inbox").mkdir(parents=True, exist_ok=True)
    os.replace(path, dev.state / "inbox" / path.name)


async def test_streamed_tasks_and_personnel_import(dev, tmp_path):
    people = [person("E1"), person("E2", fingers=("right_thumb",))]
    inbox(dev, pack(dev, tmp_path, "tasks", [{"task": task("T1")}, {"task": task("T2", 3)}], 1, name="t.htb"))
    inbox(dev, pack(dev, tmp_path, "personnel", [{"person": p} for p in people] + [{"remove": "E9"}], 1,
                    name="p.htb"))
    out = dict(await drain(dev))
    assert out["t.htb"].ok and out["t.htb"].summary == {"received": 2, "stored": 2, "unchanged": 0}
    assert out["p.htb"].ok and out["p.htb"].summary["templates"] == 3 and out["p.htb"].summary["removed"] == 1
    assert dev.store.task("T2").version == 3 and dev.store.last_bundle_seq("tasks") == 1
    e1 = dev.store.person("E1")
    assert dev.store.photo(e1.photo) == base64.b64decode(people[0]["photo_data"])
    assert all([await m.template_count() for m in dev.modules])


def _resign(dev, path, mutate_ciphertext):
    """Change the ciphertext and sign it again with head office's key: only the AEAD can tell."""
    data = bytearray(path.read_bytes())
    (hlen,) = struct.unpack(">H", data[4:6])
    ct_at = 6 + hlen + 8
    ct = bytearray(data[ct_at:-64])
    ct = mutate_ciphertext(ct)
    signed = bytes(data[:6 + hlen]) + struct.pack(">Q", len(ct))
    path.write_bytes(signed + bytes(ct) + dev.hq.sign(signed + hashlib.sha512(ct).digest()))


def _enc_end(ct: bytearray) -> int:
    return 2 + struct.unpack(">H", ct[:2])[0]


@pytest.mark.parametrize("case, code", [
    ("flip", "bad_signature"), ("cut", "truncated"), ("swap chunks", "tampered"), ("drop last chunk", "tampered"),
    ("wrong device", "wrong_device"), ("replayed", "replayed"), ("changed mid-read", "tampered"),
])
async def test_a_refused_streamed_bundle_changes_nothing(dev, tmp_path, monkeypatch, case, code):
    monkeypatch.setattr(B, "CHUNK_SIZE", 4096)                # several chunks from a small payload
    await drain_one(dev, pack(dev, tmp_path, "tasks", [{"task": task("T0")}], 1, name="first.htb"))
    records = [{"task": task(f"T{n}", boxes=[{"box_id": os.urandom(48).hex(), "tag": "04A1", "destination": "x"}
                                             for _ in range(4)])} for n in range(1, 60)]
    path = pack(dev, tmp_path, "tasks", records, 2 if case != "replayed" else 1)
    if case == "flip":
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 1
        path.write_bytes(bytes(data))
    elif case == "cut":
        path.write_bytes(path.read_bytes()[:-100])
    elif case == "swap chunks":
        def swap(ct):
            at, size = _enc_end(ct), 4096 + 16
            first, second = ct[at:at + size], ct[at + size:at + 2 * size]
            return ct[:at] + second + first + ct[at + 2 * size:]
        _resign(dev, path, swap)
    elif case == "drop last chunk":
        def drop(ct):
            at, size = _enc_end(ct), 4096 + 16
            full = (len(ct) - at - 1) // size
            return ct[:at + full * size]
        _resign(dev, path, drop)
    elif case == "wrong device":
        path = pack(dev, tmp_path, "tasks", records, 2, device_id="dev-2",
                    public=B.X25519PrivateKey.generate().public_key())
    before = dev.snapshot()
    if case == "changed mid-read":
        opened = B.open_streamed(path, dev.keys, [dev.hq.public_key()], NOW, 1)
        data = bytearray(path.read_bytes())
        data[-200] ^= 1                                       # after the signature was checked
        path.write_bytes(bytes(data))
        with pytest.raises(B.BundleRefused) as caught:
            list(opened.records())
        assert caught.value.code == code
        return
    outcome = await drain_one(dev, path)
    assert not outcome.ok and outcome.code == code, outcome
    assert dev.snapshot() == {**before, "journal": dev.snapshot()["journal"]}   # only the refusal journaled
    assert usb.refused_count(dev.state) == 1


async def drain_one(dev, path):
    inbox(dev, path)
    [(_, outcome)] = await drain(dev)
    return outcome


async def test_a_record_longer_than_the_limit_is_refused(dev, tmp_path, monkeypatch):
    monkeypatch.setattr(B, "MAX_RECORD_SIZE", 1000)
    outcome = await drain_one(dev, pack(dev, tmp_path, "tasks", [{"task": task("T1", route=["x" * 2000])}], 1))
    assert outcome.code == "bad_payload" and "longer than" in outcome.message
    assert dev.store.task("T1") is None and dev.store.last_bundle_seq("tasks") == 0


async def test_a_wrongly_typed_streamed_record_is_refused_naming_it(dev, tmp_path):
    outcome = await drain_one(dev, pack(dev, tmp_path, "personnel", [{"person": {**person("E1"), "person_id": ["x"]}}],
                                        1))
    assert outcome.code == "bad_payload" and "person_id" in outcome.message
    assert dev.store.people() == []


def test_head_office_packs_a_streamed_bundle_from_json_lines(dev, tmp_path):
    office = tmp_path / "hq"
    assert hq.main(["keys", "create", "--keys", str(office)]) == 0
    (tmp_path / "dev.pub.pem").write_bytes(public_pem(dev.keys.bundle_public))
    (tmp_path / "day.jsonl").write_text(json.dumps({"task": task("T5")}) + "\n", encoding="utf-8")
    assert hq.main(["pack", "tasks", "--keys", str(office), "--device-pub", str(tmp_path / "dev.pub.pem"),
                    "--device-id", "dev-1", "--seq", "4", "--in", str(tmp_path / "day.jsonl"),
                    "--out", str(tmp_path / "t.htb")]) == 0
    assert (tmp_path / "t.htb").read_bytes()[:4] == b"HTB2"
    opened = B.open_streamed(tmp_path / "t.htb", dev.keys, load_signers([office / "signing.pub.pem"]),
                             B.datetime.now(B.timezone.utc), 3)
    assert [r["task"]["task_id"] for r in opened.records()] == ["T5"]


async def test_a_streamed_tasks_bundle_carries_site_names_and_a_wrong_map_refuses_it_by_name(dev, tmp_path):
    records = [{"sites": {"branch-01": "城东支行"}}, {"task": task("T1")}, {"sites": {"VLT-01": "中心金库"}}]
    inbox(dev, pack(dev, tmp_path, "tasks", records, 1, name="t.htb"))
    inbox(dev, pack(dev, tmp_path, "tasks", [{"task": task("T2")}, {"sites": {"BR-002": 2}}], 2, name="u.htb"))
    out = dict(await drain(dev))
    assert out["t.htb"].ok and dev.store.site_names() == {"branch-01": "城东支行", "VLT-01": "中心金库"}
    assert not out["u.htb"].ok and "sites.BR-002: must be text" in out["u.htb"].message
    assert dev.store.task("T2") is None and dev.store.site_names() == {"branch-01": "城东支行", "VLT-01": "中心金库"}


async def test_streamed_tasks_carry_route_progress(dev, tmp_path):
    stop = {"task_id": "T1", "site_id": "vault-01", "at": "2026-11-22T08:30:00+08:00"}
    inbox(dev, pack(dev, tmp_path, "tasks", [{"task": task("T1")}, {"stop": stop}], 1, name="t.htb"))
    out = dict(await drain(dev))
    assert out["t.htb"].ok and out["t.htb"].summary["stops"] == 1
    assert dev.store.stops_done("T1") == {"vault-01"}
