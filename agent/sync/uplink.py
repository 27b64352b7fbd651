"""Uplink: the journal is the outbox (SPEC §4, docs/mqtt.md).

Entries go out in journal order as batches on <prefix>/<device>/journal with QoS 1. At most
`window` batches are unacknowledged at once, and the persisted cursor ("hq") moves only over a
contiguous run of acknowledged batches, so a crash at any point resends from the first entry
head office may not have — never skips one. While batches are in flight it is written every
CURSOR_EVERY seconds, not per acknowledgement (a durable commit per batch was a fifth of a drain).
Alarms and task progress also go out at once on <prefix>/<device>/urgent, ahead of any backlog;
receivers drop duplicates by entry id.
"""
from __future__ import annotations

import collections
import json
import threading
import time
from dataclasses import dataclass
from typing import Callable

from protocol import messages

CURSOR = "hq"
# The cursor is written (a durable commit) at most this often while batches are in flight, and at once
# when none are: a power cut then resends at most this much, which head office drops as duplicates.
CURSOR_EVERY = 0.1
DEFAULT_URGENT_KINDS = frozenset({
    "alarm", "vehicle_arrival", "escort_verified", "officer_confirmed", "handover_completed", "handover_aborted",
})


@dataclass
class _Batch:
    first: int
    last: int
    acked: bool = False


_json_string = json.encoder.encode_basestring     # json.dumps of a str with ensure_ascii=False


def stored_encoder(device: str) -> Callable[[tuple], bytes]:
    """messages.encode_entry of a stored row (Journal.stored_rows), byte for byte: the body goes out as
    the canonical JSON text the journal keeps (keys sorted, as encode_entry's parse-and-dump gives). The
    id's device part is quoted once (":" and digits never need escaping); a drain encodes every entry."""
    id_prefix = '{"id":' + _json_string(device)[:-1] + ":"

    def encode(row: tuple) -> bytes:
        seq, ts, kind, task_id, body, prev_hash, hash_ = row
        task = "null" if task_id is None else _json_string(task_id)
        return (f'{id_prefix}{seq}","seq":{seq},"ts":{_json_string(ts)},"kind":{_json_string(kind)},'
                f'"task_id":{task},"body":{body},"prev_hash":{_json_string(prev_hash)},'
                f'"hash":{_json_string(hash_)}}}').encode("utf-8")
    return encode


# publish(topic, payload) -> the QoS 1 message id, or None when it could not be queued now
Publish = Callable[[str, bytes], "int | None"]


