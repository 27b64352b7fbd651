"""The domain's nouns: sites, people, vehicles, boxes and tasks (SPEC §2.1, §8).

Plain frozen data with `from_dict`/`to_dict` so the same shapes travel in bundles, over MQTT and
into the store. Parsing raises `ValueError` naming the field that is wrong.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any, NamedTuple


class SiteType(StrEnum):
    BRANCH = "branch"
    VAULT = "vault"


class TaskKind(StrEnum):
    DELIVERY = "delivery"                    # 派送: vault -> branches
    COLLECTION = "collection"                # 回收款箱: branches -> vault
    ALLOCATION = "allocation"                # 临时调拨
    ATM_REPLENISHMENT = "atm_replenishment"  # 集中加钞


_TASK_KINDS = {k.value: k for k in TaskKind}


class Role(StrEnum):
    ESCORT = "escort"
    OFFICER = "officer"
    MANAGER = "manager"


def _need(d: dict, key: str, where: str) -> Any:
    if key not in d:
        raise ValueError(f"{where}: missing field '{key}'")
    return d[key]


def _obj(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"{where}: must be an object, got {type(value).__name__}")
    return value


def _text(value: Any, where: str) -> str:
    """An identifier or name: text (a whole number is taken as its digits); never a list's repr."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise ValueError(f"{where}: must be text, got {type(value).__name__}")
    return value


_MISSING = object()


def _text_field(d: dict, key: str, where: str) -> str:
    """_text(_need(d, key, where), f"{where}.{key}"), with the message built only for a bad field:
    a day's schedule parses ~100,000 fields."""
    value = d.get(key, _MISSING)
    if type(value) is str:
        return value
    if value is _MISSING:
        raise ValueError(f"{where}: missing field '{key}'")
    return _text(value, f"{where}.{key}")


