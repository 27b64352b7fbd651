"""Flows events and decisions to and from JSON: what the journal stores and what a restart replays."""
from __future__ import annotations

import dataclasses
from datetime import datetime
from enum import Enum

from flows import decisions as d
from flows import events as e
from flows.model import Box

_EVENTS = {cls.__name__: cls for cls in (e.VehicleArrived, e.FingerPresented, e.PasswordPresented,
                                          e.BoxPresented, e.DispositionRecorded, e.RouteProgress)}


def _plain(value):
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (frozenset, set)):
        return sorted(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


def encode(obj) -> dict:
    """A flows event or decision as {"type": ClassName, ...fields}."""
    return {"type": type(obj).__name__, **_plain(obj)}


def decode_event(data: dict) -> e.Event:
    fields = dict(data)
    cls = _EVENTS.get(fields.pop("type", None))
    if cls is None:
        raise ValueError(f"not a handover event: {data.get('type')!r}")
    if cls is e.VehicleArrived:
        fields["stops_done"] = frozenset(fields.get("stops_done", ()))
        # arrivals journaled before unknown stops were told apart: every stop not done was judged skipped
        fields["stops_unknown"] = frozenset(fields.get("stops_unknown", ()))
    if cls is e.RouteProgress:
        fields["stops_done"] = frozenset(fields.get("stops_done", ()))
    if cls is e.BoxPresented and fields.get("box") is not None:
        fields["box"] = Box.from_dict(fields["box"])
    return cls(**fields)


def alarm_body(alarm: d.Alarm, site_id: str) -> dict:
    return {"alarm": alarm.kind.value, "silent": alarm.silent, "blocking": alarm.blocking,
            "site_id": site_id, "detail": _plain(alarm.detail)}
