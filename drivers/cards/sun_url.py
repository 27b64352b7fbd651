"""Where a tag's SUN message sits in its NDEF URL: the deployment's layout, as configuration.

NXP AN12196 leaves the URL to whoever personalises the tags: the tag mirrors the encrypted PICCData
(32 hex characters) at PICCDataOffset and the SDMMAC (16 hex characters) at SDMMACOffset of the NDEF
file, and MACs the file's bytes from SDMMACInputOffset up to SDMMACOffset (nothing, when the two are
equal). A `SunLayout` says how to find those two values in the URL and what the MAC covers:

- query style (default): named parameters, `?picc_data=…&cmac=…` (AN12196 p. 18) or `?e=…&c=…`
  (AN12196 p. 12, ntag.nxp.com); either order; `&amp;` (a URL copied from HTML) is read as `&`;
- path style: path segments by position, `https://host/t/<PICCData>/<SDMMAC>` (-2 and -1);
- `mac_input_offset`: SDMMACInputOffset as programmed into the tag (NDEF file offset, NLEN included);
  None means SDMMACInputOffset == SDMMACOffset, the empty MAC input;
- `random_uid`: the tags answer with a random UID (privacy mode); the box is found by the UID inside
  the decrypted PICCData instead.

Pure; whatever the URL holds, only `SunError` ("malformed") leaves `find_sun`.
"""
from __future__ import annotations

import string
from dataclasses import dataclass

from drivers.cards.ndef import MAX_NDEF_LENGTH, NLEN_SIZE, UriRecord, uri_records
from drivers.cards.sun import SunError

URL_STYLES = ("query", "path")
PICC_HEX_LEN, MAC_HEX_LEN = 32, 16
_HEX = frozenset(string.hexdigits)
_PARAM_FORBIDDEN = frozenset("&=#?/ ")


@dataclass(frozen=True)
class SunLayout:
    url_style: str = "query"
    picc_param: str = "picc_data"
    mac_param: str = "cmac"
    picc_segment: int = -2
    mac_segment: int = -1
    mac_input_offset: int | None = None
    random_uid: bool = False

    def __post_init__(self):
        if self.url_style not in URL_STYLES:
            raise ValueError(f"url_style must be one of {', '.join(URL_STYLES)}, not {self.url_style!r}")
        for what, name in (("picc_param", self.picc_param), ("mac_param", self.mac_param)):
            if not name or _PARAM_FORBIDDEN & set(name):
                raise ValueError(f"{what} must be a non-empty URL parameter name without & = # ? / or spaces")
        if self.picc_param == self.mac_param:
            raise ValueError("picc_param and mac_param must differ")
        if self.picc_segment == self.mac_segment:
            raise ValueError("picc_segment and mac_segment must differ")
        if self.mac_input_offset is not None and not 0 <= self.mac_input_offset <= 0xFFFFFF:
            raise ValueError("mac_input_offset (SDMMACInputOffset) is a 3-byte file offset")


@dataclass(frozen=True)
class SunFields:
    picc_hex: str
    mac_hex: str
    mac_input: bytes      # what the tag MACed: the file bytes from SDMMACInputOffset to SDMMACOffset


def _query_values(body: str) -> dict[str, list[tuple[str, int]]]:
    """Query parameters -> every (value, position of the value in `body`) given for it."""
    start = body.find("?")
    if start < 0:
        return {}
    end = body.find("#", start)
    end = len(body) if end < 0 else end
    found: dict[str, list[tuple[str, int]]] = {}
    i = start + 1
    while i < end:
        j = body.find("&", i, end)
        j = end if j < 0 else j
        key, eq, value = body[i:j].partition("=")
        if eq:
            found.setdefault(key, []).append((value, i + len(key) + 1))
        i = j + 1
        if body.startswith("amp;", i):
            i += 4
    return found


def _segment_values(record: UriRecord) -> list[tuple[str, int]]:
    """Non-empty path segments -> (segment, position in `body`)."""
    body, start = record.body, 0
    if not record.prefix:                     # no abbreviation: the body carries the scheme itself
        scheme = body.find("://")
        if scheme > 0 and "/" not in body[:scheme]:
            start = scheme + 3
    host_end = body.find("/", start)
    if host_end < 0:
        return []
    stop = min([p for p in (body.find("?", host_end), body.find("#", host_end)) if p >= 0], default=len(body))
    out, pos = [], host_end + 1
    for segment in body[host_end + 1:stop].split("/"):
        if segment:
            out.append((segment, pos))
        pos += len(segment) + 1
    return out


def _is_hex(value: str, size: int) -> bool:
    return len(value) == size and set(value) <= _HEX


def _locate(record: UriRecord, layout: SunLayout) -> tuple[tuple[str, int], tuple[str, int]] | None:
    if layout.url_style == "query":
        values = _query_values(record.body)
        if layout.picc_param not in values or layout.mac_param not in values:
            return None
        for name in (layout.picc_param, layout.mac_param):
            if len(values[name]) > 1:         # which one did the tag mirror? Do not guess.
                raise SunError("malformed", f"URL parameter {name!r} appears more than once")
        return values[layout.picc_param][0], values[layout.mac_param][0]
    segments = _segment_values(record)
    try:
        picc, mac = segments[layout.picc_segment], segments[layout.mac_segment]
    except IndexError:
        return None
    # Any URL has path segments: only hex of the right size there is a SUN message at all.
    if _is_hex(picc[0], PICC_HEX_LEN) and _is_hex(mac[0], MAC_HEX_LEN):
        return picc, mac
    return None


def find_sun(message: bytes, layout: SunLayout) -> SunFields | None:
    """The SUN message of the first URI record that carries one, or None when the tag offers none.
    Raises NdefError for an unreadable message and SunError("malformed") for an impossible one."""
    for record in uri_records(message):
        located = _locate(record, layout)
        if located is None:
            continue
        (picc, _), (mac, mac_pos) = located
        mac_input = b""
        if layout.mac_input_offset is not None:
            mac_offset = record.body_offset + mac_pos          # SDMMACOffset of this URL
            if layout.mac_input_offset > mac_offset:
                raise SunError("malformed", f"SDMMACInputOffset {layout.mac_input_offset} lies after the "
                                            f"SDMMAC at file offset {mac_offset}")
            if len(message) > MAX_NDEF_LENGTH:
                raise SunError("malformed", f"NDEF message of {len(message)} bytes is more than a tag holds")
            file = len(message).to_bytes(NLEN_SIZE, "big") + message
            mac_input = file[layout.mac_input_offset:mac_offset]
        return SunFields(picc, mac, mac_input)
    return None