class Outbox:
    """Feeds the journal to `publish` in order; call `on_ack(mid)` for each PUBACK (any thread)."""

    def __init__(self, journal, device: str, topics: messages.Topics, *, window: int = 10,
                 batch_entries: int = 200, batch_bytes: int = 32 * 1024,
                 urgent_kinds: frozenset[str] = DEFAULT_URGENT_KINDS, urgent_limit: int = 1000):
        self.journal = journal
        self.device = device
        self.topics = topics
        self.window = window
        self.batch_entries = batch_entries
        self.batch_bytes = batch_bytes
        self.urgent_kinds = urgent_kinds
        self.acked_seq = journal.get_cursor(CURSOR)
        self._persisted = self.acked_seq           # what the journal's cursor says
        self._persist_due = 0.0
        self._next_seq = self.acked_seq + 1
        self._device_json = messages.encode(device)
        self._encode = stored_encoder(device)
        # Entries read and encoded but not sent yet, (seq, wire bytes), from _next_seq on: a batch cut by the
        # byte cap leaves the rest for the next one instead of reading and encoding them again.
        self._ahead: collections.deque[tuple[int, bytes]] = collections.deque()
        self._fetch = batch_entries
        self._in_flight: collections.OrderedDict[int, _Batch] = collections.OrderedDict()
        self._acks: collections.deque[int] = collections.deque()
        # Bounded: after a long outage the oldest urgent copies drop; they are in the stream anyway.
        self._urgent: collections.deque = collections.deque(maxlen=urgent_limit)
        self._lock = threading.Lock()

    # -- called from other threads ---------------------------------------------------------------

    def on_entry(self, entry) -> bool:
        """Journal subscriber: queue urgent kinds for the fast lane. True when queued."""
        if entry.kind in self.urgent_kinds:
            self._urgent.append(entry)
            return True
        return False

    def on_ack(self, mid: int) -> None:
        self._acks.append(mid)

    # -- called from the sync thread only ----------------------------------------------------------

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def backlog(self) -> int:
        return max(0, self.journal.last_seq() - self.acked_seq)

    def resend_from(self, seq: int) -> None:
        """Head office asks again from `seq`: forget what is in flight and go back (never forward)."""
        target = max(0, min(seq - 1, self.acked_seq))
        self._in_flight.clear()
        self._acks.clear()
        self._ahead.clear()
        if target != self.acked_seq:
            self.journal.set_cursor(CURSOR, target)
            self.acked_seq = self._persisted = target
        self._next_seq = target + 1

    def rewind(self) -> None:
        """After a reconnect without the old session: nothing in flight can be trusted to arrive."""
        self.resend_from(self.acked_seq + 1)

    def settle_acks(self) -> int:
        """Mark acknowledged batches, then move the cursor over the contiguous acknowledged prefix."""
        while self._acks:
            batch = self._in_flight.get(self._acks.popleft())
            if batch is not None:  # else an urgent copy, health or an abandoned batch
                batch.acked = True
        new_acked = self.acked_seq
        while self._in_flight:
            mid, batch = next(iter(self._in_flight.items()))
            if not batch.acked:
                break
            self._in_flight.popitem(last=False)
            new_acked = batch.last
        if new_acked != self._persisted and (not self._in_flight or time.monotonic() >= self._persist_due):
            self._persist(new_acked)            # before acked_seq moves: a reader of both sees them agree
        self.acked_seq = new_acked
        return new_acked

    def flush(self) -> None:
        """Write the cursor now if it lags what was acknowledged (a clean stop)."""
        if self.acked_seq != self._persisted:
            self._persist(self.acked_seq)

    def _persist(self, seq: int) -> None:
        self.journal.set_cursor(CURSOR, seq)
        self._persisted = seq
        self._persist_due = time.monotonic() + CURSOR_EVERY

    def send_urgent(self, publish: Publish) -> int:
        sent = 0
        while self._urgent:
            entry = self._urgent.popleft()
            if entry.seq <= self.acked_seq:
                continue  # head office has it already
            payload = b'{"v":1,"device":%s,"entry":%s}' % (
                messages.encode(self.device), messages.encode_entry(self.device, entry))
            if publish(self.topics.up("urgent"), payload) is None:
                self._urgent.appendleft(entry)
                break
            sent += 1
        return sent

    def fill(self, publish: Publish) -> int:
        """Publish batches until the window is full or the journal is drained; returns batches sent."""
        sent = 0
        head = self.journal.last_seq()
        ahead = self._ahead
        while len(self._in_flight) < self.window and self._next_seq <= head:
            if self._urgent:  # an alarm appended meanwhile goes before the next batch
                self.send_urgent(publish)
            parts, size, last = [], 0, self._next_seq - 1
            while len(parts) < self.batch_entries:
                if not ahead and not self._read_ahead(last):
                    break                       # the end of the journal
                seq, part = ahead[0]
                if parts and size + len(part) > self.batch_bytes:
                    break
                ahead.popleft()
                parts.append(part)
                size += len(part) + 1
                last = seq
            if not parts:
                break
            # read about two batches at a time (the byte cap, not the count, ends most): half the queries
            self._fetch = min(self.batch_entries, 2 * len(parts) + 8)
            payload = b'{"v":1,"device":%s,"entries":[%s]}' % (self._device_json, b",".join(parts))
            mid = publish(self.topics.up("journal"), payload)
            if mid is None:
                ahead.clear()                   # read again from _next_seq next time
                break
            self._in_flight[mid] = _Batch(self._next_seq, last)
            self._next_seq = last + 1
            sent += 1
            # No sleep(0) here: reading a batch (sqlite3) and handing it to paho (socket) each release the GIL,
            # which lets the handover's thread in; a yield per batch was an eighth of the drain's CPU.
        return sent

    def _read_ahead(self, after_seq: int) -> int:
        rows = self.journal.stored_rows(after_seq, self._fetch)
        encode = self._encode
        self._ahead.extend((row[0], encode(row)) for row in rows)
        return len(rows)
