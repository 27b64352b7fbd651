"""Face snapshots on their way to head office (issue 16; docs/mqtt.md, "Face snapshots").

Each door attempt's face is a JPEG capped at MAX_SIDE pixels on its longest side and MAX_JPEG_BYTES (the
terminal re-encodes a larger one before it stores it, so the photo it keeps, the hash its journal entry
names and the photo head office gets are one and the same). The terminal seals it to head office's records
key (protocol.sealed), bound to the device and the photo's sha256, and sends it on
<prefix>/<device>/snapshot from a durable outbox; head office opens it once to check the hash, keeps the
sealed blob, answers on <prefix>/<device>/down/snapshot_stored, and opens it again only for a person
allowed to see it.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import re

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from protocol import messages
from protocol.sealed import OVERHEAD, SealOpenError, key_id, open_sealed, seal

MAX_SIDE = 320                    # pixels, longest side: a face beside an enrolled photo on a review page
MAX_JPEG_BYTES = 64 * 1024
UPLINK, STORED = "snapshot", "snapshot_stored"      # the uplink leaf and head office's answer (downlink)
MAX_SEALED_CHARS = 4 * -(-(1 + OVERHEAD + MAX_JPEG_BYTES) // 3)
MAX_STORED = 100                  # hashes in one answer
HASH = re.compile(r"^[0-9a-f]{64}$")
_INFO = b"HTC1 snapshot\x00"
_VERSION = b"\x01"


_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}     # frame headers (not DHT, JPG, DAC)


def jpeg_dimensions(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's frame header, read without decoding it; None when the bytes are no JPEG
    or say no size before their first scan."""
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:                          # fill byte before a marker
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            i += 2
            continue
        if marker in (0xD9, 0xDA):                  # end, or a scan before any frame header
            return None
        length = int.from_bytes(data[i + 2:i + 4], "big")
        if marker in _SOF:
            if length < 7 or i + 9 > len(data):
                return None
            height, width = int.from_bytes(data[i + 5:i + 7], "big"), int.from_bytes(data[i + 7:i + 9], "big")
            return (width, height) if width and height else None
        if length < 2:
            return None
        i += 2 + length
    return None


class SnapshotError(ValueError):
    """A sealed snapshot head office cannot accept; the message names the check that failed."""


def _info(device: str, digest: str) -> bytes:
    return _INFO + device.encode("utf-8") + b"\x00" + digest.encode("ascii")


def seal_snapshot(public_key: X25519PublicKey, device: str, jpeg: bytes) -> tuple[str, str]:
    """(sha256 of the JPEG, the JPEG sealed to head office's records key as base64 text)."""
    if len(jpeg) > MAX_JPEG_BYTES:
        raise ValueError(f"snapshot is {len(jpeg)} bytes, at most {MAX_JPEG_BYTES}")
    digest = hashlib.sha256(jpeg).hexdigest()
    return digest, base64.b64encode(_VERSION + seal(public_key, jpeg, _info(device, digest))).decode("ascii")


def uplink(public_key: X25519PublicKey, device: str, digest: str, sealed: str) -> bytes:
    """The wire message (schemas/snapshot.json)."""
    return messages.encode({"v": messages.VERSION, "device": device, "hash": digest, "key": key_id(public_key),
                            "sealed": sealed})


def parse_uplink(raw: bytes) -> dict:
    """A snapshot message checked against its schema; messages.MessageError names what is wrong."""
    return messages.decode(UPLINK, raw, max_bytes=MAX_SEALED_CHARS + 1024, max_depth=2)


def parse_stored(raw: bytes) -> dict:
    return messages.decode(STORED, raw, max_bytes=64 * 1024, max_depth=2)


def open_snapshot(private_key: X25519PrivateKey, device: str, digest: str, sealed: str) -> bytes:
    """The JPEG sealed by seal_snapshot for this device and hash, checked against the hash; SnapshotError
    otherwise (the text never quotes the content)."""
    if not isinstance(digest, str) or not HASH.match(digest):
        raise SnapshotError("the snapshot's hash is not 64 lowercase hex digits")
    if not isinstance(sealed, str) or len(sealed) > MAX_SEALED_CHARS:
        raise SnapshotError(f"the sealed snapshot must be base64 text of at most {MAX_SEALED_CHARS} characters")
    try:
        raw = base64.b64decode(sealed.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise SnapshotError("the sealed snapshot is not base64") from None
    if raw[:1] != _VERSION:
        raise SnapshotError("the sealed snapshot has an unknown version")
    try:
        jpeg = open_sealed(private_key, raw[1:], _info(device, digest))
    except SealOpenError:
        raise SnapshotError(f"snapshot {digest[:12]} of {device!s:.64} does not open with the records key "
                            "(another key, another device or hash, or altered)") from None
    if hashlib.sha256(jpeg).hexdigest() != digest:
        raise SnapshotError(f"snapshot {digest[:12]} of {device!s:.64} does not match its hash")
    size = jpeg_dimensions(jpeg)
    if size is None or max(size) > MAX_SIDE or len(jpeg) > MAX_JPEG_BYTES:
        raise SnapshotError(f"snapshot {digest[:12]} is not a JPEG of at most {MAX_SIDE} px and {MAX_JPEG_BYTES} bytes")
    return jpeg
