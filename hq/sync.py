"""Head office's side of the MQTT contract (docs/mqtt.md): publish tasks, watch, export.

`HeadOffice` is what the `handover-hq publish|watch|export` subcommands and the tests use.
Per device it applies journal entries strictly in sequence: a duplicate (same id) is dropped,
each new entry's hash and link to the previous one are recomputed with `entry_hash`, and a gap
(something lost between device and here) is answered with a `resend_from` command, so what is
applied is the device's journal, in order, once. Alarms arriving on the urgent topic are shown
(and spoken) at once, and not again when the same entry comes through the ordered stream.
"""
from __future__ import annotations

import argparse
import json
import shutil
import ssl
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from protocol import messages, safejson
from protocol.chain import GENESIS_HASH, chain_problem, entry_hash


@dataclass
class DeviceLog:
    """What head office holds of one device's journal."""
    device: str
    site_id: str | None = None
    state: str | None = None
    last_seq: int = 0
    last_hash: str = GENESIS_HASH
    entries: list[dict] = field(default_factory=list)
    duplicates: int = 0
    chain_errors: list[str] = field(default_factory=list)
    newest_seen: int = 0          # highest seq heard of (stream, urgent or health)
    live_ids: set[str] = field(default_factory=set)
    last_progress: float = field(default_factory=time.monotonic)
    last_resend: float = 0.0
    health: dict | None = None
    quarantined: list[dict] = field(default_factory=list)   # entries set aside: {"seq", "reason"}


