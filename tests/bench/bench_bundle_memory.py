"""Benchmark (issue 19 item 14): the daemon's peak memory while importing a large personnel bundle.

Goal: peak RSS <= 150 MB for a 512 MiB payload. Each import runs in a fresh child process that opens a
real journal and store and drains the inbox; its peak RSS (VmHWM) is printed beside the same
child's peak without the import (the raw baseline: interpreter, libraries, journal), in the same run.
Format 1 (one-shot, the whole bundle in memory) is measured at a size it allows, for comparison.

    python tests/bench/bench_bundle_memory.py [--mib 512] [--v1-mib 64]
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402

from protocol.bundle import pack_bundle, pack_streamed  # noqa: E402
from protocol.keys import DeviceKeys  # noqa: E402

PHOTO = 1_900_000            # bytes per photo, under the 2 MiB limit; random, so it does not compress

CHILD = r"""
import asyncio, sys
from datetime import datetime, timezone
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from cryptography.hazmat.primitives import serialization
from agent.journal import Journal
from agent.sealing import Sealer
from agent.store import Store
from protocol.keys import DeviceKeys
from offline.usb import drain_inbox
state, do_import = Path(sys.argv[2]), sys.argv[3] == "1"
keys = DeviceKeys.load_or_create(state / "keys", "dev-1")
journal = Journal(state / "journal.db")
store = Store(journal.db, Sealer(state / "keys" / "data.key"), state / "photos")
signer = serialization.load_pem_public_key((state / "hq.pub.pem").read_bytes())
if do_import:
    out = asyncio.run(drain_inbox(state / "inbox", journal=journal, store=store, device_keys=keys,
                                  trusted_signers=[signer], fingerprint_modules=[],
                                  now=datetime.now(timezone.utc), state_dir=state))
    assert out and all(o.ok for _, o in out), [(n, o.code, o.message) for n, o in out]
# VmHWM, not ru_maxrss: the latter carries the forking parent's peak across exec.
print(next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")) // 1024)
"""


def person(n: int) -> dict:
    return {"person_id": f"E{n:05d}", "name": f"P{n}", "role": "escort",
            "photo_data": base64.b64encode(os.urandom(PHOTO)).decode(),
            "templates": [{"finger": "right_index", "data": base64.b64encode(os.urandom(512)).decode()}]}


def peak(state: Path, do_import: bool) -> tuple[int, float]:
    started = time.monotonic()
    r = subprocess.run([sys.executable, "-c", CHILD, str(ROOT), str(state), "1" if do_import else "0"],
                       capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(r.stderr)
    return int(r.stdout.strip().splitlines()[-1]), time.monotonic() - started


def device(folder: Path, hq: Ed25519PrivateKey) -> tuple[Path, DeviceKeys]:
    state = folder / "state"
    (state / "inbox").mkdir(parents=True)
    (state / "hq.pub.pem").write_bytes(hq.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return state, DeviceKeys.load_or_create(state / "keys", "dev-1")


def measure(fmt: int, mib: int, hq: Ed25519PrivateKey) -> None:
    now = datetime.now(timezone.utc)
    with tempfile.TemporaryDirectory(prefix="bench-mem-") as tmp:
        state, keys = device(Path(tmp), hq)
        people = max(1, mib * 1024 * 1024 // int(PHOTO * 4 / 3 + 900))
        if fmt == 2:
            jsonl = Path(tmp) / "payload.jsonl"
            with open(jsonl, "w", encoding="utf-8") as f:
                for n in range(people):
                    f.write(json.dumps({"person": person(n)}) + "\n")
            payload_size = jsonl.stat().st_size
            pack_streamed("personnel", jsonl, state / "inbox" / "p.htb", "dev-1", keys.bundle_public, hq, 1,
                          now + timedelta(days=1), now)
            jsonl.unlink()
        else:
            payload = {"people": [person(n) for n in range(people)]}
            data = pack_bundle("personnel", payload, "dev-1", keys.bundle_public, hq, 1, now + timedelta(days=1), now)
            payload_size = len(json.dumps(payload, separators=(",", ":")))
            del payload
            (state / "inbox" / "p.htb").write_bytes(data)
            del data
        base, _ = peak(state, False)
        top, seconds = peak(state, True)
        print(f"format {fmt}: {payload_size / 2**20:6.0f} MiB payload ({people} people with photos): "
              f"peak RSS {top} MB, baseline {base} MB, import adds {top - base} MB "
              f"({(top - base) / (payload_size / 2**20):.2f} MB per MiB of payload), {seconds:.0f} s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mib", type=int, default=512, help="format-2 payload size")
    p.add_argument("--v1-mib", type=int, default=64, help="format-1 payload size (0: skip)")
    args = p.parse_args()
    hq = Ed25519PrivateKey.generate()
    if args.v1_mib:
        measure(1, args.v1_mib, hq)
    measure(2, args.v1_mib or 64, hq)
    measure(2, args.mib, hq)


if __name__ == "__main__":
    main()
