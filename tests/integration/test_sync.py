"""Head-office sync against a real mosquitto: mutual TLS, ACL, persistence (TESTING.md, docs/mqtt.md)."""
from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.config import load_config
from agent.journal import Journal
from agent.sync import Sync
from protocol import messages
from hq.sync import HeadOffice

sys.path.insert(0, str(Path(__file__).parent))
from broker import HQ_IDENTITY, SlowLink, env_with_repo, mqtt_config, open_device  # noqa: E402
from mqtt_fixtures import broker, hq, wait_until  # noqa: E402,F401 (fixtures; test_sync_poison imports them from here)

pytestmark = pytest.mark.mqtt
SITE = "branch-0101"
BACKLOG = 40000


@pytest.fixture
def device(broker, tmp_path):
    """(config, journal, store) of device dev-a at SITE; the journal file is real."""
    config = mqtt_config(broker, "dev-a", SITE, tmp_path / "dev-a")
    journal, store = open_device(config, tmp_path / "dev-a" / "journal.db")
    yield config, journal, store
    journal.close()


def start_sync(device, **kw) -> Sync:
    config, journal, store = device
    sync = Sync(config, journal, store, backoff=(0.05, 0.5), **kw)
    sync.start()
    return sync


def assert_same_journal(hq: HeadOffice, device_id: str, journal_path: Path) -> None:
    """Head office applied exactly the device's journal: every entry, in order, once, chain intact."""
    log = hq.log(device_id)
    assert log.chain_errors == []
    reader = Journal(journal_path)
    try:
        local = [(e.seq, e.hash) for e in reader.entries()]
    finally:
        reader.close()
    received = [(e["seq"], e["hash"]) for e in log.entries]
    assert received == local
    assert [e["id"] for e in log.entries] == [f"{device_id}:{seq}" for seq, _ in local]


def day_of_handovers(journal, tasks: int = 6) -> int:
    """What a day at a branch journals: arrivals, fingers, boxes, confirmations, one alarm per task."""
    for t in range(tasks):
        task_id = f"T-{t:03d}"
        journal.append("vehicle_arrival", {"plate": f"沪A{t:05d}"}, task_id=task_id)
        for attempt in range(4):
            journal.append("finger_attempt", {"station": "door", "ok": attempt != 1}, task_id=task_id)
        with journal.transaction():
            for box in range(10):
                journal.append("box_read", {"box": f"B{t}-{box}"}, task_id=task_id)
        journal.append("alarm", {"alarm": "wrong_box", "box": f"X{t}"}, task_id=task_id)
        journal.append("officer_confirmed", {"officer": "P-9"}, task_id=task_id)
        journal.append("handover_completed", {"exceptions": 1}, task_id=task_id)
    return journal.last_seq()


def test_a_day_arrives_at_head_office_in_order_once(hq, device, tmp_path):
    config, journal, _ = device
    sync = start_sync(device)
    wait_until(lambda: hq.log("dev-a").state == "online", 10, "the device's online status")
    last = day_of_handovers(journal)

    assert hq.wait_for("dev-a", last, 20)
    wait_until(lambda: sync.status()["acked_seq"] == last, 10, "the cursor to reach the last entry")
    assert_same_journal(hq, "dev-a", journal.path)
    assert hq.log("dev-a").duplicates == 0
    alarms = [e for d, e in hq.alarms if d == "dev-a"]
    assert [e["body"]["box"] for e in alarms] == [f"X{t}" for t in range(6)]  # each once, live or in stream
    assert journal.get_cursor("hq") == last

    sync.stop()
    wait_until(lambda: hq.log("dev-a").state == "offline", 10, "the offline status on a clean stop")


def test_last_will_marks_a_vanished_device_offline(broker, hq, tmp_path):
    config = mqtt_config(broker, "dev-a", SITE, tmp_path / "dev-a")
    Journal(tmp_path / "dev-a" / "journal.db").close()
    agent = subprocess.Popen([sys.executable, str(Path(__file__).parent / "broker.py"), str(config.source),
                              str(tmp_path / "dev-a" / "journal.db"), "0"], env=env_with_repo())
    try:
        wait_until(lambda: hq.log("dev-a").state == "online", 15, "the agent to come online")
    finally:
        agent.kill()
        agent.wait()
    wait_until(lambda: hq.log("dev-a").state == "offline", 30, "the last will after keepalive runs out")


