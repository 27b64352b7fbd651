"""`handover-hq serve`: real terminals' sync (agent.sync with real journals) through a real mosquitto into a
real database — SQLite, and PostgreSQL in a throwaway cluster — exactly once, in order, chain verified; a
gap asks for a resend, a duplicate changes nothing, an alarm is committed and pushed at once; kill -9 of
serve, of mosquitto and of PostgreSQL loses nothing (checked by `handover-hq verify-against`)."""
from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import pytest

from agent.sync import Sync
from hq.db import ALARM_CHANNEL, Database
from hq.serve import Server
from protocol import messages
from protocol.chain import GENESIS_HASH, entry_hash

sys.path.insert(0, str(Path(__file__).parent))
from broker import HQ_IDENTITY, env_with_repo, mqtt_config, open_device  # noqa: E402
from mqtt_fixtures import broker, hq_cert, wait_until  # noqa: E402,F401 (fixtures)
from postgres import db_url, fresh_database, postgres  # noqa: E402,F401 (fixtures)

pytestmark = pytest.mark.mqtt
ROOT = Path(__file__).resolve().parents[2]


def start_server(broker, hq_cert, db_url, **kw) -> Server:
    cert, key = hq_cert
    return Server(db_url, "127.0.0.1", broker.port, ca_file=broker.pki.ca_file, cert_file=cert, key_file=key,
                  resend_after=1.0, **kw).start()


class Terminal:
    """One device: its own certificate, real journal and the agent's sync."""

    def __init__(self, broker, folder: Path, device: str, site: str):
        self.device = device
        self.config = mqtt_config(broker, device, site, folder / device)
        self.journal_path = folder / device / "journal.db"
        self.journal, self.store = open_device(self.config, self.journal_path)
        self.sync = Sync(self.config, self.journal, self.store, backoff=(0.05, 0.5))
        self.sync.start()

    def close(self) -> None:
        self.sync.stop()
        self.journal.close()


@pytest.fixture
def terminals(broker, tmp_path):
    made: list[Terminal] = []

    def make(n: int) -> list[Terminal]:
        made.extend(Terminal(broker, tmp_path, f"dev-{i:03d}", f"BR-{i:03d}") for i in range(len(made), len(made) + n))
        return made[-n:]
    yield make
    for t in made:
        t.close()


def day_of_handovers(journal, tasks: int = 3, tag: str = "") -> None:
    """What a day at a branch journals, one alarm per task."""
    for t in range(tasks):
        task_id = f"T{tag}-{t:03d}"
        journal.append("vehicle_arrival", {"plate": f"沪A{t:05d}"}, task_id=task_id)
        for attempt in range(3):
            journal.append("finger_attempt", {"station": "door", "ok": attempt != 1}, task_id=task_id)
        with journal.transaction():
            for box in range(8):
                journal.append("box_read", {"box": f"B{t}-{box}"}, task_id=task_id)
        journal.append("alarm", {"alarm": "wrong_box", "box": f"X{tag}{t}"}, task_id=task_id)
        journal.append("handover_completed", {"exceptions": 1}, task_id=task_id)


def caught_up(db_url: str, terminals: list[Terminal]) -> bool:
    db = Database(db_url, retry_for=0)
    try:
        return all((db.device(t.device) or {"last_seq": 0})["last_seq"] == t.journal.last_seq() for t in terminals)
    except (psycopg.Error, OSError):
        return False      # the database is restarting
    finally:
        db.close()


def verify_against(db_url: str, terminals: list[Terminal]) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "hq.cli", "verify-against", "--db", db_url]
    for t in terminals:
        argv += ["--journal", f"{t.device}={t.journal_path}"]
    return subprocess.run(argv, cwd=ROOT, env=env_with_repo(), capture_output=True, text=True, timeout=120)


def test_the_fleets_day_is_in_the_database_once_in_order_with_each_alarm_pushed_once(broker, hq_cert, db_url,
                                                                                      terminals):
    pushed: list[tuple[str, str]] = []
    server = start_server(broker, hq_cert, db_url, on_alarm=lambda device, entry: pushed.append((device, entry["id"])))
    try:
        fleet = terminals(3)
        for t in fleet:
            day_of_handovers(t.journal)
        wait_until(lambda: caught_up(db_url, fleet), 60, "head office to hold every terminal's day")
        wait_until(lambda: len(pushed) >= 9, 20, "every alarm pushed")
        time.sleep(0.5)       # nothing more may come: the urgent copy and the stream copy are one alarm
    finally:
        server.stop()
    assert sorted(pushed) == sorted({(d, i) for d, i in pushed}), "an alarm was pushed twice"
    assert len(pushed) == 9
    db = Database(db_url)
    assert {a["id"] for a in db.alarms()} == {i for _, i in pushed}
    assert db.count("entries") == sum(t.journal.last_seq() for t in fleet)
    db.close()
    r = verify_against(db_url, fleet)
    assert r.returncode == 0, r.stderr
    assert f"OK: {sum(t.journal.last_seq() for t in fleet)} entries of 3 device(s) verified" in r.stdout


