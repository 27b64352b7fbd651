"""NTAG 424 DNA Secure Unique NFC (SUN) messages, per NXP AN12196 (AES mode, pure).

The tag mirrors into its NDEF URL an encrypted PICCData block (tag byte, UID, read counter) and a
truncated AES-CMAC. A clone can copy the URL it once served but cannot make a new one: the read
counter must go up on every genuine read, so a `SunVerifier` refuses a counter that does not increase.
"""
from __future__ import annotations

import hmac
from collections.abc import MutableMapping
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

PICC_DATA_TAG_AES_UID_COUNTER = 0xC7   # AN12196: UID (7 bytes) and read counter mirrored
SV2_PREFIX = bytes.fromhex("3CC300010080")  # session-vector label for SesSDMFileReadMAC
COUNTER_MAX = 0xFFFFFF


class SunError(ValueError):
    """A SUN message that must not be trusted; `reason` is a short machine-readable word."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class SunMessage:
    uid: str        # upper-case hex, 7 bytes
    counter: int    # SDM read counter


def _check_key(key: bytes, what: str) -> None:
    if not isinstance(key, bytes) or len(key) != 16:
        raise ValueError(f"{what} must be 16 bytes (AES-128)")


def _aes_cbc_zero_iv(key: bytes, data: bytes, *, encrypt: bool) -> bytes:
    cipher = Cipher(algorithms.AES(key), modes.CBC(bytes(16)))
    op = cipher.encryptor() if encrypt else cipher.decryptor()
    return op.update(data) + op.finalize()


def cmac(key: bytes, data: bytes) -> bytes:
    c = CMAC(algorithms.AES(key))
    c.update(data)
    return c.finalize()


def session_mac_key(file_key: bytes, uid: bytes, counter: int) -> bytes:
    """KSesSDMFileReadMAC = CMAC(file key, SV2), SV2 = 3CC3 0001 0080 || UID || counter (LE)."""
    return cmac(file_key, SV2_PREFIX + uid + counter.to_bytes(3, "little"))


def sdm_mac(file_key: bytes, uid: bytes, counter: int, mac_input: bytes = b"") -> bytes:
    """The 8-byte SDMMAC: the odd-indexed bytes of CMAC(session key, MAC input)."""
    return cmac(session_mac_key(file_key, uid, counter), mac_input)[1::2]


def decrypt_picc_data(meta_key: bytes, picc_data: bytes) -> SunMessage:
    _check_key(meta_key, "SDM meta-read key")
    if len(picc_data) != 16:
        raise SunError("malformed", f"PICCData must be 16 bytes, got {len(picc_data)}")
    plain = _aes_cbc_zero_iv(meta_key, picc_data, encrypt=False)
    if plain[0] != PICC_DATA_TAG_AES_UID_COUNTER:
        # A wrong key decrypts to noise, so the tag byte is the first thing to disagree.
        raise SunError("decrypt", "PICCData does not decrypt to a UID and counter (wrong key or not a SUN tag)")
    return SunMessage(plain[1:8].hex().upper(), int.from_bytes(plain[8:11], "little"))


def _unhex(value: str, size: int, what: str) -> bytes:
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise SunError("malformed", f"{what} is not hexadecimal") from None
    if len(raw) != size:
        raise SunError("malformed", f"{what} must be {size} bytes, got {len(raw)}")
    return raw


def verify_sun(picc_hex: str, mac_hex: str, meta_key: bytes, file_key: bytes,
               mac_input: bytes = b"") -> SunMessage:
    """Decrypt and authenticate one SUN message; raises SunError when it must not be trusted.

    `mac_input` is what the tag MACs: empty when SDMMACInputOffset == SDMMACOffset (the usual
    configuration), else the mirrored text from SDMMACInputOffset up to the MAC (AN12196 §3.4.4).
    """
    _check_key(file_key, "SDM file-read key")
    message = decrypt_picc_data(meta_key, _unhex(picc_hex, 16, "PICCData"))
    expected = sdm_mac(file_key, bytes.fromhex(message.uid), message.counter, mac_input)
    if not hmac.compare_digest(expected, _unhex(mac_hex, 8, "SDMMAC")):
        raise SunError("bad_mac", "SUN MAC does not match (tampered message or wrong key)")
    return message


def make_sun_message(uid: str, counter: int, meta_key: bytes, file_key: bytes,
                     mac_input: bytes = b"") -> tuple[str, str]:
    """What a genuine tag mirrors for this UID and counter: (PICCData hex, SDMMAC hex)."""
    _check_key(meta_key, "SDM meta-read key")
    _check_key(file_key, "SDM file-read key")
    uid_bytes = bytes.fromhex(uid)
    if len(uid_bytes) != 7:
        raise ValueError("an NTAG 424 DNA UID is 7 bytes")
    if not 0 <= counter <= COUNTER_MAX:
        raise ValueError("the SDM read counter is 3 bytes")
    # The padding after the counter is random on a real tag; fixed here so messages are reproducible.
    plain = bytes([PICC_DATA_TAG_AES_UID_COUNTER]) + uid_bytes + counter.to_bytes(3, "little") + bytes(5)
    picc = _aes_cbc_zero_iv(meta_key, plain, encrypt=True)
    return picc.hex().upper(), sdm_mac(file_key, uid_bytes, counter, mac_input).hex().upper()


class SunVerifier:
    """Verifies SUN messages and remembers the last accepted counter per tag UID.

    `counters` is the caller's store (a dict, or a mapping backed by the journal) so the memory
    survives restarts: a replayed message, or a clone serving a copied one, is refused.
    """

    def __init__(self, counters: MutableMapping[str, int] | None = None):
        self.counters: MutableMapping[str, int] = counters if counters is not None else {}

    def last_counter(self, uid: str) -> int | None:
        return self.counters.get(uid.upper())

    def verify(self, picc_hex: str, mac_hex: str, meta_key: bytes, file_key: bytes,
               expected_uid: str | None = None, mac_input: bytes = b"") -> SunMessage:
        message = verify_sun(picc_hex, mac_hex, meta_key, file_key, mac_input)
        if expected_uid is not None and message.uid != expected_uid.upper():
            raise SunError("uid_mismatch", "the SUN message belongs to another tag than the one read")
        last = self.counters.get(message.uid)
        if last is not None and message.counter <= last:
            raise SunError("replayed",
                           f"SUN read counter {message.counter} does not increase (last {last}): replayed or cloned tag")
        self.counters[message.uid] = message.counter
        return message
