"""Sync's batches on a real journal: every entry once, in order, each batch as full as the caps allow
(the agent reads about as many rows as the last batch took, so how it reads must not change what it sends),
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
