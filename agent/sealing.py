"""Personal data at rest: AES-256-GCM under a device data key that never leaves the box.

The key file is created on first use with 0600 permissions. Each blob is nonce || ciphertext;
the associated data binds a blob to its row (a sealed name cannot be moved to another person).
"""
from __future__ import annotations

import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


class SealError(Exception):
    pass


class Sealer:
    def __init__(self, key_file: str | os.PathLike):
        self._aead = AESGCM(_load_or_create_key(Path(key_file)))

    def seal(self, plaintext: bytes, aad: bytes = b"") -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def open(self, blob: bytes, aad: bytes = b"") -> bytes:
        try:
            return self._aead.decrypt(blob[:12], blob[12:], aad)
        except (InvalidTag, ValueError):
            raise SealError("sealed data does not open with this device's data key") from None


def _load_or_create_key(path: Path) -> bytes:
    if path.exists():
        key = path.read_bytes()
        if len(key) != 32:
            raise SealError(f"{path}: data key must be 32 bytes, found {len(key)}")
        return key
    from protocol.keys import write_private
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = AESGCM.generate_key(bit_length=256)
    write_private(path, key)
    return key
