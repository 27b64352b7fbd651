"""Fuzzing the bundle parser: whatever the bytes, the only error is the documented refusal."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.bundle import REFUSAL_CODES, BundleRefused, open_bundle, pack_bundle
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