def test_broker_killed_and_restarted_during_handovers_loses_nothing(broker, hq, device):
    config, journal, _ = device
    sync = start_sync(device)
    done = threading.Event()

    def handovers():
        for n in range(600):
            journal.append("alarm" if n % 50 == 0 else "box_read", {"n": n}, task_id=f"T-{n // 100}")
            time.sleep(0.002)
        done.set()

    writer = threading.Thread(target=handovers)
    writer.start()
    for kill in range(3):
        time.sleep(0.3)
        broker.kill()
        if kill == 0:
            assert not done.is_set()  # 600 appends 2 ms apart take longer: the first kill cuts them
        time.sleep(0.3)
        broker.start()
    writer.join()
    # Every handover entry is in the journal, in order. Other entries may be there too: head office
    # asks for a resend when a kill leaves a gap, and the device journals each command it accepts.
    handover = [e.body["n"] for e in journal.entries() if e.kind in ("alarm", "box_read")]
    assert handover == list(range(600))
    wait_until(lambda: hq.log("dev-a").last_seq == journal.last_seq(), 60, "head office to hold the whole journal")
    assert_same_journal(hq, "dev-a", journal.path)
    sync.stop()


def journal_progress(db: Path) -> tuple[int, int]:
    """(head-office cursor, last seq) as committed in a device's journal, read beside its writer."""
    conn = sqlite3.connect(db, timeout=30)
    try:
        cursor = conn.execute("SELECT seq FROM cursors WHERE name = 'hq'").fetchone()
        last = conn.execute("SELECT max(seq) FROM journal").fetchone()[0]
    finally:
        conn.close()
    return (cursor[0] if cursor else 0), last


@pytest.mark.timeout(900)  # 31 agent processes, each started from scratch: minutes on a busy machine
def test_agent_killed_30_times_during_a_backlog_drain(broker, hq, tmp_path):
    config = mqtt_config(broker, "dev-a", SITE, tmp_path / "dev-a")
    # The agent reaches the broker over a thin link (32 KB/s up, about a hundred entries a second),
    # so each run drains a little of the backlog however fast the machine is.
    link = SlowLink(broker.port, rate=32 * 1024)
    config.source.write_text(config.source.read_text().replace(f"port = {broker.port}", f"port = {link.port}"))
    db = tmp_path / "dev-a" / "journal.db"
    backlog = Journal(db)
    with backlog.transaction():
        for n in range(BACKLOG):
            backlog.append("box_read", {"n": n, "note": "backlog before the link came back"}, task_id="T-0")
    backlog.close()
    script = str(Path(__file__).parent / "broker.py")
    rng = random.Random(8)
    kills = []  # (cursor, last seq) right after each kill
    acked = 0
    try:
        for run in range(30):
            agent = subprocess.Popen([sys.executable, script, str(config.source), str(db), "0.005"],
                                     env=env_with_repo(), stdout=subprocess.PIPE, text=True)
            try:
                assert agent.stdout.readline().strip() == "connected"
                # Killed only once this run has had something acknowledged: each kill cuts a drain
                # that is under way, whether the machine is quick or slow to get going.
                wait_until(lambda: journal_progress(db)[0] > acked, 120, f"run {run} to move the cursor")
                time.sleep(rng.random() * 0.5)  # at a random point of the batches in flight
            finally:
                agent.kill()
                agent.wait()
            kills.append(journal_progress(db))
            acked = kills[-1][0]
        print("(cursor, last seq) after each kill:", kills)
        # The cursor moved in every run, and every kill left most of the backlog unsent.
        assert [cursor for cursor, _ in kills] == sorted({cursor for cursor, _ in kills})
        assert len(kills) == 30 and kills[-1][0] < BACKLOG, kills
        link.rate = None  # the link comes back in full: the last agent drains everything
        last_agent = subprocess.Popen([sys.executable, script, str(config.source), str(db), "0"],
                                      env=env_with_repo())
        try:
            last = journal_progress(db)[1]
            assert last > BACKLOG  # the killed agents journaled while they drained
            assert hq.wait_for("dev-a", last, 300), (hq.log("dev-a").last_seq, last)
        finally:
            last_agent.kill()
            last_agent.wait()
    finally:
        link.close()
    assert_same_journal(hq, "dev-a", db)
    print(f"duplicates dropped at head office: {hq.log('dev-a').duplicates}")


