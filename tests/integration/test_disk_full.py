"""A full disk is a state, not a crash (issue 19 item 8), on a real full filesystem: the state dir is a
small tmpfs, filled to the last byte by a file beside the journal, with the real agent process.

What a user notices: the device bar says 存储空间不足; a truck's arrival is refused with a prompt
instead of a handover that could not be recorded; screen changes that cannot be journaled answer 503
naming the cause and do not happen; the agent starts on the full disk; when space returns it says so
and handovers start again. The journal verifies throughout.
"""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from broker import Broker, Pki, mqtt_config

from agent.sample import TRUCKS
from conftest import ROOT, AgentProcess, free_port
from hq.sync import HeadOffice

BEACON_A = TRUCKS[0].beacon
SIZE = "8m"


@pytest.fixture
def small_disk(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE},mode=0700", "tmpfs", str(state)], check=True)
    try:
        yield state
    finally:
        subprocess.run(["umount", "-l", str(state)], check=True)


@pytest.fixture
def agent_on(small_disk, tmp_path):
    config = tmp_path / "agent.toml"
    config.write_text('[site]\nid = "BR-001"\ntype = "branch"\n\n[paths]\nmin_free_mb = 2\n', encoding="utf-8")
    a = AgentProcess(small_disk, free_port())
    a.extra = ("--config", str(config))
    yield a
    if a.proc is not None:
        a.stop(signal.SIGKILL)


def fill(directory: Path) -> Path:
    """Take every free byte of the filesystem, as a runaway log would."""
    path = directory / "filler.bin"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for chunk in (1 << 20, 1 << 16, 1 << 12, 1 << 9, 1):
            try:
                while True:
                    os.write(fd, bytes(chunk))
            except OSError as exc:
                assert exc.errno == 28, exc          # ENOSPC
    finally:
        os.close(fd)
    assert os.statvfs(directory).f_bavail == 0
    return path


