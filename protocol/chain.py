"""The journal entry hash chain (SPEC §3): how an entry's hash is computed and checked, the same on the
device that appends it and at head office that receives it (docs/mqtt.md, "Hash chain")."""
from __future__ import annotations

import hashlib
import json

GENESIS_HASH = "0" * 64   # prev_hash of entry 1

_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def canonical(value) -> str:
    return _CANONICAL.encode(value)


def entry_hash(seq: int, ts: str, kind: str, task_id: str | None, body: dict, prev_hash: str) -> str:
    """Hex sha256 of an entry's canonical JSON; what head office recomputes from published entries."""
    fields = {"seq": seq, "ts": ts, "kind": kind, "task_id": task_id, "body": body, "prev_hash": prev_hash}
    return hashlib.sha256(canonical(fields).encode("utf-8")).hexdigest()


def chain_problem(entry: dict, prev_hash: str) -> str | None:
    """Why a wire entry (schemas/entry.json) does not follow the entry whose hash is prev_hash; None if it does."""
    return checked_body(entry, prev_hash)[0]


def checked_body(entry: dict, prev_hash: str) -> tuple[str | None, str]:
    """(chain_problem, the body's canonical JSON): head office stores the body as the text it hashed, so
    each entry's body is encoded once. The text is entry_hash's, built around the encoded body (keys in
    sorted order: body, kind, prev_hash, seq, task_id, ts; tests/unit/test_chain_fuzz.py holds them equal)."""
    body = canonical(entry["body"])
    if entry["prev_hash"] != prev_hash:
        return f"entry {entry['id']} does not link to the entry before it (prev_hash differs)", body
    text = (f'{{"body":{body},"kind":{canonical(entry["kind"])},"prev_hash":{canonical(entry["prev_hash"])},'
            f'"seq":{canonical(entry["seq"])},"task_id":{canonical(entry["task_id"])},"ts":{canonical(entry["ts"])}}}')
    if hashlib.sha256(text.encode("utf-8")).hexdigest() != entry["hash"]:
        return f"entry {entry['id']} does not match its hash: its content was altered", body
    return None, body