def _texts(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        raise ValueError(f"{where}: must be a list, got {type(value).__name__}")
    if all(type(v) is str for v in value):
        return tuple(value)
    return tuple(_text(v, f"{where}[{i}]") for i, v in enumerate(value))


def _int(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{where}: must be a whole number, got {type(value).__name__}")
    return value


def _list(d: dict, key: str, where: str) -> list:
    value = d.get(key, [])
    if not isinstance(value, list | tuple):
        raise ValueError(f"{where}.{key}: must be a list, got {type(value).__name__}")
    return list(value)


def _dt(value: Any, where: str) -> datetime:
    try:
        out = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: '{value}' is not an ISO 8601 date-time") from None
    if out.tzinfo is None:
        raise ValueError(f"{where}: '{value}' has no time zone offset")
    return out


def _d(value: Any, where: str) -> date:
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: '{value}' is not an ISO 8601 date") from None


def _enum(cls, value: Any, where: str):
    try:
        return cls(value)
    except (ValueError, TypeError):
        allowed = ", ".join(m.value for m in cls)
        raise ValueError(f"{where}: '{value}' is not one of {allowed}") from None


SITE_NAME_LIMIT = 64


def site_names(value: Any, where: str = "sites") -> dict[str, str]:
    """The tasks payload's optional {site_id: name} map: names for the screen where a code means little."""
    out = {}
    for site_id, name in _obj(value, where).items():
        if not isinstance(name, str):          # a number is no branch's name
            raise ValueError(f"{where}.{site_id}: must be text, got {type(name).__name__}")
        if not site_id or not name.strip() or len(name) > SITE_NAME_LIMIT:
            raise ValueError(f"{where}.{site_id}: must be a name of 1 to {SITE_NAME_LIMIT} characters")
        out[site_id] = name
    return out


@dataclass(frozen=True)
class Person:
    person_id: str
    name: str
    role: Role
    company: str = ""
    valid_from: date | None = None
    valid_until: date | None = None
    photo: str | None = None           # content hash of the enrolled photo (photos/ by hash)

    def valid_on(self, day: date) -> bool:
        return (self.valid_from is None or self.valid_from <= day) and (
            self.valid_until is None or day <= self.valid_until)

    def validity_ends_within(self, day: date, days: int) -> int | None:
        """Days left of the enrolment when it ends within `days` of `day` (0: ends today), else None."""
        if self.valid_until is None or not self.valid_on(day):
            return None
        left = (self.valid_until - day).days
        return left if left <= days else None

    @classmethod
    def from_dict(cls, d: dict) -> "Person":
        d = _obj(d, "person")
        person_id = _text(_need(d, "person_id", "person"), "person.person_id")
        w = f"person {person_id}"
        photo = d.get("photo")
        if photo is not None:
            _text(photo, f"{w}.photo")
        return cls(
            person_id=person_id, name=_text(_need(d, "name", w), f"{w}.name"),
            role=_enum(Role, _need(d, "role", w), f"{w}.role"), company=_text(d.get("company", ""), f"{w}.company"),
            valid_from=_d(d["valid_from"], f"{w}.valid_from") if d.get("valid_from") else None,
            valid_until=_d(d["valid_until"], f"{w}.valid_until") if d.get("valid_until") else None,
            photo=d.get("photo"))

    def to_dict(self) -> dict:
        return {"person_id": self.person_id, "name": self.name, "role": self.role.value, "company": self.company,
                "valid_from": self.valid_from.isoformat() if self.valid_from else None,
                "valid_until": self.valid_until.isoformat() if self.valid_until else None, "photo": self.photo}


@dataclass(frozen=True)
class Vehicle:
    vehicle_id: str
    plate: str
    beacon: str                         # BLE identity as the scanner reports it

    @classmethod
    def from_dict(cls, d: dict) -> "Vehicle":
        d = _obj(d, "vehicle")
        w = "vehicle"
        return cls(_text_field(d, "vehicle_id", w), _text_field(d, "plate", w), _text_field(d, "beacon", w))

    def to_dict(self) -> dict:
        return {"vehicle_id": self.vehicle_id, "plate": self.plate, "beacon": self.beacon}


@dataclass(frozen=True)
class Box:
    box_id: str                         # number printed on the box
    tag: str                            # tag UID, upper-case hex
    destination: str                    # site id the box goes to at this task
    origin: str | None = None           # site id it is collected from (collections)

    @classmethod
    def from_dict(cls, d: dict) -> "Box":
        d = _obj(d, "box")
        box_id = _text_field(d, "box_id", "box")
        w = f"box {box_id}"
        origin = d.get("origin")
        return cls(box_id, _text_field(d, "tag", w).upper(), _text_field(d, "destination", w),
                   _text(origin, f"{w}.origin") if origin is not None else None)

    def to_dict(self) -> dict:
        out = {"box_id": self.box_id, "tag": self.tag, "destination": self.destination}
        if self.origin is not None:
            out["origin"] = self.origin
        return out


def _all_text(values: list) -> bool:
    for v in values:
        if type(v) is not str:
            return False
    return True


_TASK_FIELDS = frozenset(("task_id", "version", "kind", "window_start", "window_end", "route", "vehicle", "escorts",
                          "boxes", "confirmers", "min_escorts"))
_VEHICLE_FIELDS = frozenset(("vehicle_id", "plate", "beacon"))
_BOX_FIELDS = frozenset(("box_id", "tag", "destination", "origin"))


def _plain_fields(d: dict) -> tuple | None:
    """Task._plain's one quick pass: the fields when each has its plain form (text where text is due,
    whole numbers in range, nothing missing), else None; vehicle and boxes as the dicts given, and
    whether the task, its vehicle and its boxes hold no field but their own."""
    get = d.get
    task_id, escorts, route, confirmers = get("task_id"), get("escorts"), get("route"), get("confirmers")
    min_escorts, version, kind = get("min_escorts", 2), get("version", 1), get("kind")
    kind = _TASK_KINDS.get(kind) if type(kind) is str else None
    if not (type(task_id) is str and kind is not None and type(escorts) is list and _all_text(escorts)
            and type(route) is list and route and _all_text(route)
            and type(confirmers) is list and _all_text(confirmers)
            and type(min_escorts) is int and 2 <= min_escorts <= len(escorts)
            and type(version) is int and 1 <= version <= 2**53):
        return None
    start, end, vehicle, boxes = get("window_start"), get("window_end"), get("vehicle"), get("boxes", [])
    if type(start) is not str or type(end) is not str or type(vehicle) is not dict or type(boxes) is not list:
        return None
    try:
        start, end = datetime.fromisoformat(start), datetime.fromisoformat(end)
    except ValueError:
        return None
    if start.tzinfo is None or end.tzinfo is None or end <= start:
        return None
    if type(vehicle.get("vehicle_id")) is not str or type(vehicle.get("plate")) is not str \
            or type(vehicle.get("beacon")) is not str:
        return None
    # counted, not compared as sets (a schedule has 30,000 boxes): the fields above are all present
    only_known = len(vehicle) == 3 and len(d) == 8 + ("version" in d) + ("min_escorts" in d) + ("boxes" in d)
    for b in boxes:
        if type(b) is not dict:
            return None
        origin = b.get("origin")
        if not (type(b.get("box_id")) is str and type(b.get("tag")) is str and type(b.get("destination")) is str
                and (origin is None or type(origin) is str)):
            return None
        if len(b) != 3 and (len(b) != 4 or "origin" not in b):
            only_known = False
    return task_id, version, kind, start, end, route, vehicle, escorts, boxes, confirmers, min_escorts, only_known


class TaskRow(NamedTuple):
    """What the store keeps of a task: its lookup columns, stops, boxes (tag, task_id, box_id, destination,
    origin: the store's rows as they are) and a body Task.from_dict reads back to the task, as a dict or
    as its JSON text."""
    task_id: str
    version: int
    day: str                    # ISO date of window_start
    beacon: str
    route: list[str]
    boxes: list[tuple[str, str, str, str, str | None]]
    body: dict | str


@dataclass(frozen=True)
class Task:
    """One escort run's business at one or more stops. `route` is the ordered site ids."""
    task_id: str
    version: int
    kind: TaskKind
    window_start: datetime
    window_end: datetime
    route: tuple[str, ...]
    vehicle: Vehicle
    escorts: tuple[str, ...]            # person ids; the first is the escort lead
    boxes: tuple[Box, ...]
    confirmers: tuple[str, ...]         # officers who may confirm
    min_escorts: int = 2

    @property
    def day(self) -> date:
        return self.window_start.date()

    @property
    def lead(self) -> str:
        return self.escorts[0]

    def stops_here(self, site_id: str) -> bool:
        return site_id in self.route

    def boxes_for(self, site_id: str, site_type: SiteType) -> tuple[Box, ...]:
        """The boxes that change hands at this site.

        Delivery and replenishment: boxes destined here (at the vault, all of them, handed out).
        Collection: boxes collected from this branch; at the vault, all of them (checked in).
        Allocation between branches: boxes leaving this branch and boxes destined here.
        """
        if site_type is SiteType.VAULT:
            return self.boxes
        if self.kind is TaskKind.ALLOCATION:
            return tuple(b for b in self.boxes if site_id in (b.origin, b.destination))
        if self.kind is TaskKind.COLLECTION:
            return tuple(b for b in self.boxes if b.origin == site_id)
        return tuple(b for b in self.boxes if b.destination == site_id)

    @classmethod
    def from_dict(cls, d: dict) -> "Task":
        """A task from its dict; ValueError names the first field that is wrong. The usual shape (text
        where text is due, whole numbers in range, nothing missing) is taken in one quick pass: a day's
        schedule is 10,000 tasks. Anything else goes through _checked, which finds what is wrong."""
        task = cls._plain(d) if type(d) is dict else None
        return task if task is not None else cls._checked(d)

    @classmethod
    def _plain(cls, d: dict) -> "Task | None":
        """The task when every field has its plain form, else None. Accepts nothing _checked refuses."""
        fields = _plain_fields(d)
        if fields is None:
            return None
        task_id, version, kind, start, end, route, vehicle, escorts, boxes, confirmers, min_escorts, _ = fields
        return cls(task_id, version, kind, start, end, tuple(route),
                   Vehicle(vehicle["vehicle_id"], vehicle["plate"], vehicle["beacon"]), tuple(escorts),
                   tuple([Box(b["box_id"], b["tag"].upper(), b["destination"], b.get("origin")) for b in boxes]),
                   tuple(confirmers), min_escorts)

    @classmethod
    def row_from_dict(cls, d: dict, text: str | None = None) -> "TaskRow":
        """What the store keeps of Task.from_dict(d), with the same errors. The plain shape is taken
        without building the Task, and its dict is the stored body as the sender wrote it (from_dict
        reads it back to the same task): a day's schedule is 10,000 tasks. `text`, d's JSON as it
        came, is that body already written, when d holds nothing but a task's fields."""
        fields = _plain_fields(d) if type(d) is dict else None
        if fields is None:
            return cls._checked(d).to_row()
        task_id, version, _, start, _, route, vehicle, _, boxes, _, _, only_known = fields
        body = d if text is None else text
        if not only_known:     # what no field of a task holds (box keys above all: sealed apart) is not stored
            if not (vehicle.keys() <= _VEHICLE_FIELDS and all([b.keys() <= _BOX_FIELDS for b in boxes])):
                return cls._plain(d).to_row()
            body = {k: v for k, v in d.items() if k in _TASK_FIELDS}
        boxes = [(b["tag"].upper(), task_id, b["box_id"], b["destination"], b.get("origin")) for b in boxes]
        return TaskRow(task_id, version, start.date().isoformat(), vehicle["beacon"], route, boxes, body)

    def to_row(self) -> "TaskRow":
        return TaskRow(self.task_id, self.version, self.day.isoformat(), self.vehicle.beacon, list(self.route),
                       [(b.tag, self.task_id, b.box_id, b.destination, b.origin) for b in self.boxes], self.to_dict())

    @classmethod
    def _checked(cls, d: dict) -> "Task":
        d = _obj(d, "task")
        task_id = _text(_need(d, "task_id", "task"), "task.task_id")
        w = f"task {task_id}"
        escorts = _texts(_need(d, "escorts", w), f"{w}.escorts")
        min_escorts = _int(d.get("min_escorts", 2), f"{w}.min_escorts")
        if min_escorts < 2:
            raise ValueError(f"{w}.min_escorts: at least 2 escorts are required, got {min_escorts}")
        if len(escorts) < min_escorts:
            raise ValueError(f"{w}.escorts: {len(escorts)} assigned, at least {min_escorts} required")
        version = d.get("version", 1)
        if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= 2**53:
            raise ValueError(f"{w}.version: must be a whole number from 1 to 2**53")
        route = _texts(_need(d, "route", w), f"{w}.route")
        if not route:
            raise ValueError(f"{w}.route: must name at least one site")
        start = _dt(_need(d, "window_start", w), f"{w}.window_start")
        end = _dt(_need(d, "window_end", w), f"{w}.window_end")
        if end <= start:
            raise ValueError(f"{w}.window_end: must be after window_start")
        return cls(
            task_id=task_id, version=version,
            kind=_enum(TaskKind, _need(d, "kind", w), f"{w}.kind"),
            window_start=start, window_end=end, route=route,
            vehicle=Vehicle.from_dict(_obj(_need(d, "vehicle", w), f"{w}.vehicle")), escorts=escorts,
            boxes=tuple(Box.from_dict(_obj(b, f"{w}.boxes[{i}]")) for i, b in enumerate(_list(d, "boxes", w))),
            confirmers=_texts(_need(d, "confirmers", w), f"{w}.confirmers"), min_escorts=min_escorts)

    def to_dict(self) -> dict:
        return {
            "task_id": self.task_id, "version": self.version, "kind": self.kind.value,
            "window_start": self.window_start.isoformat(), "window_end": self.window_end.isoformat(),
            "route": list(self.route), "vehicle": self.vehicle.to_dict(), "escorts": list(self.escorts),
            "boxes": [b.to_dict() for b in self.boxes], "confirmers": list(self.confirmers),
            "min_escorts": self.min_escorts,
        }


@dataclass(frozen=True)
class Site:
    site_id: str
    site_type: SiteType
    name: str = ""
    allow_password_confirmation: bool = False
    allow_uid_only_tags: bool = True
    extra: dict = field(default_factory=dict)
