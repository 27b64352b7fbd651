"""Face snapshots up to head office (issue 16): capped, sealed to head office's records key, sent from a
durable outbox (protocol/snapshot.py, docs/mqtt.md "Face snapshots").

The outbox is a table in the journal's database, written in the same place the photo is stored and before
the attempt's journal entry names it, so a snapshot referenced by the journal is never only in memory. A row
goes only when head office answers `snapshot_stored` for it, i.e. after head office has checked the hash and
committed the blob: a broker that was down, a head office without the records key, or a terminal restart
leaves it in the outbox, and it is sent again. The terminal holds only the public half of the key.
"""
from __future__ import annotations

import io
import logging
import threading
import time

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from agent.journal import Journal
from protocol.snapshot import MAX_JPEG_BYTES, MAX_SIDE, jpeg_dimensions, seal_snapshot, uplink

log = logging.getLogger("handover.snapshots")

RECORDS_KEY_FILE = "hq_records.pem"     # head office's records PUBLIC key, in the keys directory
RESEND_AFTER = 30.0                     # seconds without head office's answer before a snapshot goes again
IN_FLIGHT = 4                           # snapshots sent and not yet answered (each up to ~85 KiB on the wire)
_TABLE = "snapshot_outbox"


def cap_jpeg(jpeg: bytes) -> bytes:
    """The snapshot as it is kept and sent: unchanged when within MAX_SIDE and MAX_JPEG_BYTES (the OpenCV
    camera caps at the source), else scaled down and re-encoded at falling quality until it fits. A photo
    that is no image is returned as it is (the camera's own bytes; it is not sent if it is too large)."""
    size = jpeg_dimensions(jpeg)
    if size is not None and max(size) <= MAX_SIDE and len(jpeg) <= MAX_JPEG_BYTES:
        return jpeg
    return _reencoded(jpeg)


def _reencoded(jpeg: bytes) -> bytes:
    # Pillow only for a face over the cap: the agent at rest carries none (issue 20's memory budget; the
    # OpenCV camera's faces fit as taken, so only another camera's large frames bring it in)
    from PIL import Image, UnidentifiedImageError
    try:
        img = Image.open(io.BytesIO(jpeg))
        img = img.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return jpeg
    img.thumbnail((MAX_SIDE, MAX_SIDE))
    for quality in (85, 75, 60, 45, 30):
        out = io.BytesIO()
        img.save(out, "JPEG", quality=quality, optimize=True)
        if out.tell() <= MAX_JPEG_BYTES:
            break
    return out.getvalue()


class SnapshotOutbox:
    """What is sealed and waiting for head office. Written from the agent's loop (through a thread), read and
    emptied by the sync thread; the journal's lock orders the two."""

    def __init__(self, journal: Journal, device: str, key: X25519PublicKey | None):
        self.journal = journal
        self.device = device
        self.key = key
        self._sent: dict[str, float] = {}       # hash -> when it was last sent (monotonic), until answered
        self._lock = threading.Lock()
        with journal.transaction():
            journal.db.execute(f"CREATE TABLE IF NOT EXISTS {_TABLE} (hash TEXT PRIMARY KEY, sealed TEXT NOT NULL, "
                               "message BLOB NOT NULL, added TEXT NOT NULL)")
            self._count = journal.db.execute(f"SELECT count(*) FROM {_TABLE}").fetchone()[0]

    def add(self, jpeg: bytes) -> None:
        """Seal one stored snapshot for head office and keep it until head office has it (no key: nothing)."""
        if self.key is None or len(jpeg) > MAX_JPEG_BYTES:
            return
        digest, sealed = seal_snapshot(self.key, self.device, jpeg)
        with self.journal.transaction():
            added = self.journal.db.execute(f"INSERT OR IGNORE INTO {_TABLE} (hash, sealed, message, added) "
                                            "VALUES (?, ?, ?, datetime('now'))",
                                            (digest, sealed, uplink(self.key, self.device, digest, sealed))).rowcount
            self._count += added

    def due(self) -> list[tuple[str, bytes]]:
        """(hash, message) to send now: never sent since the link came up, or unanswered for RESEND_AFTER;
        at most IN_FLIGHT awaiting an answer."""
        if not self._count:
            return []
        now = time.monotonic()
        with self._lock:
            waiting = sum(1 for t in self._sent.values() if now - t < RESEND_AFTER)
            room = IN_FLIGHT - waiting
            if room <= 0:
                return []
            fresh = [h for h, t in self._sent.items() if now - t < RESEND_AFTER]
        marks = ",".join("?" * len(fresh))
        with self.journal.transaction():     # the connection is the journal's: read between its writes
            rows = self.journal.db.execute(
                f"SELECT hash, message FROM {_TABLE} WHERE hash NOT IN ({marks}) ORDER BY added, hash LIMIT ?",
                (*fresh, room)).fetchall()
        with self._lock:
            for digest, _ in rows:
                self._sent[digest] = now
        return [(d, bytes(m)) for d, m in rows]

    def stored(self, hashes: list[str]) -> int:
        """Head office has these: they leave the outbox. How many were here."""
        with self._lock:
            for digest in hashes:
                self._sent.pop(digest, None)
        marks = ",".join("?" * len(hashes))
        with self.journal.transaction():
            gone = self.journal.db.execute(f"DELETE FROM {_TABLE} WHERE hash IN ({marks})", tuple(hashes)).rowcount
            self._count -= gone
        return gone

    def link_up(self) -> None:
        """A new connection: what was in flight on the old one goes again now."""
        with self._lock:
            self._sent.clear()

    def pending(self) -> int:
        return self._count
