"""Benchmark: drain a 100,000-entry journal backlog to a local mosquitto (issues 8 and 20).

    python tests/bench/bench_sync.py [--entries 100000] [--alarms 1000]

Prints, from one run against one broker (mutual TLS + ACL, as in the tests), at both ends:
- to the last PUBACK, before head office subscribes (the broker routes to nobody): the agent's publish
  path (journal read, batching, publish, acknowledgements, cursor) against raw paho QoS 1 sending the
  SAME batches the agent sends (same entry encoding, same 200-entry / 32 KiB cap, same window of 10),
  prepared before the clock starts (goal: agent >= 0.3x raw), with the CPU seconds each side spent (on a
  busy machine the rates swing with the load, the CPU much less); and raw paho sending one entry per message,
  window 100 (the old baseline);
- counted at head office as entries are applied (in order, chain verified): the agent's drain and raw
  paho's same batches (both are limited by head office and the broker here);
- peak RSS of the draining agent process (goal <= 100 MB), its own VmHWM;
- p99 from an alarm's append to its arrival at head office, over alarms appended while the
  backlog drains (goal <= 200 ms).
The head-office side is hq.sync.HeadOffice's on_entry callback only, so it survives a move.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "integration")]

# The draining process imports only what the agent does (its RSS is measured); main() the rest.
import paho.mqtt.client as mqtt  # noqa: E402

from agent.journal import Journal  # noqa: E402
from protocol import messages  # noqa: E402

SITE = "branch-bench"


def fill(db: Path, count: int) -> None:
    journal = Journal(db)
    for start in range(0, count, 5000):
        with journal.transaction():
            for n in range(start, min(count, start + 5000)):
                journal.append("box_read", {"box": f"B{n:06d}", "tag": f"04{n:010X}", "station": "counter"},
                               task_id=f"T-{n // 1000:03d}")
    journal.close()


def same_batches(db: Path, count: int, device: str, batch_entries: int = 200, batch_bytes: int = 32 * 1024) -> list[bytes]:
    """The journal cut into batches by the agent's rule (agent.sync.uplink.Outbox.fill), encoded as it does."""
    journal = Journal(db)
    payloads, parts, size = [], [], 0
    for entry in journal.entries(limit=count):
        part = messages.encode_entry(device, entry)
        if parts and (size + len(part) > batch_bytes or len(parts) == batch_entries):
            payloads.append(b'{"v":1,"device":%s,"entries":[%s]}' % (messages.encode(device), b",".join(parts)))
            parts, size = [], 0
        parts.append(part)
        size += len(part) + 1
    if parts:
        payloads.append(b'{"v":1,"device":%s,"entries":[%s]}' % (messages.encode(device), b",".join(parts)))
    journal.close()
    return payloads


def one_per_message(db: Path, count: int, device: str) -> list[bytes]:
    journal = Journal(db)
    payloads = [b'{"v":1,"device":%s,"entries":[%s]}' % (messages.encode(device), messages.encode_entry(device, e))
                for e in journal.entries(limit=count)]
    journal.close()
    return payloads


def raw_publish(broker, device: str, payloads: list[bytes], window: int) -> tuple[float, float]:
    """Publish prepared payloads with paho, QoS 1, at most `window` unacknowledged: seconds to the last PUBACK,
    and the CPU seconds this process (its thread and paho's) spent meanwhile."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties
    cert, key = broker.pki.issue(device)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=device, protocol=mqtt.MQTTv5)
    client.tls_set(ca_certs=str(broker.pki.ca_file), certfile=str(cert), keyfile=str(key))
    client.max_inflight_messages_set(window)
    slots = threading.Semaphore(window)
    acked = threading.Event()
    done = [0]

    def on_publish(c, u, mid, code, props):
        slots.release()
        done[0] += 1
        if done[0] == len(payloads):
            acked.set()
    client.on_publish = on_publish
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    client.connect("127.0.0.1", broker.port, clean_start=False, properties=props)
    client.loop_start()
    topic = f"ht/v1/{device}/journal"
    start, cpu = time.perf_counter(), time.process_time()
    for payload in payloads:
        slots.acquire()
        client.publish(topic, payload, qos=1)
    acked.wait()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    client.disconnect()
    client.loop_stop()
    return elapsed, cpu


def peak_rss_kb() -> int:
    """VmHWM of this process image. Not getrusage's ru_maxrss: Linux carries that over from the
    parent across fork + exec, so it would report the (large) benchmark process instead."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))


