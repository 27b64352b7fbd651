"""What the camera worker (drivers/camera/worker.py) and the agent (drivers/camera/process.py) say over the
worker's pipes. Pure: no OpenCV here, so the agent can read the worker without loading it.

Agent -> worker: one byte per command, SNAP (start a snapshot) or DECIDED (the module has decided: no further
frame); end of input tells the worker to release the camera and exit.
Worker -> agent: messages framed as kind (1 byte) | payload length (4 bytes, big-endian) | payload.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

SNAP = b"S"
DECIDED = b"D"

HEADER = struct.Struct(">cI")
MAX_PAYLOAD = 4 << 20          # a face crop of a 1080p frame is well under 1 MB as JPEG
HEALTH_STATES = ("connected", "degraded", "missing")
END_REASONS = ("", "no_face", "no_camera")      # "": a face was sent before the end


class WireError(ValueError):
    """The worker sent something this side does not understand; the message says what."""


@dataclass(frozen=True)
class Ready:
    """The cascade is loaded and the camera opened (or found missing): snapshots can be asked for."""


@dataclass(frozen=True)
class Health:
    state: str
    detail: str | None


@dataclass(frozen=True)
class Face:
    """A better face than any before it in this snapshot, as JPEG."""
    jpeg: bytes


@dataclass(frozen=True)
class End:
    """The snapshot is over; `reason` when no face was sent."""
    reason: str


Message = Ready | Health | Face | End


def encode(message: Message) -> bytes:
    match message:
        case Ready():
            kind, payload = b"R", b""
        case Health(state, detail):
            kind, payload = b"H", state.encode() + (b"\n" + detail.encode("utf-8", "replace") if detail else b"")
        case Face(jpeg):
            kind, payload = b"F", jpeg
        case End(reason):
            kind, payload = b"E", reason.encode()
    return HEADER.pack(kind, len(payload)) + payload


def split(buffer: bytes) -> tuple[list[Message], bytes]:
    """The whole messages at the start of `buffer`, and the bytes of an unfinished one after them."""
    messages, at = [], 0
    while len(buffer) - at >= HEADER.size:
        kind, length = HEADER.unpack_from(buffer, at)
        if kind not in b"RHFE":
            raise WireError(f"camera worker message of unknown kind {kind!r}")
        if length > MAX_PAYLOAD:
            raise WireError(f"camera worker message of {length} bytes, over the {MAX_PAYLOAD} limit")
        if len(buffer) - at - HEADER.size < length:
            break
        start = at + HEADER.size
        messages.append(_decode(kind, buffer[start:start + length]))
        at = start + length
    return messages, buffer[at:]


def _decode(kind: bytes, payload: bytes) -> Message:
    if kind == b"R":
        if payload:
            raise WireError(f"camera worker 'ready' with {len(payload)} bytes of payload, expected none")
        return Ready()
    if kind == b"F":
        if not payload.startswith(b"\xff\xd8"):
            raise WireError("camera worker face is not a JPEG (no FFD8 start)")
        return Face(payload)
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WireError(f"camera worker {'health' if kind == b'H' else 'end'} is not UTF-8: {exc.reason}") from None
    if kind == b"E":
        if text not in END_REASONS:
            raise WireError(f"camera worker snapshot ended for an unknown reason {text[:40]!r}")
        return End(text)
    state, _, detail = text.partition("\n")
    if state not in HEALTH_STATES:
        raise WireError(f"camera worker health state {state[:40]!r} is none of {', '.join(HEALTH_STATES)}")
    return Health(state, detail or None)
