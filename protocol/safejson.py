"""JSON from outside, read with bounds: a size cap and a nesting cap checked before the parser runs.

Python's json parser recurses once per level, so 5,000 `[` raise RecursionError, and whatever walks the
result afterwards (a schema validator, a hash, a writer) recurses again. The depth is counted first by
one regular-expression pass that skips string contents, so a deep document is refused before any
recursion starts. JSON's escapes can also spell an unpaired surrogate ("\\ud800"), which the parser
accepts but no UTF-8 writer (the journal, SQLite, a reply) can encode: it is refused here, naming the
field. Every failure is a `JsonRefused` with a reason in words.
"""
from __future__ import annotations

import json
import re
from typing import Any

# Strings (with their escapes) are removed whole so brackets inside them do not count; what is left of the
# brackets is walked. (Unrolled: `"[^"\\]*(?:\\.[^"\\]*)*"` is the same language as `"(?:[^"\\]|\\.)*"` at a
# tenth of the cost, and the walk sees a few brackets an entry instead of every token: head office's hot path.)
_STRINGS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_OPEN = frozenset(b"[{")
# a \uD800-\uDFFF escape: only then can the parsed value hold a surrogate (raw UTF-8 cannot encode one)
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class JsonRefused(ValueError):
    """The bytes are not JSON this reader accepts; the message says why."""


def depth(raw: bytes) -> int:
    """The deepest nesting of arrays/objects in raw (assuming JSON; unbalanced input still terminates)."""
    level = deepest = 0
    for c in _STRINGS.sub(b"", raw).translate(None, _NOT_BRACKETS):
        if c in _OPEN:
            level += 1
            deepest = max(deepest, level)
        else:
            level -= 1
    return deepest


def loads(raw: bytes | str, *, max_depth: int, max_bytes: int) -> Any:
    """Parse raw as UTF-8 JSON no longer than max_bytes and no deeper than max_depth."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    if len(raw) > max_bytes:
        raise JsonRefused(f"{len(raw)} bytes, more than the {max_bytes} allowed")
    found = depth(raw)
    if found > max_depth:
        raise JsonRefused(f"nested {found} levels deep, more than the {max_depth} allowed")
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise JsonRefused(f"not valid UTF-8 JSON ({type(exc).__name__} at position {getattr(exc, 'pos', '?')})") \
            from None
    except RecursionError:  # cannot happen below the depth cap, but a parser error must stay a refusal
        raise JsonRefused("nested too deeply") from None
    if _SURROGATE_ESCAPE.search(raw) and (where := unpaired_surrogate(value)) is not None:
        raise JsonRefused(f"not text: {where[:200]} holds an unpaired surrogate (a \\ud800-\\udfff escape)")
    return value


def unpaired_surrogate(value: Any) -> str | None:
    """The path ("tasks/0/vehicle/plate") of a string or field name holding an unpaired surrogate, or None."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        v, path = stack.pop()
        if isinstance(v, str):
            if not _encodable(v):
                return path or "(top level)"
        elif isinstance(v, dict):
            for k, child in v.items():
                if not _encodable(k):
                    return f"a field name in {path or '(top level)'}"
                stack.append((child, f"{path}/{k}" if path else k))
        elif isinstance(v, list):
            stack.extend((child, f"{path}/{i}" if path else str(i)) for i, child in enumerate(v))
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def nesting(value: Any) -> int:
    """How deep arrays/objects nest in an already parsed value, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, level = stack.pop()
        if isinstance(v, dict):
            v = v.values()
        elif not isinstance(v, list):
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in v)
    return deepest
