"""Benchmark: how fast a committed alarm reaches a monitor's board (issue 16: "within 1 s of commit").

    python tests/bench/bench_hq_board.py [--alarms 200] [--gap 0.02] [--boards 3]

One TLS mosquitto (mutual TLS + ACL, as in the tests), `hq.serve.Server` with the monitoring page
(`hq.web.app.WebBoard`) on SQLite, `--boards` logged-in monitors reading the Server-Sent Events stream
(`/api/events`, plain HTTP clients, one thread each), and one device publishing `urgent` alarm entries
(hash-valid) every `--gap` seconds. Figures, p50 / p99 / max:
- commit -> board: from `on_alarm` (called right after the alarm's transaction committed) to the event read by
  each board's client;
- publish -> board: from the device's publish to each board (MQTT hop, commit and push);
- raw baseline, same run: publish -> a plain MQTT subscriber (head office's certificate) on the same topic.
Ratio: publish -> board over the raw MQTT hop. No browser: the page's own rendering is not in the figures.
"""
from __future__ import annotations

import argparse
import http.client
import json
import ssl
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "integration"), str(ROOT / "tests")]

import paho.mqtt.client as mqtt  # noqa: E402

from broker import HQ_IDENTITY, Broker, Pki  # noqa: E402
from conftest import free_port  # noqa: E402
from hq.db import Database  # noqa: E402
from hq.serve import Server  # noqa: E402
from hq.web.app import Settings, WebBoard  # noqa: E402
from hq.web.auth import Auth  # noqa: E402
from protocol import messages  # noqa: E402
from protocol.chain import GENESIS_HASH, entry_hash  # noqa: E402

DEVICE, SITE, PASSWORD = "dev-bench", "BR-001", "bench password"


def client(pki: Pki, name: str, port: int) -> mqtt.Client:
    cert, key = pki.issue(name)
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=name, protocol=mqtt.MQTTv5)
    c.tls_set(ca_certs=str(pki.ca_file), certfile=str(cert), keyfile=str(key), cert_reqs=ssl.CERT_REQUIRED)
    connected = threading.Event()
    c.on_connect = lambda *a: connected.set()
    c.connect("127.0.0.1", port)
    c.loop_start()
    assert connected.wait(10), f"{name} could not connect"
    return c


def login(port: int, name: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", "/login", urllib.parse.urlencode({"name": name, "password": PASSWORD}),
                 {"Content-Type": "application/x-www-form-urlencoded"})
    r = conn.getresponse()
    cookie = r.getheader("Set-Cookie").split(";")[0]
    conn.close()
    return cookie


def read_board(port: int, cookie: str, seen: dict, ready: threading.Event) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("GET", "/api/events", headers={"Cookie": cookie, "Accept": "text/event-stream"})
    r = conn.getresponse()
    ready.set()
    event = None
    while True:
        line = r.readline()
        if not line:
            return
        line = line.decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: ") and event == "alarm":
            seen.setdefault(json.loads(line[6:])["id"], []).append(time.monotonic())


def figures(name: str, values: list[float]) -> str:
    values = sorted(values)
    p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
    return (f"{name:<28} p50 {statistics.median(values) * 1000:7.2f} ms   p99 {p99 * 1000:7.2f} ms   "
            f"max {values[-1] * 1000:7.2f} ms   (n={len(values)})")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--alarms", type=int, default=200)
    ap.add_argument("--gap", type=float, default=0.02)
    ap.add_argument("--boards", type=int, default=3)
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-hq-board-"))
    (folder / "broker").mkdir()
    broker = Broker(folder / "broker", Pki(folder / "pki")).start()
    db_url = str(folder / "hq.db")
    auth_db = Database(db_url).create_schema()
    Auth(auth_db).add_user("monitor", "monitor", PASSWORD)
    auth_db.close()
    committed: dict[str, float] = {}
    http_port = free_port()
    web = WebBoard(db_url, "127.0.0.1", http_port, Settings(sites={SITE: "城东支行"}))

    def on_alarm(device: str, entry: dict) -> None:
        committed[entry["id"]] = time.monotonic()
        web.alarm(device, entry)

    cert, key = broker.pki.issue(HQ_IDENTITY)
    server = Server(db_url, "127.0.0.1", broker.port, ca_file=broker.pki.ca_file, cert_file=cert, key_file=key,
                    client_id="hq-bench", on_alarm=on_alarm).start()
    web.start()
    boards: list[dict] = []
    for _ in range(args.boards):
        seen, ready = {}, threading.Event()
        threading.Thread(target=read_board, args=(http_port, login(http_port, "monitor"), seen, ready),
                         daemon=True).start()
        assert ready.wait(10)
        boards.append(seen)

    raw: dict[str, float] = {}
    topic = messages.Topics("ht/v1", DEVICE)
    # the raw baseline: a plain subscriber with head office's identity on the same urgent topic
    raw_client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="hq-raw", protocol=mqtt.MQTTv5)
    raw_client.tls_set(ca_certs=str(broker.pki.ca_file), certfile=str(cert), keyfile=str(key),
                       cert_reqs=ssl.CERT_REQUIRED)
    subscribed = threading.Event()
    raw_client.on_connect = lambda c, *a: c.subscribe(topic.up("urgent"), qos=1)
    raw_client.on_subscribe = lambda *a: subscribed.set()
    raw_client.on_message = lambda c, u, m: raw.setdefault(json.loads(m.payload)["entry"]["id"], time.monotonic())
    raw_client.connect("127.0.0.1", broker.port)
    raw_client.loop_start()
    assert subscribed.wait(10)
    device = client(broker.pki, DEVICE, broker.port)

    sent: dict[str, float] = {}
    prev = GENESIS_HASH
    for seq in range(1, args.alarms + 1):
        ts = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        body = {"alarm": "wrong_box", "silent": False, "blocking": True, "site_id": SITE,
                "detail": {"box_id": f"XB{seq}", "destination": "BR-002"}}
        h = entry_hash(seq, ts, "alarm", "T1", body, prev)
        entry = {"id": messages.entry_id(DEVICE, seq), "seq": seq, "ts": ts, "kind": "alarm", "task_id": "T1",
                 "body": body, "prev_hash": prev, "hash": h}
        prev = h
        sent[entry["id"]] = time.monotonic()
        device.publish(topic.up("urgent"), messages.encode({"v": 1, "device": DEVICE, "entry": entry}), qos=1)
        time.sleep(args.gap)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all(len(b) == args.alarms for b in boards):
        time.sleep(0.05)

    commit_to_board = [t - committed[i] for b in boards for i, ts in b.items() for t in ts]
    publish_to_board = [t - sent[i] for b in boards for i, ts in b.items() for t in ts]
    publish_to_raw = [raw[i] - sent[i] for i in raw]
    missing = sum(args.alarms - len(b) for b in boards)
    print(f"{args.alarms} alarms, one every {args.gap * 1000:.0f} ms, {args.boards} boards; SQLite, TLS mosquitto")
    print(figures("commit -> board", commit_to_board))
    print(figures("publish -> board", publish_to_board))
    print(figures("raw: publish -> subscriber", publish_to_raw))
    ratio = statistics.median(publish_to_board) / statistics.median(publish_to_raw)
    print(f"ratio publish->board / raw MQTT hop: p50 {ratio:.1f}x")
    print(f"alarms missing on a board: {missing}; pushed twice: "
          f"{sum(len(ts) - 1 for b in boards for ts in b.values())}")
    for c in (device, raw_client):
        c.disconnect()
        c.loop_stop()
    web.stop()
    server.stop()
    broker.stop()
    return 0 if missing == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
