"""The wire contract (docs/mqtt.md): topic names, JSON Schemas, and how entries are encoded.

Shared by the device side (agent.sync) and head office (hq.sync), so both speak
exactly what the schemas in protocol/schemas/ say.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

import jsonschema
from referencing import Registry, Resource

from protocol import safejson

VERSION = 1
DOWNLINK_KINDS = ("tasks", "route_progress", "personnel", "config", "command", "complaint")
UPLINK_KINDS = ("journal", "urgent", "status", "health", "reply", "snapshot")
MAX_DOWNLINK_BYTES = 1024 * 1024  # a day's tasks or a personnel update with templates fits well within
MAX_DOWNLINK_DEPTH = 12           # the deepest downlink (tasks: task -> box_keys -> tag -> keys) is 5 levels
MAX_ENTRY_DEPTH = 32              # a journal entry's body, checked where it is written and where it is read


class MessageError(ValueError):
    """A message does not follow the contract; the text says which part and why."""


@dataclass(frozen=True)
class Topics:
    """The topic tree of one device: <prefix>/<device>/<leaf>."""
    prefix: str
    device: str

    def up(self, kind: str) -> str:
        return f"{self.prefix}/{self.device}/{kind}"

    def down(self, kind: str) -> str:
        return f"{self.prefix}/{self.device}/down/{kind}"

    @property
    def down_filter(self) -> str:
        return f"{self.prefix}/{self.device}/down/+"


def broker_acl(prefix: str, hq_user: str) -> str:
    """The broker's ACL (mosquitto syntax, docs/mqtt.md): head office's identity reads every device's
    uplink and writes every downlink; a device (username = its certificate's CN) only its own tree."""
    hq_lines = [f"topic read {prefix}/+/{kind}" for kind in UPLINK_KINDS] + [f"topic write {prefix}/+/down/#"]
    device_lines = [f"pattern write {prefix}/%u/{kind}" for kind in UPLINK_KINDS] + [f"pattern read {prefix}/%u/down/#"]
    return "\n".join(["# Head office reads every device's uplink and writes every downlink.", f"user {hq_user}",
                      *hq_lines, "", "# A device (username = certificate CN) only its own tree.", *device_lines, ""])


def split_topic(prefix: str, topic: str) -> tuple[str, str] | None:
    """(device, leaf) of an uplink topic under prefix, e.g. ('d1', 'journal'); None otherwise."""
    if not topic.startswith(prefix + "/"):
        return None
    rest = topic[len(prefix) + 1:].split("/")
    if len(rest) != 2:
        return None
    return rest[0], rest[1]


@cache
def _registry() -> Registry:
    folder = resources.files("protocol") / "schemas"
    resource_list = []
    for item in folder.iterdir():
        if item.name.endswith(".json"):
            resource_list.append((item.name, Resource.from_contents(json.loads(item.read_text("utf-8")))))
    return Registry().with_resources(resource_list)


@cache
def validator(name: str) -> jsonschema.protocols.Validator:
    """The validator for schemas/<name>.json (format checks on: date-time, date)."""
    schema = _registry().contents(f"{name}.json")
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, registry=_registry(), format_checker=cls.FORMAT_CHECKER)


def check(name: str, payload: object) -> None:
    """Raise MessageError naming the first place where payload breaks schemas/<name>.json.

    The text names the path and the rule, never the value: jsonschema's own message quotes the
    instance, which for personnel is people's names and ends up in logs and replies.
    """
    accept = _PLAIN_ACCEPT.get(name)
    if accept is not None and accept(payload):
        return      # certainly valid; anything else (even valid but unusual) goes through the full validator
    error = jsonschema.exceptions.best_match(validator(name).iter_errors(payload))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise MessageError(f"does not match the {name} schema at {where}: {_rule(error)}")


@cache
def _entry_patterns() -> tuple:
    """The entry schema's own patterns, so the plain check below cannot drift from it."""
    props = _registry().contents("entry.json")["properties"]
    return tuple(re.compile(props[f]["pattern"]) for f in ("id", "ts", "prev_hash", "hash"))


