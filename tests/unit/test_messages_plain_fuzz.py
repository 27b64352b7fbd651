"""The cheap checks on head office's hot path must judge exactly as the slow ones they replace:
- `messages.check` accepts a journal/urgent message without the full JSON Schema validator only when the
  validator would accept it too (never looser), and a well-formed message does take that cheap path;
- `safejson.depth` (strings removed, brackets walked) gives the same depth as a plain token-by-token count
  over any bytes, valid JSON or not."""
from __future__ import annotations

import json
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import messages, safejson
from protocol.chain import GENESIS_HASH, entry_hash

FUZZ = settings(max_examples=600, deadline=None)

scalars = (st.none() | st.booleans() | st.integers(-3, 2**63) | st.floats(allow_nan=False)
           | st.sampled_from(["", "x", "d:1", "2026-06-01T08:00:00.000Z", "2026-06-01T08:00:00.000Z\n", "a" * 64,
                              "0" * 64, "0" * 64 + "\n", "١٢٣٤-06-01T08:00:00.000Z"]) | st.text(max_size=8))
values = st.recursive(scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
                      max_leaves=8)


def entry(seq: int = 1) -> dict:
    ts, body = "2026-06-01T08:00:00.000Z", {"box": "B1"}
    return {"id": f"dev:{seq}", "seq": seq, "ts": ts, "kind": "box_read", "task_id": None, "body": body,
            "prev_hash": GENESIS_HASH, "hash": entry_hash(seq, ts, "box_read", None, body, GENESIS_HASH)}


def mutated(base: dict, changes: dict, drop: list) -> dict:
    out = {**base, **changes}
    for key in drop:
        out.pop(key, None)
    return out


entry_keys = st.sampled_from(["id", "seq", "ts", "kind", "task_id", "body", "prev_hash", "hash", "extra"])
entries = st.builds(lambda ch, drop: mutated(entry(), ch, drop), st.dictionaries(entry_keys, values, max_size=2),
                    st.lists(entry_keys, max_size=1))
top_keys = st.sampled_from(["v", "device", "entries", "entry", "extra"])


@FUZZ
@given(st.lists(entries, max_size=3), st.dictionaries(top_keys, values, max_size=2), st.lists(top_keys, max_size=1))
def test_cheap_check_accepts_only_what_the_schema_accepts(items, changes, drop):
    for name, base in (("journal", {"v": 1, "device": "dev", "entries": items}),
                       ("urgent", {"v": 1, "device": "dev", "entry": items[0] if items else entry()})):
        payload = json.loads(json.dumps(mutated(base, changes, drop)))
        if messages._PLAIN_ACCEPT[name](payload):
            assert messages.validator(name).is_valid(payload), payload


def test_a_well_formed_journal_message_takes_the_cheap_path():
    payload = {"v": 1, "device": "dev", "entries": [entry(1), entry(2)]}
    assert messages._PLAIN_ACCEPT["journal"](payload)
    assert messages._PLAIN_ACCEPT["urgent"]({"v": 1, "device": "dev", "entry": entry(1)})
    bad = {**payload, "entries": [{**entry(1), "seq": 0}]}
    assert not messages._PLAIN_ACCEPT["journal"](bad)
    try:
        messages.check("journal", bad)
    except messages.MessageError as exc:
        assert "entries/0/seq" in str(exc)      # refused with the full validator's words
    else:
        raise AssertionError("seq 0 was accepted")


_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def reference_depth(raw: bytes) -> int:
    """The plain count: every string token skipped whole, every bracket counted."""
    level = deepest = 0
    for m in _TOKENS.finditer(raw):
        c = m.group()[:1]
        if c in b"[{":
            level += 1
            deepest = max(deepest, level)
        elif c in b"]}":
            level -= 1
    return deepest


json_ish = st.lists(st.sampled_from([b"[", b"]", b"{", b"}", b'"', b"\\", b"\\\"", b"a", b"\n", b",", b":", b"\xff"]),
                    max_size=60).map(b"".join)


@FUZZ
@given(json_ish | st.binary(max_size=80) | values.map(lambda v: json.dumps(v).encode()))
def test_depth_equals_the_plain_token_count(raw):
    assert safejson.depth(raw) == reference_depth(raw)
