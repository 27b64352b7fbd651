"""Benchmark: drain a 100,000-entry journal backlog to a local mosquitto (issue 8).

    python tests/bench/bench_sync.py [--entries 100000] [--alarms 1000]

Prints, from one run against one broker (mutual TLS + ACL, as in the tests):
- drain: entries/s counted as they are applied at head office (in order, chain verified);
- raw: paho QoS 1 publishes/s of one entry per message, window 100, until the last PUBACK;
- their ratio (goal >= 1.0; the contract carries up to 500 entries per message);
- peak RSS of the draining agent process (goal <= 100 MB), its own VmHWM;
- p99 from an alarm's append to its arrival at head office, over alarms appended while the
  backlog drains (goal <= 200 ms).
"""
from __future__ import annotations

import argparse
import json
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


def raw_baseline(broker, db: Path, count: int, window: int = 100) -> float:
    """One entry per message, at most `window` unacknowledged; seconds to the last PUBACK.

    Run before head office first subscribes, so the broker routes these to nobody: the raw
    figure is the broker's best case, the drain's includes delivery to head office.
    """
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties
    cert, key = broker.pki.issue("bench-raw")
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-raw", protocol=mqtt.MQTTv5)
    client.tls_set(ca_certs=str(broker.pki.ca_file), certfile=str(cert), keyfile=str(key))
    client.max_inflight_messages_set(window)
    slots = threading.Semaphore(window)
    acked = threading.Event()
    done = [0]

    def on_publish(c, u, mid, code, props):
        slots.release()
        done[0] += 1
        if done[0] == count:
            acked.set()
    client.on_publish = on_publish
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    client.connect("127.0.0.1", broker.port, clean_start=False, properties=props)
    client.loop_start()
    journal = Journal(db)
    payloads = [b'{"v":1,"device":"bench-raw","entries":[%s]}' % messages.encode_entry("bench-raw", e)
                for e in journal.entries(limit=count)]
    journal.close()
    topic = "ht/v1/bench-raw/journal"
    start = time.perf_counter()
    for payload in payloads:
        slots.acquire()
        client.publish(topic, payload, qos=1)
    acked.wait()
    elapsed = time.perf_counter() - start
    client.disconnect()
    client.loop_stop()
    return elapsed


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
    for n in range(alarms):
        journal.append("alarm", {"alarm": "wrong_box", "n": n, "appended_at": time.time()}, task_id="T-alarm")
        time.sleep(0.001)
    while sync.status()["backlog"]:
        time.sleep(0.01)
    handed.sort()
    print(json.dumps({"drained_at": time.time(), "peak_rss_mb": peak_rss_kb() / 1024,
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


def run(broker, tmp: Path, count: int, alarm_count: int) -> None:
    from broker import HQ_IDENTITY, env_with_repo, mqtt_config
    from hq.sync import HeadOffice
    config = mqtt_config(broker, "bench-dev", SITE, tmp / "dev")
    db = tmp / "dev" / "journal.db"
    fill(db, count)

    cert, key = broker.pki.issue(HQ_IDENTITY)
    backlog_done = threading.Event()
    times: dict[str, float] = {}
    latencies: list[float] = []

    def on_entry(device: str, entry: dict) -> None:
        if device == "bench-dev" and entry["seq"] == count:
            times["backlog_applied"] = time.time()
            backlog_done.set()

    during: list[bool] = []

    def on_alarm(device: str, entry: dict) -> None:
        latencies.append(time.time() - entry["body"]["appended_at"])
        during.append(not backlog_done.is_set())

    raw_seconds = raw_baseline(broker, db, count)
    raw_rate = count / raw_seconds
    hq = HeadOffice("127.0.0.1", broker.port, ca_file=broker.pki.ca_file, cert_file=cert, key_file=key,
                    client_id=HQ_IDENTITY, keep_entries=False, check_schemas=False,
                    on_entry=on_entry, on_alarm=on_alarm).start()
    try:
        proc = subprocess.Popen([sys.executable, __file__, "--agent", str(config.source), str(db), str(count),
                                 str(alarm_count)], stdout=subprocess.PIPE, text=True, env=env_with_repo())
        started = json.loads(proc.stdout.readline())["connected_at"]
        if not backlog_done.wait(300):
            raise SystemExit(f"backlog not applied at head office: {hq.log('bench-dev').last_seq}/{count}")
        report = json.loads(proc.stdout.readline())
        proc.wait(30)
        hq.wait_for("bench-dev", count + alarm_count, 60)
        log = hq.log("bench-dev")
        assert not log.chain_errors, log.chain_errors[:3]
        assert len(latencies) == alarm_count, (len(latencies), alarm_count)
    finally:
        hq.stop()

    drain_rate = count / (times["backlog_applied"] - started)
    latencies.sort()
    p99 = latencies[int(0.99 * (len(latencies) - 1))] * 1000
    print(f"drain of {count} entries, counted at head office: {drain_rate:,.0f} entries/s")
    print(f"raw paho QoS 1, one entry per message, window 100:   {raw_rate:,.0f} publishes/s "
          f"({raw_seconds:.1f} s to the last PUBACK)")
    print(f"ratio drain / raw: {drain_rate / raw_rate:.2f}  (goal >= 1.0)")
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
