"""Fuzz head office's `serve` reader (hq.serve.Server._on_message, then its writer) over a real SQLite
database: whatever bytes arrive on any uplink topic, it never raises, the reader goes on, and the database
holds only entries in sequence with the chain verified (what is refused changes nothing but the quarantine
list)."""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.client import MQTTMessage

from hq.db import Database
from hq.serve import Server, verify_device
from protocol.chain import GENESIS_HASH, entry_hash

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from broker import Pki  # noqa: E402

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LEAVES = ["journal", "urgent", "status", "health", "reply", "other"]

scalars = st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c,
                                                                                         max_size=4), max_leaves=20)


def chain(device: str, n: int, start: int = 1, prev: str = GENESIS_HASH) -> list[dict]:
    out = []
    for seq in range(start, start + n):
        ts, body = f"2026-06-01T08:00:{seq % 60:02d}.000Z", {"box": f"B{seq}"}
        h = entry_hash(seq, ts, "box_read", None, body, prev)
        out.append({"id": f"{device}:{seq}", "seq": seq, "ts": ts, "kind": "box_read", "task_id": None, "body": body,
                    "prev_hash": prev, "hash": h})
        prev = h
    return out


class Office:
    """A Server over a fresh SQLite file; its MQTT clients are real but never connected (acks go nowhere)."""

    def __init__(self):
        folder = Path(tempfile.mkdtemp(prefix="fuzz-serve-"))
        pki = Pki(folder / "pki")
        cert, key = pki.issue("hq")
        self.server = Server(str(folder / "hq.db"), "127.0.0.1", 1, ca_file=pki.ca_file, cert_file=cert,
                             key_file=key)
        self.db = Database(folder / "hq.db")
        self.good = chain("dev-g", 400)
        self.sent = 0

    def receive(self, device: str, leaf: str, payload: bytes) -> None:
        message = MQTTMessage(topic=f"ht/v1/{device}/{leaf}".encode())
        message.payload = payload
        client = self.server.live if leaf == "urgent" else self.server.stream
        self.server._on_message(client, client.user_data_get(), message)      # must not raise
        self.server.write_queued(self.db)      # what the writer thread does: apply and commit the queued batch
        self.server.write_urgent(self.db)      # and the urgent writer, the urgent copy

    def next_good_batch(self) -> None:
        batch = self.good[self.sent:self.sent + 2]
        self.sent += len(batch)
        self.receive("dev-g", "journal", json.dumps({"v": 1, "device": "dev-g", "entries": batch}).encode())


OFFICE: Office | None = None


def entry_like(value) -> dict:
    """An entry-shaped object whose fields may be anything."""
    base = chain("dev-f", 1)[0]
    if isinstance(value, dict):
        base.update(value)
    return base


@FUZZ
@given(st.sampled_from(LEAVES),
       st.binary(max_size=300)
       | json_values.map(lambda v: json.dumps({"v": 1, "device": "dev-f", "entries": [v]}).encode())
       | json_values.map(lambda v: json.dumps({"v": 1, "device": "dev-f", "entries": [entry_like(v)]}).encode())
       | json_values.map(lambda v: json.dumps({"v": 1, "device": "dev-f", "entry": entry_like(v)}).encode()),
       st.integers(0, 3000))
def test_serve_reader_survives_anything_and_applies_only_verified_entries(leaf, payload, depth):
    global OFFICE
    OFFICE = OFFICE or Office()
    OFFICE.receive("dev-f", leaf, payload)
    OFFICE.receive("dev-f", leaf, b"[" * depth + payload)
    OFFICE.next_good_batch()                   # the reader keeps going for every other device
    assert OFFICE.db.device("dev-g")["last_seq"] == OFFICE.sent
    for device in OFFICE.db.devices():
        assert verify_device(OFFICE.db, device)[1] is None
