"""A fleet of simulated terminals against one broker: what head office's `serve` must keep up with.

    python tools/fleet.py --terminals 500 --processes 4 --host 127.0.0.1 --port 8883 \
        --ca ca.pem --ca-key ca.key --state /dev/shm/fleet [--day-seconds 60] [--handovers 6]

Each terminal is its own device: its own id (`fleet-0000` …) and client certificate (issued here with the
CA key; CN = device id, as the broker's ACL expects), its own journal (the agent's `Journal`, a real SQLite
file) and its own MQTT session sending that journal with the agent's `Outbox` (batches in order, QoS 1,
alarms and task progress at once on `urgent`, `resend_from` obeyed). The terminals of a process are asyncio
tasks on one event loop (the MQTT network of each session runs in paho's thread); several processes share
the fleet so it spreads over the cores.

A compressed day: each terminal runs `--handovers` handovers spread over `--day-seconds` — arrival, two
escorts' finger attempts (one fails now and then), box reads, the officer's confirmation, completion — and
one in five handovers raises an alarm (wrong box). Prints one JSON line per process (entries, alarms, RSS)
and a summary. The benchmark tests/bench/bench_hq.py drives it.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import datetime as dt
import json
import multiprocessing
import random
import resource
import ssl
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.journal import Journal
from agent.sync.uplink import Outbox
from protocol import messages

PUMP_INTERVAL = 0.05      # how often each terminal's outbox is topped up (the agent's sync thread wakes on appends)


def issue_certificates(ca_cert: Path, ca_key: Path, devices: list[str], folder: Path) -> None:
    """A client certificate per device, CN = device id, signed by the broker's CA."""
    ca = x509.load_pem_x509_certificate(ca_cert.read_bytes())
    signer = serialization.load_pem_private_key(ca_key.read_bytes(), None)
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc)
    for device in devices:
        if (folder / f"{device}.crt").exists():
            continue
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device)]))
                .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
                .sign(signer, hashes.SHA256()))
        (folder / f"{device}.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        (folder / f"{device}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


class SimTerminal:
    """One simulated terminal: journal, outbox and MQTT session."""

    def __init__(self, device: str, site: str, folder: Path, spec: dict):
        self.device, self.site = device, site
        folder.mkdir(parents=True, exist_ok=True)
        self.journal = Journal(folder / "journal.db")
        self.topics = messages.Topics(spec["prefix"], device)
        self.outbox = Outbox(self.journal, device, self.topics, window=10)
        self.journal.subscribe(self.outbox.on_entry)
        self.resends: collections.deque[int] = collections.deque()
        self.alarms_published: list[tuple[str, float]] = []     # (entry id, wall time handed to the network)
        self.connected = False
        certs = Path(spec["certs"])
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=device, protocol=mqtt.MQTTv5)
        c.tls_set(ca_certs=spec["ca"], certfile=str(certs / f"{device}.crt"), keyfile=str(certs / f"{device}.key"),
                  cert_reqs=ssl.CERT_REQUIRED)
        c.will_set(self.topics.up("status"), self._status("offline"), qos=1, retain=True)
        c.reconnect_delay_set(0.5, 10)
        c.max_inflight_messages_set(20)
        c.on_connect, c.on_disconnect = self._on_connect, self._on_disconnect
        c.on_publish, c.on_message = self._on_publish, self._on_message
        self.client = c
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 7 * 24 * 3600
        c.connect_async(spec["host"], spec["port"], keepalive=30, clean_start=False, properties=props)
        c.loop_start()

    def _status(self, state: str) -> bytes:
        return messages.encode({"v": 1, "device": self.device, "site_id": self.site, "state": state})

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if not reason_code.is_failure:
            client.subscribe(self.topics.down_filter, qos=1)
            client.publish(self.topics.up("status"), self._status("online"), qos=1, retain=True)
            self.connected = True

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected = False

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        if not reason_code.is_failure:
            self.outbox.on_ack(mid)

    def _on_message(self, client, userdata, message) -> None:
        try:
            payload = messages.decode("command", message.payload)
        except messages.MessageError:
            return
        if payload["command"] == "resend_from":
            self.resends.append(payload["seq"])

    def _publish(self, topic: str, payload: bytes) -> int | None:
        info = self.client.publish(topic, payload, qos=1)
        if topic.endswith("/urgent") and b'"kind":"alarm"' in payload:
            self.alarms_published.append((json.loads(payload)["entry"]["id"], time.time()))
        return info.mid if info.rc in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN) else None

    def pump(self) -> None:
        """What the agent's sync thread does: obey resends, settle acks, send urgent entries, then batches."""
        if not self.connected:
            return
        while self.resends:
            self.outbox.resend_from(self.resends.popleft())
        self.outbox.settle_acks()
        self.outbox.send_urgent(self._publish)
        self.outbox.fill(self._publish)

    def close(self) -> None:
        self.client.publish(self.topics.up("status"), self._status("offline"), qos=1, retain=True).wait_for_publish(5)
        self.client.disconnect()
        self.client.loop_stop()
        self.journal.close()


