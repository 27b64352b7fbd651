"""Durable appends per second: Journal.append against a raw sqlite3 loop, same pragmas, same run.

usage: python tests/bench/bench_journal.py [--entries N] [--block B] [--dir DIR]

The raw loop is the floor cost of durability here: one INSERT committed (WAL fsync under
synchronous=FULL) per entry of similar size, computing nothing. The disk of a shared machine is
noisy, so the two take turns in short blocks of appends and each side's blocks are summed: both
see the same disk. Goal: ratio >= 0.8.
"""

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agent.journal import Journal  # noqa: E402

BODY = {
    "station": "door",
    "person_id": "E-0042",
    "result": "match",
    "score": 187,
    "snapshot": "sha256:" + "ab" * 32,
    "note": "押运员指纹验证成功",
}
TASK_ID = "D-20261122-01"


def open_raw(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)  # each INSERT is its own committed transaction
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(
        "CREATE TABLE journal (seq INTEGER PRIMARY KEY, ts TEXT NOT NULL, kind TEXT NOT NULL, task_id TEXT,"
        " body TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)"
    )
    conn.execute("CREATE INDEX journal_task_id ON journal (task_id)")
    return conn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10000, help="appends on each side (default 10000)")
    parser.add_argument("--block", type=int, default=50, help="appends per turn (default 50)")
    parser.add_argument("--dir", default=None, help="directory on the disk to measure (default: system temp)")
    args = parser.parse_args()

    body = json.dumps(BODY, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    ts, digest = "2026-11-22T07:30:00.123Z", "cd" * 32
    journal_time = raw_time = 0.0
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        journal = Journal(Path(tmp) / "journal.db")
        raw = open_raw(Path(tmp) / "raw.db")
        seq = 0
        while seq < args.entries:
            start = time.perf_counter()
            for n in range(seq + 1, seq + args.block + 1):
                raw.execute(
                    "INSERT INTO journal (seq, ts, kind, task_id, body, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (n, ts, "finger_attempt", TASK_ID, body, digest, digest),
                )
            middle = time.perf_counter()
            for _ in range(args.block):
                journal.append("finger_attempt", BODY, task_id=TASK_ID)
            end = time.perf_counter()
            raw_time += middle - start
            journal_time += end - middle
            seq += args.block
        assert journal.verify().ok
        journal.close()
        raw.close()
    journal_rate, raw_rate = seq / journal_time, seq / raw_time
    print(f"{seq} durable appends each (WAL, synchronous=FULL), alternating blocks of {args.block}:")
    print(f"  Journal.append     {journal_rate:9.0f} appends/s   ({journal_time / seq * 1e6:.0f} us each)")
    print(f"  raw sqlite3 loop   {raw_rate:9.0f} appends/s   ({raw_time / seq * 1e6:.0f} us each)")
    print(f"  ratio              {journal_rate / raw_rate:9.2f}   (goal >= 0.8)")


if __name__ == "__main__":
    main()