def agent(conf: str, db: str, backlog: int, alarms: int) -> None:
    """The draining process: the agent's journal and sync, appending alarms while it drains."""
    from agent.config import load_config
    from agent.sync import Sync
    from broker import open_device
    config = load_config(conf)
    journal, store = open_device(config, Path(db))
    sync = Sync(config, journal, store)
    handed: list[float] = []  # device side: append -> handed to paho, to tell where time goes
    publish = sync._publish

    def timed_publish(topic: str, payload: bytes, retain: bool = False):
        mid = publish(topic, payload, retain)
        if topic.endswith("/urgent"):
            handed.append(time.time() - json.loads(payload)["entry"]["body"]["appended_at"])
        return mid
    sync._publish = timed_publish
    sync.start()
    while not sync.status()["connected"]:
        time.sleep(0.005)
    print(json.dumps({"connected_at": time.time()}), flush=True)
    cpu = time.process_time()
    for n in range(alarms):
        journal.append("alarm", {"alarm": "wrong_box", "n": n, "appended_at": time.time()}, task_id="T-alarm")
        time.sleep(0.001)
    while sync.status()["backlog"]:
        time.sleep(0.01)
    handed.sort()
    print(json.dumps({"drained_at": time.time(), "cpu_s": time.process_time() - cpu, "peak_rss_mb": peak_rss_kb() / 1024,
                      "handed_p99_ms": handed[int(0.99 * (len(handed) - 1))] * 1000 if handed else None}),
          flush=True)
    sync.stop()


def main() -> None:
    from broker import Broker, Pki
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--alarms", type=int, default=1000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "broker").mkdir()
        broker = Broker(tmp / "broker", Pki(tmp / "pki")).start()
        try:
            run(broker, tmp, args.entries, args.alarms)
        finally:
            broker.stop()


def agent_drain(config, db: Path, count: int, alarm_count: int) -> tuple[subprocess.Popen, float]:
    from broker import env_with_repo
    proc = subprocess.Popen([sys.executable, __file__, "--agent", str(config.source), str(db), str(count),
                             str(alarm_count)], stdout=subprocess.PIPE, text=True, env=env_with_repo())
    return proc, json.loads(proc.stdout.readline())["connected_at"]