def test_verify_against_names_a_terminal_entry_head_office_lacks(broker, hq_cert, db_url, terminals):
    """The compare command can fail: a terminal whose last entries never arrived is named."""
    server = start_server(broker, hq_cert, db_url)
    (t,) = terminals(1)
    try:
        t.journal.append("box_read", {"box": "B1"})
        wait_until(lambda: caught_up(db_url, [t]), 30, "the first entry")
    finally:
        server.stop()
    t.sync.stop()
    t.journal.append("box_read", {"box": "B2"})       # the link is down: head office never gets it
    r = verify_against(db_url, [t])
    assert r.returncode == 1
    assert "entry 2 of the terminal's journal is missing at head office" in r.stderr


class RawDevice:
    """A device's MQTT session driven by hand (its own certificate): sends chosen batches, hears commands."""

    def __init__(self, broker, device: str, site: str):
        self.device, self.site = device, site
        cert, key = broker.pki.issue(device)
        self.commands: list[dict] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=device, protocol=mqtt.MQTTv5)
        self.client.tls_set(ca_certs=str(broker.pki.ca_file), certfile=str(cert), keyfile=str(key))
        subscribed = threading.Event()
        self.client.on_message = lambda c, u, m: self.commands.append(json.loads(m.payload))
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_connect = lambda c, *a: c.subscribe(messages.Topics("ht/v1", device).down_filter, qos=1)
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        assert subscribed.wait(10)
        self.entries, prev = [], GENESIS_HASH
        for seq in range(1, 7):
            ts, body = f"2026-06-01T08:00:{seq:02d}.000Z", {"box": f"B{seq}"}
            h = entry_hash(seq, ts, "box_read", None, body, prev)
            self.entries.append({"id": f"{device}:{seq}", "seq": seq, "ts": ts, "kind": "box_read", "task_id": None,
                                 "body": body, "prev_hash": prev, "hash": h})
            prev = h

    def send(self, leaf: str, payload: dict) -> None:
        body = json.dumps({"v": 1, "device": self.device, **payload})
        info = self.client.publish(f"ht/v1/{self.device}/{leaf}", body, qos=1)
        info.wait_for_publish(10)

    def batch(self, first: int, last: int) -> None:
        self.send("journal", {"entries": self.entries[first - 1:last]})

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_a_gap_asks_resend_from_and_a_duplicate_changes_nothing(broker, hq_cert, db_url):
    server = start_server(broker, hq_cert, db_url)
    dev = RawDevice(broker, "dev-raw", "BR-900")
    db = Database(db_url)
    try:
        dev.send("status", {"site_id": "BR-900", "state": "online"})
        wait_until(lambda: (db.device("dev-raw") or {}).get("state") == "online", 10, "the device's status")
        dev.batch(3, 4)                                     # entries 1-2 were lost on the way
        wait_until(lambda: any(c.get("command") == "resend_from" for c in dev.commands), 10, "a resend request")
        resend = next(c for c in dev.commands if c.get("command") == "resend_from")
        assert resend["seq"] == 1 and resend["site_id"] == "BR-900"
        assert db.device("dev-raw")["last_seq"] == 0, "nothing after a gap is applied"
        dev.batch(1, 4)
        wait_until(lambda: db.device("dev-raw")["last_seq"] == 4, 10, "the resent entries")
        dev.batch(2, 4)                                     # a duplicate (a resend that crossed an ack)
        dev.batch(1, 6)                                     # overlapping: only 5 and 6 are new
        wait_until(lambda: db.device("dev-raw")["last_seq"] == 6, 10, "the new entries")
        assert [e["seq"] for e in db.entries("dev-raw")] == [1, 2, 3, 4, 5, 6]
        assert [e["hash"] for e in db.entries("dev-raw")] == [e["hash"] for e in dev.entries]
        assert server.counters.duplicates >= 7
    finally:
        dev.close()
        server.stop()
        db.close()


def test_an_altered_entry_is_not_applied_and_nothing_after_it(broker, hq_cert, db_url):
    server = start_server(broker, hq_cert, db_url)
    dev = RawDevice(broker, "dev-bad", "BR-901")
    db = Database(db_url)
    try:
        dev.batch(1, 2)
        wait_until(lambda: (db.device("dev-bad") or {}).get("last_seq") == 2, 10, "two good entries")
        forged = [dict(e) for e in dev.entries[2:4]]
        forged[0]["body"] = {"box": "SWAPPED"}              # altered after it was hashed
        dev.send("journal", {"entries": forged})
        dev.batch(5, 6)
        time.sleep(1.0)
        assert db.device("dev-bad")["last_seq"] == 2
        assert [e["body"] for e in db.entries("dev-bad")] == [{"box": "B1"}, {"box": "B2"}]
    finally:
        dev.close()
        server.stop()
        db.close()