def test_outage_appends_go_on_and_everything_drains_after(broker, hq, device):
    config, journal, _ = device
    sync = start_sync(device)
    wait_until(lambda: sync.status()["connected"], 10, "the first connection")
    broker.stop()
    wait_until(lambda: not sync.status()["connected"], 10, "the sync to notice the outage")

    for task in range(5):  # five handovers complete locally while head office is unreachable
        day = [journal.append("finger_attempt", {"ok": True}, task_id=f"T-{task}") for _ in range(40)]
        journal.append("handover_completed", {"boxes": 12}, task_id=f"T-{task}")
        assert day[-1].seq < journal.last_seq()
    status = sync.status()
    assert status["connected"] is False
    assert status["backlog"] == journal.last_seq()

    time.sleep(1.0)  # the outage lasts: reconnect attempts back off meanwhile
    broker.start()
    assert hq.wait_for("dev-a", journal.last_seq(), 30)
    assert_same_journal(hq, "dev-a", journal.path)
    wait_until(lambda: sync.status()["backlog"] == 0, 10, "the backlog to be acknowledged")
    sync.stop()


# -- downlink ------------------------------------------------------------------------------------


def _state(journal, store) -> tuple:
    conn = journal.db
    return (journal.last_seq(), store.task_count(), conn.execute("SELECT count(*) FROM stop_progress").fetchone()[0],
            conn.execute("SELECT count(*) FROM sync_downlinks").fetchone()[0])


def _task(task_id: str = "T-100", route=("vault-01", SITE)) -> dict:
    return {"task_id": task_id, "version": 1, "kind": "delivery",
            "window_start": "2026-11-23T09:00:00+08:00", "window_end": "2026-11-23T11:00:00+08:00",
            "route": list(route), "vehicle": {"vehicle_id": "V1", "plate": "沪A12345", "beacon": "AA:BB:CC:DD:EE:01"},
            "escorts": ["E1", "E2"], "boxes": [{"box_id": "B1", "tag": "04A1B2", "destination": SITE}],
            "confirmers": ["O1"]}


@pytest.mark.parametrize("case, raw, payload, expected", [
    ("malformed", b'{"v": 1, "msg_id": "m-1", "site_id": ', None, "not valid UTF-8 JSON"),
    ("oversized", b'{"pad": "' + b"x" * messages.MAX_DOWNLINK_BYTES + b'"}', None, "more than the 1048576 allowed"),
    ("wrong schema", None, {"site_id": SITE, "tasks": [{**_task(), "escorts": ["E1"]}]}, "tasks/0/escorts"),
    ("missing field", None, {"site_id": SITE}, "'tasks' is a required property"),
    ("wrong site", None, {"site_id": "branch-9999", "tasks": [_task()]}, "is not this site"),
    ("bad task", None, {"site_id": SITE, "tasks": [{**_task(), "window_end": "2026-11-23T08:00:00+08:00"}]},
     "window_end"),
])
def test_bad_downlinks_are_refused_with_a_reason_and_change_nothing(hq, device, case, raw, payload, expected):
    config, journal, store = device
    sync = start_sync(device)
    wait_until(lambda: hq.log("dev-a").state == "online", 10, "the device to come online")
    before = _state(journal, store)

    msg_id = hq.send("dev-a", "tasks", payload or {}, raw=raw)
    if raw is None:
        reply = hq.wait_reply(msg_id)
    else:
        reply = hq.wait_for_reply_where(lambda r: r["topic"].endswith("/down/tasks"))
    messages.check("reply", reply)
    assert reply["ok"] is False
    assert expected in reply["error"], reply["error"]
    assert reply["error"].startswith("tasks refused: ")
    assert _state(journal, store) == before
    sync.stop()


def test_unknown_downlink_topic_is_refused(hq, device):
    config, journal, store = device
    sync = start_sync(device)
    wait_until(lambda: hq.log("dev-a").state == "online", 10, "the device to come online")
    before = _state(journal, store)
    hq.send("dev-a", "reboot", {"site_id": SITE})
    reply = hq.wait_for_reply_where(lambda r: r["topic"].endswith("/down/reboot"))
    assert reply["ok"] is False and "unknown downlink topic" in reply["error"]
    assert _state(journal, store) == before
    sync.stop()


