"""What sealing a complaint to head office costs the terminal: a registration through ComplaintBook.register
with head office's complaint key, against the same registration without it (today's path: the local
at-rest copy only), same run, same journal file kind; plus the entry sizes against sync's 32 KiB batch.

usage: python tests/bench/bench_complaint_seal.py [--complaints N] [--dir DIR]

The two books take turns in short blocks so both see the same (shared, noisy) disk; each side's blocks are
summed. Goal: ratio (with key / without) >= 0.8 of registrations per second: the HPKE seal (one X25519
exchange) must stay small beside the journal's durable append.
"""

import argparse
import json
import random
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey  # noqa: E402

from agent.calendar_data import build_calendar  # noqa: E402
from agent.complaints import ComplaintBook  # noqa: E402
from agent.journal import Journal  # noqa: E402
from agent.sealing import Sealer  # noqa: E402
from flows.workdays import DeadlineRules  # noqa: E402
from protocol.complaint import seal_details  # noqa: E402

FORM = {"channel": "walk_in", "category": "irregular_fees", "description": "办理跨行汇款时被多收了二十元手续费，柜员解释不清",
        "request": "退还多收的手续费并道歉", "name": "欧阳娜娜", "contact": "13712345678", "counter": "2号窗口"}
BLOCK = 20


def book(folder: Path, key) -> ComplaintBook:
    return ComplaintBook(Journal(folder / "journal.db"), Sealer(folder / "data.key"), build_calendar(),
                         DeadlineRules(), site_id="BR-001", hq_key=key)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--complaints", type=int, default=400)
    p.add_argument("--dir", default=None)
    args = p.parse_args()
    hq = X25519PrivateKey.generate()
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        (Path(d) / "raw").mkdir()
        (Path(d) / "sealed").mkdir()
        plain, sealed = book(Path(d) / "raw", None), book(Path(d) / "sealed", hq.public_key())
        now = datetime(2026, 11, 30, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
        spent = {"raw": 0.0, "sealed": 0.0}
        done = 0
        while done < args.complaints:
            for name, b in (("raw", plain), ("sealed", sealed)):
                t0 = time.perf_counter()
                for i in range(BLOCK):
                    b.register(FORM, now + timedelta(minutes=done + i))
                spent[name] += time.perf_counter() - t0
            done += BLOCK
        entry = next(e for e in sealed.journal.entries() if e.kind == "complaint_registered")
        bare = next(e for e in plain.journal.entries() if e.kind == "complaint_registered")
        plain.journal.close()
        sealed.journal.close()
    rng = random.Random(1)
    noise = lambda n: "".join(chr(rng.randint(0x4E00, 0x9FA5)) for _ in range(n))     # noqa: E731
    worst = seal_details(hq.public_key(), "BR-001-TS20261130-001", "handle",
                         {k: noise(2000) for k in ("notes", "cause", "remedy", "staff_opinion")})
    raw_rate, sealed_rate = done / spent["raw"], done / spent["sealed"]
    print(f"registrations/s without key (raw baseline): {raw_rate:.0f}")
    print(f"registrations/s sealed to head office:      {sealed_rate:.0f}")
    print(f"ratio sealed/raw: {sealed_rate / raw_rate:.2f} (goal >= 0.8)")
    size = lambda e: len(json.dumps(e.body, ensure_ascii=False, separators=(",", ":")).encode())   # noqa: E731
    print(f"complaint_registered body: {size(bare)} B without key, {size(entry)} B sealed "
          f"({size(entry) / 32768:.0%} of a 32 KiB batch)")
    print(f"largest step the form allows (4 x 2000 random CJK chars), sealed: {len(worst)} B "
          f"({len(worst) / 32768:.0%} of a 32 KiB batch)")


if __name__ == "__main__":
    main()
