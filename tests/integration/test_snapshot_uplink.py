"""Face snapshots up to head office (issue 16), on a real TLS mosquitto with the device ACL: the running
agent seals each door attempt's face to head office's records key and keeps it in a durable outbox; head
office (`serve`'s Server with --records-key) checks the hash, keeps it sealed and answers; only then does the
terminal let it go. The snapshot taken while the broker was down gets there after the broker and the
terminal restart; the terminal never holds the private key; a forged blob is refused and not stored."""
from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from broker import mqtt_config
from mqtt_fixtures import broker, hq_cert, wait_until  # noqa: F401 (fixtures)
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.sample import TRUCKS, placeholder_photo
from hq import records
from hq.db import Database
from hq.serve import Server
from protocol import messages, snapshot
from protocol.keys import public_pem
from protocol.sealed import seal

pytestmark = pytest.mark.mqtt
DEVICE, SITE = "dev-snap-1", "BR-060"


def slot_of(view: dict, person_id: str) -> int:
    return next(p["slot"] for p in view["sim"]["people"] if p["person_id"] == person_id)


def journal_rows(state: Path, sql: str, params=()) -> list[tuple]:
    conn = sqlite3.connect(f"{(state / 'journal.db').resolve().as_uri()}?mode=ro", uri=True)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def attempt_faces(state: Path) -> list[str]:
    rows = journal_rows(state, "SELECT body FROM journal WHERE kind = 'finger_attempt' ORDER BY seq")
    return [json.loads(b)["event"]["snapshot"] for (b,) in rows if json.loads(b)["event"].get("snapshot")]


@pytest.fixture
def records_key(tmp_path):
    records.create_key(tmp_path / "hq-keys")
    return records.load_key(tmp_path / "hq-keys" / records.PRIVATE_FILE)


@pytest.fixture
def head_office(broker, hq_cert, records_key, tmp_path):
    cert, key = hq_cert
    server = Server(str(tmp_path / "hq.db"), "127.0.0.1", broker.port, ca_file=broker.pki.ca_file, cert_file=cert,
                    key_file=key, client_id="hq", records_key=records_key).start()
    yield server
    server.stop()


def held(db_path: Path) -> dict[str, str]:
    db = Database(db_path)
    try:
        return dict(db.run(lambda cur: cur.all("SELECT hash, sealed FROM hq_records_snapshots WHERE device = ?",
                                               (DEVICE,))))
    finally:
        db.close()


def health(db_path: Path) -> dict:
    db = Database(db_path)
    try:
        row = db.run(lambda cur: cur.one("SELECT health FROM devices WHERE device = ?", (DEVICE,)))
    finally:
        db.close()
    return json.loads(row[0])["drivers"] if row and row[0] else {}


