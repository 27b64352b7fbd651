"""A sample day for simulation and demos, generated here: a vault, three branches, two trucks,
six escorts, two officers (placeholder photos drawn with Pillow), and the day's tasks.

Windows are placed around `now`, so a demo at any hour walks through without a window alarm.
"""
from __future__ import annotations

import hashlib
import io
from datetime import datetime, timedelta

from agent.store import Store, Template
from flows.model import Box, Person, Role, Site, SiteType, Task, TaskKind, Vehicle

VAULT = "VLT-01"
BRANCHES = ("BR-001", "BR-002", "BR-003")
SITE_NAMES = {"VLT-01": "中心金库", "BR-001": "城东支行", "BR-002": "城西支行", "BR-003": "城北支行"}
COMPANY = "安保押运有限公司"
DEMO_SITE_NAME = "城东支行（演示）"
DEMO_PASSWORD = "246810"          # officers' password in the demo (sites that allow password confirmation)

TRUCKS = (
    Vehicle("TRK-A", "沪A·C1234", "ibeacon:e2c56db5-dffb-48d2-b060-d0f5a71096e0:100:1"),
    Vehicle("TRK-B", "沪A·D5678", "ibeacon:e2c56db5-dffb-48d2-b060-d0f5a71096e0:100:2"),
)
STRANGER_BEACON = "ibeacon:0b3e4f2a-9c1d-4e8b-8a6f-1d2c3b4a5e6f:7:7"

ESCORTS = (("E01", "王强"), ("E02", "李军"), ("E03", "张伟"), ("E04", "刘洋"), ("E05", "陈刚"), ("E06", "杨磊"))
OFFICERS = (("O01", "周敏"), ("O02", "吴婷"))
MANAGER = ("M01", "郑华")
COLOURS = ((52, 101, 164), (78, 154, 6), (196, 160, 0), (117, 80, 123), (204, 0, 0), (6, 152, 154),
           (173, 127, 168), (143, 89, 2), (85, 87, 83))


def tag_for(box_id: str) -> str:
    """A stable 7-byte NFC UID for a sample box."""
    return "04" + hashlib.sha256(box_id.encode()).hexdigest()[:12].upper()


def finger_template(person_id: str, finger: str) -> bytes:
    """Stand-in template bytes (512, like an R305's); the simulator matches on equality."""
    seed = hashlib.sha256(f"{person_id}/{finger}".encode()).digest()
    return (seed * 16)[:512]


def placeholder_photo(name: str, colour: tuple[int, int, int]) -> bytes:
    # Pillow only when a sample day is drawn: the screen imports this module's names, and a branch terminal
    # at rest would otherwise carry Pillow (~3 MB of the 70 MB idle budget, issue 20)
    from PIL import Image, ImageDraw
    img = Image.new("RGB", (240, 300), colour)
    d = ImageDraw.Draw(img)
    d.ellipse((60, 40, 180, 170), fill=(236, 204, 176))
    d.rectangle((40, 190, 200, 300), fill=tuple(max(0, c - 40) for c in colour))
    d.ellipse((95, 95, 105, 105), fill=(40, 40, 40))
    d.ellipse((135, 95, 145, 105), fill=(40, 40, 40))
    d.arc((100, 115, 140, 145), 20, 160, fill=(120, 60, 60), width=3)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def sample_people(store: Store) -> list[Person]:
    people = [(pid, name, Role.ESCORT) for pid, name in ESCORTS]
    people += [(pid, name, Role.OFFICER) for pid, name in OFFICERS] + [(*MANAGER, Role.MANAGER)]
    out = []
    for i, (pid, name, role) in enumerate(people):
        photo = store.put_photo(placeholder_photo(name, COLOURS[i % len(COLOURS)]))
        p = Person(pid, name, role, company=COMPANY if role is Role.ESCORT else "本行", photo=photo)
        store.upsert_person(p)
        store.put_template(Template(pid, "right_index", finger_template(pid, "right_index")))
        if role is not Role.ESCORT:
            store.set_password(pid, DEMO_PASSWORD)
        if role is Role.ESCORT:
            store.put_template(Template(pid, "left_index", finger_template(pid, "left_index"), duress=True))
        out.append(p)
    return out


def sample_tasks(now: datetime, here: str = BRANCHES[0], vault: str = VAULT) -> list[Task]:
    """The day's tasks; `here` stands in for the first branch (and `vault` for the vault) so the
    demo site is on every route."""
    def boxes(prefix: str, dest: str, n: int, origin: str | None = None) -> tuple[Box, ...]:
        return tuple(Box(f"{prefix}-{i:02d}", tag_for(f"{prefix}-{i:02d}"), dest, origin) for i in range(1, n + 1))

    t0 = now.replace(second=0, microsecond=0)
    day_start = t0.replace(hour=0, minute=0)
    day_end = day_start + timedelta(days=1, microseconds=-1)

    def later_or_earlier(hours: int) -> tuple[datetime, datetime]:
        """A one-hour window `hours` ahead if it fits in today, else as far back (all tasks stay today)."""
        start = t0 + timedelta(hours=hours)
        if start + timedelta(hours=1) > day_end:
            start = t0 - timedelta(hours=hours + 1)
        return start, start + timedelta(hours=1)

    officers = tuple(pid for pid, _ in OFFICERS)
    day = t0.strftime("%m%d")
    return [
        Task(f"T{day}-01", 1, TaskKind.DELIVERY, max(day_start, t0 - timedelta(minutes=30)),
             min(day_end, t0 + timedelta(minutes=90)),
             (vault, here, "BR-002"), TRUCKS[0], ("E01", "E02"),
             boxes("XB1", here, 3) + boxes("XB2", "BR-002", 2), officers),
        Task(f"T{day}-02", 1, TaskKind.DELIVERY, *later_or_earlier(2),
             (vault, "BR-003", here), TRUCKS[1], ("E03", "E04"),
             boxes("XB3", "BR-003", 2) + boxes("XB4", here, 2), officers),
        Task(f"T{day}-03", 1, TaskKind.COLLECTION, *later_or_earlier(4),
             (here, "BR-002", vault), TRUCKS[0], ("E05", "E06"),
             boxes("HS1", vault, 2, here) + boxes("HS2", vault, 1, "BR-002"), officers),
    ]


def seed(store: Store, now: datetime, site: Site) -> list[Task]:
    """The sample day's tasks (and, the first time, its people) for a site. Caller commits."""
    if not store.people():
        sample_people(store)
    if site.site_type is SiteType.VAULT:
        tasks = sample_tasks(now, BRANCHES[0], site.site_id)
    else:
        tasks = sample_tasks(now, site.site_id, VAULT)
    for t in tasks:
        store.upsert_task(t)
    store.put_site_names({**SITE_NAMES, site.site_id: site.name or DEMO_SITE_NAME})
    # no route progress is made up: a demo runs offline, so earlier stops are unknown and each arrival
    # is journaled "route unverified" until head office reports them (a route skip needs its judgement)
    return tasks
