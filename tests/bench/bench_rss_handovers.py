"""Benchmark: the agent's RSS over 1,000 whole handovers (issue 20, item 6).

    python tests/bench/bench_rss_handovers.py [--handovers 1000] [--per-day 20] [--trace]

The agent runs in this process with its real journal (WAL, synchronous=FULL), its real aiohttp
screen with a browser-like SSE client reading every push, and the simulated devices (text voice,
simulated printer and camera: the drivers a terminal without a speaker uses). Each handover is the
whole delivery: the truck's beacon, both escorts at the door, the box at the reader, the officer's
confirmation and both sign-off marks. Tasks arrive a day at a time (`--per-day` of them, the terminal's
clock moved on a day between days), as head office's schedule would: 1,000 handovers are 50 days of
a busy branch.

Prints RSS (VmRSS of this process) after a warm-up of 50 handovers and every 250 after it, and the
growth per handover over the measured ones (goal: none), also without the first 250 (while SQLite's
page caches, bounded, fill). Baseline in the same run: the same process
before the agent starts. `--trace` adds tracemalloc's top growth sites (slower; to find a leak).
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import sys
import tempfile
import tracemalloc
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402

from agent.config import load_config  # noqa: E402
from agent.devices import Devices  # noqa: E402
from agent.screen.server import build_app  # noqa: E402
from agent.terminal import Terminal  # noqa: E402
from drivers.ble.sim import SimulatedBeaconScanner  # noqa: E402
from drivers.camera.sim import SimulatedCamera  # noqa: E402
from drivers.cards.sim import SimulatedCardReader  # noqa: E402
from drivers.door.sim import SimulatedDoor  # noqa: E402
from drivers.events import CardRead, FingerRead, VehicleArrived  # noqa: E402
from drivers.fingerprint.sim import SimulatedFingerprint  # noqa: E402
from drivers.printer.sim import SimulatedPrinter  # noqa: E402
from drivers.voice.sim import TextVoice  # noqa: E402
from flows.model import Task  # noqa: E402

WARM_UP = 50
EVERY = 250


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def task_for(terminal: Terminal, n: int) -> Task:
    now = terminal.clock()
    return Task.from_dict({
        "task_id": f"RSS-{n:05d}", "version": 1, "kind": "delivery",
        "window_start": (now - timedelta(minutes=30)).isoformat(),
        "window_end": (now + timedelta(minutes=90)).isoformat(),
        "route": ["VLT-01", terminal.site.site_id],
        "vehicle": {"vehicle_id": f"V{n}", "plate": f"沪A·{n:05d}", "beacon": f"ibeacon:rss-bench:{n}:1"},
        "escorts": ["E01", "E02"], "confirmers": ["O01"],
        "boxes": [{"box_id": f"RB{n}", "tag": f"07{n:010X}", "destination": terminal.site.site_id}]})


async def handover(terminal: Terminal, n: int, slots: dict[str, int]) -> None:
    task = task_for(terminal, n)
    with terminal.journal.transaction():                 # today's schedule, as an import stores it
        terminal.store.upsert_task(task)
        terminal.journal.append("bench_task", {"task_id": task.task_id})
    steps = [VehicleArrived(task.vehicle.beacon, -55),
             FingerRead("door", "match", slot=slots["E01"], score=100),
             FingerRead("door", "match", slot=slots["E02"], score=100),
             CardRead("cards", task.boxes[0].tag),
             FingerRead("counter", "match", slot=slots["O01"], score=100),
             FingerRead("door", "match", slot=slots["E01"], score=100),       # the escort lead's mark
             FingerRead("counter", "match", slot=slots["O01"], score=100)]    # the officer's mark
    for event in steps:
        terminal._emit(event)
        await terminal._queue.join()
    outcome = terminal.outcomes.get(task.task_id)
    if outcome != "completed":
        h = terminal.active
        raise AssertionError(f"handover {n} did not complete: outcome {outcome!r}, "
                             f"step {h.step if h else None}, prompts {[p.key for p in terminal.prompts][:3]}")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--handovers", type=int, default=1000)
    ap.add_argument("--per-day", type=int, default=20)
    ap.add_argument("--trace", action="store_true")
    args = ap.parse_args()

    baseline = rss_kb()
    tmp = Path(tempfile.mkdtemp(prefix="bench-rss-"))
    config = load_config(None)
    config = dataclasses.replace(config, paths=dataclasses.replace(config.paths, state_dir=tmp / "state"))
    devices = Devices({"door": SimulatedFingerprint("door"), "counter": SimulatedFingerprint("counter")},
                      SimulatedCardReader(), SimulatedBeaconScanner(), SimulatedCamera(), TextVoice(),
                      SimulatedPrinter(), SimulatedDoor())
    terminal = Terminal(config, devices)
    await terminal.start()
    runner = web.AppRunner(build_app(terminal), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    slots = {pid: terminal.store.slots_of(pid)["right_index"] for pid in ("E01", "E02", "O01")}

    pushes = 0

    async def screen(session: aiohttp.ClientSession) -> None:
        nonlocal pushes
        async with session.get(f"http://127.0.0.1:{port}/api/events") as resp:
            async for line in resp.content:
                if line.startswith(b"data: "):
                    json.loads(line[6:])
                    pushes += 1

    figures: list[tuple[int, int]] = []
    async with aiohttp.ClientSession() as session:
        reader = asyncio.create_task(screen(session))
        for n in range(args.handovers + WARM_UP):
            terminal.clock_offset = timedelta(days=n // args.per_day)    # the next day's schedule
            await handover(terminal, n, slots)
            done = n + 1 - WARM_UP
            if done == 0:
                if args.trace:
                    gc.collect()                       # what is left is held, not garbage waiting
                    tracemalloc.start(12)
                    first = tracemalloc.take_snapshot()
                figures.append((0, rss_kb()))
            elif done > 0 and done % EVERY == 0:
                figures.append((done, rss_kb()))
                print(f"  {done:5d} handovers: RSS {figures[-1][1] / 1024:6.1f} MB", flush=True)
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
    if args.trace:
        gc.collect()
        top = tracemalloc.take_snapshot().compare_to(first, "traceback")
        print("tracemalloc, largest growth over the measured handovers:")
        for stat in top[:8]:
            print(f"  {stat.size_diff / 1024:8.1f} KiB in {stat.count_diff:+d} blocks")
            for line in stat.traceback.format()[-6:]:
                print("     ", line)
    entries = terminal.journal.last_seq()
    await runner.cleanup()
    await terminal.stop()

    (_, start), (measured, end) = figures[0], figures[-1]
    print(f"RSS over {measured} handovers (after {WARM_UP} to warm up; {entries} journal entries, {pushes} screen "
          f"pushes read):")
    print(f"  this process before the agent started: {baseline / 1024:6.1f} MB")
    print(f"  after the warm-up: {start / 1024:6.1f} MB   after {measured}: {end / 1024:6.1f} MB")
    print(f"  growth: {(end - start) / 1024:+.1f} MB, {(end - start) / measured:+.2f} KB per handover (goal: none)")
    if len(figures) > 2:
        # SQLite's page caches (2 MB per connection) fill while the journal grows past them: bounded
        (at, mid) = figures[1]
        print(f"  after the first {at}: {(end - mid) / 1024:+.1f} MB over {measured - at}, "
              f"{(end - mid) / (measured - at):+.2f} KB per handover")


if __name__ == "__main__":
    asyncio.run(main())