def test_accepted_downlinks_are_journaled_acknowledged_and_applied_once(hq, device):
    config, journal, store = device
    seen = []
    sync = start_sync(device, on_downlink=lambda kind, payload: seen.append((kind, payload["msg_id"])))
    wait_until(lambda: hq.log("dev-a").state == "online", 10, "the device to come online")

    tasks_id = hq.publish_tasks("dev-a", SITE, [_task("T-100"), _task("T-101")])
    reply = hq.wait_reply(tasks_id)
    assert reply["ok"] is True, reply
    assert store.task("T-101").vehicle.plate == "沪A12345"
    assert reply["result"]["stored"] == 2

    progress = {"site_id": SITE, "msg_id": "progress-1",
                "stops": [{"task_id": "T-100", "site_id": "vault-01", "at": "2026-11-23T09:05:00+08:00"}]}
    first = hq.wait_reply(hq.send("dev-a", "route_progress", progress))
    assert first["ok"] is True and "duplicate" not in first
    assert store.stops_done("T-100") == {"vault-01"}
    entry = next(e for e in journal.entries(after_seq=first["seq"] - 1, limit=1))
    assert entry.kind == "downlink_accepted" and entry.body["msg_id"] == "progress-1"

    hq.replies.clear()
    again = hq.wait_reply(hq.send("dev-a", "route_progress", progress))  # redelivered: same msg_id
    assert again["ok"] is True and again["duplicate"] is True and again["seq"] == first["seq"]
    assert sum(1 for e in journal.entries() if e.kind == "route_progress") == 1

    assert config.screen.language == "zh-CN"
    cfg = hq.wait_reply(hq.send("dev-a", "config", {"site_id": SITE, "settings": {"screen.language": "en"}}))
    assert cfg["ok"] is True and cfg["result"]["takes_effect"] == {"screen.language": "now"}
    assert sync.downlink.config.screen.language == "en"                   # the effect, not the acknowledgement
    assert load_config(config.source).screen.language == "en"             # and a restart keeps it
    assert [k for k, _ in seen] == ["tasks", "route_progress", "config"]
    assert hq.wait_for("dev-a", journal.last_seq(), 10)
    sync.stop()


def test_resend_command_sends_the_journal_again_from_a_sequence(hq, device):
    config, journal, _ = device
    sync = start_sync(device)
    for n in range(30):
        journal.append("box_read", {"n": n})
    assert hq.wait_for("dev-a", 30, 10)
    reply = hq.wait_reply(hq.send("dev-a", "command", {"site_id": SITE, "command": "resend_from", "seq": 11}))
    assert reply["ok"] is True
    wait_until(lambda: hq.log("dev-a").duplicates >= 20, 10, "entries 11..30 to come again")
    assert_same_journal(hq, "dev-a", journal.path)
    assert journal.get_cursor("hq") == journal.last_seq()
    sync.stop()


# -- ACL -----------------------------------------------------------------------------------------


def _raw_client(broker, identity: str, client_id: str | None = None) -> tuple[mqtt.Client, list]:
    cert, key = broker.pki.issue(identity)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or identity, protocol=mqtt.MQTTv5)
    client.tls_set(ca_certs=str(broker.pki.ca_file), certfile=str(cert), keyfile=str(key))
    events: list = []
    client.on_subscribe = lambda c, u, mid, codes, props: events.append(("suback", mid, codes))
    client.on_publish = lambda c, u, mid, code, props: events.append(("puback", mid, code))
    client.on_message = lambda c, u, msg: events.append(("message", msg.topic, msg.payload))
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 60
    client.connect("127.0.0.1", broker.port, clean_start=False, properties=props)
    client.loop_start()
    return client, events