def post_status(agent: AgentProcess, path: str, body: dict) -> tuple[int, dict]:
    req = urllib.request.Request(agent.url + path.lstrip("/"), data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def storage(v: dict) -> dict:
    return next(h for h in v["health"] if h["device"] == "storage")


def prompt_keys(v: dict) -> list[str]:
    return [p["key"] for p in v["prompts"]]


def journal_entries(db: Path) -> list[tuple[str, dict]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [(k, json.loads(b)) for k, b in conn.execute("SELECT kind, body FROM journal ORDER BY seq")]
    finally:
        conn.close()


def journal_kinds(db: Path) -> list[str]:
    return [kind for kind, _ in journal_entries(db)]


def test_a_full_disk_is_shown_refuses_handovers_survives_a_restart_and_resumes(agent_on, small_disk):
    agent = agent_on
    agent.start(*agent.extra)
    v = agent.view()
    assert storage(v)["state"] == "connected"
    assert v["lang"] == "zh-CN" and v["mode"] == "handover"

    filler = fill(small_disk)
    v = agent.wait_for(lambda v: storage(v)["state"] == "degraded", timeout=20)
    bar = storage(v)
    assert bar["text"] == "存储空间不足", bar
    assert "storage" in {h["device"] for h in agent.view("en")["health"]}
    assert storage(agent.view("en"))["text"] == "Storage space low"

    # a truck arrives: no handover starts that the journal might not be able to finish
    agent.post("api/sim/beacon", {"beacon": BEACON_A})
    v = agent.wait_for(lambda v: "storage_handover_refused" in prompt_keys(v), timeout=20)
    assert v["handover"] is None

    # now take what the agent gave back too: nothing can be journaled any more
    fill(small_disk)
    status, body = post_status(agent, "api/language", {"lang": "en"})
    assert status == 503 and "storage" in body["error"], (status, body)
    status, body = post_status(agent, "api/kiosk/enter", {})
    assert status == 503 and "storage" in body["error"], (status, body)
    status, body = post_status(agent, "api/sim/clock", {"offset_minutes": 60})
    assert status == 503, (status, body)
    v = agent.view()
    assert v["lang"] == "zh-CN" and v["mode"] == "handover", "a change that was not journaled took effect"
    assert "storage_write_failed" in prompt_keys(v)
    clock_before = v["now"]

    # a finger at the door with nothing journalable: the screen says why instead of ignoring it
    agent.post("api/sim/finger", {"station": "door", "slot": None})
    agent.wait_for(lambda v: v["prompts"][0]["key"] in ("storage_write_failed", "storage_handover_refused"))

    # a restart on the full disk: the agent comes up and says so
    assert agent.stop(signal.SIGTERM) == 0
    agent.start(*agent.extra)
    v = agent.view()
    assert storage(v)["state"] == "degraded" and storage(v)["text"] == "存储空间不足"
    assert v["lang"] == "zh-CN" and v["mode"] == "handover"
    assert v["now"][:13] == clock_before[:13], "the clock jump that answered 503 took effect"

    # space returns: the agent says so and handovers start again
    for f in small_disk.glob("filler*.bin"):
        f.unlink()
    filler.unlink(missing_ok=True)
    v = agent.wait_for(lambda v: storage(v)["state"] == "connected", timeout=20)
    assert storage(v)["text"] is None
    assert "storage_ok" in prompt_keys(v)
    agent.post("api/sim/beacon", {"beacon": BEACON_A})
    agent.wait_for(lambda v: v["handover"] is not None and v["handover"]["step"] == "escort_verification", timeout=20)
    agent.stop(signal.SIGTERM)

    db = small_disk / "journal.db"
    out = subprocess.run([sys.executable, "-m", "agent.cli", "journal", "verify", "--db", str(db)],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    kinds = journal_kinds(db)
    for kind in ("storage_low", "handover_refused", "storage_ok", "handover_started"):
        assert kind in kinds, f"no {kind} entry in the journal: {kinds[-15:]}"
    assert kinds.index("handover_refused") < kinds.index("handover_started")
    assert "screen_mode" not in kinds, "kiosk mode was journaled although it answered 503"


def test_the_agent_starts_on_a_disk_that_filled_while_it_was_stopped(agent_on, small_disk):
    agent = agent_on
    agent.start(*agent.extra)
    assert (small_disk / "storage.reserve").is_file(), "the reserve is taken while space is plentiful"
    assert agent.stop(signal.SIGTERM) == 0        # a clean stop removes the WAL and its index
    fill(small_disk)

    agent.start(*agent.extra)
    assert any("released the storage reserve" in line for line in agent.log), "".join(agent.log[-20:])
    v = agent.view()
    assert storage(v)["state"] == "degraded" and storage(v)["text"] == "存储空间不足"
    agent.post("api/sim/beacon", {"beacon": BEACON_A})
    v = agent.wait_for(lambda v: "storage_handover_refused" in prompt_keys(v), timeout=20)
    assert v["handover"] is None
    agent.stop(signal.SIGTERM)
    entries = journal_entries(small_disk / "journal.db")
    assert [kind for kind, _ in entries[-3:]] == ["agent_started", "handover_refused", "agent_stopped"], entries[-3:]
    assert entries[-3][1]["storage_low"] is True and entries[-2][1]["reason"] == "storage_low"


@pytest.mark.mqtt
def test_head_office_sees_the_full_disk_in_health(small_disk, tmp_path):
    (tmp_path / "broker").mkdir()
    broker = Broker(tmp_path / "broker", Pki(tmp_path / "pki")).start()
    cert, key = broker.pki.issue("hq")
    office = HeadOffice("127.0.0.1", broker.port, ca_file=broker.pki.ca_file, cert_file=cert, key_file=key,
                        client_id="hq").start()
    agent = AgentProcess(small_disk, free_port())
    try:
        mqtt_config(broker, "dev-disk-1", "BR-060", small_disk)
        conf = small_disk / "agent.toml"
        conf.write_text(conf.read_text().replace("[paths]\n", "[paths]\nmin_free_mb = 2\n"))
        agent.start("--config", str(conf))

        def drivers_storage() -> dict | None:
            health = office.log("dev-disk-1").health
            return health and health["drivers"].get("storage")

        def ask_until(predicate, timeout=30.0):
            deadline = time.monotonic() + timeout
            while True:
                office.send("dev-disk-1", "command", {"site_id": "BR-060", "command": "publish_health"})
                for _ in range(20):
                    if predicate(drivers_storage()):
                        return office.log("dev-disk-1").health
                    time.sleep(0.1)
                assert time.monotonic() < deadline, f"head office saw {office.log('dev-disk-1').health}"

        ask_until(lambda s: s is not None and s["state"] == "connected")
        filler = fill(small_disk)
        agent.wait_for(lambda v: storage(v)["state"] == "degraded", timeout=20)
        health = ask_until(lambda s: s is not None and s["state"] == "degraded")
        assert "needs 2048 KiB" in health["drivers"]["storage"]["error"]
        assert health["disk"]["free_bytes"] < 2 * 1024 * 1024

        filler.unlink()
        agent.wait_for(lambda v: storage(v)["state"] == "connected", timeout=20)
        ask_until(lambda s: s is not None and s["state"] == "connected")
    finally:
        if agent.proc is not None:
            agent.stop(signal.SIGKILL)
        office.stop()
        broker.stop()


@pytest.mark.browser
def test_staff_see_the_full_disk_on_the_device_bar(agent_on, small_disk, browser, artifacts):
    from playwright.sync_api import expect
    agent = agent_on
    agent.start(*agent.extra)
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.goto(agent.url)
    bar = page.get_by_test_id("health-storage")
    expect(bar).to_have_text("存储空间 正常")

    filler = fill(small_disk)
    expect(bar).to_have_text("存储空间不足", timeout=20_000)
    agent.post("api/sim/beacon", {"beacon": BEACON_A})
    expect(page.locator("body")).to_contain_text("存储空间不足，暂停开始新的交接", timeout=20_000)
    page.screenshot(path=str(artifacts("e2e/storage-full.png")), full_page=True)

    filler.unlink()
    expect(bar).to_have_text("存储空间 正常", timeout=20_000)
    page.close()