def run(broker, tmp: Path, count: int, alarm_count: int) -> None:
    from broker import HQ_IDENTITY, mqtt_config
    from hq.sync import HeadOffice
    config = mqtt_config(broker, "bench-dev", SITE, tmp / "dev")
    db = tmp / "dev" / "journal.db"
    fill(db, count)
    acked_config = mqtt_config(broker, "bench-ack", SITE, tmp / "ack")      # the same journal, its own device
    shutil.copyfile(db, tmp / "ack" / "journal.db")

    # -- to the last PUBACK, nobody subscribed yet ---------------------------------------------------
    raw_one = count / raw_publish(broker, "bench-raw1", one_per_message(db, count, "bench-raw1"), window=100)[0]
    batches = same_batches(db, count, "bench-rawb")
    raw_took, raw_cpu = raw_publish(broker, "bench-rawb", batches, window=10)
    raw_batched = count / raw_took
    proc, started = agent_drain(acked_config, tmp / "ack" / "journal.db", count, 0)
    drained = json.loads(proc.stdout.readline())
    agent_acked, agent_cpu = count / (drained["drained_at"] - started), drained["cpu_s"]
    proc.wait(30)

    # -- counted at head office ------------------------------------------------------------------------
    cert, key = broker.pki.issue(HQ_IDENTITY)
    applied: dict[str, float] = {}
    backlog_done = threading.Event()
    latencies: list[float] = []
    during: list[bool] = []

    def on_entry(device: str, entry: dict) -> None:
        if entry["seq"] == count:
            applied[device] = time.time()
            if device == "bench-dev":
                backlog_done.set()

    def on_alarm(device: str, entry: dict) -> None:
        latencies.append(time.time() - entry["body"]["appended_at"])
        during.append(not backlog_done.is_set())

    hq = HeadOffice("127.0.0.1", broker.port, ca_file=broker.pki.ca_file, cert_file=cert, key_file=key,
                    client_id=HQ_IDENTITY, keep_entries=False, check_schemas=False,
                    on_entry=on_entry, on_alarm=on_alarm).start()
    try:
        batches = same_batches(db, count, "bench-rawhq")
        t0 = time.time()
        raw_publish(broker, "bench-rawhq", batches, window=10)
        if not hq.wait_for("bench-rawhq", count, 300):
            raise SystemExit(f"raw batches not applied at head office: {hq.log('bench-rawhq').last_seq}/{count}")
        raw_at_hq = count / (applied["bench-rawhq"] - t0)

        proc, started = agent_drain(config, db, count, alarm_count)
        if not backlog_done.wait(300):
            raise SystemExit(f"backlog not applied at head office: {hq.log('bench-dev').last_seq}/{count}")
        report = json.loads(proc.stdout.readline())
        proc.wait(30)
        hq.wait_for("bench-dev", count + alarm_count, 60)
        log = hq.log("bench-dev")
        assert not log.chain_errors, log.chain_errors[:3]
        assert not hq.log("bench-rawhq").chain_errors
        assert len(latencies) == alarm_count, (len(latencies), alarm_count)
    finally:
        hq.stop()

    drain_rate = count / (applied["bench-dev"] - started)
    latencies.sort()
    p99 = latencies[int(0.99 * (len(latencies) - 1))] * 1000
    print(f"{count:,} entries in {len(batches):,} batches (~{count / len(batches):.0f} entries each)")
    print("to the last PUBACK, no subscriber:")
    print(f"  agent publish path (journal -> batches -> PUBACK -> cursor): {agent_acked:9,.0f} entries/s")
    print(f"  raw paho, the same batches prepared beforehand, window 10:  {raw_batched:9,.0f} entries/s")
    print(f"  ratio agent / raw same batches: {agent_acked / raw_batched:.2f}  (goal >= 0.3)")
    print(f"  CPU seconds (all threads, less sensitive to a busy machine than the rates): agent {agent_cpu:.3f}, "
          f"raw {raw_cpu:.3f}; ratio raw / agent {raw_cpu / agent_cpu:.2f}")
    print(f"  raw paho, one entry per message, window 100:                {raw_one:9,.0f} entries/s")
    print("counted at head office (applied in order, chain verified):")
    print(f"  agent drain:                {drain_rate:9,.0f} entries/s")
    print(f"  raw paho, the same batches: {raw_at_hq:9,.0f} entries/s   ratio {drain_rate / raw_at_hq:.2f}")
    print(f"peak RSS of the draining agent process: {report['peak_rss_mb']:.1f} MB  (goal <= 100 MB)")
    print(f"alarm append -> head office over {alarm_count} alarms during the drain: "
          f"p50 {latencies[len(latencies) // 2] * 1000:.1f} ms, p99 {p99:.1f} ms, "
          f"max {latencies[-1] * 1000:.1f} ms  (goal p99 <= 200 ms); {sum(during)} arrived while the backlog "
          f"was still draining; of which on the device, append -> publish: p99 {report['handed_p99_ms']:.1f} ms")
    print(f"head office: {log.last_seq} entries applied in order, {log.duplicates} duplicates dropped, chain verified")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--agent":
        agent(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        main()