async def handover(t: SimTerminal, n: int, rng: random.Random, pace: float) -> int:
    """One handover's entries, `pace` seconds apart on average; returns how many alarms it raised."""
    task = f"T-{t.device}-{n:03d}"

    async def step(kind: str, body: dict) -> None:
        t.journal.append(kind, body, task_id=task)
        if t.connected:     # the agent's sync thread wakes on an append: urgent copies go at once, not at the next pump
            t.outbox.send_urgent(t._publish)
        await asyncio.sleep(rng.uniform(0.5, 1.5) * pace)

    await step("vehicle_arrival", {"plate": f"沪A{n:05d}", "source": "ble"})
    for escort in ("E1", "E2"):
        if rng.random() < 0.2:
            await step("finger_attempt", {"station": "door", "person_id": None, "ok": False})
        await step("finger_attempt", {"station": "door", "person_id": escort, "ok": True, "snapshot": f"{n:064x}"})
        await step("escort_verified", {"person_id": escort})
    alarms = 0
    for box in range(rng.randint(4, 10)):
        await step("box_read", {"box": f"B{n}-{box}", "tag": f"04{box:012X}"})
        if box == 2 and rng.random() < 0.2:
            await step("alarm", {"alarm": "wrong_box", "box": f"X{n}-{box}", "site_id": t.site})
            alarms += 1
    await step("officer_confirmed", {"person_id": "O1", "method": "finger"})
    await step("handover_completed", {"exceptions": alarms})
    return alarms


async def day(t: SimTerminal, spec: dict, rng: random.Random) -> tuple[int, int]:
    handovers, seconds = spec["handovers"], spec["day_seconds"]
    slot = seconds / handovers
    alarms = 0
    for n in range(handovers):
        await asyncio.sleep(rng.uniform(0, slot * 0.3))
        started = time.monotonic()
        alarms += await handover(t, spec["round"] * 1000 + n, rng, pace=slot * 0.5 / 25)
        await asyncio.sleep(max(0.0, slot * 0.7 - (time.monotonic() - started)))
    return t.journal.last_seq(), alarms


