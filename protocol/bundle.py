"""The offline bundle (SPEC §5): signed by head office, encrypted to one device, never replayed.

One format carries tasks, personnel and provisioning. The byte layout is in docs/bundles.md so head
office can produce bundles with other tools. Reading follows python-tuf's habit: verify before
trust. The Ed25519 signature over every byte before it is checked first, against the trusted keys,
before the header is believed, anything is decrypted or the payload is parsed; then expiry,
target device and sequence; then HPKE (RFC 9180) decryption and a capped decompression.

Every refusal is a `BundleRefused(code, message)`; the codes are `REFUSAL_CODES`.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hpke, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from protocol import safejson

MAGIC = b"HTB"
FORMAT_VERSION = 1
KINDS = ("tasks", "personnel", "provisioning")
MAX_BUNDLE_SIZE = 256 * 1024 * 1024       # a whole bundle file
MAX_HEADER_SIZE = 16 * 1024
MAX_PAYLOAD_SIZE = 512 * 1024 * 1024      # decompressed payload: the zip-bomb ceiling
CLOCK_SKEW = timedelta(minutes=5)         # a device clock a little behind head office's
SIGNATURE_SIZE = 64
HEADER_PEEK_SIZE = 6 + MAX_HEADER_SIZE    # prefix and the longest header: what ordering may read unverified
_PREFIX = struct.Struct(">4sH")           # magic+version, header length
_CT_LEN = struct.Struct(">Q")
_HPKE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
_HPKE_INFO = b"HTB1 bundle\x00"           # info = this || header bytes: binds the header to the key
_COMPRESSIONS = ("none", "zlib")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_CONTENTS = ("json", "bytes", "jsonl")      # jsonl: one record per line, format 2 only

REFUSAL_CODES = (
    "bad_magic",            # not a bundle at all
    "unsupported_version",  # a bundle format this device does not know
    "truncated",            # shorter than its own length fields say (copy cut short, stick pulled)
    "oversized",            # larger than the limits (file, header, declared or real payload size)
    "malformed",            # length fields or header fields do not make sense
    "bad_signature",        # signed by a trusted key id, but the bytes were changed
    "unknown_signer",       # not signed by any key this device trusts
    "wrong_kind",           # a bundle of another kind than the one asked for
    "wrong_device",         # made for another device
    "not_yet_valid",        # created in the future (device clock, or a bundle held back)
    "expired",              # past its expiry
    "replayed",             # same sequence number as the last one accepted
    "rolled_back",          # lower sequence number than the last one accepted
    "tampered",             # signature fine, but it does not decrypt with this device's key
    "bad_payload",          # decrypted content is not what the kind requires
)


class BundleRefused(Exception):
    """A bundle failed a check; `code` is one of REFUSAL_CODES, the message says which check in words.

    Typed the way python-tuf types its errors: each code is a subclass, grouped by what failed (the
    bytes, the signature, the target, the time, the sequence, the content), so a caller can catch a
    family (`except SequenceError`) or test one (`except Replayed`). `BundleRefused(code, message)`
    builds the subclass for the code.
    """
    code = ""

    def __new__(cls, code: str, message: str):
        if cls is BundleRefused:
            cls = _BY_CODE[code]
        return super().__new__(cls)

    def __init__(self, code: str, message: str):
        assert code in REFUSAL_CODES and code == self.code, code
        super().__init__(code, message)
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def __reduce__(self):
        return BundleRefused, (self.code, self.message)


class FormatError(BundleRefused):
    """The bytes are not a well-formed bundle of a format this device reads."""


class SignatureError(BundleRefused):
    """No trusted head-office key signed these bytes (python-tuf's UnsignedMetadataError)."""


class TargetError(BundleRefused):
    """A genuine bundle, but not for this device or not of the kind asked for."""


class ValidityError(BundleRefused):
    """Outside its validity period (python-tuf's ExpiredMetadataError)."""


class SequenceError(BundleRefused):
    """Its sequence number is not newer than the last one accepted (python-tuf's BadVersionNumberError)."""


class ContentError(BundleRefused):
    """Signed and addressed correctly, but its content cannot be used."""


def _leaf(name: str, family: type, code: str, doc: str) -> type:
    return type(name, (family,), {"code": code, "__doc__": doc, "__module__": __name__})


BadMagic = _leaf("BadMagic", FormatError, "bad_magic", "Not a bundle at all.")
UnsupportedVersion = _leaf("UnsupportedVersion", FormatError, "unsupported_version", "A format this device does not know.")
Truncated = _leaf("Truncated", FormatError, "truncated", "Shorter than its own length fields say.")
Oversized = _leaf("Oversized", FormatError, "oversized", "Larger than the limits.")
Malformed = _leaf("Malformed", FormatError, "malformed", "Length or header fields that do not make sense.")
BadSignature = _leaf("BadSignature", SignatureError, "bad_signature", "Signed by a trusted key id, then changed.")
UnknownSigner = _leaf("UnknownSigner", SignatureError, "unknown_signer", "Not signed by any trusted key.")
WrongKind = _leaf("WrongKind", TargetError, "wrong_kind", "Another kind than the one asked for.")
WrongDevice = _leaf("WrongDevice", TargetError, "wrong_device", "Made for another device.")
NotYetValid = _leaf("NotYetValid", ValidityError, "not_yet_valid", "Created in the future.")
Expired = _leaf("Expired", ValidityError, "expired", "Past its expiry.")
Replayed = _leaf("Replayed", SequenceError, "replayed", "The sequence number already accepted.")
RolledBack = _leaf("RolledBack", SequenceError, "rolled_back", "A lower sequence number than accepted.")
Tampered = _leaf("Tampered", ContentError, "tampered", "Does not decrypt with this device's key.")
BadPayload = _leaf("BadPayload", ContentError, "bad_payload", "Decrypted content is not what the kind requires.")
_BY_CODE = {c.code: c for c in (BadMagic, UnsupportedVersion, Truncated, Oversized, Malformed, BadSignature,
                                UnknownSigner, WrongKind, WrongDevice, NotYetValid, Expired, Replayed, RolledBack,
                                Tampered, BadPayload)}
assert set(_BY_CODE) == set(REFUSAL_CODES)


@dataclass(frozen=True)
class BundleHeader:
    """The signed, cleartext part. `device` is the target device id; `signer` the signing key's id."""
    format: int
    kind: str
    device: str
    created: datetime
    expires: datetime
    seq: int
    signer: str
    payload_size: int           # bytes after decompression
    compression: str
    content: str                # "json" or "bytes"

    def to_dict(self) -> dict:
        # Insertion order is the documented field order; "format" first.
        return {"format": self.format, "kind": self.kind, "device": self.device,
                "created": _iso(self.created), "expires": _iso(self.expires), "seq": self.seq,
                "signer": self.signer, "payload_size": self.payload_size,
                "compression": self.compression, "content": self.content}

    @classmethod
    def from_dict(cls, d: Any) -> "BundleHeader":
        if not isinstance(d, dict):
            raise BundleRefused("malformed", "the bundle header is not a JSON object")
        return cls(
            format=_field(d, "format", int), kind=_choice(d, "kind", KINDS),
            device=_field(d, "device", str), created=_time(d, "created"), expires=_time(d, "expires"),
            seq=_field(d, "seq", int), signer=_field(d, "signer", str),
            payload_size=_field(d, "payload_size", int),
            compression=_choice(d, "compression", _COMPRESSIONS), content=_choice(d, "content", _CONTENTS))


@dataclass(frozen=True)
class Bundle:
    header: BundleHeader
    payload: dict | bytes       # dict for content "json"
    # with open_bundle(..., item_texts=key): the JSON text of each item of payload[key], when it is a list
    item_texts: list[str] | None = None


@dataclass(frozen=True)
class Envelope:
    """A bundle split into its parts, signature checked or not (what `inspect` shows)."""
    header_bytes: bytes
    ciphertext: memoryview
    signed: memoryview          # every byte the signature covers
    signature: bytes

    def header(self) -> BundleHeader:
        # Bounded: at most MAX_HEADER_SIZE bytes (split checked) and one level deep, since the
        # header is a flat object; a header of 5,000 "[" is refused before the parser recurses.
        try:
            raw = safejson.loads(self.header_bytes, max_depth=1, max_bytes=MAX_HEADER_SIZE)
        except safejson.JsonRefused as exc:
            raise BundleRefused("malformed", f"the bundle header is {exc}") from None
        return BundleHeader.from_dict(raw)


def key_id(public_key: Ed25519PublicKey) -> str:
    """Short id of a head-office signing key: first 16 hex digits of sha256 of its raw bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


# --- reading ---------------------------------------------------------------------------------

def split(data: bytes) -> Envelope:
    """Check magic, version and lengths only; nothing inside is trusted yet."""
    if len(data) > MAX_BUNDLE_SIZE:
        raise BundleRefused("oversized", f"the file is {len(data)} bytes, more than the {MAX_BUNDLE_SIZE} allowed")
    if data[:3] != MAGIC[:len(data)] or (len(data) >= 3 and data[:3] != MAGIC) or not data:
        raise BundleRefused("bad_magic", "this file is not a handover bundle (it does not start with HTB)")
    if len(data) < _PREFIX.size:
        raise BundleRefused("truncated", "the file ends inside the bundle prefix")
    if data[3:4] != str(FORMAT_VERSION).encode():
        raise BundleRefused("unsupported_version",
                            f"bundle format {data[3:4]!r} is not supported; this device reads format {FORMAT_VERSION}")
    _, header_len = _PREFIX.unpack_from(data)
    if header_len == 0:
        raise BundleRefused("malformed", "the bundle header is empty")
    if header_len > MAX_HEADER_SIZE:
        raise BundleRefused("oversized", f"the header is {header_len} bytes, more than the {MAX_HEADER_SIZE} allowed")
    ct_at = _PREFIX.size + header_len + _CT_LEN.size
    if len(data) < ct_at:
        raise BundleRefused("truncated", "the file ends inside the bundle header")
    (ct_len,) = _CT_LEN.unpack_from(data, ct_at - _CT_LEN.size)
    end = ct_at + ct_len
    if end + SIGNATURE_SIZE > len(data):
        raise BundleRefused("truncated", f"the file is {len(data)} bytes but its lengths need {end + SIGNATURE_SIZE}: "
                                         "it was cut short (copy interrupted or stick removed)")
    if end + SIGNATURE_SIZE < len(data):
        raise BundleRefused("malformed", f"{len(data) - end - SIGNATURE_SIZE} unexpected bytes after the signature")
    view = memoryview(data)  # no copies of a large ciphertext
    return Envelope(header_bytes=bytes(view[_PREFIX.size:_PREFIX.size + header_len]), ciphertext=view[ct_at:end],
                    signed=view[:end], signature=bytes(view[end:]))


def peek_header(prefix: bytes) -> BundleHeader:
    """The header of a bundle from its first bytes (at most HEADER_PEEK_SIZE), unverified: for ordering only."""
    if len(prefix) < _PREFIX.size or prefix[:3] != MAGIC:
        raise BundleRefused("bad_magic", "this file is not a handover bundle (it does not start with HTB)")
    _, header_len = _PREFIX.unpack_from(prefix)
    if not 0 < header_len <= MAX_HEADER_SIZE or len(prefix) < _PREFIX.size + header_len:
        raise BundleRefused("malformed", "the bundle header length does not make sense")
    return Envelope(bytes(prefix[_PREFIX.size:_PREFIX.size + header_len]), memoryview(b""), memoryview(b""),
                    b"").header()


def verify_signature(env: Envelope, trusted_signers: list[Ed25519PublicKey]) -> Ed25519PublicKey:
    """The key among `trusted_signers` that signed these bytes, or a refusal saying why none did."""
    for key in trusted_signers:
        try:
            key.verify(env.signature, env.signed)
            return key
        except InvalidSignature:
            continue
    # Only now read the (untrusted) header, and only to word the refusal.
    try:
        claimed = env.header().signer
    except BundleRefused:
        claimed = None
    if claimed is not None and claimed in {key_id(k) for k in trusted_signers}:
        raise BundleRefused("bad_signature", "the signature does not match the contents: "
                                             "the file was altered or damaged after head office signed it")
    raise BundleRefused("unknown_signer", f"the bundle is not signed by a head-office key this device trusts"
                                          f" (it names key {claimed or 'unknown'})")


def _checked_header(env: Envelope, signer: Ed25519PublicKey, fmt: int, device: DeviceKeysLike, now: datetime,
                    last_seq: int | Callable[[str], int], kind: str | None) -> BundleHeader:
    """Step 3 of docs/bundles.md, once the signature verified: what the header says, checked."""
    header = env.header()
    if header.format != fmt:
        raise BundleRefused("unsupported_version", f"header format {header.format} is not {fmt}")
    if header.signer != key_id(signer):
        raise BundleRefused("malformed", "the header names a different signing key than the one that signed it")
    if kind is not None and header.kind != kind:
        raise BundleRefused("wrong_kind", f"this is a {header.kind} bundle, expected {kind}")
    if header.device != device.device_id:
        raise BundleRefused("wrong_device", f"the bundle is for device {header.device}, this is {device.device_id}")
    if header.created > now + CLOCK_SKEW:
        raise BundleRefused("not_yet_valid", f"the bundle was made at {_iso(header.created)}, after this device's "
                                             f"time {_iso(now)}: check the device clock")
    if now >= header.expires:
        raise BundleRefused("expired", f"the bundle expired at {_iso(header.expires)} (now {_iso(now)}): "
                                       "ask head office for a new one")
    if callable(last_seq):
        last_seq = last_seq(header.kind)
    if header.seq == last_seq:
        raise BundleRefused("replayed", f"{header.kind} bundle number {header.seq} was already imported")
    if header.seq < last_seq:
        raise BundleRefused("rolled_back", f"{header.kind} bundle number {header.seq} is older than the last one "
                                           f"imported ({last_seq})")
    if not 0 <= header.payload_size <= MAX_PAYLOAD_SIZE:
        raise BundleRefused("oversized", f"the payload declares {header.payload_size} bytes, the limit is "
                                         f"{MAX_PAYLOAD_SIZE}")
    return header


def open_bundle(data: bytes, device: DeviceKeysLike, trusted_signers: list[Ed25519PublicKey], now: datetime,
                last_seq: int | Callable[[str], int], *, kind: str | None = None,
                item_texts: str | None = None) -> Bundle:
    """Verify, check and decrypt a bundle for `device`; raises BundleRefused naming the failed check.

    `last_seq` is the last accepted sequence number, or a function of the (verified) header's kind giving it.
    `item_texts`: a key of the payload whose items' JSON texts to keep (Bundle.item_texts), so that what
    stores each item as JSON need not write it again.
    """
    env = split(data)
    signer = verify_signature(env, trusted_signers)
    header = _checked_header(env, signer, FORMAT_VERSION, device, now, last_seq, kind)
    if header.content == "jsonl":
        raise BundleRefused("malformed", "JSON Lines content comes only in streamed (format 2) bundles")
    try:
        plain = _HPKE.decrypt(env.ciphertext, device.bundle_key, info=_HPKE_INFO + env.header_bytes)
    except Exception:  # the library raises several types for one meaning: not for this key
        raise BundleRefused("tampered", "the bundle does not decrypt with this device's key: it was encrypted "
                                        "for another key or damaged before signing") from None
    payload = _decompress(plain, header)
    if header.content == "bytes":
        return Bundle(header, payload)
    try:
        body, texts = loads_keeping_texts(payload, item_texts) if item_texts else (json.loads(payload), None)
    except (UnicodeDecodeError, ValueError):
        raise BundleRefused("bad_payload", "the bundle content is not valid JSON") from None
    except RecursionError:  # signed, but nothing nested that deep is ever stored
        raise BundleRefused("bad_payload", "the bundle content is nested too deeply") from None
    if not isinstance(body, dict):
        raise BundleRefused("bad_payload", "the bundle content is not a JSON object")
    return Bundle(header, body, texts)


_WHITESPACE = re.compile(r"[ \t\n\r]*")       # JSON's, as the json module reads it
_SPACES = (" ", "\t", "\n", "\r")
_DECODER = json.JSONDecoder()


def loads_keeping_texts(data: bytes, key: str) -> tuple[Any, list[str] | None]:
    """json.loads(data), and when that is an object whose `key` holds a list, each item's JSON text as
    written (else None). The top object is walked here and every value read by json's own scanner, so
    the value is json.loads' in every case (anything unusual, an error above all, is left to json.loads).
    No texts when an escape spells a surrogate: json.loads accepts one, but what writes the text as UTF-8
    would fail where a value written again by json.dumps is refused first, as before."""
    text = data.decode(json.detect_encoding(data), "surrogatepass")
    try:
        walked = _walk_object(text, key)
    except (ValueError, RecursionError):
        walked = None
    if walked is None:
        return json.loads(text), None
    body, texts = walked
    if texts is not None and _SURROGATE_ESCAPE.search(text):
        texts = None
    return body, texts


def _walk_object(s: str, key: str) -> tuple[dict, list[str] | None] | None:
    ws, scan = _WHITESPACE.match, _DECODER.raw_decode
    i = ws(s).end()
    if not s.startswith("{", i):
        return None
    body: dict = {}
    texts = None
    i = ws(s, i + 1).end()
    if s.startswith("}", i):
        i += 1
    else:
        while True:
            if not s.startswith('"', i):
                return None
            name, i = scan(s, i)
            i = ws(s, i).end()
            if not s.startswith(":", i):
                return None
            i = ws(s, i + 1).end()
            if name == key and s.startswith("[", i):
                walked = _walk_list(s, i)
                if walked is None:
                    return None
                body[name], texts, i = walked
            else:
                body[name], i = scan(s, i)
                if name == key:
                    texts = None    # a later value under the same name wins, as in json.loads
            i = ws(s, i).end()
            if s.startswith(",", i):
                i = ws(s, i + 1).end()
            elif s.startswith("}", i):
                i += 1
                break
            else:
                return None
    return (body, texts) if ws(s, i).end() == len(s) else None


def _walk_list(s: str, i: int) -> tuple[list, list[str], int] | None:
    ws, scan = _WHITESPACE.match, _DECODER.raw_decode
    items: list = []
    texts: list[str] = []
    i = ws(s, i + 1).end()
    if s.startswith("]", i):
        return items, texts, i + 1
    while True:
        item, end = scan(s, i)
        items.append(item)
        texts.append(s[i:end])
        if s.startswith(",", end) and not s.startswith(_SPACES, end + 1):    # as bundles are packed
            i = end + 1
            continue
        i = ws(s, end).end()
        if s.startswith(",", i):
            i = ws(s, i + 1).end()
        elif s.startswith("]", i):
            return items, texts, i + 1
        else:
            return None


def _decompress(plain: bytes, header: BundleHeader) -> bytes:
    if header.compression == "none":
        out = plain
    else:
        d = zlib.decompressobj()
        try:
            # One byte more than declared is enough to know it lies: never inflate past that.
            out = d.decompress(plain, header.payload_size + 1)
        except zlib.error:
            raise BundleRefused("bad_payload", "the compressed content is damaged") from None
        if len(out) > header.payload_size or d.unconsumed_tail:
            raise BundleRefused("oversized", f"the content inflates past its declared {header.payload_size} bytes "
                                             "(a decompression bomb)")
        if not d.eof:
            raise BundleRefused("bad_payload", "the compressed content ends early")
    if len(out) != header.payload_size:
        raise BundleRefused("bad_payload", f"the content is {len(out)} bytes, the header says {header.payload_size}")
    return out


# --- format 2: streamed, for bundles too large to hold in memory ---------------------------------
#
# "HTB2" | u16 H | header (H bytes, format 2) | u64 C | ciphertext (C bytes) | Ed25519 signature (64)
# The signature covers "HTB2" | u16 H | header | u64 C | SHA-512(ciphertext), so it is checked in one
# streamed pass over the file. The ciphertext is u16 E | HPKE(content key, 32 bytes; info "HTB2 bundle\0"
# + header) (E bytes) | chunks: the compressed payload cut in CHUNK_SIZE pieces, each AES-256-GCM
# under the content key with nonce = 11-byte big-endian chunk index | 1 byte "last" flag (the STREAM
# construction: chunks cannot be reordered, dropped or cut off unnoticed). Every chunk but the last
# holds exactly CHUNK_SIZE bytes. A second pass decrypts, inflates and yields the payload's lines,
# and hashes the ciphertext again: a file changed between the passes is refused ("tampered") before
# anything is committed. Memory stays at a few chunks plus one record, whatever the payload's size.

STREAMED_FORMAT = 2
CHUNK_SIZE = 1024 * 1024
MAX_RECORD_SIZE = 8 * 1024 * 1024           # one line: a person with a 2 MiB photo in base64 fits
MAX_STREAMED_SIZE = MAX_PAYLOAD_SIZE + MAX_PAYLOAD_SIZE // 32   # the file: incompressible payload + overheads
_STREAM_INFO = b"HTB2 bundle\x00"
_ENC_LEN = struct.Struct(">H")
_SIGNED_TAIL = hashlib.sha512


def _nonce(index: int, last: bool) -> bytes:
    return index.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


@dataclass(frozen=True)
class StreamedBundle:
    """A verified format-2 bundle on disk; `lines()` decrypts and inflates it on demand."""
    path: Path
    header: BundleHeader
    header_bytes: bytes
    ciphertext_at: int
    ciphertext_len: int
    digest: bytes                # SHA-512 of the ciphertext the signature covered
    bundle_key: X25519PrivateKey = field(repr=False)

    def chunks(self) -> Iterator[bytes]:
        """The compressed payload, chunk by chunk; at the end the ciphertext must hash as signed."""
        h = _SIGNED_TAIL()
        with open(self.path, "rb") as f:
            f.seek(self.ciphertext_at)
            remaining = self.ciphertext_len

            def read(n: int) -> bytes:
                nonlocal remaining
                data = f.read(n)
                if len(data) != n:
                    raise BundleRefused("truncated", "the file became shorter while it was read")
                h.update(data)
                remaining -= n
                return data
            if remaining < _ENC_LEN.size:
                raise BundleRefused("malformed", "the ciphertext is too short to hold its key")
            (enc_len,) = _ENC_LEN.unpack(read(_ENC_LEN.size))
            if enc_len > remaining:
                raise BundleRefused("malformed", "the content key is longer than the ciphertext")
            try:
                key = _HPKE.decrypt(read(enc_len), self.bundle_key, info=_STREAM_INFO + self.header_bytes)
                aead = AESGCM(key)
            except Exception:  # the library raises several types for one meaning: not for this key
                raise BundleRefused("tampered", "the bundle does not decrypt with this device's key: it was "
                                                "encrypted for another key or damaged before signing") from None
            index = 0
            while True:
                last = remaining <= CHUNK_SIZE + 16
                sealed = read(remaining if last else CHUNK_SIZE + 16)
                try:
                    yield aead.decrypt(_nonce(index, last), sealed, None)
                except InvalidTag:
                    raise BundleRefused("tampered", f"chunk {index} of the content does not decrypt: the file "
                                                    "was damaged, cut or its chunks reordered") from None
                index += 1
                if last:
                    break
        if h.digest() != self.digest:
            raise BundleRefused("tampered", "the file changed between checking its signature and reading it")

    def lines(self) -> Iterator[bytes]:
        """The payload's lines (content "jsonl"), each at most MAX_RECORD_SIZE, inflated as they come."""
        total, pending = 0, b""
        d = zlib.decompressobj() if self.header.compression == "zlib" else None
        for chunk in self.chunks():
            data = chunk
            while data:
                if d is not None:
                    try:
                        out = d.decompress(data, CHUNK_SIZE)
                    except zlib.error:
                        raise BundleRefused("bad_payload", "the compressed content is damaged") from None
                    data = d.unconsumed_tail
                else:
                    out, data = data, b""
                total += len(out)
                if total > self.header.payload_size:
                    raise BundleRefused("oversized", f"the content inflates past its declared "
                                                     f"{self.header.payload_size} bytes (a decompression bomb)")
                pending += out
                *whole, pending = pending.split(b"\n")
                if len(pending) > MAX_RECORD_SIZE or any(len(line) > MAX_RECORD_SIZE for line in whole):
                    raise BundleRefused("bad_payload", f"a record is longer than {MAX_RECORD_SIZE} bytes")
                yield from (line for line in whole if line)
        if d is not None and not d.eof:
            raise BundleRefused("bad_payload", "the compressed content ends early")
        if total != self.header.payload_size:
            raise BundleRefused("bad_payload", f"the content is {total} bytes, the header says "
                                               f"{self.header.payload_size}")
        if pending:
            yield pending

    def records(self) -> Iterator[dict]:
        """Each line as a JSON object (docs/bundles.md: {"task": ...}, {"person": ...}, {"remove": ...})."""
        for n, line in enumerate(self.lines(), 1):
            try:
                record = json.loads(line)
            except (UnicodeDecodeError, ValueError, RecursionError):
                raise BundleRefused("bad_payload", f"line {n} of the content is not a JSON object") from None
            if not isinstance(record, dict) or len(record) != 1:
                raise BundleRefused("bad_payload", f"line {n} of the content must be one {{\"kind\": value}}")
            yield record


def open_streamed(path: Path, device: DeviceKeysLike, trusted_signers: list[Ed25519PublicKey], now: datetime,
                  last_seq: int | Callable[[str], int], *, kind: str | None = None) -> StreamedBundle:
    """Verify a format-2 bundle file in one streamed pass and check its header (the same checks and
    codes as open_bundle); its content is read later through the returned object."""
    path = Path(path)
    h = _SIGNED_TAIL()
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > MAX_STREAMED_SIZE:
            raise BundleRefused("oversized", f"the file is {size} bytes, more than the {MAX_STREAMED_SIZE} allowed")
        prefix = f.read(_PREFIX.size)
        if len(prefix) < _PREFIX.size or prefix[:3] != MAGIC:
            raise BundleRefused("bad_magic", "this file is not a handover bundle (it does not start with HTB)")
        if prefix[3:4] != str(STREAMED_FORMAT).encode():
            raise BundleRefused("unsupported_version", f"bundle format {prefix[3:4]!r} is not the streamed format")
        (_, header_len) = _PREFIX.unpack(prefix)
        if not 0 < header_len <= MAX_HEADER_SIZE:
            raise BundleRefused("malformed", "the bundle header length does not make sense")
        header_bytes = f.read(header_len)
        ct_len_bytes = f.read(_CT_LEN.size)
        if len(header_bytes) != header_len or len(ct_len_bytes) != _CT_LEN.size:
            raise BundleRefused("truncated", "the file ends inside the bundle header")
        (ct_len,) = _CT_LEN.unpack(ct_len_bytes)
        ct_at = _PREFIX.size + header_len + _CT_LEN.size
        if ct_at + ct_len + SIGNATURE_SIZE > size:
            raise BundleRefused("truncated", f"the file is {size} bytes but its lengths need "
                                             f"{ct_at + ct_len + SIGNATURE_SIZE}: it was cut short")
        if ct_at + ct_len + SIGNATURE_SIZE < size:
            raise BundleRefused("malformed", f"{size - ct_at - ct_len - SIGNATURE_SIZE} unexpected bytes after "
                                             "the signature")
        remaining = ct_len
        while remaining:
            block = f.read(min(CHUNK_SIZE, remaining))
            if not block:
                raise BundleRefused("truncated", "the file became shorter while it was read")
            h.update(block)
            remaining -= len(block)
        signature = f.read(SIGNATURE_SIZE)
    digest = h.digest()
    env = Envelope(header_bytes, memoryview(b""), memoryview(prefix + header_bytes + ct_len_bytes + digest),
                   signature)
    signer = verify_signature(env, trusted_signers)
    header = _checked_header(env, signer, STREAMED_FORMAT, device, now, last_seq, kind)
    return StreamedBundle(path, header, header_bytes, ct_at, ct_len, digest, device.bundle_key)


def pack_streamed(kind: str, jsonl: Path, out: Path, device_id: str, device_public: X25519PublicKey,
                  signer_private: Ed25519PrivateKey, seq: int, expires: datetime, now: datetime) -> int:
    """Write a format-2 bundle of `kind` from a JSON Lines payload file, streaming; returns its size."""
    if kind not in ("tasks", "personnel"):
        raise ValueError("streamed bundles carry tasks or personnel")
    if seq < 1 or expires <= now:
        raise ValueError("seq must be positive and expires after now")
    payload_size = os.stat(jsonl).st_size
    if payload_size > MAX_PAYLOAD_SIZE:
        raise ValueError(f"payload is {payload_size} bytes, the limit is {MAX_PAYLOAD_SIZE}")
    header = BundleHeader(STREAMED_FORMAT, kind, device_id, now, expires, seq, key_id(signer_private.public_key()),
                          payload_size, "zlib", "jsonl")
    header_bytes = json.dumps(header.to_dict(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    key = AESGCM.generate_key(256)
    enc = _HPKE.encrypt(key, device_public, info=_STREAM_INFO + header_bytes)
    aead, h = AESGCM(key), _SIGNED_TAIL()
    prefix = MAGIC + str(STREAMED_FORMAT).encode() + struct.pack(">H", len(header_bytes)) + header_bytes
    with open(jsonl, "rb") as src, open(out, "wb") as dst:
        dst.write(prefix + _CT_LEN.pack(0))         # the length is written once known

        def put(data: bytes) -> None:
            h.update(data)
            dst.write(data)
        put(_ENC_LEN.pack(len(enc)) + enc)
        z, pending, index = zlib.compressobj(1), b"", 0
        while block := src.read(CHUNK_SIZE):
            pending += z.compress(block)
            while len(pending) > CHUNK_SIZE:
                put(aead.encrypt(_nonce(index, False), pending[:CHUNK_SIZE], None))
                pending, index = pending[CHUNK_SIZE:], index + 1
        pending += z.flush()
        while len(pending) > CHUNK_SIZE:
            put(aead.encrypt(_nonce(index, False), pending[:CHUNK_SIZE], None))
            pending, index = pending[CHUNK_SIZE:], index + 1
        put(aead.encrypt(_nonce(index, True), pending, None))
        ct_len = dst.tell() - len(prefix) - _CT_LEN.size
        dst.seek(len(prefix))
        dst.write(_CT_LEN.pack(ct_len))
        dst.seek(0, os.SEEK_END)
        dst.write(signer_private.sign(prefix + _CT_LEN.pack(ct_len) + h.digest()))
        return dst.tell()


# --- writing (head office) ---------------------------------------------------------------------

def pack_bundle(kind: str, payload: dict | bytes, device_id: str, device_public: X25519PublicKey,
                signer_private: Ed25519PrivateKey, seq: int, expires: datetime, now: datetime,
                *, compress: bool | None = None) -> bytes:
    """Build a signed bundle of `kind` for one device.

    JSON payloads are compressed when that halves them, or always with compress=True; never with False.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if seq < 1:
        raise ValueError(f"seq must be a positive integer, got {seq}")
    if expires <= now:
        raise ValueError("expires must be after now")
    if isinstance(payload, dict):
        content, raw = "json", json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    else:
        content, raw = "bytes", bytes(payload)
    if len(raw) > MAX_PAYLOAD_SIZE:
        raise ValueError(f"payload is {len(raw)} bytes, the limit is {MAX_PAYLOAD_SIZE}")
    body = raw
    if compress is not False and content == "json":
        packed = zlib.compress(raw, 1)
        # Photos and templates (base64 of compressed data) barely shrink: inflating them costs more than it saves.
        if compress or len(packed) <= len(raw) // 2:
            body = packed
    compress = body is not raw
    header = BundleHeader(FORMAT_VERSION, kind, device_id, now, expires, seq,
                          key_id(signer_private.public_key()), len(raw), "zlib" if compress else "none", content)
    header_bytes = json.dumps(header.to_dict(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    if len(header_bytes) > MAX_HEADER_SIZE:
        raise ValueError("header too large: shorten the device id")
    ciphertext = _HPKE.encrypt(body, device_public, info=_HPKE_INFO + header_bytes)
    signed = b"".join([MAGIC, str(FORMAT_VERSION).encode(), struct.pack(">H", len(header_bytes)), header_bytes,
                       _CT_LEN.pack(len(ciphertext)), ciphertext])
    if len(signed) + SIGNATURE_SIZE > MAX_BUNDLE_SIZE:
        raise ValueError(f"bundle would be larger than {MAX_BUNDLE_SIZE} bytes: split the payload")
    return signed + signer_private.sign(signed)


def read_bundle_file(path) -> bytes:
    """Read a bundle file, refusing one over MAX_BUNDLE_SIZE before reading it all."""
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size > MAX_BUNDLE_SIZE:
            raise BundleRefused("oversized", f"the file is larger than the {MAX_BUNDLE_SIZE} bytes allowed")
        data = f.read(MAX_BUNDLE_SIZE + 1)  # the file may grow while it is read
    if len(data) > MAX_BUNDLE_SIZE:
        raise BundleRefused("oversized", f"the file is larger than the {MAX_BUNDLE_SIZE} bytes allowed")
    return data


# --- helpers -----------------------------------------------------------------------------------

class DeviceKeysLike(Protocol):
    """The part of protocol.keys.DeviceKeys this module needs."""
    device_id: str
    bundle_key: X25519PrivateKey


def _iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _field(d: dict, name: str, typ: type):
    v = d.get(name)
    if not isinstance(v, typ) or isinstance(v, bool):
        raise BundleRefused("malformed", f"header field '{name}' is missing or not a {typ.__name__}")
    return v


def _choice(d: dict, name: str, allowed: tuple[str, ...]) -> str:
    v = d.get(name)
    if v not in allowed:
        raise BundleRefused("malformed", f"header field '{name}' is {v!r}, expected one of {', '.join(allowed)}")
    return v


def _time(d: dict, name: str) -> datetime:
    v = _field(d, name, str)
    try:
        t = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise BundleRefused("malformed", f"header field '{name}' is not an ISO 8601 time") from None
    if t.tzinfo is None:
        raise BundleRefused("malformed", f"header field '{name}' has no time zone")
    return t
