"""Fuzzing every parser the poison-input work touched (issue 19): whatever the input, the only outcome
is the documented one — a value, or the parser's own refusal naming what is wrong. Short runs here;
`tools/fuzz_long.py` runs the same oracles over >= 1,000,000 inputs each (docs/bundles.md).

Oracles (each raises AssertionError on an unexpected outcome, and lets any other exception escape):
  header    protocol.bundle.peek_header       -> BundleHeader | BundleRefused
  streamed  protocol.bundle.open_streamed + records() -> records | BundleRefused
  safejson  protocol.safejson.loads           -> value no deeper than the cap | JsonRefused
  downlink  agent.sync.downlink.Downlink     -> a reply that follows reply.json, for any topic and bytes
  settings  agent.config.check_remote        -> checked settings | ConfigError
  model     flows.model Task/Person.from_dict -> the model | ValueError
  uplink    hq.sync.HeadOffice._on_message -> never raises, the reader keeps going
"""
from __future__ import annotations

import json
import struct
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.client import MQTTMessage

from agent.config import ConfigError, check_remote, load_config
from agent.journal import Journal
from agent.sealing import Sealer
from agent.store import Store
from protocol import messages
from agent.sync.downlink import Downlink
from flows.model import Person, Task
from protocol import safejson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.bundle import BundleHeader, BundleRefused, open_streamed, pack_streamed, peek_header
from protocol.keys import DeviceKeys
from hq.sync import HeadOffice

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from broker import Pki  # noqa: E402

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
NOW = datetime(2026, 11, 22, 8, 0, tzinfo=timezone.utc)
SITE = "branch-01"


# --- oracles ------------------------------------------------------------------------------------

def header_oracle(data: bytes) -> None:
    try:
        assert isinstance(peek_header(data), BundleHeader)
    except BundleRefused as r:
        assert r.code in ("bad_magic", "malformed", "truncated", "oversized") and r.message


STREAM_DIR = Path(tempfile.mkdtemp(prefix="fuzz-streamed-"))
STREAM_KEYS = DeviceKeys.load_or_create(STREAM_DIR / "keys", "dev-1")
STREAM_SIGNER = Ed25519PrivateKey.generate()


def streamed_oracle(data: bytes) -> None:
    """A format-2 file: opened and read to the end, or refused with a code; never anything else."""
    path = STREAM_DIR / "b.htb"
    path.write_bytes(data)
    try:
        for _ in open_streamed(path, STREAM_KEYS, [STREAM_SIGNER.public_key()], NOW, 0).records():
            pass
    except BundleRefused as r:
        assert r.code and r.message


def safejson_oracle(data: bytes, max_depth: int = 16) -> None:
    try:
        value = safejson.loads(data, max_depth=max_depth, max_bytes=1 << 20)
    except safejson.JsonRefused as r:
        assert str(r)
        return
    assert safejson.nesting(value) <= max_depth
    json.dumps(value, ensure_ascii=False).encode("utf-8")    # storable: no unpaired surrogate got through


def settings_oracle(value) -> None:
    try:
        checked = check_remote(value)
    except ConfigError as e:
        assert str(e)
        return
    assert set(checked) <= set(value)


def model_oracle(value) -> None:
    for cls in (Task, Person):
        try:
            cls.from_dict(value)
        except ValueError as e:
            assert str(e)