def test_an_alarm_is_notified_to_the_monitoring_board_at_its_commit(broker, hq_cert, postgres, terminals):
    """PostgreSQL: a board LISTENing on the alarm channel hears the alarm the moment it is committed."""
    db_url = fresh_database(postgres)
    server = start_server(broker, hq_cert, db_url)
    board = psycopg.connect(db_url, autocommit=True)
    try:
        board.execute(f"LISTEN {ALARM_CHANNEL}")
        (t,) = terminals(1)
        t.journal.append("box_read", {"box": "B1"})
        alarm = t.journal.append("alarm", {"alarm": "unknown_vehicle", "beacon": "ibeacon:x"})
        heard = next(board.notifies(timeout=20, stop_after=1), None)
        assert heard is not None, "no alarm notification within 20 s"
        note = json.loads(heard.payload)
        assert note["device"] == t.device and note["seq"] == alarm.seq and note["body"]["alarm"] == "unknown_vehicle"
        db = Database(db_url)
        assert [a["seq"] for a in db.alarms(t.device)] == [alarm.seq]
        db.close()
    finally:
        board.close()
        server.stop()


# -- kill -9 -----------------------------------------------------------------------------------------

class ServeProcess:
    """`handover-hq serve` as its own process, so it can be killed -9."""

    def __init__(self, broker, hq_cert, db_url: str, folder: Path, client_id: str = HQ_IDENTITY, group=None):
        cert, key = hq_cert
        self.argv = [sys.executable, "-m", "hq.cli", "serve", "--db", db_url, "--host", "127.0.0.1",
                     "--port", str(broker.port), "--ca", str(broker.pki.ca_file), "--cert", str(cert),
                     "--key", str(key), "--client-id", client_id]
        if group:
            self.argv += ["--group", group]
        self.log = folder / f"serve-{client_id}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "ServeProcess":
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.argv, cwd=ROOT, env=env_with_repo(), stdout=out, stderr=out)
        return self

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


class Appender:
    """Terminals working while things die around them: each appends a handover's entries every few ms."""

    def __init__(self, fleet: list[Terminal]):
        self.fleet, self.stop = fleet, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            for t in self.fleet:
                t.journal.append("alarm" if n % 25 == 0 else "box_read", {"n": n}, task_id="T-kill")
            self.stop.wait(0.02)

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(10)


@pytest.mark.parametrize("victims", [("serve", "mosquitto", "postgresql"), ("serve",)], ids=["postgresql", "sqlite"])
def test_kill_9_of_serve_mosquitto_and_postgresql_loses_nothing(broker, hq_cert, terminals, tmp_path, victims,
                                                               request):
    if "postgresql" in victims:
        pg = request.getfixturevalue("postgres")
        db_url = fresh_database(pg)
    else:
        pg, db_url = None, str(tmp_path / "hq.db")
    serve = ServeProcess(broker, hq_cert, db_url, tmp_path).start()
    fleet = terminals(4)
    appender = Appender(fleet)
    rng = random.Random(15)
    try:
        for round_ in range(3):
            for victim in victims:
                time.sleep(rng.uniform(0.3, 1.5))       # a random moment in the stream
                if victim == "serve":
                    serve.kill()
                    time.sleep(rng.uniform(0, 0.5))
                    serve.start()
                elif victim == "mosquitto":
                    broker.kill()
                    time.sleep(rng.uniform(0, 0.5))
                    broker.start()
                else:
                    pg.kill()
                    time.sleep(rng.uniform(0, 0.5))
                    pg.start()
        time.sleep(1.0)
    finally:
        appender.finish()
    try:
        # Caught up and staying so: a resend_from asked during the kills (or still queued at the broker)
        # makes a terminal journal its acceptance, one more entry, seconds later on a busy machine.
        steady = {"since": None}

        def caught_up_steadily() -> bool:
            if not caught_up(db_url, fleet):
                steady["since"] = None
                return False
            steady["since"] = steady["since"] or time.monotonic()
            return time.monotonic() - steady["since"] > 6.0
        wait_until(caught_up_steadily, 120, "head office to catch up after the kills")
    finally:
        serve.stop()
    assert sum(t.journal.last_seq() for t in fleet) > 100, "the terminals worked during the kills"
    r = verify_against(db_url, fleet)
    assert r.returncode == 0, r.stderr + serve.log.read_text()[-3000:]
    assert "OK:" in r.stdout


# -- scale out ---------------------------------------------------------------------------------------