_ENTRY_KEYS = frozenset(("id", "seq", "ts", "kind", "task_id", "body", "prev_hash", "hash"))


def _plain_entry(e: object) -> bool:
    """True only if e certainly matches schemas/entry.json (stricter than the schema: exact types)."""
    if type(e) is not dict or e.keys() != _ENTRY_KEYS:
        return False
    id_, ts, prev, hash_ = _entry_patterns()
    seq, kind, task = e["seq"], e["kind"], e["task_id"]
    return (type(seq) is int and seq >= 1 and type(kind) is str and len(kind) >= 1
            and (task is None or type(task) is str) and type(e["body"]) is dict
            and _matches(id_, e["id"]) and _matches(ts, e["ts"])
            and _matches(prev, e["prev_hash"]) and _matches(hash_, e["hash"]))


def _matches(pattern: re.Pattern, value: object) -> bool:
    return type(value) is str and pattern.search(value) is not None    # search, as jsonschema's `pattern`


def _plain_uplink(payload: object, keys: frozenset) -> bool:
    return (type(payload) is dict and payload.keys() == keys and type(payload["v"]) is int and payload["v"] == 1
            and type(payload["device"]) is str and len(payload["device"]) >= 1)


def _plain_journal(payload: object) -> bool:
    return (_plain_uplink(payload, frozenset(("v", "device", "entries"))) and type(payload["entries"]) is list
            and len(payload["entries"]) >= 1 and all(map(_plain_entry, payload["entries"])))


def _plain_urgent(payload: object) -> bool:
    return _plain_uplink(payload, frozenset(("v", "device", "entry"))) and _plain_entry(payload["entry"])


# The journal stream is head office's hot path (the full validator took ~45 us an entry, most of serve's
# cost). These accept only what the schema certainly accepts; whatever they do not accept is judged by the
# full validator, so every refusal and its wording stay the schema's (tests/unit/test_messages_plain_fuzz.py).
_PLAIN_ACCEPT = {"journal": _plain_journal, "urgent": _plain_urgent}


def _rule(error: jsonschema.ValidationError) -> str:
    """What the schema asked for, from the schema alone (plus missing/extra key names)."""
    v, want = error.validator, error.validator_value
    if v == "required" and isinstance(error.instance, dict):
        return ", ".join(f"{k!r} is a required property" for k in want if k not in error.instance)
    if v == "additionalProperties" and isinstance(error.instance, dict):
        known = set(error.schema.get("properties", {}))
        extra = [k for k in error.instance if k not in known][:5]
        return "fields not allowed here: " + ", ".join(repr(k[:40]) for k in extra)
    if v == "type":
        return f"must be of type {want}"
    if v in ("enum", "const"):
        return "not one of the allowed values"
    if isinstance(want, (int, float, str)) and not isinstance(want, bool):
        return f"fails {v} {want!r}"
    return f"fails {v}"


def decode(name: str, raw: bytes, max_bytes: int = MAX_DOWNLINK_BYTES, max_depth: int = MAX_DOWNLINK_DEPTH) -> dict:
    """Parse and check one message; MessageError says what is wrong. Size and depth are checked
    before the parser runs, so no message can make it (or what walks the result) recurse."""
    try:
        payload = safejson.loads(raw, max_depth=max_depth, max_bytes=max_bytes)
    except safejson.JsonRefused as exc:
        raise MessageError(f"message is {exc}") from None
    check(name, payload)
    return payload


def entry_id(device: str, seq: int) -> str:
    return f"{device}:{seq}"


def encode_entry(device: str, entry) -> bytes:
    """One journal entry as its wire object (schemas/entry.json), JSON bytes."""
    return json.dumps({
        "id": entry_id(device, entry.seq), "seq": entry.seq, "ts": entry.ts, "kind": entry.kind,
        "task_id": entry.task_id, "body": entry.body, "prev_hash": entry.prev_hash, "hash": entry.hash,
    }, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def encode(payload: dict) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
