"""Benchmark: head office's `serve` under a fleet of simulated terminals (issue 15).

    python tests/bench/bench_hq.py [--terminals 50 200 500] [--db postgresql sqlite] [--day-seconds 60]

For each database and fleet size, against one local mosquitto (mutual TLS + ACL, as in the tests) and, for
PostgreSQL, a throwaway cluster:
1. live day — `tools/fleet.py`'s compressed day with one `serve` worker up: p50/p99 from an alarm's journal
   timestamp on the terminal to its commit at head office (alarms.received), and per hop (decision -> handed
   to the terminal's MQTT client -> handed on by the broker, seen by a probe session -> committed), so the
   simulated fleet's own lag shows apart from head office's; entries/s committed; how long the fleet's day
   took against --day-seconds and its CPU; CPU seconds and peak RSS of mosquitto and serve; RSS per terminal.
2. outage, 1 worker — serve stopped, the fleet runs another day (the broker queues it), serve starts: the time
   to catch up and the ingest rate (entries/s committed);
3. outage, 2 workers — the same with two workers sharing the fleet (`--group`): the rate and its ratio to one.
Baselines, same run, same rows: a raw batched insert (one transaction per batch of the size the terminals
send, executemany) into PostgreSQL and into SQLite, no chain check and no MQTT. Ratios: ingest / raw.

Terminals' journals live on /dev/shm: their fsyncs are other machines' in real life. SD-card and network
latencies are not modelled. Head office's SQLite file is on the disk (synchronous=FULL).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "integration"), str(ROOT / "tools")]

import paho.mqtt.client as mqtt  # noqa: E402
import psycopg  # noqa: E402

from broker import HQ_IDENTITY, Broker, Pki, env_with_repo  # noqa: E402
from fleet import run_fleet  # noqa: E402
from hq.db import Database  # noqa: E402
from postgres import Postgres  # noqa: E402
from protocol.chain import GENESIS_HASH, entry_hash  # noqa: E402

BATCH = 25    # about what a terminal's batch holds during a live day (a backlog drains in bigger ones)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def fresh_db(kind: str, pg: Postgres | None, folder: Path, name: str) -> str:
    if kind == "sqlite":
        return str(folder / f"{name}.db")
    with psycopg.connect(pg.url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    return pg.url.rsplit("/", 1)[0] + "/" + name


def rows_like_the_fleet(devices: int, per_device: int) -> list[list[tuple]]:
    """Batches of entry rows shaped as the fleet sends them (chained, bodies of the same size)."""
    batches = []
    for d in range(devices):
        device, prev, rows = f"raw-{d:04d}", GENESIS_HASH, []
        for seq in range(1, per_device + 1):
            ts, body = "2026-06-01T08:00:00.000Z", {"box": f"B{seq}-1", "tag": f"04{seq:012X}"}
            h = entry_hash(seq, ts, "box_read", "T-raw", body, prev)
            rows.append((device, seq, f"{device}:{seq}", ts, "box_read", "T-raw", json.dumps(body), prev, h))
            prev = h
        batches += [rows[i:i + BATCH] for i in range(0, len(rows), BATCH)]
    return batches


def raw_insert_rate(url: str, batches: list[list[tuple]]) -> float:
    """Rows/s of a plain batched insert: one transaction per batch, executemany, nothing checked."""
    db = Database(url).create_schema()
    sql = ("INSERT INTO entries (device, seq, id, ts, kind, task_id, body, prev_hash, hash) "
           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
    started = time.perf_counter()
    for batch in batches:
        db.run(lambda cur, b=batch: cur.executemany(sql, b))
    elapsed = time.perf_counter() - started
    db.close()
    return sum(len(b) for b in batches) / elapsed


class Serve:
    def __init__(self, broker, cert, key, db_url: str, folder: Path, workers: int):
        self.procs, self.logs = [], []
        for w in range(workers):
            argv = [sys.executable, "-m", "hq.cli", "serve", "--db", db_url, "--host", "127.0.0.1",
                    "--port", str(broker.port), "--ca", str(broker.pki.ca_file), "--cert", str(cert), "--key",
                    str(key), "--client-id", f"hq-w{w}" if workers > 1 else HQ_IDENTITY]
            if workers > 1:
                argv += ["--group", "hq"]
            self.logs.append(folder / f"serve-{w}-{time.time_ns()}.log")
            with open(self.logs[-1], "ab") as out:
                self.procs.append(subprocess.Popen(argv, cwd=ROOT, env=env_with_repo(), stdout=out, stderr=out))
        self.cpu0 = [0.0] * workers

    def cpu(self) -> float:
        return sum(cpu_seconds(p.pid) for p in self.procs)

    def rss(self) -> float:
        return max(peak_rss_mib(p.pid) for p in self.procs)

    def wait_subscribed(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not all("serving" in log.read_text() for log in self.logs) and time.monotonic() < deadline:
            time.sleep(0.02)

    def stop_when_subscribed(self) -> None:
        self.wait_subscribed()
        self.stop()

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            p.wait(30)


def committed(db_url: str) -> int:
    db = Database(db_url, retry_for=5)
    try:
        return db.count("entries")
    except Exception:
        return 0
    finally:
        db.close()


def wait_committed(db_url: str, target: int, timeout: float = 1800) -> float:
    """Seconds until the database holds `target` entries."""
    started = time.monotonic()
    while committed(db_url) < target:
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"head office holds {committed(db_url)} of {target} entries after {timeout} s")
        time.sleep(0.2)
    return time.monotonic() - started


def alarm_latencies(db_url: str) -> list[float]:
    db = Database(db_url)
    try:
        out = []
        for a in db.alarms():
            made = datetime.fromisoformat(a["ts"].replace("Z", "+00:00"))
            out.append((datetime.fromisoformat(a["received"]) - made).total_seconds())
        return sorted(out)
    finally:
        db.close()


class AlarmProbe:
    """An extra head-office session on the urgent topic (not shared, so it gets every copy): when the broker
    handed each alarm on, the hop between the terminal's publish and serve's commit."""

    def __init__(self, broker, cert, key):
        self.seen: dict[str, float] = {}
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="hq-probe", protocol=mqtt.MQTTv5)
        self.client.tls_set(ca_certs=str(broker.pki.ca_file), certfile=str(cert), keyfile=str(key),
                            cert_reqs=ssl.CERT_REQUIRED)
        subscribed = threading.Event()
        self.client.on_connect = lambda c, *_: c.subscribe("ht/v1/+/urgent", qos=0)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        subscribed.wait(30)

    def _on_message(self, client, userdata, message) -> None:
        if b'"kind":"alarm"' in message.payload:
            self.seen.setdefault(json.loads(message.payload)["entry"]["id"], time.time())

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def alarm_hops(db_url: str, published: dict[str, float], at_broker: dict[str, float]) -> dict:
    """p50/p99 ms of each hop of each alarm: the terminal's decision (its journal timestamp) -> handed to its
    MQTT client -> handed on by the broker -> committed at head office (alarms.received)."""
    db = Database(db_url)
    try:
        hops: dict[str, list[float]] = {"decision_to_published": [], "published_to_broker": [],
                                        "broker_to_committed": []}
        for a in db.alarms():
            made = datetime.fromisoformat(a["ts"].replace("Z", "+00:00")).timestamp()
            done = datetime.fromisoformat(a["received"]).timestamp()
            sent, relayed = published.get(a["id"]), at_broker.get(a["id"])
            if sent is None or relayed is None:
                continue        # its urgent copy was not sent (offline then): it came through the stream
            hops["decision_to_published"].append(sent - made)
            hops["published_to_broker"].append(relayed - sent)
            hops["broker_to_committed"].append(done - relayed)
    finally:
        db.close()
    out = {}
    for name, values in hops.items():
        values.sort()
        out[f"{name}_p50_p99_ms"] = [round(pct(values, 50) * 1000), round(pct(values, 99) * 1000)]
    return out


def verified(db_url: str) -> str:
    return subprocess.run([sys.executable, "-m", "hq.cli", "verify-against", "--db", db_url], cwd=ROOT,
                          env=env_with_repo(), capture_output=True, text=True).stdout.strip()


def pct(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] if values else float("nan")


def run(kind: str, terminals: int, args, pki, pg, folder: Path) -> dict:
    # A broker of its own: sessions and queues left by an earlier run (same device ids) must not leak in.
    (folder / f"broker-{kind}-{terminals}").mkdir()
    broker = Broker(folder / f"broker-{kind}-{terminals}", pki).start()
    try:
        return _run(kind, terminals, args, broker, pki, pg, folder)
    finally:
        broker.stop()


def _run(kind: str, terminals: int, args, broker, pki, pg, folder: Path) -> dict:
    cert, key = pki.issue(HQ_IDENTITY)
    for i in range(terminals):
        if not (pki.folder / f"fleet-{i:04d}.crt").exists():
            pki.issue(f"fleet-{i:04d}")
    state = Path(tempfile.mkdtemp(prefix=f"fleet-{kind}-{terminals}-", dir="/dev/shm"))
    db_url = fresh_db(kind, pg, folder, f"hq_{kind}_{terminals}")
    processes = max(1, min(4, terminals // 100 + 1))
    fleet_args = dict(terminals=terminals, processes=processes, host="127.0.0.1", port=broker.port,
                      ca=str(broker.pki.ca_file), certs=str(pki.folder), state=str(state),
                      day_seconds=args.day_seconds, handovers=args.handovers)
    out: dict = {"db": kind, "terminals": terminals}
    try:
        # 1. a live day
        serve = Serve(broker, cert, key, db_url, folder, 1)
        time.sleep(2)
        probe = AlarmProbe(broker, cert, key)
        b0, s0, t0 = cpu_seconds(broker.proc.pid), serve.cpu(), time.monotonic()
        results = run_fleet(**fleet_args, round_=0)
        fleet_seconds = time.monotonic() - t0
        total = sum(r["entries"] for r in results)
        wait_committed(db_url, total)
        elapsed = time.monotonic() - t0
        probe.stop()
        lat = alarm_latencies(db_url)
        out.update(alarm_hops(db_url, dict(a for r in results for a in r["alarms_published"]), probe.seen))
        out.update(fleet_day_s=round(fleet_seconds, 1), fleet_cpu_s=round(sum(r["cpu_s"] for r in results), 1))
        out.update(day_entries=total, day_seconds=round(elapsed, 1), day_rate=round(total / elapsed),
                   alarms=len(lat), alarm_p50_ms=round(pct(lat, 50) * 1000), alarm_p99_ms=round(pct(lat, 99) * 1000),
                   alarm_max_ms=round(pct(lat, 100) * 1000),
                   broker_cpu_s=round(cpu_seconds(broker.proc.pid) - b0, 1), serve_cpu_s=round(serve.cpu() - s0, 1),
                   broker_rss_mib=round(peak_rss_mib(broker.proc.pid)), serve_rss_mib=round(serve.rss()),
                   kib_per_terminal=round(sum(r["rss_kib"] for r in results) / terminals))
        serve.stop()
        if args.live_only:
            out["verified"] = verified(db_url)
            return out
        # 2. and 3. an outage: the fleet's next day queues at the broker; then 1 worker, then 2, catch up
        for workers, round_ in ((1, 1), (2, 2)):
            # The workers' sessions and (shared) subscriptions exist before the outage, as in production:
            # the broker keeps what arrives meanwhile for them.
            Serve(broker, cert, key, db_url, folder, workers).stop_when_subscribed()
            before = committed(db_url)
            # The terminals stay online after their day (as they do: head office may ask them to resend)
            # until head office has caught up.
            hold = state / f"hold-{round_}"
            for done in state.glob("day-done-*"):
                done.unlink()
            fleet = threading.Thread(target=run_fleet, kwargs=dict(**fleet_args, round_=round_, drain_seconds=300,
                                                                   hold_until=str(hold)))
            fleet.start()
            while len(list(state.glob("day-done-*"))) < processes:
                time.sleep(0.2)
            queued = sum(int(f.read_text()) for f in state.glob("day-done-*")) - before
            serve = Serve(broker, cert, key, db_url, folder, workers)
            try:
                serve.wait_subscribed()         # timed from here: not the interpreter's start-up
                seconds = wait_committed(db_url, before + queued)
            finally:
                serve.stop()
                hold.write_text("")
                fleet.join()
            out[f"catchup_{workers}w_entries"] = queued
            out[f"catchup_{workers}w_s"] = round(seconds, 1)
            out[f"ingest_{workers}w_rate"] = round(queued / seconds)
        out["workers_2_vs_1"] = round(out["ingest_2w_rate"] / out["ingest_1w_rate"], 2)
        out["verified"] = verified(db_url)
    finally:
        shutil.rmtree(state, ignore_errors=True)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--terminals", type=int, nargs="+", default=[50])
    p.add_argument("--db", nargs="+", default=["postgresql", "sqlite"], choices=["postgresql", "sqlite"])
    p.add_argument("--day-seconds", type=float, default=60.0)
    p.add_argument("--handovers", type=int, default=6)
    p.add_argument("--raw-rows", type=int, default=20000)
    p.add_argument("--live-only", action="store_true", help="the live day only (alarm latency), no outage runs "
                                                            "(bench_hq_ingest.py measures ingest on a backlog)")
    args = p.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-hq-"))
    pki = Pki(folder / "pki")
    pg = Postgres().start() if "postgresql" in args.db else None
    try:
        raw_batches = rows_like_the_fleet(40, args.raw_rows // 40)
        raw = {kind: raw_insert_rate(fresh_db(kind, pg, folder, f"raw_{kind}"), raw_batches) for kind in args.db}
        print(json.dumps({"raw_insert_rows_per_s": {k: round(v) for k, v in raw.items()}, "batch": BATCH}), flush=True)
        for kind in args.db:
            for n in args.terminals:
                result = run(kind, n, args, pki, pg, folder)
                for w in (1, 2) if not args.live_only else ():
                    result[f"ingest_{w}w_vs_raw"] = round(result[f"ingest_{w}w_rate"] / raw[kind], 2)
                print(json.dumps(result, ensure_ascii=False), flush=True)
    finally:
        if pg:
            pg.remove()
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
