"""Head office checks each entry with `checked_body`, which builds the hashed text around the body encoded
once; it must agree with `entry_hash`, the chain's definition, on every entry — odd strings, numbers, nesting,
non-ASCII — and its body text must be the body's canonical JSON (what is stored)."""
from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.chain import GENESIS_HASH, canonical, checked_body, entry_hash

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
bodies = st.dictionaries(st.text(), st.recursive(scalars, lambda c: st.lists(c) | st.dictionaries(st.text(), c),
                                                 max_leaves=10), max_size=5)


@settings(max_examples=500, deadline=None)
@given(bodies, st.integers(1, 2**63) | st.just(1.0), st.text(), st.text(), st.none() | st.text(),
       st.sampled_from([GENESIS_HASH, "a" * 64, "a" * 64 + "\n"]), st.booleans())
def test_checked_body_agrees_with_entry_hash(body, seq, ts, kind, task_id, prev, altered):
    entry = {"id": "d:1", "seq": seq, "ts": ts, "kind": kind, "task_id": task_id, "body": body, "prev_hash": prev}
    entry["hash"] = entry_hash(seq, ts, kind, task_id, body, prev)
    if altered:
        entry["body"] = {**body, "x": 1} if "x" not in body else {k: v for k, v in body.items() if k != "x"}
    problem, text = checked_body(entry, prev)
    assert (problem is None) == (entry_hash(seq, ts, kind, task_id, entry["body"], prev) == entry["hash"])
    assert text == canonical(entry["body"]) and json.loads(text) == entry["body"]
    assert checked_body(entry, "f" * 64)[0] is not None or prev == "f" * 64