async def run_process(spec: dict) -> dict:
    terminals = [SimTerminal(d, s, Path(spec["state"]) / d, spec) for d, s in spec["devices"]]
    deadline = time.monotonic() + 60
    while not all(t.connected for t in terminals):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{sum(not t.connected for t in terminals)} terminals could not connect")
        await asyncio.sleep(0.05)
    stop = asyncio.Event()

    async def pumps() -> None:
        while not stop.is_set():
            for t in terminals:
                t.pump()
            await asyncio.sleep(PUMP_INTERVAL)

    pumper = asyncio.create_task(pumps())
    await asyncio.sleep(max(0.0, spec["start_at"] - time.time()))
    results = await asyncio.gather(*(day(t, spec, random.Random(f"{spec['seed']}-{t.device}")) for t in terminals))
    # Drain: the day is over when the broker has acknowledged everything (or the wait runs out); then the
    # terminals stay online (answering resend_from) until `hold_until` exists, if it was given.
    deadline = time.monotonic() + spec.get("drain_seconds", 600)
    while any(t.outbox.backlog() for t in terminals) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    day_entries = sum(t.journal.last_seq() for t in terminals)
    if spec.get("hold_until"):
        Path(spec["state"], f"day-done-{spec['index']}").write_text(str(day_entries))
        while not Path(spec["hold_until"]).exists():
            await asyncio.sleep(0.2)
    stop.set()
    await pumper
    for t in terminals:
        t.close()
    return {"terminals": len(terminals), "entries": sum(r[0] for r in results), "alarms": sum(r[1] for r in results),
            "rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "cpu_s": sum(resource.getrusage(resource.RUSAGE_SELF)[:2]),
            "alarms_published": [a for t in terminals for a in t.alarms_published]}


def _process_main(spec: dict, out) -> None:
    out.put(asyncio.run(run_process(spec)))


def run_fleet(*, terminals: int, processes: int, host: str, port: int, ca: str, certs: str, state: str,
              day_seconds: float = 60.0, handovers: int = 6, prefix: str = "ht/v1", seed: int = 15,
              round_: int = 0, drain_seconds: float = 600.0, hold_until: str | None = None) -> list[dict]:
    """Run the fleet's compressed day in `processes` processes; returns each process's figures."""
    devices = [(f"fleet-{i:04d}", f"BR-{i:04d}") for i in range(terminals)]
    start_at = time.time() + 3 + terminals / 100      # every process connected before the day starts
    queue = multiprocessing.get_context("spawn").Queue()
    procs = []
    for p in range(processes):
        spec = {"devices": devices[p::processes], "host": host, "port": port, "ca": ca, "certs": certs,
                "state": state, "prefix": prefix, "day_seconds": day_seconds, "handovers": handovers,
                "seed": seed, "round": round_, "start_at": start_at, "drain_seconds": drain_seconds,
                "hold_until": hold_until, "index": p}
        proc = multiprocessing.get_context("spawn").Process(target=_process_main, args=(spec, queue))
        proc.start()
        procs.append(proc)
    results = [queue.get() for _ in procs]
    for proc in procs:
        proc.join()
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--terminals", type=int, default=50)
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8883)
    p.add_argument("--ca", type=Path, required=True, help="the broker's CA certificate (PEM)")
    p.add_argument("--ca-key", type=Path, required=True, help="its key, to issue each terminal's certificate")
    p.add_argument("--state", type=Path, required=True, help="folder for the terminals' journals and certificates")
    p.add_argument("--day-seconds", type=float, default=60.0)
    p.add_argument("--handovers", type=int, default=6)
    p.add_argument("--prefix", default="ht/v1")
    args = p.parse_args(argv)
    certs = args.state / "certs"
    issue_certificates(args.ca, args.ca_key, [f"fleet-{i:04d}" for i in range(args.terminals)], certs)
    started = time.monotonic()
    results = run_fleet(terminals=args.terminals, processes=args.processes, host=args.host, port=args.port,
                        ca=str(args.ca), certs=str(certs), state=str(args.state), day_seconds=args.day_seconds,
                        handovers=args.handovers, prefix=args.prefix)
    for r in results:
        print(json.dumps({k: v for k, v in r.items() if k != "alarms_published"}))
    total = sum(r["entries"] for r in results)
    print(json.dumps({"terminals": args.terminals, "entries": total, "alarms": sum(r["alarms"] for r in results),
                      "seconds": round(time.monotonic() - started, 1),
                      "rss_kib_per_terminal": round(sum(r["rss_kib"] for r in results) / args.terminals, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