def test_a_face_taken_during_an_outage_reaches_head_office_after_broker_and_terminal_restart(
        agent, broker, head_office, records_key, tmp_path):
    mqtt_config(broker, DEVICE, SITE, agent.state_dir)
    (agent.state_dir / "keys").mkdir(parents=True, exist_ok=True)
    (agent.state_dir / "keys" / "hq_records.pem").write_bytes(public_pem(records_key.public_key()))
    broker.stop()                                           # the link is down before the attempt
    agent.start("--config", str(agent.state_dir / "agent.toml"))
    v = agent.view()
    agent.post("api/sim/beacon", {"beacon": TRUCKS[0].beacon})
    agent.wait_for(lambda v: v["handover"] and v["handover"]["step"] == "escort_verification")
    agent.post("api/sim/finger", {"station": "door", "slot": slot_of(v, "E01")})
    agent.wait_for(lambda v: any(e["person_id"] == "E01" and e["verified"] for e in v["handover"]["escorts"]))
    faces = attempt_faces(agent.state_dir)
    assert len(faces) == 1
    face = faces[0]
    waiting = journal_rows(agent.state_dir, "SELECT hash FROM snapshot_outbox")
    assert waiting == [(face,)], "the face waits in the durable outbox while head office is unreachable"

    assert agent.stop() == 0                                # the terminal restarts during the outage
    broker.start()
    agent.start("--config", str(agent.state_dir / "agent.toml"))
    wait_until(lambda: face in held(tmp_path / "hq.db"), 60, "the face at head office")
    wait_until(lambda: not journal_rows(agent.state_dir, "SELECT hash FROM snapshot_outbox"), 30,
               "the terminal's outbox to let the face go once head office has it")
    wait_until(lambda: health(tmp_path / "hq.db").get("snapshot_sealing", {}).get("state") == "connected", 30,
               "the terminal's health to say its faces can reach head office")

    # head office opens it to the very photo the journal entry names, and the terminal's copy is the same
    db = Database(tmp_path / "hq.db")
    try:
        jpeg = records.snapshot(db, records_key, DEVICE, face)
    finally:
        db.close()
    assert hashlib.sha256(jpeg).hexdigest() == face and jpeg.startswith(b"\xff\xd8")
    assert head_office.counters.snapshots >= 1

    # nothing of the terminal holds head office's private key: not its database, not its key folder
    secret = records_key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                       serialization.NoEncryption())
    pem = records_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    agent.stop()
    for path in agent.state_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert secret not in data and pem not in data, f"{path} holds head office's records private key"


def test_a_forged_snapshot_is_refused_and_nothing_is_stored(broker, head_office, records_key, capfd):
    """A device's certificate sends a blob that opens but is not the photo its hash names, and one sealed to
    another key: both refused with a line naming the check, nothing stored, no answer sent."""
    cert, key = broker.pki.issue(DEVICE)
    answers = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=DEVICE, protocol=mqtt.MQTTv5)
    client.tls_set(ca_certs=str(broker.pki.ca_file), certfile=str(cert), keyfile=str(key))
    client.on_message = lambda c, u, m: answers.append(m.payload)
    client.connect("127.0.0.1", broker.port)
    client.subscribe(messages.Topics("ht/v1", DEVICE).down(snapshot.STORED), qos=1)
    client.loop_start()
    try:
        jpeg = placeholder_photo("E01", (120, 80, 90))
        digest, sealed = snapshot.seal_snapshot(records_key.public_key(), DEVICE, jpeg)
        # a photo sealed (to the right key) under the hash of another photo: it opens, and does not match
        other = hashlib.sha256(b"another face").hexdigest()
        swapped = base64.b64encode(b"\x01" + seal(records_key.public_key(), jpeg, snapshot._info(DEVICE, other)))
        forged = snapshot.uplink(records_key.public_key(), DEVICE, other, swapped.decode())
        stranger = X25519PrivateKey.generate().public_key()
        d2, s2 = snapshot.seal_snapshot(stranger, DEVICE, jpeg + b"x")
        topic = messages.Topics("ht/v1", DEVICE).up(snapshot.UPLINK)
        client.publish(topic, forged, qos=1).wait_for_publish(10)
        client.publish(topic, snapshot.uplink(stranger, DEVICE, d2, s2), qos=1).wait_for_publish(10)
        client.publish(topic, snapshot.uplink(records_key.public_key(), DEVICE, digest, sealed), qos=1
                       ).wait_for_publish(10)                  # the genuine one, after them: its answer comes
        wait_until(lambda: answers, 30, "head office's answer to the genuine snapshot")
        time.sleep(0.5)
    finally:
        client.loop_stop()
        client.disconnect()
    assert [json.loads(a)["hashes"] for a in answers] == [[digest]], "only the genuine snapshot is answered"
    db = Database(head_office._db_url)
    try:
        kept = db.run(lambda cur: cur.all("SELECT hash FROM hq_records_snapshots"))
    finally:
        db.close()
    assert kept == [(digest,)]
    err = capfd.readouterr().err
    assert f"refused a snapshot of {DEVICE}" in err
    assert "does not match its hash" in err and "does not open with the records key" in err
