"""Fuzzing the bundle parser: whatever the bytes, the only error is the documented refusal."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.bundle import REFUSAL_CODES, BundleRefused, loads_keeping_texts, open_bundle, pack_bundle
from test_bundle import Device, forge, header

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=timezone.utc)
HQ = Ed25519PrivateKey.generate()
DEVICE = Device("dev-1", X25519PrivateKey.generate())
VALID = pack_bundle("tasks", {"tasks": [{"task_id": "T1"}]}, "dev-1", DEVICE.bundle_key.public_key(), HQ, 5,
                    NOW + timedelta(days=1), NOW)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def opens_or_refuses(data: bytes) -> None:
    try:
        open_bundle(data, DEVICE, [HQ.public_key()], NOW, 4)
    except BundleRefused as r:
        assert r.code in REFUSAL_CODES and r.message


@FUZZ
@given(st.binary(max_size=2048))
def test_random_bytes(data):
    opens_or_refuses(data)


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes_after_the_magic(data):
    opens_or_refuses(b"HTB1" + data)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), min_size=1, max_size=8),
       st.integers(0, len(VALID)), st.binary(max_size=16))
def test_mutated_valid_bundles(flips, cut, inserted):
    data = bytearray(VALID)
    for at, value in flips:
        data[at] = value
    mutated = bytes(data[:cut]) + inserted + bytes(data[cut:])
    opens_or_refuses(mutated)


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(), c, max_size=3),
                           max_leaves=8)


@FUZZ
@given(st.dictionaries(st.sampled_from(sorted(header(HQ))), json_values, max_size=4), st.binary(max_size=200))
def test_signed_headers_with_any_values(overrides, body):
    # Signed by the trusted key, so every check after the signature sees arbitrary values.
    opens_or_refuses(forge(HQ, DEVICE.bundle_key.public_key(), {**header(HQ), **overrides}, body))


@FUZZ
@given(st.binary(max_size=400))
def test_signed_bundles_with_any_content(body):
    h = header(HQ, payload_size=len(body), content="json")
    opens_or_refuses(forge(HQ, DEVICE.bundle_key.public_key(), h, body))
    opens_or_refuses(forge(HQ, DEVICE.bundle_key.public_key(), {**h, "compression": "zlib"}, body))


# --- the tasks payload read with each task's JSON text kept (loads_keeping_texts): json.loads is the oracle

surrogates = st.text(st.characters(max_codepoint=0x7f) | st.characters(min_codepoint=0xd7f0, max_codepoint=0xe010),
                     max_size=4)
payloads = st.dictionaries(st.sampled_from(["tasks", "sites", "route_progress"]) | st.text(max_size=3),
                           json_values | st.lists(json_values | surrogates, max_size=4), max_size=4)
layouts = st.sampled_from([{"separators": (",", ":")}, {}, {"indent": 1}, {"indent": "\t\r"}, {"ensure_ascii": False}])


def reads_as_json_loads(raw: bytes) -> None:
    try:
        expected = json.loads(raw)
    except (ValueError, RecursionError) as e:
        with pytest.raises(type(e)):
            loads_keeping_texts(raw, "tasks")
        return
    body, texts = loads_keeping_texts(raw, "tasks")
    assert repr(body) == repr(expected)
    if texts is not None:
        assert repr([json.loads(t) for t in texts]) == repr(expected["tasks"])


@FUZZ
@given(payloads, layouts, st.sampled_from(["utf-8", "utf-16", "utf-8-sig"]),
       st.lists(st.tuples(st.integers(0, 400), st.sampled_from(list(b' ,:[]{}"\\x1\t\n'))), max_size=3))
def test_a_payload_read_with_its_items_texts_is_what_json_loads_reads(payload, layout, encoding, edits):
    text = json.dumps(payload, **layout)
    raw = text.encode(encoding, "surrogatepass")
    reads_as_json_loads(raw)
    body, texts = loads_keeping_texts(raw, "tasks")
    if isinstance(payload.get("tasks"), list) and "\\u" not in text and "\\\\" not in text:
        assert texts is not None and len(texts) == len(payload["tasks"])     # the walk itself read it
    mutated = bytearray(raw)
    for at, byte in edits:
        mutated[at % (len(mutated) + 1):at % (len(mutated) + 1)] = bytes([byte])
    reads_as_json_loads(bytes(mutated))


@FUZZ
@given(st.binary(max_size=300) | payloads.map(lambda p: json.dumps(p).encode()))
def test_signed_bundles_opened_keeping_texts(body):
    h = header(HQ, payload_size=len(body), content="json")
    try:
        bundle = open_bundle(forge(HQ, DEVICE.bundle_key.public_key(), h, body), DEVICE, [HQ.public_key()], NOW, 4,
                             item_texts="tasks")
    except BundleRefused as r:
        assert r.code in REFUSAL_CODES and r.message
        return
    assert repr(bundle.payload) == repr(json.loads(body))


def test_a_name_given_twice_keeps_the_texts_of_the_value_json_loads_keeps():
    assert loads_keeping_texts(b'{"tasks": [1, {"a": 2}], "tasks": 5}', "tasks") == ({"tasks": 5}, None)
    assert loads_keeping_texts(b'{"tasks": 5, "tasks": [ [], "x" ]}', "tasks") == ({"tasks": [[], "x"]}, ['[]', '"x"'])
    assert loads_keeping_texts(b'{"tasks": ["\\ud800"]}', "tasks") == ({"tasks": ["\ud800"]}, None)
