"""Benchmark: head office's ingest rate on a backlog, against a raw batched insert of the same rows (issue 15).

    python tests/bench/bench_hq_ingest.py [--db postgresql sqlite] [--devices 200] [--entries 300] [--workers 1 2]

What a fleet's terminals publish during a head-office outage, queued in the broker first; then `serve` starts
and the drain is timed. Per database and worker count, in one run:
1. a fresh mosquitto (mutual TLS, ACL, persistence, as in the tests) and a fresh head-office database;
2. the workers' persistent sessions and subscriptions made (as in production: they exist before an outage),
   then the workers stopped;
3. the backlog published: each device (its own certificate and session) sends its chained entries as the
   agent's Outbox sends a backlog — batches of up to 200 entries or 32 KiB, QoS 1 — and the broker queues them;
4. the workers started; timed from when they are subscribed until the database holds every entry; CPU seconds
   of each worker, of mosquitto and of PostgreSQL (postmaster and backends) over the drain.
Baseline, same run, same rows in the same batches: one transaction per batch, executemany (psycopg 3 sends it
pipelined), nothing checked, no MQTT — into the same kind of database; on PostgreSQL also by COPY (what serve
itself uses, so the strictest baseline). Ratios: ingest / raw (entries/s), 2 workers
/ 1, and cpu_vs_raw: the raw insert's CPU seconds over head office's (workers + mosquitto + PostgreSQL) for the
same rows — on a machine shared with other work the wall-clock ratio moves with the neighbours, this one less.

Printed as JSON lines. Afterwards `verify-against` checks every device's chain in the database.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "integration"), str(ROOT / "tests" / "bench")]

import paho.mqtt.client as mqtt  # noqa: E402
import psycopg  # noqa: E402

from bench_hq import Serve, committed, cpu_seconds, fresh_db  # noqa: E402
from broker import HQ_IDENTITY, Broker, Pki, env_with_repo  # noqa: E402
from hq.db import Database  # noqa: E402
from postgres import Postgres  # noqa: E402
from protocol import messages  # noqa: E402
from protocol.chain import GENESIS_HASH, entry_hash  # noqa: E402

BATCH_ENTRIES, BATCH_BYTES = 200, 32 * 1024      # the agent's Outbox defaults (agent/sync/uplink.py)
KINDS = [("vehicle_arrival", lambda n: {"plate": f"沪A{n:05d}", "source": "ble"}),
         ("finger_attempt", lambda n: {"station": "door", "person_id": "E1", "ok": True, "snapshot": f"{n:064x}"}),
         ("escort_verified", lambda n: {"person_id": "E1"}),
         ("box_read", lambda n: {"box": f"B{n}-1", "tag": f"04{n:012X}"}),
         ("box_read", lambda n: {"box": f"B{n}-2", "tag": f"04{n + 1:012X}"}),
         ("box_read", lambda n: {"box": f"B{n}-3", "tag": f"04{n + 2:012X}"}),
         ("officer_confirmed", lambda n: {"person_id": "O1", "method": "finger"}),
         ("handover_completed", lambda n: {"exceptions": 0})]


def backlog(device: str, count: int) -> list[bytes]:
    """A device's `count` chained entries as the journal messages its Outbox would send."""
    prev, entries = GENESIS_HASH, []
    for seq in range(1, count + 1):
        kind, body = KINDS[seq % len(KINDS)]
        body, ts, task = body(seq), f"2026-06-01T08:{seq // 60 % 60:02d}:{seq % 60:02d}.000Z", f"T-{device}-{seq // 8}"
        h = entry_hash(seq, ts, kind, task, body, prev)
        entries.append({"id": messages.entry_id(device, seq), "seq": seq, "ts": ts, "kind": kind, "task_id": task,
                        "body": body, "prev_hash": prev, "hash": h})
        prev = h
    out, batch, size = [], [], 0
    for entry in entries:
        part = len(json.dumps(entry, ensure_ascii=False, separators=(",", ":")).encode())
        if batch and (len(batch) == BATCH_ENTRIES or size + part > BATCH_BYTES):
            out.append(batch)
            batch, size = [], 0
        batch.append(entry)
        size += part
    out.append(batch)
    return [messages.encode({"v": 1, "device": device, "entries": b}) for b in out]


