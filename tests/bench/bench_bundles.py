"""Benchmark: import 10,000 tasks + 1,000 people (20 KB photo, two 512-byte templates each).

Prints seconds end to end for each import (goal <= 2 s together) and verify+decrypt throughput against a
raw AES-256-GCM decrypt of the same number of bytes, measured in the same run.

    python tests/bench/bench_bundles.py
"""
from __future__ import annotations

import asyncio
import base64
import os
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402

from agent.journal import Journal  # noqa: E402
from agent.sealing import Sealer  # noqa: E402
from agent.store import Store  # noqa: E402
from drivers.fingerprint.sim import SimulatedFingerprint  # noqa: E402
from protocol.bundle import open_bundle, pack_bundle  # noqa: E402
from offline.importers import import_bundle  # noqa: E402
from protocol.keys import DeviceKeys  # noqa: E402

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=timezone.utc)


def tasks(n: int) -> dict:
    return {"tasks": [{
        "task_id": f"T{i:05d}", "version": 1, "kind": "delivery",
        "window_start": "2026-11-22T09:00:00+08:00", "window_end": "2026-11-22T11:00:00+08:00",
        "route": ["vault-01", f"branch-{i % 50:02d}"],
        "vehicle": {"vehicle_id": f"V{i % 40}", "plate": f"粤A{i:05d}", "beacon": f"AA:BB:CC:{i % 256:02X}"},
        "escorts": [f"E{i % 1000:04d}", f"E{(i + 1) % 1000:04d}"],
        "boxes": [{"box_id": f"B{i}-{k}", "tag": f"04{i:06X}{k:02X}", "destination": f"branch-{i % 50:02d}"}
                  for k in range(3)],
        "confirmers": ["O1", "O2"]} for i in range(n)]}


def people(n: int) -> dict:
    b64 = lambda size: base64.b64encode(os.urandom(size)).decode()  # noqa: E731
    return {"people": [{
        "person_id": f"E{i:04d}", "name": f"押运员{i}", "role": "escort", "company": "安保押运",
        "valid_from": "2026-01-01", "valid_until": "2026-12-31", "photo_data": b64(20 * 1024),
        "templates": [{"finger": "right_index", "data": b64(512)}, {"finger": "left_index", "data": b64(512)}],
    } for i in range(n)]}


def best_of(n: int, fn) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


async def main() -> None:
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        tmp = Path(tmp)
        keys = DeviceKeys.load_or_create(tmp / "keys", "dev-1")
        hq = Ed25519PrivateKey.generate()
        journal = Journal(tmp / "journal.db")
        store = Store(journal.db, Sealer(tmp / "keys" / "data.key"), tmp / "photos")
        modules = [SimulatedFingerprint("door"), SimulatedFingerprint("counter")]
        expires = NOW + timedelta(days=1)
        bundles = {kind: pack_bundle(kind, payload, "dev-1", keys.bundle_public, hq, 1, expires, NOW)
                   for kind, payload in (("tasks", tasks(10_000)), ("personnel", people(1_000)))}

        total = 0.0
        for kind, data in bundles.items():
            opened = best_of(1, lambda: open_bundle(data, keys, [hq.public_key()], NOW, 0))
            t = time.perf_counter()
            out = await import_bundle(data, journal=journal, store=store, device_keys=keys,
                                      trusted_signers=[hq.public_key()], fingerprint_modules=modules, now=NOW)
            took = time.perf_counter() - t
            assert out.ok, out
            total += took
            print(f"import {kind:9s}: {len(data) / 1e6:5.1f} MB bundle in {took:5.2f} s "
                  f"(verify+decrypt+parse {opened:4.2f} s, the rest is checking and storing)")
        print(f"end to end: {total:.2f} s for 10,000 tasks + 1,000 people (goal <= 2 s)")
        assert store.task_count() == 10_000 and await modules[0].template_count() == 2_000

        # Verify + decrypt alone vs a raw AES-256-GCM decrypt of as many bytes.
        data = bundles["personnel"]
        ours = best_of(5, lambda: open_bundle(data, keys, [hq.public_key()], NOW, 0))
        aes, nonce = AESGCM(AESGCM.generate_key(bit_length=256)), os.urandom(12)
        ct = aes.encrypt(nonce, os.urandom(len(data) - 16), None)
        raw = best_of(5, lambda: aes.decrypt(nonce, ct, None))
        mb = len(data) / 1e6
        print(f"open_bundle (verify+decrypt+inflate+JSON): {mb / ours:7.0f} MB/s")
        print(f"raw AES-256-GCM decrypt:                   {mb / raw:7.0f} MB/s")
        print(f"ratio raw/ours: {ours / raw:.1f}x slower than a bare decrypt")
        journal.close()


if __name__ == "__main__":
    asyncio.run(main())