def test_a_device_cannot_use_another_devices_topics(broker, hq, device):
    config, journal, _ = device
    sync = start_sync(device)
    wait_until(lambda: hq.log("dev-a").state == "online", 10, "device A to come online")
    intruder, events = _raw_client(broker, "dev-b")
    # A second head-office session that records every message on A's journal topic: what the
    # broker let through, whatever head office later drops as a duplicate (at-least-once).
    witness, seen = _raw_client(broker, HQ_IDENTITY, client_id="hq-witness")
    try:
        wait_until(witness.is_connected, 10, "the witness to connect")
        witness.subscribe("ht/v1/dev-a/journal", qos=1)
        wait_until(lambda: any(e[0] == "suback" for e in seen), 10, "the witness's SUBACK")
        wait_until(intruder.is_connected, 10, "device B to connect")
        intruder.subscribe("ht/v1/dev-b/down/#", qos=1)
        # mosquitto 2.0 may grant a SUBACK for a foreign filter; the ACL is enforced on delivery.
        intruder.subscribe("ht/v1/dev-a/down/#", qos=1)
        intruder.subscribe("ht/v1/dev-a/journal", qos=1)
        intruder.subscribe("ht/v1/+/urgent", qos=1)
        wait_until(lambda: len([e for e in events if e[0] == "suback"]) == 4, 10, "four SUBACKs")

        forged = {"v": 1, "device": "dev-a", "entries": [{
            "id": "dev-a:1", "seq": 1, "ts": "2026-11-22T08:00:00.000Z", "kind": "alarm", "task_id": None,
            "body": {"alarm": "forged"}, "prev_hash": "0" * 64, "hash": "f" * 64}]}
        intruder.publish("ht/v1/dev-a/journal", json.dumps(forged), qos=1)
        command = {"v": 1, "msg_id": "evil", "site_id": SITE, "command": "resend_from", "seq": 1}
        intruder.publish("ht/v1/dev-a/down/command", json.dumps(command), qos=1)
        wait_until(lambda: len([e for e in events if e[0] == "puback"]) == 2, 10, "both publishes answered")
        time.sleep(0.2)  # had the broker passed them on, they would arrive now, before the real traffic

        journal.append("alarm", {"alarm": "wrong_box"})  # real traffic on A's uplink topics
        assert hq.wait_for("dev-a", 1, 10)
        to_a = hq.wait_reply(hq.send("dev-a", "config", {"site_id": SITE, "settings": {"screen.language": "en"}}))
        assert to_a["ok"] is True  # and on A's downlink
        hq.send("dev-b", "config", {"site_id": "branch-b", "settings": {"k": 2}})
        wait_until(lambda: any(e[0] == "message" for e in events), 10, "B's own downlink to reach B")

        received = [e[1] for e in events if e[0] == "message"]
        assert received == ["ht/v1/dev-b/down/config"]  # nothing of A's, only B's own
        log = hq.log("dev-a")
        assert log.entries[0]["body"] == {"alarm": "wrong_box"} and log.chain_errors == []
        # The forged entry dev-a:1 never reached head office: every entry the broker passed on
        # A's journal topic is A's own (resends of it may come: delivery is at-least-once).
        wait_until(lambda: any(e[0] == "message" for e in seen), 10, "A's entry to reach the witness")
        witnessed = [entry for e in seen if e[0] == "message" for entry in json.loads(e[2])["entries"]]
        own = {(e.seq, e.hash) for e in journal.entries()}
        assert witnessed and {(e["seq"], e["hash"]) for e in witnessed} <= own
        assert all(e["body"] != {"alarm": "forged"} for e in witnessed)
        assert "evil" not in hq.replies  # the forged command never reached A
        assert all(e.body.get("msg_id") != "evil" for e in journal.entries())
    finally:
        for client in (intruder, witness):
            client.disconnect()
            client.loop_stop()
        sync.stop()


# -- handover-hq publish | watch | export ------------------------------------------------------------


def _cli(broker, *argv: str) -> int:
    import argparse

    from hq.sync import register
    parser = argparse.ArgumentParser(prog="handover-hq")
    register(parser.add_subparsers(dest="command", required=True))
    cert, key = broker.pki.issue(HQ_IDENTITY)
    conn = ["--host", "127.0.0.1", "--port", str(broker.port), "--ca", str(broker.pki.ca_file),
            "--cert", str(cert), "--key", str(key), "--client-id", "hq-cli"]
    args = parser.parse_args([argv[0], *conn, *argv[1:]] if argv[0] != "export" else list(argv))
    return args.func(args)


def test_companion_cli_publishes_watches_and_exports(broker, device, tmp_path, capsys):
    config, journal, store = device
    for n in range(25):
        journal.append("alarm" if n == 7 else "box_read", {"n": n}, task_id="T-1")
    sync = start_sync(device)
    tasks_file = tmp_path / "day.json"
    tasks_file.write_text(json.dumps({"tasks": [_task("T-200")]}, ensure_ascii=False), "utf-8")
    try:
        assert _cli(broker, "publish", "--device", "dev-a", "--site", SITE, "--tasks", str(tasks_file)) == 0
        assert store.task("T-200") is not None
        assert _cli(broker, "watch", "--archive", str(tmp_path / "archive"), "--duration", "4") == 0
    finally:
        sync.stop()
    shown = capsys.readouterr().out
    assert "dev-a accepted 1 task(s)" in shown
    assert "ALARM dev-a #8" in shown and "dev-a #25 " in shown

    out = tmp_path / "export.jsonl"
    assert _cli(broker, "export", "--archive", str(tmp_path / "archive"), "--out", str(out)) == 0
    exported = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert [(e["device"], e["seq"], e["hash"]) for e in exported] == [
        ("dev-a", e.seq, e.hash) for e in journal.entries()]

    archive = tmp_path / "archive" / "dev-a.jsonl"
    lines = archive.read_text("utf-8").splitlines()
    forged = json.loads(lines[3])
    forged["body"]["n"] = 999
    lines[3] = json.dumps(forged)
    archive.write_text("\n".join(lines) + "\n", "utf-8")
    assert _cli(broker, "export", "--archive", str(tmp_path / "archive"), "--out", str(out)) == 1
    assert "entry dev-a:4 does not match its hash" in capsys.readouterr().err
