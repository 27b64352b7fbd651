"""Issue 16 in real headless Chromium: head office's monitoring page (`handover-hq serve --http`) beside a
running simulated terminal, both on a real TLS mosquitto. A monitor logs in; a duress finger and a wrong
box on the terminal appear on the board (duress for monitors only, and never on the terminal's screen);
the wrong box's Mandarin announcement is a non-silent WAV; the monitor acknowledges it with a note, and
the terminal's screen shows "总部已确认" on that alarm. A vault manager's board never shows the duress
alarm. Screenshots in artifacts/e2e/ (head office's page at 1280x800)."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import wave
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import expect

from tests.conftest import free_port

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from broker import HQ_IDENTITY, Broker, Pki, mqtt_config  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.mqtt]
ROOT = Path(__file__).resolve().parents[2]
TRUCK_A = "沪A·C1234"
DEVICE, SITE = "dev-e2e-1", "BR-001"
PASSWORD = "monitor password 1"
VIEWPORT = {"width": 1280, "height": 800}


class HeadOffice:
    """`handover-hq serve --http` as a process, as a head office runs it."""

    def __init__(self, broker: Broker, folder: Path):
        self.folder = folder
        self.db = folder / "hq.db"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        cert, key = broker.pki.issue(HQ_IDENTITY)
        sites = folder / "sites.json"
        sites.write_text(json.dumps({"BR-001": "城东支行", "BR-002": "城西支行"}, ensure_ascii=False), "utf-8")
        self.argv = [sys.executable, "-m", "hq.cli", "serve", "--host", "127.0.0.1", "--port", str(broker.port),
                     "--ca", str(broker.pki.ca_file), "--cert", str(cert), "--key", str(key), "--db", str(self.db),
                     "--http", f"127.0.0.1:{self.port}", "--sites", str(sites)]
        self.proc: subprocess.Popen | None = None
        self.lines: list[str] = []

    def add_user(self, name: str, role: str) -> None:
        r = subprocess.run([sys.executable, "-m", "hq.cli", "user", "add", name, "--role", role, "--db", str(self.db)],
                           input=PASSWORD + "\n", capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert r.returncode == 0, r.stderr

    def start(self) -> "HeadOffice":
        self.proc = subprocess.Popen(self.argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in self.proc.stdout:
            self.lines.append(line)
            if "monitoring centre at" in line:
                threading.Thread(target=lambda: [self.lines.append(x) for x in self.proc.stdout], daemon=True).start()
                return self
        raise AssertionError("head office did not start:\n" + "".join(self.lines))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)


@pytest.fixture
def broker(tmp_path):
    (tmp_path / "broker").mkdir()
    b = Broker(tmp_path / "broker", Pki(tmp_path / "pki")).start()
    yield b
    b.stop()


@pytest.fixture
def head_office(broker, tmp_path):
    (tmp_path / "hq").mkdir()
    office = HeadOffice(broker, tmp_path / "hq")
    office.add_user("wang", "monitor")
    office.add_user("zhao", "vault_manager")
    office.start()
    yield office
    office.stop()


def login(browser, office: HeadOffice, name: str, password: str = PASSWORD):
    """A new page at `office.url`, logged in as `name`."""
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(office.url)
    expect(page.get_by_test_id("login-form")).to_contain_text("监控中心登录")
    page.get_by_test_id("login-name").fill(name)
    page.get_by_test_id("login-password").fill(password)
    page.get_by_test_id("login-submit").click()
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    return page


def spoken_rms(board, row, office: HeadOffice, path: Path) -> float:
    """Play `row`'s announcement on the board; the RMS (0..1) of the WAV the page's audio element got."""
    testid = row.get_attribute("data-testid")
    row.get_by_test_id("play").click()
    expect(board.get_by_test_id("voice")).to_have_attribute("data-alarm", testid)
    src = board.get_by_test_id("voice").get_attribute("src")
    wav = board.request.get(office.url.rstrip("/") + src)
    assert wav.ok and wav.headers["content-type"] == "audio/wav"
    return rms(wav.body(), path)


def acknowledge(row, note: str) -> None:
    row.get_by_test_id("ack-open").click()
    row.get_by_test_id("ack-note").fill(note)
    row.get_by_test_id("ack-submit").click()


def rms(wav_bytes: bytes, path: Path) -> float:
    path.write_bytes(wav_bytes)
    with wave.open(str(path)) as w:
        assert w.getnframes() > w.getframerate() // 2, "less than half a second of speech"
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float64)
    return float(np.sqrt(np.mean(samples ** 2))) / 32768


def test_a_wrong_box_is_on_the_board_spoken_acknowledged_and_seen_at_the_terminal(
        agent, browser, artifacts, broker, head_office, tmp_path):
    mqtt_config(broker, DEVICE, SITE, agent.state_dir)
    agent.start("--config", str(agent.state_dir / "agent.toml"))

    board = login(browser, head_office, "wang")
    expect(board.get_by_test_id("who")).to_contain_text("wang · 监控员")
    expect(board.get_by_test_id("alarms-empty")).to_be_visible()
    manager = login(browser, head_office, "zhao")
    expect(manager.get_by_test_id("who")).to_contain_text("金库主管")
    terminal_row = manager.get_by_test_id(f"device-{DEVICE}")
    expect(terminal_row).to_have_attribute("data-state", "online", timeout=15000)
    expect(terminal_row.get_by_test_id("state")).to_have_text("在线")

    screen = browser.new_page(viewport={"width": 1600, "height": 1000})     # wide: the simulator panel is open
    screen.goto(agent.url)
    screen.get_by_test_id("staff-toggle").click()
    screen.get_by_test_id("sim-counter-O01").click()
    expect(screen.get_by_test_id("tasks")).to_contain_text("今日押运任务")
    screen.get_by_test_id(f"sim-truck-{TRUCK_A}").click()
    screen.get_by_test_id("sim-door-E01").click()
    screen.get_by_test_id("sim-door-E02-duress").click()          # 李军 under duress: silent at the terminal
    expect(screen.get_by_test_id("escort-E02")).to_have_attribute("data-verified", "true")

    duress = board.locator("tr[data-kind=duress]")
    expect(duress).to_have_count(1, timeout=15000)
    expect(duress.get_by_test_id("site")).to_have_text("城东支行")
    expect(duress).to_contain_text("胁迫报警")

    screen.get_by_test_id("sim-tag-XB1-01").click()
    screen.get_by_test_id("sim-tag-XB2-01").click()                # destined for BR-002: a wrong box
    expect(screen.get_by_test_id("open-alarm-wrong_box")).to_contain_text("错箱")
    row = board.locator("tr[data-kind=wrong_box]")
    expect(row).to_have_count(1, timeout=15000)
    expect(row.get_by_test_id("kind")).to_have_text("错箱报警")
    expect(row.get_by_test_id("site")).to_have_text("城东支行")
    expect(row).to_contain_text(DEVICE)
    expect(board.get_by_test_id("stream-lost")).to_be_hidden()     # pushed on the live stream, not by a reload
    board.screenshot(path=str(artifacts("e2e/hq-board-01-alarms.png")))

    # the vault manager's board has the wrong box, live, and never the duress alarm
    expect(manager.locator("tr[data-kind=wrong_box]")).to_have_count(1, timeout=15000)
    expect(manager.locator("tr[data-kind=duress]")).to_have_count(0)
    expect(manager.get_by_test_id("ack-open")).to_have_count(0)           # only a monitor acknowledges
    manager.screenshot(path=str(artifacts("e2e/hq-board-02-vault-manager.png")))

    # the announcement the board played: the catalog's Mandarin sentence, rendered by espeak-ng
    assert spoken_rms(board, row, head_office, tmp_path / "alarm.wav") > 0.01, "the announcement is silent"

    acknowledge(row, "已电话联系网点，错箱退回押运车")
    expect(row).to_have_attribute("data-acked", "true")
    expect(row.get_by_test_id("ack-state")).to_contain_text("wang已确认：已电话联系网点，错箱退回押运车")
    expect(manager.locator("tr[data-kind=wrong_box]").get_by_test_id("ack-state")).to_contain_text("wang已确认")

    # the terminal's screen shows head office's acknowledgement on that alarm, and nothing of the duress
    seen = screen.get_by_test_id("hq-seen-wrong_box")
    expect(seen).to_have_text("总部已确认：已电话联系网点，错箱退回押运车", timeout=15000)
    expect(screen.get_by_test_id("handover")).not_to_contain_text("胁迫")
    screen.screenshot(path=str(artifacts("e2e/hq-board-03-terminal-ack.png")))
    board.screenshot(path=str(artifacts("e2e/hq-board-04-acknowledged.png")))

    # the duress alarm is acknowledged at head office only
    acknowledge(duress, "已报警，联系押运公司")
    expect(duress.get_by_test_id("ack-state")).to_contain_text("静默报警，不通知终端")
    board.get_by_test_id("nav-devices").click()
    board.screenshot(path=str(artifacts("e2e/hq-board-05-devices.png")))
    expect(screen.locator("[data-testid^=hq-seen-]")).to_have_count(1)

    # a restarted terminal still shows head office's acknowledgement (it is in its journal)
    assert agent.stop() == 0
    agent.start("--config", str(agent.state_dir / "agent.toml"))
    screen.goto(agent.url)
    expect(screen.get_by_test_id("hq-seen-wrong_box")).to_have_text("总部已确认：已电话联系网点，错箱退回押运车")
    for page in (board, manager, screen):
        page.close()
