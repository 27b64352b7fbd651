"""Real power cuts: after a cut, only what was synced is on the disk (tests/integration/powercut.py).

The real agent (Terminal, its journal, store, complaint book and bundle importer) runs in-process on
simulated devices through bundle imports, whole handovers and complaint registrations. At every watched
write, truncate or sync of its SQLite files the power is cut: the state dir is rebuilt as the power left
it — every unsynced write dropped, or every other cut a torn one that keeps a random subset of them —
and the copy is checked with the real sqlite3 module (the unix VFS) while the run goes on:

- the journal opens, `PRAGMA integrity_check` is ok, the hash chain verifies (agent.journal), and for a
  sample the `handover-agent journal verify` command agrees;
- every acknowledged entry (its append, or the transaction holding it, had returned) is there, with
  the hash it had;
- every task an acknowledged import brought is there; every acknowledged complaint is there and its
  sealed details open with the data key found on the disk; every photo an acknowledged entry references
  is there and opens;
- for every 100th cut the real agent process starts on the copy and resumes the handover that was running.

The suite runs 3 rounds, cut at every op (~560 cuts, about a minute). A longer run:

    POWER_ROUNDS=20 ./dev test tests/integration/test_power_cut.py -q -s
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.config import load_config
from agent.devices import Devices
from agent.journal import verify_file
from agent.sealing import Sealer
from agent.terminal import Terminal
from drivers.ble.sim import SimulatedBeaconScanner
from drivers.camera.sim import SimulatedCamera
from drivers.cards.sim import SimulatedCardReader
from drivers.door.sim import SimulatedDoor
from drivers.events import CardRead, FingerRead, VehicleArrived
from drivers.fingerprint.sim import SimulatedFingerprint
from drivers.printer.sim import SimulatedPrinter
from drivers.voice.sim import TextVoice
from protocol.bundle import pack_bundle
from protocol.keys import public_pem
from conftest import AgentProcess, free_port
from powercut import PowerModel

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = int(os.environ.get("POWER_ROUNDS", "3"))
CLI_EVERY = 25              # every 25th cut is also checked by `handover-agent journal verify`
RESTART_EVERY = 100         # and every 100th is started as the real agent, which must resume what was running


@dataclasses.dataclass(frozen=True)
class Acked:
    """What the agent had acknowledged at some moment: the caller's call had returned."""
    seq: int = 0
    hash: str | None = None
    complaints: frozenset[str] = frozenset()
    photos: frozenset[str] = frozenset()
    in_progress: str | None = None          # the handover running then
    tasks: frozenset[str] = frozenset()     # imported from bundles


@dataclasses.dataclass
class Tally:
    cuts: int = 0
    torn: int = 0
    cli_checked: int = 0
    restarted: int = 0
    acked_entries_checked: int = 0
    lost: int = 0
    failures: list = dataclasses.field(default_factory=list)


