"""Small, hand-built worlds for the handover machine: sites, people, a truck, tasks and boxes built
from flows.model types only (no store, no I/O), and a `Run` that feeds events with a ticking clock
and keeps every decision for the assertions."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from flows.decisions import Alarm, AlarmKind, Decision, Prompt, Refused
from flows.events import BoxPresented, DispositionRecorded, Event, FingerPresented, PasswordPresented, VehicleArrived
from flows.handover import Handover
from flows.model import Box, Person, Role, Site, SiteType, Task, TaskKind, Vehicle

CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=CST)          # inside every default window
WINDOW = (T0 - timedelta(minutes=30), T0 + timedelta(hours=3))

VAULT, BR1, BR2, BR3 = "VLT-01", "BR-001", "BR-002", "BR-003"
TRUCK = Vehicle("TRK-A", "沪A·C1234", "ibeacon:truck-a")
OTHER_TRUCK = Vehicle("TRK-B", "沪A·D5678", "ibeacon:truck-b")

# escorts E1..E4 (assignable), X1 an enrolled escort of the company not on the task,
# O1/O2 officers who may confirm, O3 an officer who may not, M1 a manager
PEOPLE = {p.person_id: p for p in (
    Person("E1", "王强", Role.ESCORT, "安保押运"), Person("E2", "李军", Role.ESCORT, "安保押运"),
    Person("E3", "张伟", Role.ESCORT, "安保押运"), Person("E4", "刘洋", Role.ESCORT, "安保押运"),
    Person("X1", "陈刚", Role.ESCORT, "安保押运"),
    Person("O1", "周敏", Role.OFFICER, "本行"), Person("O2", "吴婷", Role.OFFICER, "本行"),
    Person("O3", "孙丽", Role.OFFICER, "本行"), Person("M1", "郑华", Role.MANAGER, "本行"),
)}
CONFIRMERS = ("O1", "O2")


def box(box_id: str, destination: str, origin: str | None = None) -> Box:
    return Box(box_id, f"TAG-{box_id}", destination, origin)


def site(site_type: SiteType = SiteType.BRANCH, site_id: str | None = None, *, password: bool = False,
         uid_only: bool = True) -> Site:
    sid = site_id or (VAULT if site_type is SiteType.VAULT else BR1)
    return Site(sid, site_type, allow_password_confirmation=password, allow_uid_only_tags=uid_only)


def task(kind: TaskKind = TaskKind.DELIVERY, *, route: tuple[str, ...] = (VAULT, BR1, BR2),
         escorts: tuple[str, ...] = ("E1", "E2"), boxes: tuple[Box, ...] | None = None,
         window: tuple[datetime, datetime] = WINDOW, min_escorts: int = 2, vehicle: Vehicle = TRUCK,
         task_id: str = "T1") -> Task:
    if boxes is None:
        boxes = (box("B1", BR1), box("B2", BR1), box("B3", BR2))
    return Task(task_id, 1, kind, window[0], window[1], route, vehicle, escorts, boxes, CONFIRMERS, min_escorts)


def stops_before(t: Task, site_id: str) -> frozenset[str]:
    """What head office reports done when the truck keeps to the route."""
    return frozenset(t.route[:t.route.index(site_id)])


# --- events, short ---
def door(pid: str | None = None, outcome: str = "match", *, duress: bool = False, snapshot: str | None = None):
    return FingerPresented("door", outcome, pid if outcome == "match" else None, duress, snapshot)


def counter(pid: str | None = None, outcome: str = "match", *, duress: bool = False):
    return FingerPresented("counter", outcome, pid if outcome == "match" else None, duress)


def tag(b: Box, **kw) -> BoxPresented:
    return BoxPresented(b.tag, b, **kw)


def dispose(officer: str = "O1", resolution: str = "continue", code: str = "box_set_aside",
            text: str = "set aside, head office told") -> DispositionRecorded:
    return DispositionRecorded(officer, code, text, resolution)


def password(pid: str = "O1", ok: bool = True) -> PasswordPresented:
    return PasswordPresented(pid, ok)


# --- reading decisions ---
def prompts(ds: list[Decision]) -> list[str]:
    return [d.key for d in ds if isinstance(d, Prompt)]


def told(ds: list[Decision]) -> list[str]:
    """What the people at the screen are told, in order: prompts' keys and refusals' reasons."""
    return [d.key if isinstance(d, Prompt) else d.reason for d in ds if isinstance(d, (Prompt, Refused))]


def refusals(ds: list[Decision]) -> list[Refused]:
    return [d for d in ds if isinstance(d, Refused)]


def prompt(ds: list[Decision], key: str) -> Prompt:
    found = [d for d in ds if isinstance(d, Prompt) and d.key == key]
    assert found, f"no prompt {key!r} in {prompts(ds)}"
    return found[0]


def of(ds: list[Decision], cls) -> list:
    return [d for d in ds if isinstance(d, cls)]


def alarms(ds: list[Decision], kind: AlarmKind | None = None) -> list[Alarm]:
    return [d for d in ds if isinstance(d, Alarm) and (kind is None or d.kind is kind)]


@dataclass
class Run:
    """One handover fed event by event; the clock ticks a minute per event unless told `at`."""
    handover: Handover
    now: datetime = T0
    log: list[tuple[Event, datetime, list[Decision]]] = field(default_factory=list)

    @classmethod
    def of(cls, t: Task | None = None, s: Site | None = None, **kw) -> "Run":
        return cls(Handover(t or task(), s or site(), PEOPLE, **kw))

    @property
    def h(self) -> Handover:
        return self.handover

    @property
    def decisions(self) -> list[Decision]:
        return [d for _, _, ds in self.log for d in ds]

    def feed(self, event: Event, at: datetime | None = None) -> list[Decision]:
        self.now = at or self.now + timedelta(minutes=1)
        out = self.handover.handle(event, self.now)
        self.log.append((event, self.now, out))
        return out

    def feed_all(self, *events: Event) -> list[Decision]:
        return [d for e in events for d in self.feed(e)]

    # --- the steps of a clean handover ---
    def arrive(self, at: datetime | None = None) -> list[Decision]:
        here = self.h.site.site_id
        done = stops_before(self.h.task, here) if here in self.h.task.route else frozenset()
        return self.feed(VehicleArrived(beacon=self.h.task.vehicle.beacon, stops_done=done), at)

    def verify_escorts(self) -> list[Decision]:
        return self.feed_all(*(door(e, snapshot=f"snap-{e}") for e in self.h.task.escorts))

    def count_boxes(self) -> list[Decision]:
        return self.feed_all(*(tag(b) for b in self.h.task.boxes_for(self.h.site.site_id, self.h.site.site_type)))

    def confirm(self, officer: str = "O1") -> list[Decision]:
        return self.feed(counter(officer))

    def sign_off(self, officer: str = "O1") -> list[Decision]:
        return self.feed_all(counter(self.h.lead), counter(officer))

    def to_boxes(self) -> "Run":
        self.arrive()
        self.verify_escorts()
        return self

    def to_sign_off(self) -> "Run":
        self.to_boxes().count_boxes()
        self.confirm()
        return self

    def walk(self) -> "Run":
        self.to_sign_off().sign_off()
        return self
