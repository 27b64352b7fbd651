"""Sealing to one of head office's X25519 public keys, the one primitive complaints and face snapshots share:
HPKE (RFC 9180) base mode, X25519 / HKDF-SHA256 / AES-256-GCM (the bundles' suite). The sealer holds only the
public half. `info` binds a blob to what it belongs to (a complaint and step; a device and photo hash), so a
blob moved elsewhere does not open. Each purpose has a key of its own (least privilege): whoever may read
complaints need not be able to read faces."""
from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives import hpke, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
OVERHEAD = 32 + 16          # the encapsulated key and the AEAD tag


class SealOpenError(ValueError):
    """A blob does not open with this key and binding (another key, another owner, or altered)."""


def key_id(public_key: X25519PublicKey) -> str:
    """Names the key a blob was sealed to (blobs carry it), so a rotated key is told apart."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def seal(public_key: X25519PublicKey, plain: bytes, info: bytes) -> bytes:
    return SUITE.encrypt(plain, public_key, info=info)


def open_sealed(private_key: X25519PrivateKey, raw: bytes, info: bytes) -> bytes:
    try:
        return SUITE.decrypt(raw, private_key, info=info)
    except Exception:       # cryptography raises InvalidTag, or ValueError for a short/odd encapsulation
        raise SealOpenError("does not open with this key") from None