class HeadOffice:
    def __init__(self, host: str, port: int, *, ca_file, cert_file, key_file, client_id: str = "hq",
                 prefix: str = "ht/v1", archive_dir: str | Path | None = None, keep_entries: bool = True,
                 check_schemas: bool = True, on_entry: Callable[[str, dict], None] | None = None,
                 on_alarm: Callable[[str, dict], None] | None = None, speak: bool = False,
                 resend_after: float = 2.0):
        self.prefix = prefix
        self.devices: dict[str, DeviceLog] = {}
        self.replies: dict[str, dict] = {}
        self.reply_log: list[dict] = []       # every reply, also those to unreadable messages
        self.alarms: list[tuple[str, dict]] = []
        self._host, self._port = host, port
        self._tls = (ca_file, cert_file, key_file)
        self._archive = Path(archive_dir) if archive_dir else None
        self._keep = keep_entries
        self._check = check_schemas
        self._on_entry, self._on_alarm = on_entry, on_alarm
        self._speak = speak and shutil.which("espeak-ng") is not None
        self._resend_after = resend_after
        self._lock = threading.Condition()
        self._live_lock = threading.Lock()   # live_ids: shared by the stream and urgent sessions
        self._stop = threading.Event()
        self._watchdog: threading.Thread | None = None
        # Two sessions: urgent entries get their own broker queue, so a backlog being delivered
        # on the stream session never delays an alarm.
        # (door faces are serve's, which holds the key that checks them: not the watcher's)
        self.client = self._make_client(client_id, [k for k in messages.UPLINK_KINDS if k not in ("urgent", "snapshot")])
        self.live = self._make_client(f"{client_id}-live", ["urgent"])
        if self._archive:
            self._archive.mkdir(parents=True, exist_ok=True)
            for path in sorted(self._archive.glob("*.jsonl")):
                self._resume(path)

    # -- lifecycle ---------------------------------------------------------------------------------

    def _make_client(self, client_id: str, leaves: list[str]) -> mqtt.Client:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5,
                             userdata={"leaves": leaves, "connected": threading.Event()})
        client.tls_set(ca_certs=str(self._tls[0]), certfile=str(self._tls[1]), keyfile=str(self._tls[2]),
                       cert_reqs=ssl.CERT_REQUIRED)
        client.reconnect_delay_set(0.2, 5)
        client.max_inflight_messages_set(100)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    def start(self, timeout: float = 10.0) -> "HeadOffice":
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 7 * 24 * 3600
        for client in (self.client, self.live):
            client.connect(self._host, self._port, keepalive=10, clean_start=False, properties=props)
            client.loop_start()
            if not client.user_data_get()["connected"].wait(timeout):
                raise TimeoutError(f"head office could not connect to {self._host}:{self._port}")
        self._watchdog = threading.Thread(target=self._watch_gaps, name="hq-gaps", daemon=True)
        self._watchdog.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for client in (self.client, self.live):
            client.disconnect()
            client.loop_stop()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            return
        client.subscribe([(f"{self.prefix}/+/{leaf}", 1) for leaf in userdata["leaves"]])

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        userdata["connected"].set()  # from here on nothing published to these topics is missed

    # -- downlink ----------------------------------------------------------------------------------

    def send(self, device: str, kind: str, payload: dict, *, raw: bytes | None = None) -> str:
        """Publish a downlink to `device`; payload gets v and msg_id when missing. Returns msg_id.

        `raw` publishes bytes as they are (the tests' malformed messages).
        """
        payload = {"v": messages.VERSION, "msg_id": uuid.uuid4().hex, **payload}
        topic = messages.Topics(self.prefix, device).down(kind)
        info = self.client.publish(topic, raw if raw is not None else messages.encode(payload), qos=1)
        info.wait_for_publish(10)
        return payload["msg_id"]

    def publish_tasks(self, device: str, site_id: str, tasks: list[dict]) -> str:
        return self.send(device, "tasks", {"site_id": site_id, "tasks": tasks})

    def wait_reply(self, msg_id: str, timeout: float = 10.0) -> dict:
        with self._lock:
            if not self._lock.wait_for(lambda: msg_id in self.replies, timeout):
                raise TimeoutError(f"no reply to downlink {msg_id} within {timeout} s")
            return self.replies[msg_id]

    def wait_for_reply_where(self, predicate: Callable[[dict], bool], timeout: float = 10.0) -> dict:
        with self._lock:
            found: list[dict] = []

            def check() -> bool:
                found[:] = [r for r in self.reply_log if predicate(r)]
                return bool(found)
            if not self._lock.wait_for(check, timeout):
                raise TimeoutError(f"no matching reply within {timeout} s")
            return found[0]

    def wait_for(self, device: str, seq: int, timeout: float = 30.0) -> bool:
        """True once entries 1..seq of `device` have been applied."""
        with self._lock:
            return self._lock.wait_for(lambda: self.log(device).last_seq >= seq, timeout)

    def log(self, device: str) -> DeviceLog:
        log = self.devices.get(device)
        if log is None:  # setdefault: both sessions' threads may meet a new device at once
            log = self.devices.setdefault(device, DeviceLog(device))
        return log

    # -- uplink ------------------------------------------------------------------------------------

    def _on_message(self, client, userdata, message) -> None:
        where = messages.split_topic(self.prefix, message.topic)
        if where is None:
            return
        device, leaf = where
        try:
            self._receive(device, leaf, message)
        except Exception as exc:
            # One device's message must never stop the reader: every other device's stream goes on.
            print(f"hq: set aside a message on {message.topic}: {type(exc).__name__}", file=sys.stderr)
            with self._lock:
                self._quarantine(self.log(device), None, f"{leaf} message could not be read ({type(exc).__name__})")

    def _receive(self, device: str, leaf: str, message) -> None:
        try:
            payload = json.loads(message.payload)
            if self._check or leaf not in ("journal", "urgent"):
                messages.check(leaf, payload)
        except (ValueError, messages.MessageError) as exc:
            print(f"hq: ignored a message on {message.topic}: {exc}", file=sys.stderr)
            return
        if leaf == "urgent":
            # Not under the main lock: an alarm must not wait while a stream batch is verified.
            if safejson.nesting(payload.get("entry")) <= messages.MAX_ENTRY_DEPTH:
                self._live(self.log(device), payload["entry"])
            return
        with self._lock:
            log = self.log(device)
            if leaf == "journal":
                for n, entry in enumerate(payload["entries"], 1):
                    self._apply_or_quarantine(log, entry)
                    if n % 20 == 0:
                        time.sleep(0)  # hand the GIL to the urgent session between hash checks
            elif leaf == "status":
                log.state = payload["state"]
                log.site_id = payload["site_id"]
            elif leaf == "health":
                log.health = payload
                log.newest_seen = max(log.newest_seen, payload["journal"]["last_seq"])
            elif leaf == "reply":
                self.reply_log.append(payload)
                if payload["msg_id"] is not None:
                    self.replies[payload["msg_id"]] = payload
            self._lock.notify_all()

    def _apply_or_quarantine(self, log: DeviceLog, entry: dict) -> None:
        """Apply one entry; one that is too deep or breaks the reader is set aside with an alarm, and the
        stream goes on after it (the next entry must still link to the hash it claimed)."""
        try:
            if safejson.nesting(entry.get("body")) > messages.MAX_ENTRY_DEPTH:
                raise ValueError(f"body nested deeper than {messages.MAX_ENTRY_DEPTH} levels")
            self._apply(log, entry)
        except Exception as exc:
            reason = str(exc) if isinstance(exc, ValueError) else type(exc).__name__
            self._quarantine(log, entry, reason)

    def _quarantine(self, log: DeviceLog, entry: dict | None, reason: str) -> None:
        seq = entry.get("seq") if isinstance(entry, dict) else None
        if isinstance(seq, int) and seq == log.last_seq + 1 and isinstance(entry.get("hash"), str):
            log.last_seq, log.last_hash = seq, entry["hash"]
            log.last_progress = time.monotonic()
        if len(log.quarantined) < 1000:
            log.quarantined.append({"seq": seq, "reason": reason})
        self._alarm(log, {"id": f"{log.device}:quarantine:{len(log.quarantined)}", "seq": seq, "kind": "alarm",
                          "task_id": None, "body": {"alarm": "entry_quarantined", "seq": seq, "reason": reason}})

    def _apply(self, log: DeviceLog, entry: dict) -> None:
        seq = entry["seq"]
        log.newest_seen = max(log.newest_seen, seq)
        if seq <= log.last_seq:
            log.duplicates += 1
            return
        if seq != log.last_seq + 1:
            self._ask_resend(log)  # go-back-N: what follows a gap waits for the resend
            return
        problem = chain_problem(entry, log.last_hash)
        if problem:
            if len(log.chain_errors) < 100:
                log.chain_errors.append(problem)
            return
        log.last_seq, log.last_hash = seq, entry["hash"]
        log.last_progress = time.monotonic()
        if self._keep:
            log.entries.append(entry)
        if self._archive:
            with open(self._archive / f"{log.device}.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(entry, ensure_ascii=False) + "\n")
        if self._on_entry:
            self._on_entry(log.device, entry)
        with self._live_lock:
            seen_live = entry["id"] in log.live_ids
            log.live_ids.discard(entry["id"])
        if entry["kind"] == "alarm" and not seen_live:
            self._alarm(log, entry)

    def _live(self, log: DeviceLog, entry: dict) -> None:
        if entry_hash(entry["seq"], entry["ts"], entry["kind"], entry["task_id"], entry["body"],
                      entry["prev_hash"]) != entry["hash"]:
            with self._lock:
                log.chain_errors.append(f"urgent entry {entry['id']} does not match its hash")
            return
        with self._live_lock:
            log.newest_seen = max(log.newest_seen, entry["seq"])
            if entry["seq"] <= log.last_seq or entry["id"] in log.live_ids:
                return
            log.live_ids.add(entry["id"])
        if entry["kind"] == "alarm":
            self._alarm(log, entry)
        elif self._on_entry:
            self._on_entry(log.device, entry)

    def _alarm(self, log: DeviceLog, entry: dict) -> None:
        self.alarms.append((log.device, entry))
        if self._on_alarm:
            self._on_alarm(log.device, entry)
        if self._speak:
            what = entry["body"].get("alarm") or entry["body"].get("type") or "alarm"
            subprocess.Popen(["espeak-ng", f"Alarm: {what}, device {log.device}"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def _ask_resend(self, log: DeviceLog) -> None:
        now = time.monotonic()
        # Only to an online device: commands queued during an outage would all replay at reconnect.
        if log.site_id is None or log.state != "online" or now - log.last_resend < self._resend_after:
            return
        log.last_resend = now
        payload = {"v": messages.VERSION, "msg_id": uuid.uuid4().hex, "site_id": log.site_id,
                   "command": "resend_from", "seq": log.last_seq + 1}
        self.client.publish(messages.Topics(self.prefix, log.device).down("command"), messages.encode(payload), qos=1)

    def _watch_gaps(self) -> None:
        """A lost tail has no later message to reveal it: ask again when a device is behind and quiet."""
        while not self._stop.wait(self._resend_after / 2):
            with self._lock:
                for log in self.devices.values():
                    quiet = time.monotonic() - log.last_progress > self._resend_after
                    if log.newest_seen > log.last_seq and quiet:
                        self._ask_resend(log)

    def _resume(self, path: Path) -> None:
        log = self.log(path.stem)
        for line in path.read_text("utf-8").splitlines():
            entry = json.loads(line)
            log.last_seq, log.last_hash = entry["seq"], entry["hash"]
            if self._keep:
                log.entries.append(entry)

    # -- export ------------------------------------------------------------------------------------

    def export(self, out, device: str | None = None) -> int:
        """Write applied entries as JSON lines (device, then seq order); returns how many."""
        count = 0
        with self._lock:
            for name in sorted(self.devices):
                if device is None or name == device:
                    for entry in self.devices[name].entries:
                        out.write(json.dumps({"device": name, **entry}, ensure_ascii=False) + "\n")
                        count += 1
        return count


def verify_archive(path: Path) -> tuple[int, str | None]:
    """(entries checked, first problem or None) for an archive file written by `watch`."""
    prev, expected, count = GENESIS_HASH, 1, 0
    for line in path.read_text("utf-8").splitlines():
        entry = json.loads(line)
        if entry["seq"] != expected:
            return count, f"{path.name}: entry {expected} is missing (found {entry['seq']})"
        problem = chain_problem(entry, prev)
        if problem:
            return count, f"{path.name}: {problem}"
        prev, expected, count = entry["hash"], expected + 1, count + 1
    return count, None


# -- handover-hq publish | watch | export -----------------------------------------------------------

def _connection_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="localhost")
    p.add_argument("--port", type=int, default=8883)
    p.add_argument("--ca", required=True, help="CA certificate (PEM) the broker's certificate chains to")
    p.add_argument("--cert", required=True, help="head office's client certificate (PEM, CN = hq identity)")
    p.add_argument("--key", required=True, help="its private key (PEM)")
    p.add_argument("--client-id", default="hq", help="MQTT client id; keep it stable so the session persists")
    p.add_argument("--prefix", default="ht/v1")


def _head_office(args, **kw) -> HeadOffice:
    return HeadOffice(args.host, args.port, ca_file=args.ca, cert_file=args.cert, key_file=args.key,
                      client_id=args.client_id, prefix=args.prefix, **kw)


def register(subparsers) -> None:
    """Add publish, watch and export to handover-hq's subcommands."""
    p = subparsers.add_parser("publish", help="publish a day's tasks to one device and wait for its answer")
    _connection_args(p)
    p.add_argument("--device", required=True)
    p.add_argument("--site", required=True, help="the device's site id (the device refuses another)")
    p.add_argument("--tasks", required=True, type=Path, help='JSON file: a list of tasks, or {"tasks": [...]}')
    p.add_argument("--timeout", type=float, default=30.0)
    p.set_defaults(func=_cmd_publish)

    w = subparsers.add_parser("watch", help="show events and alarms live; archive them per device")
    _connection_args(w)
    w.add_argument("--archive", type=Path, required=True, help="folder for <device>.jsonl (resumed on restart)")
    w.add_argument("--speak", action="store_true", help="speak alarms with espeak-ng when it is installed")
    w.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    w.set_defaults(func=_cmd_watch)

    e = subparsers.add_parser("export", help="verify and write what was received as JSON lines")
    e.add_argument("--archive", type=Path, required=True)
    e.add_argument("--device", default=None)
    e.add_argument("--out", type=Path, default=None, help="output file (default: stdout)")
    e.set_defaults(func=_cmd_export)


def _cmd_publish(args) -> int:
    try:
        data = json.loads(args.tasks.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        print(f"cannot read tasks from {args.tasks}: {exc}", file=sys.stderr)
        return 2
    tasks = data["tasks"] if isinstance(data, dict) and "tasks" in data else data
    hq = _head_office(args, keep_entries=False).start()
    try:
        reply = hq.wait_reply(hq.publish_tasks(args.device, args.site, tasks), args.timeout)
    except TimeoutError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    finally:
        hq.stop()
    if not reply["ok"]:
        print(f"{args.device} refused the tasks: {reply['error']}", file=sys.stderr)
        return 1
    print(f"{args.device} accepted {len(tasks)} task(s) (journal entry {reply['seq']})")
    return 0


def _cmd_watch(args) -> int:
    def show(device: str, entry: dict) -> None:
        print(f"{device} #{entry['seq']} {entry['ts']} {entry['kind']} task={entry['task_id'] or '-'}", flush=True)

    def alarm(device: str, entry: dict) -> None:
        print(f"ALARM {device} #{entry['seq']} {entry['ts']} {json.dumps(entry['body'], ensure_ascii=False)}",
              flush=True)

    hq = _head_office(args, archive_dir=args.archive, keep_entries=False, on_entry=show, on_alarm=alarm,
                      speak=args.speak).start()
    try:
        deadline = None if args.duration is None else time.monotonic() + args.duration
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        hq.stop()
    return 0


def _cmd_export(args) -> int:
    files = sorted(args.archive.glob("*.jsonl")) if args.device is None else [args.archive / f"{args.device}.jsonl"]
    out = open(args.out, "w", encoding="utf-8") if args.out else sys.stdout
    total, status = 0, 0
    try:
        for path in files:
            if not path.exists():
                print(f"nothing received from {path.stem} (no {path})", file=sys.stderr)
                return 1
            count, problem = verify_archive(path)
            if problem:
                print(f"chain check failed: {problem}", file=sys.stderr)
                status = 1
            with open(path, encoding="utf-8") as f:
                for line in f:
                    out.write(json.dumps({"device": path.stem, **json.loads(line)}, ensure_ascii=False) + "\n")
            total += count
    finally:
        if args.out:
            out.close()
    print(f"exported {total} verified entries from {len(files)} device(s)", file=sys.stderr)
    return status