def check_copy(copy: Path, acked: Acked, tally: Tally, *, cli: bool) -> None:
    """The state dir as the power left it, opened with the real sqlite3 (unix VFS)."""
    db = copy / "journal.db"
    last = _last_seq(copy)
    if last < acked.seq:
        tally.lost += acked.seq - last
        raise AssertionError(f"acknowledged entries {last + 1}..{acked.seq} were lost")
    if acked.seq == 0 and last == 0:
        return                  # cut before the first entry committed: the next start begins the journal
    if cli:                     # first, while the copy is exactly as the power left it
        out = subprocess.run([sys.executable, "-m", "agent.cli", "journal", "verify", "--db", str(db)],
                             cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and "chain intact" in out.stdout, out.stderr
        tally.cli_checked += 1
    result = verify_file(db)
    assert result.ok, f"chain broken: {result.reason}"
    conn = sqlite3.connect(f"file:{db}?vfs=unix", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        if acked.seq:
            row = conn.execute("SELECT hash FROM journal WHERE seq=?", (acked.seq,)).fetchone()
            assert row and row[0] == acked.hash, f"entry {acked.seq} is not the one acknowledged"
        tally.acked_entries_checked += acked.seq
        for task_id in acked.tasks:
            assert conn.execute("SELECT 1 FROM tasks WHERE task_id=?", (task_id,)).fetchone(), \
                f"imported task {task_id} is gone"
        if acked.complaints or acked.photos:
            key = copy / "keys" / "data.key"
            assert key.is_file(), "the data key is gone: every sealed row is unreadable"
            sealer = Sealer(key)
            for ref in acked.complaints:
                row = conn.execute("SELECT sealed FROM complaints WHERE ref=?", (ref,)).fetchone()
                assert row is not None, f"acknowledged complaint {ref} is gone"
                assert json.loads(sealer.open(row[0], ref.encode()))["description"]
            for digest in acked.photos:
                photo = copy / "photos" / f"{digest}.sealed"
                assert photo.is_file(), f"photo {digest[:12]} referenced by an acknowledged entry is gone"
                sealer.open(photo.read_bytes(), digest.encode())
    finally:
        conn.close()


def restart_on(copy: Path, acked: Acked) -> None:
    """The real agent process on the state the power left: it starts, and resumes the running handover."""
    agent = AgentProcess(copy, free_port()).start()
    try:
        v = agent.view()
        if acked.in_progress:
            running = v["handover"] and v["handover"]["task_id"]
            ended = any(t["task_id"] == acked.in_progress and t["status"] == "completed"
                        for t in v["sim"]["tasks"])         # the schedule proper is for staff only
            assert running == acked.in_progress or ended, f"handover {acked.in_progress} was not resumed"
    finally:
        agent.stop()


def _last_seq(copy: Path) -> int:
    """How far the journal goes, read in a scratch copy so the cut's own files stay as the power left them."""
    scratch = copy.with_name(copy.name + ".scratch")
    scratch.mkdir()
    try:
        for name in ("journal.db", "journal.db-wal"):
            if (copy / name).exists():
                shutil.copyfile(copy / name, scratch / name)
        conn = sqlite3.connect(f"file:{scratch / 'journal.db'}?vfs=unix", uri=True)
        try:
            if conn.execute("SELECT 1 FROM sqlite_master WHERE name='journal'").fetchone() is None:
                return 0
            return conn.execute("SELECT max(seq) FROM journal").fetchone()[0] or 0
        finally:
            conn.close()
    finally:
        shutil.rmtree(scratch)


def devices() -> Devices:
    return Devices({"door": SimulatedFingerprint("door"), "counter": SimulatedFingerprint("counter")},
                   SimulatedCardReader(), SimulatedBeaconScanner(), SimulatedCamera(), TextVoice(),
                   SimulatedPrinter(), SimulatedDoor())


class Workload:
    def __init__(self, t: Terminal, hq: Ed25519PrivateKey):
        self.t, self.hq = t, hq
        self.acked = Acked()
        self.seen = 0

    def ack(self, *, complaint: str | None = None, task: str | None = None) -> None:
        """The call that just returned acknowledged everything committed so far."""
        j = self.t.journal
        photos = set(self.acked.photos)
        for e in j.entries(after_seq=self.seen):
            snap = e.body.get("event", {}).get("snapshot") if isinstance(e.body.get("event"), dict) else None
            if snap:
                photos.add(snap)
        self.seen = j.last_seq()
        head = j.head()
        self.acked = Acked(head.seq, head.hash, self.acked.complaints | ({complaint} if complaint else set()),
                           frozenset(photos), self.t.active.task.task_id if self.t.active else None,
                           self.acked.tasks | ({task} if task else set()))

    async def device(self, ev) -> None:
        await self.t._on_device_event(ev)
        self.ack()

    def slot(self, person_id: str) -> int:
        return self.t.store.slots_of(person_id)["right_index"]

    async def round(self, i: int) -> None:
        t = self.t
        now = t.clock()
        site = t.site.site_id
        beacon = f"ibeacon:0c0ffee0-0000-4000-8000-000000000000:{i}:1"
        tags = [f"04C0{i:04X}{k:02X}0000" for k in range(2)]
        task = {"task_id": f"PC-{i}", "version": 1, "kind": "delivery",
                "window_start": (now - timedelta(minutes=30)).isoformat(),
                "window_end": (now + timedelta(minutes=90)).isoformat(),
                "route": [site], "vehicle": {"vehicle_id": f"PV{i}", "plate": f"沪A·P{i:04d}", "beacon": beacon},
                "escorts": ["E01", "E02"], "confirmers": ["O01", "O02"],
                "boxes": [{"box_id": f"PB{i}-{k}", "tag": tag, "destination": site} for k, tag in enumerate(tags)]}
        data = pack_bundle("tasks", {"tasks": [task]}, t.config.device.id, t.device_keys.bundle_public, self.hq,
                           i + 1, now + timedelta(days=2), now - timedelta(minutes=1))
        inbox = Path(t.config.paths.state_dir) / "inbox"
        inbox.mkdir(exist_ok=True)
        (inbox / f"tasks-{i:04d}.htb").write_bytes(data)
        await t.import_inbox()
        assert t.store.task(f"PC-{i}") is not None, "the tasks bundle was not imported"
        self.ack(task=f"PC-{i}")

        # a whole delivery: arrival, both escorts at the door (each attempt snaps a face), the boxes,
        # the officer, then the escort lead's and the officer's marks
        await self.device(VehicleArrived(beacon, -50))
        assert t.active is not None and t.active.task.task_id == f"PC-{i}"
        for escort in ("E01", "E02"):
            await self.device(FingerRead("door", "match", slot=self.slot(escort), score=120))
        for tag in tags:
            await self.device(CardRead("cards", tag, sun_verified=True, uid_only=False))
        await self.device(FingerRead("counter", "match", slot=self.slot("O01"), score=120))
        for _ in range(4):
            if t.active is None:
                break
            lead = t.active.lead or "E01"
            station, person = ("door", lead) if lead not in t.active.marks else ("counter", "O01")
            await self.device(FingerRead(station, "match", slot=self.slot(person), score=120))
        assert t.active is None and t.outcomes.get(f"PC-{i}") == "completed", \
            (t.active and t.active.step, [p.key for p in t.prompts], [e.body for e in t.journal.entries() if e.kind == "alarm"])

        # a complaint at the kiosk, then an officer takes the screen back
        t.enter_kiosk()
        self.ack()
        receipt = t.complaints.register({"channel": "walk_in", "category": "service_attitude",
                                         "description": f"柜台等候过久 {i}", "request": "请改进", "name": ""},
                                        t.clock())
        self.ack(complaint=receipt.ref)
        t.request_kiosk_exit()
        await self.device(FingerRead("counter", "match", slot=self.slot("O01"), score=120))
        assert t.mode == "handover"


def test_power_cut_at_every_write_and_sync(tmp_path):
    state = tmp_path / "state"
    (state / "keys" / "hq_signers").mkdir(parents=True)
    hq = Ed25519PrivateKey.generate()
    (state / "keys" / "hq_signers" / "hq.pem").write_bytes(public_pem(hq.public_key()))
    config = load_config(None).as_simulation()
    config = dataclasses.replace(config, paths=dataclasses.replace(config.paths, state_dir=state))

    tally = Tally()
    rng = random.Random(19)
    workload: list[Workload] = []

    def on_cut(op: int) -> None:
        """Runs inside the VFS call that the power interrupts: copy, then check the copy at once."""
        acked = workload[0].acked if workload else Acked()
        torn = op % 2 == 0
        copy = tmp_path / "cuts" / f"{op:06d}"
        model.snapshot(copy, rng if torn else None)
        tally.cuts += 1
        tally.torn += torn
        try:
            check_copy(copy, acked, tally, cli=tally.cuts % CLI_EVERY == 0)
        except BaseException as exc:
            tally.failures.append(f"cut {op}: {exc!r}")
            return                      # the copy is kept for whoever reads the failure
        if tally.cuts % RESTART_EVERY == 0 and acked.seq:
            try:
                restart_on(copy, acked)
                tally.restarted += 1
            except BaseException as exc:
                tally.failures.append(f"cut {op}, restarted: {exc!r}")
                return
        shutil.rmtree(copy)

    model = PowerModel(state, cut_at=_Every(), on_cut=on_cut)
    model.install()
    try:
        async def run() -> None:
            t = Terminal(config, devices())
            await t.start()
            w = Workload(t, hq)
            w.ack(complaint=None)
            w.acked = dataclasses.replace(w.acked, photos=w.acked.photos | {p.photo for p in t.people.values() if p.photo})
            workload.append(w)
            for i in range(ROUNDS):
                await w.round(i)
            await t.stop()
        asyncio.run(run())
    finally:
        model.remove()
        assert not model.errors, model.errors
    print(f"\npower cuts: {tally.cuts} ({tally.torn} torn), ops watched {model.ops}, "
          f"acknowledged entries at the last cut {workload[0].acked.seq if workload else 0}, "
          f"acknowledged entries checked over all cuts {tally.acked_entries_checked}, "
          f"lost {tally.lost}, CLI-verified {tally.cli_checked}, agent restarted on {tally.restarted}")
    assert not model.errors, model.errors
    assert not tally.failures, "\n".join(tally.failures[:10]) + f"\n({len(tally.failures)} cuts failed)"
    assert tally.lost == 0
    assert tally.cuts >= 200, f"only {tally.cuts} cut points"


class _Every:
    """Cut before every watched op."""
    def __contains__(self, n: int) -> bool:
        return True
