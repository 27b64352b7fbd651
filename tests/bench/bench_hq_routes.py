"""Benchmark: what the route board costs head office (issue 16).

    python tests/bench/bench_hq_routes.py [--db sqlite postgresql] [--routes 400] [--reps 5]

1. Ingest: `Database.apply_many` of 40,000 chained entries (20 devices, 20 rounds of 100-entry batches) into a
   fresh database with the schema as it is, against the same with the route board's partial index dropped
   (the raw baseline), `--reps` times each, medians. SQLite is timed in CPU seconds (it runs in this
   process: the neighbours' load moves wall time more), PostgreSQL in wall time. Also the same against a full
   index on entries (task_id, kind), the design it replaced.
2. The board: `hq.routes.day_routes` for a day of `--routes` delivery runs of 4 stops (each run's vault stop
   done, every second run's truck at its first branch's door), against the raw baseline of reading the same
   rows — the day's schedule bodies and every entry of those tasks — with one plain SELECT each, no judging.

Printed as JSON lines."""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "integration")]

from agent.journal import Journal  # noqa: E402
from hq import routes  # noqa: E402
from hq.db import Database  # noqa: E402
from hq.schedule import import_schedule, import_sites  # noqa: E402
from postgres import Postgres, fresh_database  # noqa: E402
from protocol.chain import GENESIS_HASH, entry_hash  # noqa: E402
from route_day import BEACON, as_uplink, end_stop, start_stop  # noqa: E402

CST = timezone(timedelta(hours=8))
DAY = date(2026, 11, 30)


def _batches(device: str, rounds: int, per: int) -> list[list[dict]]:
    prev, seq, out = GENESIS_HASH, 0, []
    for _ in range(rounds):
        batch = []
        for _ in range(per):
            seq += 1
            ts, kind, task = "2026-11-30T01:00:00.000Z", ("finger_attempt", "box_read", "arrival")[seq % 3], \
                f"R{seq // 20:04d}-20261130"
            body = {"event": {"type": "BoxPresented", "tag": "04A1B2C3D4E5F6"}, "at": ts, "step": "box_handover",
                    "decisions": [{"type": "BoxAccepted", "box_id": f"B{seq}", "tag": "04", "uid_only": False}]}
            h = entry_hash(seq, ts, kind, task, body, prev)
            batch.append({"id": f"{device}:{seq}", "seq": seq, "ts": ts, "kind": kind, "task_id": task,
                          "body": body, "prev_hash": prev, "hash": h})
            prev = h
        out.append(batch)
    return out


def _ingest(url: str, variant: str, work) -> float:
    db = Database(url).create_schema()
    if variant != "schema":
        db.run(lambda cur: cur.execute("DROP INDEX hq_routes_handovers"))
    if variant == "full_index":
        db.run(lambda cur: cur.execute("CREATE INDEX bench_full ON entries (task_id, kind)"))
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(len(work[0][1])):
        db.apply_many([(device, batches[i]) for device, batches in work])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    db.close()
    n = sum(len(b) for _, batches in work for b in batches)
    return n / (cpu if not url.startswith("postgresql") else wall)


def ingest(name: str, new_url, reps: int) -> dict:
    work = [(f"dev-{d:03d}", _batches(f"dev-{d:03d}", 20, 100)) for d in range(20)]
    rates = {"raw": [], "schema": [], "full_index": []}
    order = list(rates)
    for rep in range(reps):
        for variant in order[rep % 3:] + order[:rep % 3]:     # each variant first in turn: no warm-up favourite
            rates[variant].append(_ingest(new_url(), variant, work))
    med = {k: statistics.median(v) for k, v in rates.items()}
    return {"bench": "ingest", "db": name, "measure": "cpu" if name == "sqlite" else "wall",
            "entries_per_s_raw": round(med["raw"]), "entries_per_s": round(med["schema"]),
            "ratio_vs_raw": round(med["schema"] / med["raw"], 3),
            "full_index_ratio_vs_raw": round(med["full_index"] / med["raw"], 3)}


def _day(url: str, n_routes: int, folder: Path) -> Database:
    db = Database(url).create_schema()
    sites = [f"BR-{i:03d}" for i in range(200)]
    import_sites(db, ("site_id,name,type\nVLT-01,中心金库,vault\n" + "".join(
        f"{s},网点{s},branch\n" for s in sites)).encode())
    rows = ["date,route,stop,site,kind,window_start,window_end,plate,beacon,escorts"]
    paths = [["VLT-01"] + [sites[(r * 3 + k) % len(sites)] for k in range(3)] for r in range(n_routes)]
    for r, path in enumerate(paths):
        for n, site in enumerate(path):
            rows.append(f"{DAY},R{r:04d},{n + 1},{site},delivery,{8 + n:02d}:00,{8 + n:02d}:30,沪A·{r:05d},{BEACON},E01;E02")
    import_schedule(db, "\n".join(rows).encode(), "day.csv")
    # every run's first stop done at the vault; every second run's truck at its first branch's door
    vault, branch = Journal(folder / "vault.db"), Journal(folder / "branch.db")
    t = datetime(DAY.year, DAY.month, DAY.day, 8, 5, tzinfo=CST)
    for r, path in enumerate(paths):
        start_stop(vault, DAY, "VLT-01", t, officer=None, route=f"R{r:04d}")
        end_stop(vault, DAY, "VLT-01", t, t + timedelta(minutes=10), route=f"R{r:04d}")
        if r % 2 == 0:
            start_stop(branch, DAY, path[1], t + timedelta(hours=1), route=f"R{r:04d}")
    for device, journal in (("dev-vlt", vault), ("dev-br", branch)):
        db.apply(device, as_uplink(device, list(journal.entries())))
        journal.close()
    return db


def board(name: str, url: str, n_routes: int, reps: int, folder: Path) -> dict:
    db = _day(url, n_routes, folder)
    now = datetime(DAY.year, DAY.month, DAY.day, 10, 45, tzinfo=CST)
    judged, raw = [], []
    for _ in range(reps):
        t = time.perf_counter()
        found = routes.day_routes(db, DAY.isoformat(), now)
        judged.append(time.perf_counter() - t)
        t = time.perf_counter()
        db.run(lambda cur: (cur.all("SELECT site_id, task_id, body FROM schedule_tasks WHERE day = ?", (DAY.isoformat(),)),
                            cur.all("SELECT device, seq, ts, kind, task_id, body FROM entries")))
        raw.append(time.perf_counter() - t)
    assert len(found) == n_routes
    db.close()
    a, b = statistics.median(judged), statistics.median(raw)
    return {"bench": "board", "db": name, "routes": n_routes, "stops": n_routes * 4,
            "day_routes_ms": round(a * 1000, 1), "raw_read_ms": round(b * 1000, 1), "ratio_vs_raw": round(a / b, 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--db", nargs="+", default=["sqlite", "postgresql"], choices=["sqlite", "postgresql"])
    p.add_argument("--routes", type=int, default=400)
    p.add_argument("--reps", type=int, default=5)
    args = p.parse_args()
    pg = Postgres().start() if "postgresql" in args.db else None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            for name in args.db:
                def new_url() -> str:
                    return fresh_database(pg) if name == "postgresql" else tempfile.mktemp(suffix=".db", dir=folder)
                print(json.dumps(ingest(name, new_url, args.reps)), flush=True)
                sub = Path(tempfile.mkdtemp(dir=folder))
                print(json.dumps(board(name, new_url(), args.routes, args.reps, sub)), flush=True)
    finally:
        if pg is not None:
            pg.remove()


if __name__ == "__main__":
    main()
