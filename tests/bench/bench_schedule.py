"""How long head office takes to check and store a large dispatch (issue 16), as a ratio against a raw
baseline measured in the same run: reading the same CSV with the csv module and inserting its rows as they
are into SQLite in one transaction (what any import must at least do). Prints figures; asserts nothing.

    .venv/bin/python tests/bench/bench_schedule.py [--routes 2000]
"""
from __future__ import annotations

import argparse
import csv
import io
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from hq.db import Database  # noqa: E402
from hq.schedule import import_schedule, import_sites  # noqa: E402

HEADER = "date,route,stop,site,kind,window_start,window_end,plate,beacon,escorts,boxes,confirmers"
BEACON = "ibeacon:e2c56db5-dffb-48d2-b060-d0f5a71096e0:100:{}"


def dispatch(routes: int, branches: int, escort_swap: int = -1) -> bytes:
    """`routes` delivery runs of three stops (the vault, two branches), four boxes each; with escort_swap,
    that route's second escort is another."""
    rows = [HEADER]
    for r in range(routes):
        a, b = f"BR-{r % branches:03d}", f"BR-{(r + 1) % branches:03d}"
        esc = f"E{2 * r:05d};E{2 * r + 1 if r != escort_swap else 99999:05d}"
        common = f"P{r:05d},{BEACON.format(r % 65535)},{esc}"
        boxes = lambda n: ";".join(f"B{r:05d}{n}{i}:04{r:08X}{n}{i:03X}" for i in range(2))   # noqa: E731
        rows += [f"2026-11-30,R{r:05d},1,VLT-01,delivery,06:00,06:30,{common},,",
                 f"2026-11-30,R{r:05d},2,{a},delivery,08:00,09:00,{common},{boxes(1)},O01",
                 f"2026-11-30,R{r:05d},3,{b},delivery,09:30,10:30,{common},{boxes(2)},O02"]
    return ("\n".join(rows) + "\n").encode()


def baseline(data: bytes, folder: Path) -> float:
    started = time.perf_counter()
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    conn = sqlite3.connect(folder / "raw.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(f"CREATE TABLE raw ({', '.join(f'c{i} TEXT' for i in range(12))})")
    conn.execute("BEGIN")
    conn.executemany(f"INSERT INTO raw VALUES ({', '.join('?' * 12)})", rows[1:])
    conn.execute("COMMIT")
    conn.close()
    return time.perf_counter() - started


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--routes", type=int, default=2000)
    p.add_argument("--branches", type=int, default=300)
    args = p.parse_args()
    data = dispatch(args.routes, args.branches)
    changed = dispatch(args.routes, args.branches, escort_swap=args.routes // 2)
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        raw = baseline(data, folder)
        db = Database(folder / "hq.db").create_schema()
        sites = "site_id,name,type\nVLT-01,vault,vault\n" + "".join(
            f"BR-{i:03d},branch {i},branch\n" for i in range(args.branches))
        import_sites(db, sites.encode())
        t0 = time.perf_counter()
        first = import_schedule(db, data, "d.csv")
        t1 = time.perf_counter()
        again = import_schedule(db, changed, "d.csv")
        t2 = time.perf_counter()
        db.close()
    rows = 3 * args.routes
    print(f"dispatch: {rows} rows, {args.routes} runs, {args.branches + 1} sites, {len(data) // 1024} KiB")
    print(f"raw baseline (csv + one SQLite transaction of the rows): {raw * 1000:.0f} ms")
    print(f"first import (check whole, store {sum(len(v) for v in first.changed.values())} site versions): "
          f"{(t1 - t0) * 1000:.0f} ms = {(t1 - t0) / raw:.1f}x baseline")
    changed_sites = sum(len(v) for v in again.changed.values())
    print(f"late change (one escort swapped: {changed_sites} sites get a new version): "
          f"{(t2 - t1) * 1000:.0f} ms = {(t2 - t1) / raw:.1f}x baseline")


if __name__ == "__main__":
    main()
