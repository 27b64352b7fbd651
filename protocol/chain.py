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
    if entry["prev_hash"] != prev_hash:
        return f"entry {entry['id']} does not link to the entry before it (prev_hash differs)"
    recomputed = entry_hash(entry["seq"], entry["ts"], entry["kind"], entry["task_id"], entry["body"],
                            entry["prev_hash"])
    if recomputed != entry["hash"]:
        return f"entry {entry['id']} does not match its hash: its content was altered"
    return None
