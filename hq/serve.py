"""`handover-hq serve`: the fleet's journals into head office's database, exactly once (SPEC §2.5, §4).

Two MQTT sessions, as `watch` has: the stream session takes every terminal's journal, status, health and
reply topics; the live session takes the urgent topic alone, so an alarm is committed and pushed to
the watchers at once even while a backlog drains on the stream. Each journal message is one database
transaction (`hq.db.Database.apply`), and its MQTT acknowledgement is sent only after the commit: a worker
killed mid-batch leaves the message unacknowledged and the broker hands it out again; a duplicate is a
no-op. A gap (something lost between terminal and here) is answered with `resend_from`, as `watch` does.

Several workers share the fleet with `--group NAME` (MQTT v5 shared subscriptions, `$share/NAME/...`):
the broker spreads messages over the workers, and the database, not the worker, decides what is applied
next. Each worker needs its own `--client-id`.
"""
from __future__ import annotations

import argparse
import itertools
import json
import queue
import re
import shutil
import signal
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Callable, Iterator

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from hq import records
from hq.complaints import load_key as load_complaint_key
from hq.db import Applied, Database, is_postgres
from hq.distribute import BundleKit
from hq.web.app import Settings, WebBoard
from hq.web.board import speech_of
from hq.web.sites import parse_sites
from hq.web.voice import VOICE
from protocol import messages, snapshot
from protocol.chain import GENESIS_HASH, chain_problem
from protocol.keys import HqKeys

STREAM_LEAVES = ("journal", "status", "health", "reply")
LIVE_LEAVES = ("urgent",)


GROUP_MAX = 100         # journal messages committed in one transaction (the broker's in-flight window)
PARKED_RETRY = 0.05     # seconds between tries of batches that came out of turn (several workers)
MAX_PARKED = 20000      # beyond this, a batch out of turn is let go and asked again at once
PARK_PATIENCE = 30.0    # seconds a parked batch waits for its predecessor (a peer may be deep in a backlog)


@dataclass
class _Batch:
    """A journal message waiting for the writer; acknowledged after the commit that applied it."""
    client: mqtt.Client
    mid: int
    qos: int
    device: str
    entries: list[dict]


@dataclass
class _Parked:
    """A journal batch that arrived before its predecessor was committed (by a peer worker)."""
    client: mqtt.Client
    device: str
    entries: list[dict]
    since: float


@dataclass
class Counters:
    entries: int = 0
    duplicates: int = 0
    batches: int = 0
    gaps: int = 0
    resends: int = 0
    alarms: int = 0
    set_aside: int = 0
    snapshots: int = 0


