"""What terminal and head office agree on about complaints (SPEC §6, issue 16): the words of the lifecycle
that travel in journal entries, and the sealed box that carries a complaint's personal details up.

The terminal seals each complaint's details (the customer's name, contact, description and request, the
counter named, every free text staff record) to head office's complaint public key: HPKE (RFC 9180) base
mode with the bundles' suite, X25519 / HKDF-SHA256 / AES-256-GCM. The terminal holds only the public half,
so nothing it keeps can open what it sent. `info` binds a blob to the complaint's reference and the step
(register, handle, ...): a blob moved onto another complaint or step does not open. The plaintext is a JSON
object of text fields, zlib-compressed (Chinese text shrinks, and an entry should fit sync's 32 KiB batch);
on the wire it is base64 text in the entry body's `sealed` field.

The lifecycle words are the terminal's (flows.complaint); head office reads them from entries and must not
import the terminal, so they are written here once more and tests/unit/test_complaint_contract.py checks
both lists stay the same.
"""
from __future__ import annotations

import base64
import binascii
import json
import zlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from protocol import safejson
from protocol.sealed import SealOpenError, key_id, open_sealed, seal  # noqa: F401 (key_id: the complaint key's id, as before)

STATUSES = ("registered", "classified", "transferred", "investigating", "handled", "replied", "satisfied",
            "not_accepted", "withdrawn", "repeat", "archived")
AWAITING_REPLY = frozenset({"registered", "classified", "transferred", "investigating", "handled"})
RESOLVED = frozenset({"replied", "satisfied", "archived"})
CATEGORIES = ("service_attitude", "business_error", "transaction_delay", "irregular_fees", "privacy_leak",
              "product", "rule_violation", "financial_crime", "internal_management", "service_channel", "other")
ACTIONS = ("classify", "transfer", "investigate", "handle", "reply", "satisfaction", "not_accept", "withdraw",
           "mark_repeat", "escalate", "archive")
REGISTER_STEP = "register"

_INFO = b"HTC1 complaint\x00"
_VERSION = b"\x01"
MAX_SEALED_CHARS = 64 * 1024          # base64 text: the largest step the form allows seals to ~23 KiB
MAX_PLAIN_BYTES = 256 * 1024          # decompressed: a blob cannot inflate past this
MAX_FIELDS = 40
MAX_DEPTH = 4                         # {texts: [{...}]} at most


class SealedDetailsError(ValueError):
    """A sealed blob cannot be opened or is not what it should be; the message says which check failed
    and never quotes the content."""


class ComplaintKeyError(ValueError):
    """A complaint key given to a terminal is not head office's X25519 public key; the message says why."""


def public_key_from_pem(pem: str | bytes) -> X25519PublicKey:
    """Head office's complaint public key as it travels to a terminal (a provisioning bundle): PEM text of
    an X25519 public key. A private key is refused outright: the terminal must never hold that half."""
    data = pem.encode("utf-8", "replace") if isinstance(pem, str) else bytes(pem)
    if b"PRIVATE KEY" in data:
        raise ComplaintKeyError("the complaint key is a PRIVATE key: only head office holds that; give the terminal "
                                "the public half (complaint.pub.pem)")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        raise ComplaintKeyError("the complaint key is not a public key in PEM form") from None
    if not isinstance(key, X25519PublicKey):
        raise ComplaintKeyError(f"the complaint key is {type(key).__name__.lstrip('_')}, not X25519 "
                                "(make one with `handover-hq complaints key create`)")
    return key


def _info(ref: str, step: str) -> bytes:
    return _INFO + ref.encode("utf-8") + b"\x00" + step.encode("utf-8")


def seal_details(public_key: X25519PublicKey, ref: str, step: str, details: dict) -> str:
    """`details` (text fields) sealed to head office's complaint key, as base64 text."""
    plain = zlib.compress(json.dumps(details, ensure_ascii=False, separators=(",", ":")).encode("utf-8"), 9)
    sealed = base64.b64encode(_VERSION + seal(public_key, plain, _info(ref, step))).decode("ascii")
    if len(sealed) > MAX_SEALED_CHARS:
        raise ValueError(f"sealed complaint details are {len(sealed)} characters, at most {MAX_SEALED_CHARS}")
    return sealed


def open_details(private_key: X25519PrivateKey, ref: str, step: str, sealed) -> dict:
    """The details sealed by seal_details for this complaint and step; SealedDetailsError otherwise."""
    if not isinstance(sealed, str):
        raise SealedDetailsError("sealed details must be base64 text")
    if len(sealed) > MAX_SEALED_CHARS:
        raise SealedDetailsError(f"sealed details are longer than {MAX_SEALED_CHARS} characters")
    try:
        raw = base64.b64decode(sealed.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise SealedDetailsError("sealed details are not base64") from None
    if raw[:1] != _VERSION:
        raise SealedDetailsError("sealed details have an unknown version")
    try:
        packed = open_sealed(private_key, raw[1:], _info(ref, step))
    except SealOpenError:
        raise SealedDetailsError(f"sealed details of {ref!s:.64} ({step!s:.20}) do not open with this key") from None
    inflate = zlib.decompressobj()
    try:
        plain = inflate.decompress(packed, MAX_PLAIN_BYTES)
    except zlib.error:
        raise SealedDetailsError("sealed details are not zlib data") from None
    if inflate.unconsumed_tail or not inflate.eof:
        raise SealedDetailsError(f"sealed details inflate past {MAX_PLAIN_BYTES} bytes or are cut short")
    try:
        details = safejson.loads(plain, max_depth=MAX_DEPTH, max_bytes=MAX_PLAIN_BYTES)
    except safejson.JsonRefused as exc:
        raise SealedDetailsError(f"sealed details are {exc}") from None
    if not isinstance(details, dict) or len(details) > MAX_FIELDS:
        raise SealedDetailsError(f"sealed details must be an object of at most {MAX_FIELDS} fields")
    return details
