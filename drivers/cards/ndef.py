"""Reading an NFC Forum Type 4 Tag's NDEF message over ISO 7816-4, and the URI records in it.

`read_ndef` talks through any `transmit(apdu) -> (data, sw)` callable, so the same code runs against
pyscard and the virtual card. Parsing is pure. Whatever a card answers, the only exceptions that leave
this module are `NotType4Tag` and `NdefError`, each with a `reason` the cloned-tag alarm can name
(tests/unit/test_ndef_fuzz.py holds it to that).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

Transmit = Callable[[bytes], tuple[bytes, int]]

NDEF_APPLICATION = bytes.fromhex("D2760000850101")
CC_FILE = bytes.fromhex("E103")
SW_OK = 0x9000
NLEN_SIZE = 2                    # the NDEF file starts with the message length; SDM offsets count it
# An NTAG 424 DNA's NDEF file is 256 bytes; a larger claim is a card answering nonsense, and reading it
# byte by byte would hold the reader for minutes.
MAX_NDEF_LENGTH = 4096
# NFC Forum URI record identifier codes (URI RTD, table 3); the ones a SUN URL plausibly uses.
URI_PREFIXES = {0x00: "", 0x01: "http://www.", 0x02: "https://www.", 0x03: "http://", 0x04: "https://"}


class NotType4Tag(Exception):
    """The card has no NDEF application: a plain UID badge or tag."""
    reason = "no_ndef_app"


class NdefError(Exception):
    """The tag claims to be a Type 4 Tag but what it returned cannot be read."""
    reason = "read_error"


@dataclass(frozen=True)
class UriRecord:
    """A well-known "U" record. `body` is the URI after its abbreviated prefix, one character per byte
    (latin-1), so `body_offset + i` is the NDEF file offset of `body[i]`: the offsets AN12196 uses
    (PICCDataOffset, SDMMACInputOffset, SDMMACOffset) count from the start of the file, NLEN included."""
    prefix: str
    body: str
    body_offset: int

    @property
    def uri(self) -> str:
        return self.prefix + self.body


def _select_file(transmit: Transmit, file_id: bytes) -> None:
    _, sw = transmit(bytes([0x00, 0xA4, 0x00, 0x0C, 0x02]) + file_id)
    if sw != SW_OK:
        raise NdefError(f"SELECT file {file_id.hex().upper()} failed with SW {sw:04X}")


def _read_binary(transmit: Transmit, offset: int, length: int, max_le: int) -> bytes:
    out = b""
    while len(out) < length:
        chunk = min(max_le, length - len(out))
        pos = offset + len(out)
        data, sw = transmit(bytes([0x00, 0xB0, pos >> 8, pos & 0xFF, chunk & 0xFF]))
        if sw != SW_OK or not data:
            raise NdefError(f"READ BINARY at {pos} failed with SW {sw:04X}")
        out += data[:chunk]
    return out


def read_ndef(transmit: Transmit) -> bytes:
    """The raw NDEF message of a Type 4 Tag (mapping 2.0): NDEF app, CC file, NDEF file."""
    _, sw = transmit(bytes([0x00, 0xA4, 0x04, 0x00, len(NDEF_APPLICATION)]) + NDEF_APPLICATION + b"\x00")
    if sw != SW_OK:
        raise NotType4Tag(f"no NDEF application (SELECT answered SW {sw:04X})")
    _select_file(transmit, CC_FILE)
    cc = _read_binary(transmit, 0, 15, 15)
    # CC: CCLEN(2) version(1) MLe(2) MLc(2) then the NDEF File Control TLV: 04 06 id(2) max(2) r w
    max_le = int.from_bytes(cc[3:5], "big")
    if cc[7] != 0x04 or cc[8] != 0x06 or max_le < 1:
        raise NdefError("capability container has no NDEF file control TLV")
    ndef_file, read_access = cc[9:11], cc[13]
    if read_access != 0x00:
        raise NdefError(f"the NDEF file is not readable without authentication (CC read access {read_access:02X})")
    max_le = min(max_le, 0xFF)   # short APDUs only: some readers refuse extended length
    _select_file(transmit, ndef_file)
    nlen = int.from_bytes(_read_binary(transmit, 0, NLEN_SIZE, max_le), "big")
    if nlen > MAX_NDEF_LENGTH:
        raise NdefError(f"NDEF length {nlen} is more than a tag holds ({MAX_NDEF_LENGTH})")
    return _read_binary(transmit, NLEN_SIZE, nlen, max_le) if nlen else b""


def uri_records(message: bytes) -> list[UriRecord]:
    """The well-known "U" records of an NDEF message (other records are skipped)."""
    found, pos = [], 0
    while pos < len(message):
        header = message[pos]
        short, has_id, tnf = header & 0x10, header & 0x08, header & 0x07
        try:
            type_len = message[pos + 1]
            pos += 2
            if short:
                payload_len, pos = message[pos], pos + 1
            else:
                if pos + 4 > len(message):
                    raise IndexError
                payload_len, pos = int.from_bytes(message[pos:pos + 4], "big"), pos + 4
            id_len = message[pos] if has_id else 0
            pos += 1 if has_id else 0
        except IndexError:
            raise NdefError("NDEF record header is truncated") from None
        rtype = message[pos:pos + type_len]
        start = pos + type_len + id_len
        payload = message[start:start + payload_len]
        pos = start + payload_len
        if pos > len(message):
            raise NdefError("NDEF record runs past the end of the message")
        if tnf == 0x01 and rtype == b"U" and payload:
            found.append(UriRecord(URI_PREFIXES.get(payload[0], ""), payload[1:].decode("latin-1"),
                                   NLEN_SIZE + start + 1))
        if header & 0x40:   # ME: last record
            break
    return found
