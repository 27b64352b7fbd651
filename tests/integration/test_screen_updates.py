"""Issue 20 item 1: the screen's updates follow what changed, not the day. A central vault sees every truck
of the day; its screen must not carry (or re-read) thousands of tasks on every finger.

The real agent (Terminal, journal, store, bundle importer) runs in-process on simulated devices behind its
real aiohttp screen; a real SSE client reads what the page would. The clock is the terminal's own, fixed
at noon, so the day's windows are the test's.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.config import load_config
from agent.devices import Devices
from agent.sample import TRUCKS, VAULT, tag_for
from agent.screen.server import build_app
from agent.terminal import Terminal
from agent.view import DUE_SHOWN, FINISHED_SHOWN, LATE_SHOWN
from drivers.ble.sim import SimulatedBeaconScanner
from drivers.camera.sim import SimulatedCamera
from drivers.cards.sim import SimulatedCardReader
from drivers.door.sim import SimulatedDoor
from drivers.events import CardRead, FingerRead, VehicleArrived
from drivers.fingerprint.sim import SimulatedFingerprint
from drivers.printer.sim import SimulatedPrinter
from drivers.voice.sim import TextVoice
from flows.model import SiteType, Task
from protocol.bundle import pack_bundle
from offline.importers import apply_tasks
from protocol.keys import public_pem

TZ = ZoneInfo("Asia/Shanghai")
NOON = datetime(2026, 6, 15, 12, 0, tzinfo=TZ)


def task_here(i: int, start: datetime, minutes: int = 20, *, prefix: str = "HQ", plate: str | None = None,
              version: int = 1) -> dict:
    """A task stopping at the vault (the first stop of its route), as head office sends it."""
    return {"task_id": f"{prefix}-{i:05d}", "version": version, "kind": "delivery",
            "window_start": start.isoformat(), "window_end": (start + timedelta(minutes=minutes)).isoformat(),
            "route": [VAULT, f"BR-{100 + i % 500}"],
            "vehicle": {"vehicle_id": f"V{prefix}{i}", "plate": plate or f"沪A·{i:05d}",
                        "beacon": f"ibeacon:{prefix.lower()}:{i}:1"},
            "escorts": ["E01", "E02"], "confirmers": ["O01"],
            "boxes": [{"box_id": f"{prefix}{i}-{k}", "tag": f"05{i:08X}{k:02X}", "destination": f"BR-{100 + i % 500}"}
                      for k in range(3)]}


def spread_over_the_day(n: int) -> list[dict]:
    """n tasks from 00:00 to 23:50, each 20 minutes long."""
    day = NOON.replace(hour=0)
    return [task_here(i, day + timedelta(seconds=i * 85_800 // n)) for i in range(n)]


class Feed:
    """A real SSE client: each `data:` event's document and its size in bytes."""

    def __init__(self, resp: aiohttp.ClientResponse):
        self.resp = resp
        self.docs: list[tuple[dict, int]] = []

    async def next(self, timeout: float = 20) -> dict:
        while True:
            line = await asyncio.wait_for(self.resp.content.readline(max_line_length=1 << 26), timeout)
            if line.startswith(b"data: "):
                doc = json.loads(line[6:])
                self.docs.append((doc, len(line) - 6))
                return doc

    async def until(self, predicate, timeout: float = 20) -> dict:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            doc = await self.next(max(0.1, deadline - asyncio.get_running_loop().time()))
            if predicate(doc):
                return doc