def test_two_workers_share_the_fleet_and_the_database_keeps_each_device_in_order(broker, hq_cert, postgres,
                                                                                  terminals, tmp_path):
    """MQTT v5 shared subscriptions spread the messages over both workers; whichever gets a device's batch
    out of turn applies nothing of it, and the device's journal still arrives whole, in order, once."""
    db_url = fresh_database(postgres)
    workers = [ServeProcess(broker, hq_cert, db_url, tmp_path, client_id=f"hq-w{i}", group="hq").start()
               for i in (1, 2)]
    fleet = terminals(4)
    try:
        time.sleep(1.5)                    # both workers subscribed before the terminals start sending
        for t in fleet:
            day_of_handovers(t.journal, tasks=6)
        wait_until(lambda: caught_up(db_url, fleet), 120, "head office to hold every terminal's day")
    finally:
        for w in workers:
            w.stop()
    logs = [w.log.read_text() for w in workers]
    applied = [int(log.rsplit("applied ", 1)[1].split()[0]) for log in logs]
    assert all(n > 0 for n in applied), f"both workers must have applied entries: {applied}"
    assert sum(applied) == sum(t.journal.last_seq() for t in fleet)
    r = verify_against(db_url, fleet)
    assert r.returncode == 0, r.stderr


def _chain(device: str, first: int, last: int, prev: str) -> list[dict]:
    out = []
    for seq in range(first, last + 1):
        ts, body = "2026-06-01T08:00:00.000Z", {"box": f"B{seq}"}
        h = entry_hash(seq, ts, "box_read", None, body, prev)
        out.append({"id": f"{device}:{seq}", "seq": seq, "ts": ts, "kind": "box_read", "task_id": None,
                    "body": body, "prev_hash": prev, "hash": h})
        prev = h
    return out


def test_a_worker_skips_a_device_a_peer_is_writing_and_applies_the_rest(postgres):
    """Shared workers do not queue behind each other's transactions: a device whose row a peer holds comes
    back busy (nothing of it applied), every other device in the same transaction is committed, and once the
    peer commits the busy batch applies in order."""
    db_url = fresh_database(postgres)
    mine, peer = Database(db_url).create_schema(), Database(db_url)
    d1, d2 = _chain("dev-1", 1, 4, GENESIS_HASH), _chain("dev-2", 1, 2, GENESIS_HASH)
    mine.apply_many([("dev-1", d1[:2]), ("dev-2", d2[:1])])
    holding, release = threading.Event(), threading.Event()

    def peer_writes(cur) -> None:       # a peer's transaction on dev-1, held open
        peer._lock_devices(cur, ["dev-1"])
        holding.set()
        release.wait(30)
    writer = threading.Thread(target=peer.run, args=(peer_writes,))
    writer.start()
    try:
        assert holding.wait(30)
        started = time.monotonic()
        results = mine.apply_many([("dev-1", d1[2:]), ("dev-2", d2[1:])], skip_busy=True)
        assert time.monotonic() - started < 10, "it waited for the peer's lock"
        assert [r.busy for r in results] == [True, False]
        assert mine.device("dev-1")["last_seq"] == 2 and mine.device("dev-2")["last_seq"] == 2
    finally:
        release.set()
        writer.join()
    assert mine.apply_many([("dev-1", d1[2:])], skip_busy=True)[0].applied == 2
    assert [e["seq"] for e in mine.entries("dev-1")] == [1, 2, 3, 4]
    mine.close()
    peer.close()


def test_an_urgent_alarm_is_committed_while_the_stream_writer_holds_its_device(postgres):
    """The alarm's urgent copy does not wait for the stream's transaction on the same device (up to 100
    messages long): the monitoring board sees it committed while that transaction is still open."""
    db_url = fresh_database(postgres)
    urgent, writer_db, board = Database(db_url).create_schema(), Database(db_url), Database(db_url)
    entries = _chain("dev-1", 1, 3, GENESIS_HASH)
    urgent.apply("dev-1", entries[:1])
    alarm = {**entries[1], "kind": "alarm", "body": {"alarm": "wrong_box"}}
    alarm["hash"] = entry_hash(2, alarm["ts"], "alarm", None, alarm["body"], alarm["prev_hash"])
    holding, release = threading.Event(), threading.Event()

    def stream_writes(cur) -> None:
        writer_db._lock_devices(cur, ["dev-1"])
        holding.set()
        release.wait(30)
    writer = threading.Thread(target=writer_db.run, args=(stream_writes,))
    writer.start()
    try:
        assert holding.wait(30)
        started = time.monotonic()
        assert urgent.urgent("dev-1", alarm) is True
        assert time.monotonic() - started < 10, "the alarm waited for the stream's transaction"
        assert [a["id"] for a in board.alarms("dev-1")] == ["dev-1:2"]
    finally:
        release.set()
        writer.join()
    for db in (urgent, writer_db, board):
        db.close()
