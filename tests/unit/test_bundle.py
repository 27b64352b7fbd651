"""The bundle format: what a device accepts, and every refusal with the check it names (SPEC §5)."""
from __future__ import annotations

import json
import os
import struct
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from protocol import bundle as B
from protocol.bundle import BundleRefused, open_bundle, pack_bundle

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=timezone.utc)
LATER = NOW + timedelta(days=2)
MESSAGES = json.loads((Path(__file__).parents[2] / "offline" / "messages.json").read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Device:
    device_id: str
    bundle_key: X25519PrivateKey


@pytest.fixture(scope="module")
def hq():
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def device():
    return Device("dev-1", X25519PrivateKey.generate())


def pack(hq, device, kind="tasks", payload=None, seq=5, **kw):
    payload = {"tasks": [{"task_id": "T1"}]} if payload is None else payload
    return pack_bundle(kind, payload, device.device_id, device.bundle_key.public_key(), hq, seq,
                       kw.pop("expires", NOW + timedelta(days=1)), kw.pop("now", NOW), **kw)


def forge(signer, device_pub, header: dict, body: bytes) -> bytes:
    """Build a bundle from docs/bundles.md with raw primitives (as another tool would), any header."""
    hb = json.dumps(header, separators=(",", ":")).encode()
    suite = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
    ct = suite.encrypt(body, device_pub, info=b"HTB1 bundle\x00" + hb)
    signed = b"HTB1" + struct.pack(">H", len(hb)) + hb + struct.pack(">Q", len(ct)) + ct
    return signed + signer.sign(signed)


def header(hq, **over) -> dict:
    h = {"format": 1, "kind": "tasks", "device": "dev-1", "created": "2026-11-22T08:00:00Z",
         "expires": "2026-11-23T08:00:00Z", "seq": 5, "signer": B.key_id(hq.public_key()),
         "payload_size": 2, "compression": "none", "content": "json"}
    return {**h, **over}


def refused(data, hq, device, *, last_seq=4, now=NOW, signers=None, kind=None) -> BundleRefused:
    with pytest.raises(BundleRefused) as exc:
        open_bundle(data, device, signers if signers is not None else [hq.public_key()], now, last_seq, kind=kind)
    assert exc.value.code in B.REFUSAL_CODES
    assert exc.value.message and f"bundle.refused.{exc.value.code}" in MESSAGES["zh-CN"]
    return exc.value


@pytest.mark.parametrize("kind,payload", [
    ("tasks", {"tasks": [{"task_id": "T1", "version": 3}]}),
    ("personnel", {"people": [{"person_id": "E1", "name": "张三", "photo_data": "AAEC"}], "remove": ["E9"]}),
    ("provisioning", {"device_id": "dev-1", "site": {"id": "branch-07", "type": "branch"}}),
])
def test_every_kind_round_trips(hq, device, kind, payload):
    b = open_bundle(pack(hq, device, kind, payload), device, [hq.public_key()], NOW, 4)
    assert b.payload == payload
    assert (b.header.kind, b.header.device, b.header.seq) == (kind, "dev-1", 5)
    assert b.header.expires == NOW + timedelta(days=1)


def test_raw_bytes_payload_round_trips_uncompressed(hq, device):
    data = os.urandom(5000)
    b = open_bundle(pack(hq, device, payload=data), device, [hq.public_key()], NOW, 0)
    assert b.payload == data and b.header.content == "bytes" and b.header.compression == "none"


def test_layout_is_the_documented_one(hq, device):
    data = pack(hq, device)
    assert data[:4] == b"HTB1"
    (hlen,) = struct.unpack(">H", data[4:6])
    head = json.loads(data[6:6 + hlen])
    assert list(head)[0] == "format" and head["format"] == 1
    (clen,) = struct.unpack(">Q", data[6 + hlen:14 + hlen])
    assert len(data) == 14 + hlen + clen + 64
    hq.public_key().verify(data[-64:], data[:-64])  # the signature covers every byte before it


def test_a_bundle_built_by_another_tool_from_the_docs_opens(hq, device):
    ok = forge(hq, device.bundle_key.public_key(), header(hq, payload_size=12), b'{"tasks":[]}')
    assert open_bundle(ok, device, [hq.public_key()], NOW, 4).payload == {"tasks": []}


def test_the_ciphertext_does_not_contain_the_payload(hq, device):
    data = pack(hq, device, payload={"tasks": [{"name": "secret-name-zzz"}]}, compress=False)
    assert b"secret-name-zzz" not in data


def test_changed_ciphertext_fails_the_signature(hq, device):
    data = bytearray(pack(hq, device))
    data[-100] ^= 1
    assert refused(bytes(data), hq, device).code == "bad_signature"


def test_changed_header_fails_the_signature(hq, device):
    data = pack(hq, device, seq=5)
    tampered = data.replace(b'"seq":5', b'"seq":9')
    assert tampered != data
    assert refused(tampered, hq, device).code == "bad_signature"


def test_signed_by_an_untrusted_key(hq, device):
    other = Ed25519PrivateKey.generate()
    r = refused(pack(other, device), hq, device)
    assert r.code == "unknown_signer" and B.key_id(other.public_key()) in r.message


def test_a_rotated_signer_set_accepts_any_trusted_key(hq, device):
    new = Ed25519PrivateKey.generate()
    assert open_bundle(pack(new, device), device, [hq.public_key(), new.public_key()], NOW, 0).header.seq == 5


def test_expired(hq, device):
    r = refused(pack(hq, device), hq, device, now=NOW + timedelta(days=1))
    assert r.code == "expired" and "2026-11-23T08:00:00Z" in r.message


def test_not_yet_valid_when_the_device_clock_is_far_behind(hq, device):
    assert refused(pack(hq, device), hq, device, now=NOW - timedelta(hours=1)).code == "not_yet_valid"
    open_bundle(pack(hq, device), device, [hq.public_key()], NOW - timedelta(minutes=4), 0)  # small skew is fine


def test_replayed_and_rolled_back(hq, device):
    assert refused(pack(hq, device, seq=5), hq, device, last_seq=5).code == "replayed"
    r = refused(pack(hq, device, seq=3), hq, device, last_seq=5)
    assert r.code == "rolled_back" and "(5)" in r.message


def test_wrong_device(hq, device):
    other = Device("dev-2", X25519PrivateKey.generate())
    r = refused(pack(hq, other), hq, device)
    assert r.code == "wrong_device" and "dev-2" in r.message


def test_wrong_kind_when_a_kind_is_required(hq, device):
    assert refused(pack(hq, device, "personnel", {"people": []}), hq, device, kind="tasks").code == "wrong_kind"


def test_encrypted_to_another_key_is_tampered(hq, device):
    data = forge(hq, X25519PrivateKey.generate().public_key(), header(hq), b"{}")
    assert refused(data, hq, device).code == "tampered"


@pytest.mark.parametrize("cut", [1, 3, 5, 10, 40, 200])
def test_truncated_anywhere(hq, device, cut):
    data = pack(hq, device)
    assert refused(data[:cut] if cut < 10 else data[:-cut], hq, device).code == "truncated"


def test_trailing_bytes_are_refused(hq, device):
    assert refused(pack(hq, device) + b"\0", hq, device).code == "malformed"


def test_random_bytes_and_empty_file(hq, device):
    assert refused(os.urandom(4096), hq, device).code == "bad_magic"
    assert refused(b"", hq, device).code == "bad_magic"
    assert refused(b"PK\x03\x04" + os.urandom(100), hq, device).code == "bad_magic"  # a zip is not a bundle


def test_unsupported_version(hq, device):
    data = b"HTB2" + pack(hq, device)[4:]
    r = refused(data, hq, device)
    assert r.code == "unsupported_version" and "format 1" in r.message


def test_oversized_file_is_refused_before_parsing(hq, device):
    data = b"HTB1" + bytes(B.MAX_BUNDLE_SIZE)
    assert refused(data, hq, device).code == "oversized"


def test_oversized_file_on_disk_is_refused_without_reading_it(tmp_path):
    path = tmp_path / "big.htb"
    with open(path, "wb") as f:
        f.truncate(B.MAX_BUNDLE_SIZE + 1)  # sparse: nothing to read, only its size
    with pytest.raises(BundleRefused) as exc:
        B.read_bundle_file(path)
    assert exc.value.code == "oversized"


def test_oversized_header(hq, device):
    data = b"HTB1" + struct.pack(">H", B.MAX_HEADER_SIZE + 1) + bytes(B.MAX_HEADER_SIZE + 100)
    assert refused(data, hq, device).code == "oversized"


def test_decompression_bomb_is_stopped_at_the_declared_size(hq, device):
    bomb = zlib.compress(bytes(64 * 1024 * 1024), 9)  # 64 MiB of zeros in ~64 KiB
    data = forge(hq, device.bundle_key.public_key(),
                 header(hq, payload_size=1024 * 1024, compression="zlib"), bomb)
    r = refused(data, hq, device)
    assert r.code == "oversized" and "decompression bomb" in r.message


def test_declared_payload_beyond_the_limit_is_refused_before_decrypting(hq, device):
    data = forge(hq, device.bundle_key.public_key(), header(hq, payload_size=B.MAX_PAYLOAD_SIZE + 1), b"{}")
    assert refused(data, hq, device).code == "oversized"


def test_content_of_another_size_than_declared(hq, device):
    data = forge(hq, device.bundle_key.public_key(), header(hq, payload_size=11), b'{"tasks":[]}')
    r = refused(data, hq, device)
    assert r.code == "bad_payload" and "12 bytes" in r.message


@pytest.mark.parametrize("body,over", [
    (b"not json", {"payload_size": 8}),
    (b"[1, 2]", {"payload_size": 6}),
    (b"\x78\x9c garbage", {"payload_size": 100, "compression": "zlib"}),
])
def test_content_that_is_not_a_json_object(hq, device, body, over):
    assert refused(forge(hq, device.bundle_key.public_key(), header(hq, **over), body), hq, device).code \
        == "bad_payload"


@pytest.mark.parametrize("over", [{"kind": "firmware"}, {"seq": "5"}, {"expires": "tomorrow"},
                                  {"created": "2026-11-22T08:00:00"}, {"compression": "gzip"}, {"format": 2}])
def test_signed_but_nonsensical_headers(hq, device, over):
    r = refused(forge(hq, device.bundle_key.public_key(), header(hq, **over), b"{}"), hq, device)
    assert r.code in ("malformed", "unsupported_version")


def test_header_naming_another_signer_than_the_real_one(hq, device):
    data = forge(hq, device.bundle_key.public_key(), header(hq, signer="0000000000000000"), b"{}")
    assert refused(data, hq, device).code == "malformed"


def test_every_refusal_code_has_texts_in_both_languages():
    for code in B.REFUSAL_CODES:
        assert MESSAGES["zh-CN"][f"bundle.refused.{code}"] and MESSAGES["en"][f"bundle.refused.{code}"]
    assert MESSAGES["zh-CN"].keys() == MESSAGES["en"].keys()


def test_pack_refuses_nonsense(hq, device):
    with pytest.raises(ValueError, match="kind"):
        pack(hq, device, kind="firmware")
    with pytest.raises(ValueError, match="seq"):
        pack(hq, device, seq=0)
    with pytest.raises(ValueError, match="expires"):
        pack(hq, device, expires=NOW)
