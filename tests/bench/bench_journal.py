"""Durable appends per second: Journal.append against a raw sqlite3 loop, same pragmas, same run.

usage: python tests/bench/bench_journal.py [--entries N] [--rounds R] [--dir DIR]

The raw loop is the floor cost of durability here: one INSERT committed (WAL fsync under
synchronous=FULL) per entry of similar size, computing nothing. Rounds alternate between the two
so disk noise hits both alike; the median round of each is reported. Goal: ratio >= 0.8.
"""

import argparse
import json
import statistics
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


def journal_rate(path: Path, count: int) -> float:
    journal = Journal(path)
    start = time.perf_counter()
    for n in range(count):
        journal.append("finger_attempt", BODY, task_id="D-20261122-01")
    elapsed = time.perf_counter() - start
    journal.close()
    return count / elapsed


def raw_rate(path: Path, count: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None)  # each INSERT is its own committed transaction
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(
        "CREATE TABLE journal (seq INTEGER PRIMARY KEY, ts TEXT NOT NULL, kind TEXT NOT NULL, task_id TEXT,"
        " body TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)"
    )
    conn.execute("CREATE INDEX journal_task_id ON journal (task_id)")
    body = json.dumps(BODY, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    ts, digest = "2026-11-22T07:30:00.123Z", "cd" * 32
    start = time.perf_counter()
    for seq in range(1, count + 1):
        conn.execute(
            "INSERT INTO journal (seq, ts, kind, task_id, body, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (seq, ts, "finger_attempt", "D-20261122-01", body, digest, digest),
        )
    elapsed = time.perf_counter() - start
    conn.close()
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=2000, help="appends per round (default 2000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each (default 5)")
    parser.add_argument("--dir", default=None, help="directory on the disk to measure (default: system temp)")
    args = parser.parse_args()

    journal_rates, raw_rates = [], []
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for r in range(args.rounds):
            raw_rates.append(raw_rate(Path(tmp) / f"raw-{r}.db", args.entries))
            journal_rates.append(journal_rate(Path(tmp) / f"journal-{r}.db", args.entries))
    journal_median, raw_median = statistics.median(journal_rates), statistics.median(raw_rates)
    print(f"{args.rounds} rounds x {args.entries} durable appends (WAL, synchronous=FULL), median round:")
    print(f"  Journal.append     {journal_median:9.0f} appends/s")
    print(f"  raw sqlite3 loop   {raw_median:9.0f} appends/s")
    print(f"  ratio              {journal_median / raw_median:9.2f}   (goal >= 0.8)")


if __name__ == "__main__":
    main()