def rows_of(message: bytes) -> list[tuple]:
    payload = json.loads(message)
    return [(payload["device"], e["seq"], e["id"], e["ts"], e["kind"], e["task_id"],
             json.dumps(e["body"], ensure_ascii=False, separators=(",", ":")), e["prev_hash"], e["hash"])
            for e in payload["entries"]]


INSERT = "INSERT INTO entries (device, seq, id, ts, kind, task_id, body, prev_hash, hash) VALUES "


def raw_rate(kind: str, url: str, batches: list[list[tuple]], pg: Postgres | None,
             copy: bool = False) -> tuple[float, float]:
    """Rows/s of a plain batched insert of the same rows (a transaction per batch, executemany; or COPY), and
    the CPU seconds it took (this process and PostgreSQL's)."""
    Database(url).create_schema().close()
    cpu0 = time.process_time() + postgres_cpu(pg)
    started = time.perf_counter()
    if kind == "postgresql":
        with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cur:
            for rows in batches:
                with conn.transaction():
                    if copy:
                        with cur.copy("COPY entries (device, seq, id, ts, kind, task_id, body, prev_hash, hash) "
                                      "FROM STDIN") as stream:
                            for row in rows:
                                stream.write_row(row)
                    else:
                        cur.executemany(INSERT + "(%s, %s, %s, %s, %s, %s, %s, %s, %s)", rows)
    else:
        conn = sqlite3.connect(url, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")        # as head office's own connection
        for rows in batches:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(INSERT + "(?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            conn.execute("COMMIT")
        conn.close()
    return sum(map(len, batches)) / (time.perf_counter() - started), time.process_time() + postgres_cpu(pg) - cpu0


def publish_backlog(broker: Broker, pki: Pki, device: str, payloads: list[bytes]) -> None:
    cert, key = pki.folder / f"{device}.crt", pki.folder / f"{device}.key"
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=device, protocol=mqtt.MQTTv5)
    c.tls_set(ca_certs=str(pki.ca_file), certfile=str(cert), keyfile=str(key), cert_reqs=ssl.CERT_REQUIRED)
    c.max_inflight_messages_set(20)
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    try:
        infos = [c.publish(messages.Topics("ht/v1", device).up("journal"), p, qos=1) for p in payloads]
        for info in infos:
            info.wait_for_publish(120)
    finally:
        c.disconnect()
        c.loop_stop()


def postgres_cpu(pg: Postgres | None) -> float:
    if pg is None:
        return 0.0
    pids = [pg.proc.pid] + [int(p) for p in subprocess.run(["pgrep", "-P", str(pg.proc.pid)], capture_output=True,
                                                           text=True).stdout.split()]
    total = 0.0
    for pid in pids:
        try:
            total += cpu_seconds(pid)
        except OSError:
            pass        # a backend that ended meanwhile
    return total


def drain(kind: str, workers: int, devices: list[str], payloads: dict[str, list[bytes]], total: int, pki: Pki,
          pg: Postgres | None, folder: Path) -> dict:
    name = f"ingest_{kind}_{workers}w"
    (folder / name).mkdir()
    broker = Broker(folder / name, pki).start()
    db_url = fresh_db(kind, pg, folder, name)
    cert, key = pki.folder / f"{HQ_IDENTITY}.crt", pki.folder / f"{HQ_IDENTITY}.key"
    try:
        Serve(broker, cert, key, db_url, folder, workers).stop_when_subscribed()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda d: publish_backlog(broker, pki, d, payloads[d]), devices))
        serve = Serve(broker, cert, key, db_url, folder, workers)
        try:
            # Timed from the first stream session's connection: the queued backlog flows from then on.
            while not any("journal session connected" in log.read_text() for log in serve.logs):
                time.sleep(0.005)
            t0, before = time.monotonic(), committed(db_url)
            cpu0 = ([cpu_seconds(p.pid) for p in serve.procs], cpu_seconds(broker.proc.pid), postgres_cpu(pg))
            while (now := committed(db_url)) < total:
                if time.monotonic() - t0 > 1800:
                    raise TimeoutError(f"{name}: {now} of {total} entries after 30 min")
                time.sleep(0.1)
            seconds = time.monotonic() - t0
            worker_cpu = [round(cpu_seconds(p.pid) - c, 1) for p, c in zip(serve.procs, cpu0[0])]
            broker_cpu, pg_cpu = cpu_seconds(broker.proc.pid) - cpu0[1], postgres_cpu(pg) - cpu0[2]
        finally:
            serve.stop()
        verify = subprocess.run([sys.executable, "-m", "hq.cli", "verify-against", "--db", db_url], cwd=ROOT,
                                env=env_with_repo(), capture_output=True, text=True)
        return {"db": kind, "workers": workers, "entries": total - before, "seconds": round(seconds, 2),
                "rate": round((total - before) / seconds), "cpu_s_workers": worker_cpu,
                "cpu_s_mosquitto": round(broker_cpu, 1), "cpu_s_postgres": round(pg_cpu, 1),
                "cpu_s_per_1000_entries_workers": round(sum(worker_cpu) / (total - before) * 1000, 3),
                "verified": verify.stdout.strip()}
    finally:
        broker.stop()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--db", nargs="+", default=["postgresql", "sqlite"], choices=["postgresql", "sqlite"])
    p.add_argument("--devices", type=int, default=200)
    p.add_argument("--entries", type=int, default=500, help="backlog entries per device")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = p.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-hq-ingest-"))
    pki = Pki(folder / "pki")
    pki.issue(HQ_IDENTITY)
    devices = [f"fleet-{i:04d}" for i in range(args.devices)]
    for d in devices:
        pki.issue(d)
    payloads = {d: backlog(d, args.entries) for d in devices}
    messages_sent = sum(map(len, payloads.values()))
    total = args.devices * args.entries
    batches = [rows_of(m) for d in devices for m in payloads[d]]
    pg = Postgres().start() if "postgresql" in args.db else None
    try:
        print(json.dumps({"devices": args.devices, "entries": total, "messages": messages_sent,
                          "entries_per_message": round(total / messages_sent, 1), "cpus": os.cpu_count(),
                          "load": os.getloadavg()[0]}), flush=True)
        for kind in args.db:
            raw, raw_cpu = raw_rate(kind, fresh_db(kind, pg, folder, f"raw_{kind}"), batches, pg if kind == "postgresql"
                                    else None)
            line = {"db": kind, "raw_rows_per_s": round(raw), "raw_cpu_s": round(raw_cpu, 1)}
            if kind == "postgresql":    # serve writes by COPY: the strictest raw baseline is COPY too
                copy, copy_cpu = raw_rate(kind, fresh_db(kind, pg, folder, "raw_copy"), batches, pg, copy=True)
                line.update(raw_copy_rows_per_s=round(copy), raw_copy_cpu_s=round(copy_cpu, 1))
            print(json.dumps(line), flush=True)
            rates = {}
            for workers in args.workers:
                result = drain(kind, workers, devices, payloads, total, pki, pg, folder)
                rates[workers] = result["rate"]
                result["vs_raw"] = round(result["rate"] / raw, 2)
                if kind == "postgresql":
                    result["vs_raw_copy"] = round(result["rate"] / copy, 2)
                # The same comparison in CPU seconds (what a busy machine's share does not distort): all of
                # head office's (workers, broker, database) against all of the raw insert's.
                used = sum(result["cpu_s_workers"]) + result["cpu_s_mosquitto"] + result["cpu_s_postgres"]
                result["cpu_vs_raw"] = round(raw_cpu / used, 2) if used else None
                if workers != args.workers[0]:
                    result[f"vs_{args.workers[0]}w"] = round(result["rate"] / rates[args.workers[0]], 2)
                print(json.dumps(result, ensure_ascii=False), flush=True)
    finally:
        if pg:
            pg.remove()
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