class Vault:
    """The agent at a central vault, on simulated devices, with its screen served on a free port."""

    def __init__(self, tmp_path: Path):
        self.now = NOON
        state = tmp_path / "state"
        (state / "keys" / "hq_signers").mkdir(parents=True)
        self.hq = Ed25519PrivateKey.generate()
        (state / "keys" / "hq_signers" / "hq.pem").write_bytes(public_pem(self.hq.public_key()))
        config = load_config(None).as_simulation()
        config = dataclasses.replace(
            config, paths=dataclasses.replace(config.paths, state_dir=state),
            site=dataclasses.replace(config.site, id=VAULT, type=SiteType.VAULT, name="中心金库"))
        self.door, self.counter = SimulatedFingerprint("door"), SimulatedFingerprint("counter")
        devices = Devices({"door": self.door, "counter": self.counter}, SimulatedCardReader(),
                          SimulatedBeaconScanner(), SimulatedCamera(), TextVoice(), SimulatedPrinter(), SimulatedDoor())
        self.t = Terminal(config, devices, clock=lambda: self.now)
        self.bundles = 0

    async def start(self) -> None:
        await self.t.start()                   # the sample day: three tasks, two of them stop here
        self.runner = web.AppRunner(build_app(self.t), access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        self.session = aiohttp.ClientSession()

    async def stop(self) -> None:
        await self.session.close()
        await self.runner.cleanup()
        await self.t.stop()

    @contextlib.asynccontextmanager
    async def feed(self, path: str = "/api/events"):
        async with self.session.get(self.url + path) as resp:
            yield Feed(resp)

    async def device(self, event) -> None:
        self.t._emit(event)
        await self.t._queue.join()

    def slot(self, person_id: str) -> int:
        return self.t.store.slots_of(person_id)["right_index"]

    async def staff_in(self) -> None:
        self.t.request_staff_view()
        await self.device(FingerRead("counter", "match", slot=self.slot("O01"), score=120))
        assert self.t.current_staff() == "O01"

    def import_from_head_office(self, tasks: list[dict]) -> None:
        """What the tasks downlink does: the importer, then the agent told it is committed."""
        apply_tasks(self.t.journal, self.t.store, tasks, source="mqtt:test")
        self.t._downlink_applied("tasks")

    async def import_bundle(self, tasks: list[dict]) -> None:
        """A tasks bundle on a USB stick: dropped in the inbox, imported by the agent."""
        self.bundles += 1
        data = pack_bundle("tasks", {"tasks": tasks}, self.t.config.device.id, self.t.device_keys.bundle_public,
                           self.hq, self.bundles, self.now + timedelta(days=2), self.now - timedelta(minutes=1))
        inbox = Path(self.t.config.paths.state_dir) / "inbox"
        inbox.mkdir(exist_ok=True)
        (inbox / f"tasks-{self.bundles:04d}.htb").write_bytes(data)
        await self.t.import_inbox()

    async def delivery(self, truck=TRUCKS[0]) -> str:
        """A whole handover of the sample's first task, as the devices would play it."""
        await self.device(VehicleArrived(truck.beacon, -50))
        task = self.t.active.task
        for escort in task.escorts:
            await self.device(FingerRead("door", "match", slot=self.slot(escort), score=120))
        for box in task.boxes:
            await self.device(CardRead("cards", tag_for(box.box_id)))
        await self.device(FingerRead("counter", "match", slot=self.slot("O01"), score=120))
        for _ in range(4):
            if self.t.active is None:
                break
            lead = self.t.active.lead
            station, person = ("door", lead) if lead not in self.t.active.marks else ("counter", "O01")
            await self.device(FingerRead(station, "match", slot=self.slot(person), score=120))
        assert self.t.active is None and self.t.outcomes[task.task_id] == "completed"
        return task.task_id


@pytest.fixture
async def vault(tmp_path):
    v = Vault(tmp_path)
    await v.start()
    yield v
    await v.stop()


async def sizes_at(tmp_path: Path, count: int) -> dict:
    """At a vault with `count` of today's tasks: the staff face's update, and each update of a handover."""
    v = Vault(tmp_path / str(count))
    await v.start()
    try:
        v.import_from_head_office(spread_over_the_day(count - len(v.t.open_tasks(NOON.date()))))
        assert len(v.t.open_tasks(NOON.date())) == count
        async with v.feed() as screen:
            await screen.next()
            await v.staff_in()
            staff = await screen.until(lambda d: d["staff"] and d["tasks"])
            v.t.end_staff_session()
            await v.device(VehicleArrived(TRUCKS[0].beacon, -50))
            for _ in range(3):          # the lead's finger, then twice again: "already verified"
                await v.device(FingerRead("door", "match", slot=v.slot("E01"), score=120))
            seen = v.t.version
            handover = await screen.until(lambda d: d["version"] >= seen)
            sizes = [size for doc, size in screen.docs if doc["handover"]]
        return {"staff": staff, "staff_size": next(s for d, s in screen.docs if d is staff), "handover": handover,
                "sizes": sizes, "docs": [d for d, _ in screen.docs]}
    finally:
        await v.stop()


async def test_an_update_at_a_vault_with_10000_tasks_is_the_size_of_one_with_20(tmp_path):
    small, big = await sizes_at(tmp_path, 20), await sizes_at(tmp_path, 10_000)
    for r in (small, big):
        # what staff see: the escort verified, the door not yet raised; no simulator panel in the screen's updates
        escorts = {e["person_id"]: e["verified"] for e in r["handover"]["handover"]["escorts"]}
        assert escorts == {"E01": True, "E02": False}
        assert all("sim" not in d for d in r["docs"]), "the simulator panel has its own stream"
        assert len(r["staff"]["tasks"]) <= DUE_SHOWN + FINISHED_SHOWN
    assert small["staff"]["task_summary"]["total"] == 20 and big["staff"]["task_summary"]["total"] == 10_000
    # the same screen, whatever the day holds: only numbers and ids differ in length
    assert max(big["sizes"]) <= max(small["sizes"]) + 100, (small["sizes"], big["sizes"])
    assert big["staff_size"] <= small["staff_size"] + 300, (small["staff_size"], big["staff_size"])
    assert max(big["sizes"]) < 16_000


async def test_the_staff_face_lists_the_next_due_and_the_last_finished_and_counts_the_day(vault):
    vault.import_from_head_office(spread_over_the_day(1000))
    done = await vault.delivery()
    async with vault.feed() as screen:
        await vault.staff_in()
        face = await screen.until(lambda d: d["staff"] and d["tasks"])
    day = vault.t.store.tasks_on(NOON.date(), VAULT)        # the oracle: the whole day, read again
    outcomes = vault.t.outcomes
    open_ = [t for t in day if t.task_id not in outcomes]
    due = sorted((t for t in open_ if t.window_end >= NOON - LATE_SHOWN), key=lambda t: (t.window_end, t.task_id))
    expected = {t.task_id: t for t in due[:DUE_SHOWN]} | {done: next(t for t in day if t.task_id == done)}
    shown = [row["task_id"] for row in face["tasks"]]
    assert shown == [t.task_id for t in sorted(expected.values(), key=lambda t: (t.window_start, t.task_id))]
    rows = {row["task_id"]: row for row in face["tasks"]}
    assert rows[done]["status"] == "completed"
    assert all(rows[t.task_id]["status"] == "planned" for t in due[:DUE_SHOWN])
    assert face["task_summary"] == {"total": len(day), "finished": 1, "open": len(day) - 1,
                                    "overdue": sum(t.window_end < NOON for t in open_), "shown": len(shown)}


async def test_tasks_from_a_bundle_and_a_newer_version_show_without_a_restart(vault):
    async with vault.feed() as screen:
        await vault.staff_in()
        before = await screen.until(lambda d: d["staff"] and d["tasks"])
        await vault.import_bundle([task_here(1, NOON + timedelta(minutes=5), prefix="USB")])
        after = await screen.until(lambda d: any(r["task_id"] == "USB-00001" for r in d["tasks"]))
        assert after["task_summary"]["total"] == before["task_summary"]["total"] + 1
        row = next(r for r in after["tasks"] if r["task_id"] == "USB-00001")
        assert (row["plate"], row["window_start"]) == ("沪A·00001", "12:05")
        # head office moves the truck and its window: the row follows at once
        vault.import_from_head_office([task_here(1, NOON + timedelta(minutes=30), prefix="USB", plate="沪A·X9999",
                                                 version=2)])
        moved = await screen.until(lambda d: any(r["task_id"] == "USB-00001" and r["plate"] == "沪A·X9999"
                                                 for r in d["tasks"]))
        assert next(r for r in moved["tasks"] if r["task_id"] == "USB-00001")["window_start"] == "12:30"
        assert moved["task_summary"]["total"] == after["task_summary"]["total"]
    # and the truck of the moved task is recognised by its beacon
    await vault.device(VehicleArrived("ibeacon:usb:1:1", -50))
    assert vault.t.active is not None and vault.t.active.task.task_id == "USB-00001"
    assert vault.t.active.task.vehicle.plate == "沪A·X9999"


async def test_a_new_day_shows_its_own_tasks(vault):
    tomorrow = NOON + timedelta(days=1)
    vault.import_from_head_office([task_here(i, tomorrow.replace(hour=9) + timedelta(hours=i), prefix="TMR")
                                   for i in range(3)])
    async with vault.feed() as screen:
        await vault.staff_in()
        today = await screen.until(lambda d: d["staff"] and d["tasks"])
        assert not any(r["task_id"].startswith("TMR") for r in today["tasks"])
        vault.now = tomorrow.replace(hour=8, minute=30)           # past midnight: the next day's schedule
        vault.t.request_staff_view()                              # the session lapsed overnight
        await vault.device(FingerRead("counter", "match", slot=vault.slot("O01"), score=120))
        face = await screen.until(lambda d: d["staff"] and d["now"].startswith(tomorrow.date().isoformat()))
    assert [r["task_id"] for r in face["tasks"]] == ["TMR-00000", "TMR-00001", "TMR-00002"]
    assert face["task_summary"]["total"] == 3
    await vault.device(VehicleArrived("ibeacon:tmr:0:1", -50))
    assert vault.t.active is not None and vault.t.active.task.task_id == "TMR-00000"


async def test_an_import_that_rolls_back_never_shows(vault):
    phantom = Task.from_dict(task_here(7, NOON + timedelta(minutes=10), prefix="RB"))
    with pytest.raises(RuntimeError):
        with vault.t.journal.transaction():
            vault.t.store.upsert_task(phantom)
            # read while the import's transaction is open (the sync thread shares the connection)
            assert "RB-00007" in [t.task_id for t in vault.t.open_tasks(NOON.date())]
            raise RuntimeError("the import fails after writing its first task")
    assert vault.t.store.task("RB-00007") is None
    assert "RB-00007" not in [t.task_id for t in vault.t.open_tasks(NOON.date())]
    await vault.device(VehicleArrived("ibeacon:rb:7:1", -50))
    assert vault.t.active is None, "a truck of a task that was never imported is not expected"


async def test_the_simulator_panel_comes_on_its_own_stream_when_it_changes(vault):
    async with vault.feed("/api/sim/events") as panel, vault.feed() as screen:
        first = await panel.next()
        assert {x["plate"] for x in first["trucks"]} == {TRUCKS[0].plate, TRUCKS[1].plate}
        await screen.next()
        await vault.device(VehicleArrived(TRUCKS[0].beacon, -50))
        for _ in range(3):
            await vault.device(FingerRead("door", "match", slot=vault.slot("E01"), score=120))
        seen = vault.t.version
        await screen.until(lambda d: d["version"] >= seen)
        # the handover's updates did not resend the panel: nothing it lists changed
        vault.import_from_head_office([task_here(3, NOON + timedelta(hours=1), prefix="NEW", plate="沪A·N0003")])
        again = await panel.next()
        assert len(panel.docs) == 2 and again["version"] > first["version"]
        assert "沪A·N0003" in {x["plate"] for x in again["trucks"]}
    async with vault.session.get(vault.url + "/api/view") as r:       # one-off reads still carry it, for scripts
        assert "沪A·N0003" in {x["plate"] for x in (await r.json())["sim"]["trucks"]}