class Device:
    """A real journal and store in a temporary folder, and the downlink handler over them."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="fuzz-downlink-"))
        (self.dir / "agent.toml").write_text(f'[site]\nid = "{SITE}"\n[paths]\nstate_dir = "{self.dir}"\n')
        self.journal = Journal(self.dir / "journal.db")
        self.store = Store(self.journal.db, Sealer(self.dir / "device.key"), self.dir / "photos")
        self.downlink = Downlink(self.journal, self.store, device="dev-f", site_id=SITE, on_command=lambda p: None,
                                 config=load_config(self.dir / "agent.toml"))

    def handle(self, kind: str, raw: bytes) -> None:
        reply = self.downlink.handle(f"ht/v1/dev-f/down/{kind}", kind, raw)
        messages.check("reply", reply)
        assert reply["ok"] or reply["error"]


class Office:
    def __init__(self):
        pki = Pki(Path(tempfile.mkdtemp(prefix="fuzz-hq-")))
        cert, key = pki.issue("hq")
        self.hq = HeadOffice("127.0.0.1", 1, ca_file=pki.ca_file, cert_file=cert, key_file=key)

    def receive(self, leaf: str, payload: bytes) -> None:
        message = MQTTMessage(topic=f"ht/v1/dev-f/{leaf}".encode())
        message.payload = payload
        self.hq._on_message(None, None, message)        # must not raise, whatever arrives


# --- inputs -------------------------------------------------------------------------------------

scalars = st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c,
                                                                                         max_size=4), max_leaves=20)


def task(**over) -> dict:
    return {"task_id": "T1", "version": 1, "kind": "delivery", "window_start": "2026-11-22T09:00:00+08:00",
            "window_end": "2026-11-22T11:00:00+08:00", "route": [SITE],
            "vehicle": {"vehicle_id": "V1", "plate": "P", "beacon": "AA"}, "escorts": ["E1", "E2"],
            "boxes": [{"box_id": "B1", "tag": "04A1", "destination": SITE}], "confirmers": ["O1"], **over}


SEEDS = {
    "tasks": {"v": 1, "msg_id": "m", "site_id": SITE, "tasks": [task()]},
    "personnel": {"v": 1, "msg_id": "m", "site_id": SITE,
                  "people": [{"person_id": "E1", "name": "N", "role": "escort"}]},
    "config": {"v": 1, "msg_id": "m", "site_id": SITE, "settings": {"site.min_escorts": 3}},
    "route_progress": {"v": 1, "msg_id": "m", "site_id": SITE,
                       "stops": [{"task_id": "T1", "site_id": SITE, "at": "2026-11-22T09:00:00+08:00"}]},
    "command": {"v": 1, "msg_id": "m", "site_id": SITE, "command": "publish_health"},
    "complaint": {"v": 1, "msg_id": "m", "site_id": SITE, "ref": "x", "action": "classify", "params": {}},
}
TASK_FIELDS = sorted(task())


def header_bytes(fields: dict) -> bytes:
    raw = json.dumps(fields).encode()
    return b"HTB1" + struct.pack(">H", len(raw)) + raw


# --- the short runs -----------------------------------------------------------------------------

@FUZZ
@given(st.binary(max_size=600))
def test_header_random_bytes(data):
    header_oracle(data)
    header_oracle(b"HTB1" + data)


@FUZZ
@given(st.dictionaries(st.sampled_from(["format", "kind", "device", "created", "expires", "seq", "signer",
                                        "payload_size", "compression", "content"]), json_values, max_size=10),
       st.integers(0, 6000))
def test_header_any_fields_and_any_depth(fields, depth):
    header_oracle(header_bytes(fields))
    header_oracle(b"HTB1" + struct.pack(">H", min(depth, 16384)) + b"[" * depth)


def valid_streamed() -> bytes:
    jsonl = STREAM_DIR / "p.jsonl"
    jsonl.write_text(json.dumps({"task": task()}) + "\n")
    out = STREAM_DIR / "valid.htb"
    pack_streamed("tasks", jsonl, out, "dev-1", STREAM_KEYS.bundle_public, STREAM_SIGNER, 1,
                  NOW + timedelta(days=1), NOW)
    return out.read_bytes()


VALID_STREAMED = valid_streamed()


@FUZZ
@given(st.binary(max_size=300), st.lists(st.tuples(st.integers(0, len(VALID_STREAMED) - 1), st.integers(0, 255)),
                                         max_size=6), st.integers(0, len(VALID_STREAMED)))
def test_streamed_bundles(data, flips, cut):
    streamed_oracle(b"HTB2" + data)
    mutated = bytearray(VALID_STREAMED)
    for at, value in flips:
        mutated[at] = value
    streamed_oracle(bytes(mutated[:cut]))


# text around the surrogate block, lone and paired (hypothesis' own text leaves surrogates out)
any_text = st.text(st.characters(max_codepoint=0x7f) | st.characters(min_codepoint=0xd7f0, max_codepoint=0xe010),
                   max_size=8)
surrogate_values = st.recursive(any_text | st.integers(), lambda c: st.lists(c, max_size=3)
                                | st.dictionaries(any_text, c, max_size=3), max_leaves=8)


@FUZZ
@given(st.binary(max_size=400) | json_values.map(lambda v: json.dumps(v).encode())
       | surrogate_values.map(lambda v: json.dumps(v).encode()), st.integers(0, 3000))
def test_safejson(data, depth):
    safejson_oracle(data)
    safejson_oracle(b"[" * depth + data + b"]" * depth)
    safejson_oracle(b'{"a":' * depth + data)


@FUZZ
@given(st.dictionaries(st.sampled_from(["site.min_escorts", "site.name", "screen.language", "screen.port",
                                        "screen.idle_timeout_seconds", "mqtt.host", "x"]) | st.text(max_size=12),
                       json_values, max_size=5) | json_values)
def test_settings(value):
    settings_oracle(value)


@FUZZ
@given(st.sampled_from(TASK_FIELDS + ["person_id", "name", "role", "valid_from", "company"]), json_values)
def test_models_with_any_field_value(field, value):
    model_oracle({**task(), field: value})
    model_oracle({"person_id": "E1", "name": "N", "role": "escort", field: value})
    model_oracle(value)


DEVICE = None


def device() -> Device:
    global DEVICE
    DEVICE = DEVICE or Device()
    return DEVICE


@FUZZ
@given(st.sampled_from(sorted(SEEDS) + ["nonsense"]), st.binary(max_size=300))
def test_downlink_random_bytes(kind, raw):
    device().handle(kind, raw)


@FUZZ
@given(st.sampled_from(sorted(SEEDS)), st.lists(st.tuples(st.text(max_size=12), json_values), max_size=3),
       st.text(min_size=1, max_size=8))
def test_downlink_structured(kind, changes, msg_id):
    payload = json.loads(json.dumps(SEEDS[kind]))
    payload["msg_id"] = msg_id
    target = payload
    for key, value in changes:
        if kind == "tasks" and key[:1] == "t":
            payload["tasks"][0][TASK_FIELDS[len(key) % len(TASK_FIELDS)]] = value
        else:
            target[key] = value
    device().handle(kind, json.dumps(payload).encode())


@pytest.mark.parametrize("where, edit", [
    ("tasks/0/vehicle/plate", lambda p: p["tasks"][0]["vehicle"].update(plate="沪A\ud800")),
    ("tasks/0/escorts/1", lambda p: p["tasks"][0]["escorts"].__setitem__(1, "E\udfff")),
    ("a field name in tasks/0", lambda p: p["tasks"][0].update({"\udc00x": 1})),
])
def test_a_downlink_with_an_unpaired_surrogate_is_refused_naming_the_field(where, edit):
    """Found: the refusal was the codec's "'utf-8' codec can't encode character" from deep in the import."""
    d = Device()
    payload = json.loads(json.dumps(SEEDS["tasks"]))
    edit(payload)
    raw = json.dumps(payload).encode()                   # ASCII escapes: what a sender's JSON writer emits
    reply = d.downlink.handle("ht/v1/dev-f/down/tasks", "tasks", raw)
    messages.check("reply", reply)
    assert not reply["ok"] and f"{where} holds an unpaired surrogate" in reply["error"]
    assert "codec" not in reply["error"]
    assert list(d.journal.entries()) == [] and d.store.task("T1") is None, "nothing changed"
    ok = d.downlink.handle("ht/v1/dev-f/down/tasks", "tasks", json.dumps(SEEDS["tasks"]).encode())
    assert ok["ok"] and d.store.task("T1") is not None


OFFICE = None


@FUZZ
@given(st.sampled_from(["journal", "urgent", "status", "health", "reply", "other"]),
       st.binary(max_size=300) | json_values.map(lambda v: json.dumps({"v": 1, "device": "dev-f", "entries": [v]}).encode()),
       st.integers(0, 5000))
def test_head_office_reader(leaf, payload, depth):
    global OFFICE
    OFFICE = OFFICE or Office()
    OFFICE.receive(leaf, payload)
    OFFICE.receive(leaf, b"[" * depth + payload)
    assert OFFICE.hq.log("dev-f") is not None
