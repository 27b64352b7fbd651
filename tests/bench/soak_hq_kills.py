"""Soak: kill -9 of `serve`, mosquitto and PostgreSQL at random moments while a fleet works (issue 15).

    python tests/bench/soak_hq_kills.py [--terminals 200] [--kills 10] [--day-seconds 180] [--workers 1]

A fleet of simulated terminals (tools/fleet.py: own certificate, journal and MQTT session each) runs a
compressed day against one mosquitto while `handover-hq serve` ingests into a throwaway PostgreSQL. Meanwhile
each of serve, mosquitto and PostgreSQL is killed with SIGKILL `--kills` times, in random order at random
moments, and started again. When the day is over and drained, `handover-hq verify-against` compares the
database with every terminal's journal file: every device's seq contiguous, no duplicate, chain verified,
equal to the journal. Exit status 0 only if it says OK.
"""
from __future__ import annotations

import argparse
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "integration"), str(ROOT / "tools")]

from bench_hq import Serve, committed, fresh_db  # noqa: E402
from broker import HQ_IDENTITY, Broker, Pki, env_with_repo  # noqa: E402
from fleet import run_fleet  # noqa: E402
from postgres import Postgres  # noqa: E402


def journal_total(state: Path) -> tuple[int, list[str]]:
    total, args = 0, []
    for path in sorted(state.glob("fleet-*/journal.db")):
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        total += conn.execute("SELECT coalesce(max(seq), 0) FROM journal").fetchone()[0]
        conn.close()
        args += ["--journal", f"{path.parent.name}={path}"]
    return total, args


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--terminals", type=int, default=200)
    p.add_argument("--kills", type=int, default=10, help="kills of each of serve, mosquitto and PostgreSQL")
    p.add_argument("--day-seconds", type=float, default=180.0)
    p.add_argument("--handovers", type=int, default=6)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--seed", type=int, default=15)
    args = p.parse_args()
    rng = random.Random(args.seed)
    folder = Path(tempfile.mkdtemp(prefix="soak-hq-"))
    state = Path(tempfile.mkdtemp(prefix="soak-fleet-", dir="/dev/shm"))
    pki = Pki(folder / "pki")
    (folder / "broker").mkdir()
    broker = Broker(folder / "broker", pki).start()
    pg = Postgres().start()
    cert, key = pki.issue(HQ_IDENTITY)
    for i in range(args.terminals):
        pki.issue(f"fleet-{i:04d}")
    db_url = fresh_db("postgresql", pg, folder, "soak")
    serve = Serve(broker, cert, key, db_url, folder, args.workers)
    time.sleep(2)
    fleet_done = threading.Event()
    fleet_result: list = []

    def fleet() -> None:
        fleet_result.extend(run_fleet(terminals=args.terminals, processes=max(1, min(4, args.terminals // 100 + 1)),
                                      host="127.0.0.1", port=broker.port, ca=str(broker.pki.ca_file),
                                      certs=str(pki.folder), state=str(state), day_seconds=args.day_seconds,
                                      handovers=args.handovers, drain_seconds=900))
        fleet_done.set()

    threading.Thread(target=fleet, daemon=True).start()
    victims = ["serve", "mosquitto", "postgresql"] * args.kills
    rng.shuffle(victims)
    started = time.monotonic()
    # spread the kills over the day (the fleet needs a few seconds to connect first)
    gap = max(0.5, (args.day_seconds - 5) / len(victims))
    try:
        time.sleep(5 + args.terminals / 100)
        for n, victim in enumerate(victims, 1):
            time.sleep(rng.uniform(0.2, 1.8) * gap)
            if victim == "serve":
                for proc in serve.procs:
                    proc.kill()
                    proc.wait()
                time.sleep(rng.uniform(0, 1))
                serve = Serve(broker, cert, key, db_url, folder, args.workers)
            elif victim == "mosquitto":
                broker.kill()
                time.sleep(rng.uniform(0, 1))
                broker.start()
            else:
                pg.kill()
                time.sleep(rng.uniform(0, 1))
                pg.start()
            print(f"{time.monotonic() - started:6.1f} s  kill -9 #{n:2d}: {victim}", flush=True)
        fleet_done.wait()
        total, journal_args = journal_total(state)
        deadline = time.monotonic() + 900
        while committed(db_url) < total and time.monotonic() < deadline:
            time.sleep(0.5)
        serve.stop()
        verify = subprocess.run([sys.executable, "-m", "hq.cli", "verify-against", "--db", db_url, *journal_args],
                                cwd=ROOT, env=env_with_repo(), capture_output=True, text=True)
        print(f"{args.terminals} terminals, {total} entries, {args.kills} kills each of serve, mosquitto and "
              f"PostgreSQL in {time.monotonic() - started:.0f} s")
        print(verify.stdout.strip())
        print(verify.stderr.strip()[-3000:], file=sys.stderr)
        return verify.returncode
    finally:
        serve.stop()
        broker.stop()
        pg.remove()
        shutil.rmtree(state, ignore_errors=True)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