class Server:
    def __init__(self, db_url: str, host: str, port: int, *, ca_file, cert_file, key_file, client_id: str = "hq",
                 prefix: str = "ht/v1", group: str | None = None, resend_after: float = 2.0,
                 on_alarm: Callable[[str, dict], None] | None = None, speak: bool = False,
                 sites: dict[str, str] | None = None, on_entries: Callable[[str, list[dict]], None] | None = None,
                 records_key: X25519PrivateKey | None = None):
        self.prefix = prefix
        # Faces are taken only with the key that checks them: without it they wait in the terminals' outboxes.
        self._records_key = records_key
        self.counters = Counters()
        self._host, self._port = host, port
        self._tls = (ca_file, cert_file, key_file)
        self._group = group
        self._resend_after = resend_after
        self._on_alarm = on_alarm
        self._on_entries = on_entries      # (device, entries) at each commit: the route board's live feed
        self._speak = speak and shutil.which("espeak-ng") is not None
        self._sites = sites or {}
        self._stop = threading.Event()
        self._db_url = db_url
        Database(db_url, stop=self._stop).create_schema().close()
        self._last_resend: dict[str, float] = {}
        self._progress: dict[str, tuple[int, float]] = {}
        self._resend_lock = threading.Lock()
        self._parked: list[_Parked] = []
        self._parked_lock = threading.Lock()
        self._queue: queue.Queue[_Batch] = queue.Queue()
        self._busy: list[_Batch] = []     # held up by a peer's open transaction: retried first, unacknowledged
        self._urgent: queue.Queue[_Batch] = queue.Queue()      # urgent copies: their own writer, never behind the stream
        self._last_write = 0.0
        # One database connection per thread that writes: each session's network thread and the gap watcher.
        self.stream = self._make_client(client_id, STREAM_LEAVES + ((snapshot.UPLINK,) if records_key else ()))
        self.live = self._make_client(f"{client_id}-live", LIVE_LEAVES)
        self._watcher: threading.Thread | None = None
        self._writer: threading.Thread | None = None
        self._urgent_writer: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    def _make_client(self, client_id: str, leaves: tuple[str, ...]) -> mqtt.Client:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5,
                             userdata={"leaves": leaves, "connected": threading.Event(),
                                       "db": Database(self._db_url, stop=self._stop)})
        client.tls_set(ca_certs=str(self._tls[0]), certfile=str(self._tls[1]), keyfile=str(self._tls[2]),
                       cert_reqs=ssl.CERT_REQUIRED)
        client.reconnect_delay_set(0.2, 5)
        client.max_inflight_messages_set(100)
        client.manual_ack_set(True)     # acknowledged after the commit, never before
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    def topic_filters(self, leaves: tuple[str, ...]) -> list[str]:
        share = f"$share/{self._group}/" if self._group else ""
        return [f"{share}{self.prefix}/+/{leaf}" for leaf in leaves]

    def start(self, timeout: float = 10.0) -> "Server":
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 7 * 24 * 3600    # a restarted worker gets what arrived while it was down
        for client in (self.stream, self.live):
            client.connect_async(self._host, self._port, keepalive=10, clean_start=False, properties=props)
            client.loop_start()
        for client in (self.stream, self.live):
            if not client.user_data_get()["connected"].wait(timeout):
                self.stop()
                raise TimeoutError(f"head office could not connect to {self._host}:{self._port}")
        self._watcher = threading.Thread(target=self._watch_gaps, name="hq-gaps", daemon=True)
        self._watcher.start()
        self._writer = threading.Thread(target=self._write_loop, name="hq-writer", daemon=True)
        self._writer.start()
        self._urgent_writer = threading.Thread(target=self._write_loop, args=(self.write_urgent,),
                                               name="hq-urgent", daemon=True)
        self._urgent_writer.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for client in (self.stream, self.live):
            client.disconnect()
            client.loop_stop()
            client.user_data_get()["db"].close()
        for thread in (self._watcher, self._writer, self._urgent_writer):
            if thread:
                thread.join(5)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if not reason_code.is_failure:
            # Said at once: a persistent session's queued messages start flowing now, before the subscription.
            print(f"hq serve: {userdata['leaves'][0]} session connected", flush=True)
            client.subscribe([(f, 1) for f in self.topic_filters(userdata["leaves"])])

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        if all(not rc.is_failure for rc in reason_codes):
            userdata["connected"].set()
        else:
            print(f"hq serve: the broker refused a subscription: {[str(rc) for rc in reason_codes]}", file=sys.stderr)

    # -- uplink ------------------------------------------------------------------------------------

    def _on_message(self, client, userdata, message) -> None:
        where = messages.split_topic(self.prefix, message.topic)
        db: Database = userdata["db"]
        if where is not None and where[1] == snapshot.UPLINK:
            return self._snapshot(client, db, where[0], message)
        try:
            if where is not None and self._receive(client, db, *where, message):
                return      # queued for the writer, which acknowledges it after its commit
        except Exception as exc:
            if self._stop.is_set():
                return      # not committed and not acknowledged: the broker gives it to us (or a peer) again
            # One device's message must never stop the reader: every other device's stream goes on.
            self.counters.set_aside += 1
            print(f"hq serve: set aside a message on {message.topic}: {type(exc).__name__}", file=sys.stderr)
            device = where[0] if where else "?"
            try:
                db.quarantine(device, None, f"message could not be applied ({type(exc).__name__})")
            except Exception:
                return      # the database is gone and we are stopping: leave it unacknowledged
        client.ack(message.mid, message.qos)

    def _receive(self, client, db: Database, device: str, leaf: str, message) -> bool:
        """Handle one message; True when it was queued for the writer (not to be acknowledged here)."""
        try:
            payload = messages.decode(leaf, message.payload, max_bytes=messages.MAX_DOWNLINK_BYTES,
                                      max_depth=messages.MAX_ENTRY_DEPTH + 8)
        except messages.MessageError as exc:
            print(f"hq serve: ignored a message on {self.prefix}/{device}/{leaf}: {exc}", file=sys.stderr)
            db.quarantine(device, None, f"{leaf} message refused: {exc}")
            return False
        if payload["device"] != device:
            db.quarantine(device, None, f"{leaf} message names another device")
            return False
        if leaf == "urgent":
            self._urgent.put(_Batch(client, message.mid, message.qos, device, [payload["entry"]]))
            return True
        elif leaf == "journal":
            self._queue.put(_Batch(client, message.mid, message.qos, device, payload["entries"]))
            return True
        elif leaf == "status":
            db.status(device, payload["site_id"], payload["state"])
        elif leaf == "health":
            db.health(device, payload)
        elif leaf == "reply":
            db.reply(device, payload)
        return False

    def _snapshot(self, client, db: Database, device: str, message) -> None:
        """A door attempt's sealed face: checked with the records key, kept sealed, then the terminal is told
        so it may let it go. A refused one is said once here and not answered: the terminal keeps it."""
        try:
            payload = snapshot.parse_uplink(message.payload)
            if payload["device"] != device:
                raise messages.MessageError("the message names another device")
            records.store_snapshot(db, self._records_key, device, payload)
        except (messages.MessageError, snapshot.SnapshotError) as exc:
            print(f"hq serve: refused a snapshot of {device}: {exc}", file=sys.stderr, flush=True)
        except Exception as exc:
            if self._stop.is_set():
                return      # not stored, not acknowledged: the broker hands it out again
            print(f"hq serve: a snapshot of {device} could not be stored: {type(exc).__name__}", file=sys.stderr)
        else:
            self.counters.snapshots += 1
            stored = {"v": messages.VERSION, "hashes": [payload["hash"]]}
            client.publish(messages.Topics(self.prefix, device).down(snapshot.STORED), messages.encode(stored), qos=1)
        client.ack(message.mid, message.qos)

    # -- the writer: journal batches, several messages to a transaction -----------------------------

    def _write_loop(self, write=None) -> None:
        write = write or self.write_queued
        db = Database(self._db_url, stop=self._stop)
        try:
            while not self._stop.is_set():
                write(db, timeout=0.2)
        finally:
            db.close()

    def write_urgent(self, db: Database, timeout: float = 0.0) -> None:
        """Commit the urgent copies queued (waiting up to `timeout` for the first) in one transaction, push
        the new alarms, then acknowledge them. One commit for all that arrived meanwhile: at 500 terminals
        there are ~60 urgent copies a second (arrivals, verifications, confirmations, alarms), and a commit
        each queued them behind one another."""
        try:
            items = [self._urgent.get(timeout=timeout) if timeout else self._urgent.get_nowait()]
        except queue.Empty:
            return
        while True:
            try:
                items.append(self._urgent.get_nowait())
            except queue.Empty:
                break
        try:
            results = db.urgent_many([(b.device, b.entries[0]) for b in items])
        except Exception:
            if self._stop.is_set():
                return      # not committed, not acknowledged: the broker hands them out again
            results = [self._urgent_alone(db, b) for b in items]
        for item, added in zip(items, results):
            if added is None:
                print(f"hq serve: ignored an urgent entry of {item.device}: it does not match its hash", file=sys.stderr)
                db.quarantine(item.device, None, "urgent message refused: the entry does not match its hash")
            elif added:
                self._alarm(item.device, item.entries[0])
            item.client.ack(item.mid, item.qos)

    def _urgent_alone(self, db: Database, item: _Batch) -> bool:
        try:
            return bool(db.urgent_many([(item.device, item.entries[0])])[0])
        except Exception as exc:
            if self._stop.is_set():
                raise
            self.counters.set_aside += 1
            print(f"hq serve: set aside an urgent message of {item.device}: {type(exc).__name__}", file=sys.stderr)
            db.quarantine(item.device, None, f"urgent message could not be applied ({type(exc).__name__})")
            return False

    def write_queued(self, db: Database, timeout: float = 0.0) -> None:
        """Apply what the readers queued (waiting up to `timeout` for the first), up to GROUP_MAX messages in
        one transaction; each message is acknowledged after that commit."""
        # Batches a peer's open transaction held up last time go first: they are the oldest of their devices.
        batches, self._busy = self._busy, []
        if batches:
            time.sleep(0.005)       # the peer's transaction is about to commit
        else:
            try:
                batches = [self._queue.get(timeout=timeout) if timeout else self._queue.get_nowait()]
            except queue.Empty:
                return
        while len(batches) < GROUP_MAX:
            try:
                batches.append(self._queue.get_nowait())
            except queue.Empty:
                break
        # Sorted by device (stably: a device's batches stay in order), so every worker locks device rows
        # in the same order and two workers' transactions never deadlock.
        self._last_write = time.monotonic()
        batches.sort(key=lambda b: b.device)
        try:
            # Shared with peers: a device whose row a peer holds is parked, not waited for (a wait would make
            # the workers take turns, each holding up the other's whole transaction).
            results = db.apply_many([(b.device, b.entries) for b in batches], skip_busy=bool(self._group))
        except Exception:
            if self._stop.is_set():
                return      # not committed, not acknowledged: the broker hands them out again
            results = [self._apply_alone(db, b) for b in batches]   # one bad batch must not hold up the rest
        for batch, result in zip(batches, results):
            if result is not None and result.busy:
                # Not acknowledged and not parked: tried again first thing in the next transaction (a peer
                # is committing this device now, which takes milliseconds). Killed meanwhile, the broker
                # hands it out again.
                self._busy.append(batch)
                continue
            elif result is not None:
                self._applied(batch.device, result)
                if result.gap and self._group and len(self._parked) < MAX_PARKED:
                    # Shared by several workers: the batch before this one is most likely on its way through
                    # a peer. Hold this one and try again, rather than ask the device for everything again.
                    # It is acknowledged now: held unacknowledged, parked batches fill both workers' in-flight
                    # windows and each waits for what the other cannot take. If this worker dies, the gap it
                    # leaves is asked again from the device (resend_from), which still holds everything.
                    with self._parked_lock:
                        self._parked.append(_Parked(batch.client, batch.device, batch.entries, time.monotonic()))
                elif result.gap:
                    self._gap(batch.client, db, batch.device, result.last_seq)
            batch.client.ack(batch.mid, batch.qos)

    def _apply_alone(self, db: Database, batch: "_Batch") -> Applied | None:
        try:
            return db.apply(batch.device, batch.entries)
        except Exception as exc:
            if self._stop.is_set():
                raise
            self.counters.set_aside += 1
            print(f"hq serve: set aside a journal batch of {batch.device}: {type(exc).__name__}", file=sys.stderr)
            db.quarantine(batch.device, None, f"journal batch could not be applied ({type(exc).__name__})")
            return None

    def _applied(self, device: str, result: Applied) -> None:
        """What follows a commit: counters, problems said, alarms pushed, progress noted."""
        with self._parked_lock:
            c = self.counters
            c.batches += 1
            c.entries += result.applied
            c.duplicates += result.duplicates
        for problem in result.problems:
            print(f"hq serve: {device}: {problem}", file=sys.stderr)
        for q in result.quarantined:
            self._alarm(device, {"id": f"{device}:quarantine:{q['seq']}", "seq": q["seq"], "kind": "alarm",
                                 "task_id": None, "body": {"alarm": "entry_quarantined", **q}})
        for entry in result.new_alarms:     # alarms whose urgent copy never came: pushed now
            self._alarm(device, entry)
        if self._on_entries is not None and result.committed:
            self._on_entries(device, result.committed)
        self._progress[device] = (result.last_seq, time.monotonic())

    def _gap(self, client, db: Database, device: str, last_seq: int) -> None:
        self.counters.gaps += 1
        row = db.device(device)
        self._ask_resend(client, device, last_seq, row["site_id"], row["state"])

    def _retry_parked(self, db: Database) -> None:
        """Parked batches (several workers): apply those whose turn has come; after PARK_PATIENCE seconds
        still out of turn, ask the device to resend and let the batch go."""
        with self._parked_lock:
            parked, self._parked = self._parked, []
        if not parked:
            return
        parked.sort(key=lambda p: (p.device, p.entries[0]["seq"]))
        try:
            # Only devices whose next entry is now among their parked batches: one read, not a retry of all.
            applied = db.last_seqs(sorted({p.device for p in parked}))
            now = time.monotonic()
            ready = {p.device for p in parked
                     if p.entries[0]["seq"] <= applied.get(p.device, 0) + 1 or now - p.since >= PARK_PATIENCE}
            waiting = [p for p in parked if p.device not in ready]
            parked = [p for p in parked if p.device in ready]
            # one transaction for all: a run of parked batches of one device goes in at once
            results = db.apply_many([(p.device, p.entries) for p in parked], skip_busy=True) if parked else []
        except Exception:
            with self._parked_lock:
                self._parked[:0] = parked + waiting
            return
        keep = waiting
        for p, result in zip(parked, results):
            if result.busy:
                keep.append(p)
                continue
            self._applied(p.device, result)
            if result.gap and time.monotonic() - p.since < PARK_PATIENCE:
                keep.append(p)
                continue
            if result.gap:
                self._gap(p.client, db, p.device, result.last_seq)
        with self._parked_lock:
            self._parked[:0] = keep

    def _alarm(self, device: str, entry: dict) -> None:
        self.counters.alarms += 1
        if self._on_alarm:
            self._on_alarm(device, entry)
        if self._speak:     # the catalog's Mandarin sentence, e.g. "城东支行，错箱报警，10:05"
            subprocess.Popen(["espeak-ng", "-v", VOICE, speech_of(entry["body"], device, entry["ts"], self._sites)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def send_downlink(self, device: str, kind: str, payload: dict) -> None:
        """Publish a downlink to one terminal (QoS 1 on the persistent session: queued while the link is down)."""
        messages.check(kind, payload)
        self.stream.publish(messages.Topics(self.prefix, device).down(kind), messages.encode(payload), qos=1)

    def _ask_resend(self, client, device: str, last_seq: int, site_id: str | None, state: str | None) -> None:
        now = time.monotonic()
        # Only to an online device: commands queued during an outage would all replay at reconnect.
        with self._resend_lock:
            if site_id is None or state != "online" or now - self._last_resend.get(device, 0.0) < self._resend_after:
                return
            self._last_resend[device] = now
        self.counters.resends += 1
        payload = {"v": messages.VERSION, "msg_id": uuid.uuid4().hex, "site_id": site_id,
                   "command": "resend_from", "seq": last_seq + 1}
        client.publish(messages.Topics(self.prefix, device).down("command"), messages.encode(payload), qos=1)

    def _watch_gaps(self) -> None:
        """Parked batches are retried often; and a lost tail has no later message to reveal it: ask again
        when a device is behind and quiet."""
        db = Database(self._db_url, stop=self._stop)
        next_check = 0.0
        try:
            while not self._stop.wait(PARKED_RETRY if self._group else self._resend_after / 2):
                if self._group:
                    self._retry_parked(db)
                if time.monotonic() < next_check or time.monotonic() - self._last_write < self._resend_after:
                    # While the stream is busy (a backlog draining) a device's turn may simply not have come:
                    # asking it to resend would only add duplicates. A lost tail shows once the stream is quiet.
                    continue
                next_check = time.monotonic() + self._resend_after / 2
                try:
                    behind = db.behind()
                except Exception:
                    continue
                now = time.monotonic()
                for device, last_seq, site_id, state in behind:
                    seen_seq, since = self._progress.get(device, (-1, now))
                    if seen_seq != last_seq:
                        self._progress[device] = (last_seq, now)
                    elif now - since > self._resend_after:
                        self._ask_resend(self.stream, device, last_seq, site_id, state)
        finally:
            db.close()


# -- handover-hq serve | verify-against ---------------------------------------------------------------

def _rows(db: Database, device: str) -> Iterator[dict]:
    after = 0
    while batch := db.entries(device, after):
        yield from batch
        after = batch[-1]["seq"]


def verify_device(db: Database, device: str) -> tuple[int, str | None]:
    """(entries checked, first problem or None) of one device's rows: seq contiguous from 1, no
    duplicate, every hash and link recomputed."""
    prev, expected = GENESIS_HASH, 1
    for entry in _rows(db, device):
        if entry["seq"] != expected:
            return expected - 1, f"{device}: entry {expected} is missing (next is {entry['seq']})"
        problem = chain_problem(entry, prev)
        if problem:
            return expected - 1, f"{device}: {problem}"
        prev, expected = entry["hash"], expected + 1
    return expected - 1, None


def compare_journal(db: Database, device: str, journal_path: Path) -> str | None:
    """None if head office holds exactly the entries of the terminal's journal file, else the first difference."""
    if not journal_path.is_file():
        return f"{device}: no journal at {journal_path}"
    conn = sqlite3.connect(f"{journal_path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        theirs = conn.execute("SELECT seq, ts, kind, task_id, body, prev_hash, hash FROM journal ORDER BY seq")
        for mine, row in itertools.zip_longest(_rows(db, device), theirs):
            if row is None:
                return f"{device}: head office has entry {mine['seq']}, the terminal's journal does not"
            if mine is None:
                return f"{device}: entry {row[0]} of the terminal's journal is missing at head office"
            seq, ts, kind, task_id, body, prev_hash, hash_ = row
            if (mine["seq"], mine["ts"], mine["kind"], mine["task_id"], mine["body"], mine["prev_hash"],
                    mine["hash"]) != (seq, ts, kind, task_id, json.loads(body), prev_hash, hash_):
                return f"{device}: entry {seq} differs from the terminal's journal"
        return None
    finally:
        conn.close()


def _connection_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="localhost")
    p.add_argument("--port", type=int, default=8883)
    p.add_argument("--ca", required=True, help="CA certificate (PEM) the broker's certificate chains to")
    p.add_argument("--cert", required=True, help="head office's client certificate (PEM, CN = hq identity)")
    p.add_argument("--key", required=True, help="its private key (PEM)")
    p.add_argument("--client-id", default="hq", help="MQTT client id, one per worker; keep it stable")
    p.add_argument("--prefix", default="ht/v1")


def register(subparsers) -> None:
    """Add serve and verify-against to handover-hq's subcommands."""
    s = subparsers.add_parser("serve", help="receive every terminal's journal into the database, exactly once")
    _connection_args(s)
    s.add_argument("--db", default="hq.db", help="SQLite file (default hq.db) or postgresql://user@host:port/db")
    s.add_argument("--group", default=None,
                   help="share the fleet with other workers of this group (MQTT v5 shared subscriptions)")
    s.add_argument("--speak", action="store_true", help="speak alarms (Mandarin) with espeak-ng when it is installed")
    s.add_argument("--http", default=None, metavar="[HOST:]PORT",
                   help="serve the monitoring centre's page here (HOST defaults to 127.0.0.1: loopback only)")
    s.add_argument("--sites", type=Path, default=None,
                   help='site names for the page and the voice, JSON: {"BR-001": "<name>", ...}')
    s.add_argument("--idle-minutes", type=float, default=15.0,
                   help="a monitoring page session nobody used for this long lapses (default 15)")
    s.add_argument("--quiet-after", type=float, default=300.0,
                   help="seconds without a word from a terminal before the devices board flags it (default 300)")
    s.add_argument("--records-key", type=Path, default=None,
                   help="head office's records private key (records.pem): faces are taken in and shown with it")
    s.add_argument("--complaint-keys", type=Path, default=None,
                   help="folder holding head office's complaint.pem: the page's complaint officers open and act on "
                        "complaints with it")
    s.add_argument("--keys", type=Path, default=None, help="head office's keys (to sign the schedule's USB bundles)")
    s.add_argument("--identities", type=Path, default=None, help="folder of the devices' identity-<device>.json")
    s.add_argument("--bundles", type=Path, default=None,
                   help="folder the schedule page writes USB bundles for offline sites to (with --keys, --identities)")
    s.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    s.set_defaults(func=_cmd_serve)

    v = subparsers.add_parser("verify-against", help="check the database: every device contiguous and chain "
                                                     "verified, and equal to the terminals' journal files")
    v.add_argument("--db", default="hq.db")
    v.add_argument("--journal", action="append", default=[], metavar="DEVICE=PATH",
                   help="a terminal's journal.db to compare with (repeat for each device)")
    v.set_defaults(func=_cmd_verify_against)


def _http_address(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--http {value!r}: give [HOST:]PORT, e.g. 127.0.0.1:8443")
    return host.strip("[]") or "127.0.0.1", int(port)


def _cmd_serve(args) -> int:
    sites = parse_sites(args.sites.read_bytes()) if args.sites else {}
    records_key = records.load_key(args.records_key) if args.records_key else None
    web = None
    if args.http:
        host, port = _http_address(args.http)
        kit = None
        if args.bundles or args.keys or args.identities:
            if not (args.bundles and args.keys and args.identities):
                raise ValueError("USB bundles from the schedule page need --bundles DIR --keys K --identities D")
            kit = BundleKit(HqKeys.load(args.keys), args.identities, args.bundles)
        complaint_key = load_complaint_key(args.complaint_keys) if args.complaint_keys else None
        web = WebBoard(args.db, host, port, Settings(sites=sites, quiet_after=timedelta(seconds=args.quiet_after),
                                                     idle=timedelta(minutes=args.idle_minutes),
                                                     complaint_key=complaint_key, bundle_kit=kit,
                                                     records_key=records_key))

    def alarm(device: str, entry: dict) -> None:
        print(f"ALARM {device} #{entry['seq']} {json.dumps(entry['body'], ensure_ascii=False)}", flush=True)
        if web is not None:
            web.alarm(device, entry)

    server = Server(args.db, args.host, args.port, ca_file=args.ca, cert_file=args.cert, key_file=args.key,
                    client_id=args.client_id, prefix=args.prefix, group=args.group, on_alarm=alarm,
                    speak=args.speak, sites=sites, on_entries=web.entries if web is not None else None,
                    records_key=records_key)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    server.start()
    print(f"serving {args.prefix}/+/... into {_safe_url(args.db)}", flush=True)
    if web is not None:
        web.settings.send_downlink = server.send_downlink
        web.start()
        print(f"monitoring centre at http://{web.host}:{web.port}/", flush=True)
    try:
        stopping.wait(args.duration)
    except KeyboardInterrupt:
        pass
    finally:
        if web is not None:
            web.stop()
        server.stop()
    c = server.counters
    print(f"applied {c.entries} entries in {c.batches} batches ({c.duplicates} duplicates, {c.alarms} alarms, "
          f"{c.gaps} gaps, {c.resends} resends asked, {c.snapshots} snapshots)", flush=True)
    return 0


def _safe_url(url: str) -> str:
    """The database URL without a password (never in logs)."""
    return re.sub(r"//([^:/@]+):[^@/]*@", r"//\1:***@", url)


def _cmd_verify_against(args) -> int:
    if not is_postgres(args.db) and not Path(args.db).is_file():
        raise ValueError(f"no head-office database at {args.db}")
    db = Database(args.db, retry_for=0)
    journals = {}
    for item in args.journal:
        device, sep, path = item.partition("=")
        if not sep or not device or not path:
            raise ValueError(f"--journal {item!r}: give DEVICE=PATH")
        journals[device] = Path(path)
    problems, total = [], 0
    try:
        devices = sorted(set(db.devices()) | set(journals))
        for device in devices:
            checked, problem = verify_device(db, device)
            total += checked
            if problem:
                problems.append(problem)
            elif device in journals:
                difference = compare_journal(db, device, journals[device])
                if difference:
                    problems.append(difference)
    finally:
        db.close()
    for problem in problems:
        print(problem, file=sys.stderr)
    compared = f", {len(journals)} compared with their journals" if journals else ""
    print(f"{'FAILED' if problems else 'OK'}: {total} entries of {len(devices)} device(s) verified{compared}")
    return 1 if problems else 0
