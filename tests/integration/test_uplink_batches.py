"""Sync's batches on a real journal: every entry once, in order, each batch as full as the caps allow
(the agent reads about two batches of rows ahead, so how it reads must not change what it sends),
and the cursor written at once when nothing is left in flight."""
from __future__ import annotations

import json
import random

import pytest

from agent.journal import Journal
from protocol import messages
from agent.sync.uplink import CURSOR, Outbox


@pytest.mark.parametrize("seed", range(4))
def test_batches_hold_every_entry_once_in_order_each_as_full_as_the_caps_allow(tmp_path, seed):
    rng = random.Random(seed)
    journal = Journal(tmp_path / "journal.db")
    with journal.transaction():
        for n in range(700):
            # mostly small entries, some large ones (a report, a photo reference list), one over the byte cap
            size = 9000 if n == 350 else rng.choice([20, 40, 80, 400, 2000])
            journal.append("box_read", {"n": n, "pad": "箱" * rng.randint(1, size)}, task_id=f"T{n % 9}")
    entries = {e.seq: messages.encode_entry("dev-a", e) for e in journal.entries()}
    batch_entries, batch_bytes = 50, 8 * 1024
    outbox = Outbox(journal, "dev-a", messages.Topics("ht/v1", "dev-a"), window=1000,
                    batch_entries=batch_entries, batch_bytes=batch_bytes)
    sent: list[bytes] = []

    def publish(topic: str, payload: bytes) -> int:
        assert topic == "ht/v1/dev-a/journal"
        sent.append(payload)
        return len(sent)
    assert outbox.fill(publish) == len(sent)

    seqs = []
    for payload in sent:
        batch = json.loads(payload)["entries"]
        assert 1 <= len(batch) <= batch_entries
        parts = [entries[e["seq"]] for e in batch]
        assert payload == b'{"v":1,"device":"dev-a","entries":[%s]}' % b",".join(parts)   # the entries' own bytes
        size = sum(len(p) + 1 for p in parts)
        assert len(parts) == 1 or size - 1 <= batch_bytes
        after = batch[-1]["seq"] + 1
        if after in entries and len(parts) < batch_entries:
            assert size + len(entries[after]) > batch_bytes, "a batch closed with room for the next entry"
        seqs += [e["seq"] for e in batch]
    assert seqs == list(range(1, 701))

    for mid in range(1, len(sent) + 1):      # every batch acknowledged: the cursor is written at once
        outbox.on_ack(mid)
    assert outbox.settle_acks() == 700 and journal.get_cursor(CURSOR) == 700
    journal.close()


def test_sending_goes_back_to_the_right_entry_whatever_was_read_ahead(tmp_path):
    """Entries read past a batch cut by the byte cap wait for the next batch; a publish that could not be
    queued, a rewind after a reconnect and head office's resend_from each start again at the right entry."""
    journal = Journal(tmp_path / "journal.db")
    with journal.transaction():
        for n in range(300):
            journal.append("box_read", {"n": n, "pad": "x" * (n % 7) * 60})
    outbox = Outbox(journal, "dev-a", messages.Topics("ht/v1", "dev-a"), window=3, batch_entries=50,
                    batch_bytes=2 * 1024)
    sent: dict[int, list[int]] = {}
    refuse = [False]

    def publish(topic: str, payload: bytes) -> int | None:
        if refuse[0]:
            return None
        sent[len(sent) + 1] = [e["seq"] for e in json.loads(payload)["entries"]]
        return len(sent)

    def first_of_next_batch() -> int:
        before = len(sent)
        assert outbox.fill(publish)
        return sent[before + 1][0]

    assert outbox.fill(publish) == 3 and sent[1][0] == 1
    for batch in (1, 2, 3):
        assert sent[batch] == list(range(sent[batch][0], sent[batch][-1] + 1))
    assert sent[2][0] == sent[1][-1] + 1 and sent[3][0] == sent[2][-1] + 1
    outbox.on_ack(1)
    outbox.settle_acks()
    refuse[0] = True
    assert outbox.fill(publish) == 0            # not queued: nothing counts as sent
    refuse[0] = False
    assert first_of_next_batch() == sent[3][-1] + 1
    outbox.rewind()                             # reconnected without the session: from the first unacked
    assert first_of_next_batch() == sent[1][-1] + 1
    outbox.resend_from(5)                       # head office is missing entry 5
    assert first_of_next_batch() == 5
    outbox.resend_from(1)
    while outbox.fill(publish) or outbox.in_flight:
        for mid in list(outbox._in_flight):
            outbox.on_ack(mid)
        outbox.settle_acks()
    assert outbox.acked_seq == 300 and journal.get_cursor(CURSOR) == 300
    start = max(mid for mid, seqs in sent.items() if seqs[0] == 1)     # the final pass, from entry 1
    final = [seq for mid in range(start, len(sent) + 1) for seq in sent[mid]]
    assert final == list(range(1, 301))
    journal.close()
