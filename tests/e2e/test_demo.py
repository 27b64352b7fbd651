"""`./dev demo` (tools/demo.py, which it runs) brings up both sides: a newcomer opens the terminal's screen and
head office's page, logs in with a login the demo printed, and sees the terminal online on the devices board.
Ctrl-C (SIGINT) stops every process the demo started; without mosquitto the terminal runs alone and says why;
a demo killed outright takes its children with it."""
from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from playwright.sync_api import expect

from tests.conftest import free_port
from tests.e2e.test_hq_board import login

pytestmark = [pytest.mark.browser, pytest.mark.mqtt]
ROOT = Path(__file__).resolve().parents[2]
DEVICE = "branch-01-terminal"
READY = "Ctrl-C stops"


class Demo:
    def __init__(self, state: Path, env: dict | None = None):
        self.port, self.hq_port = free_port(), free_port()
        self.screen_url = f"http://127.0.0.1:{self.port}/"
        self.hq_url = f"http://127.0.0.1:{self.hq_port}/"
        self.state = state
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "tools/demo.py", "--port", str(self.port), "--hq-port", str(self.hq_port),
             "--state-dir", str(state)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self._up = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)
            if READY in line:
                self._up.set()

    def wait_up(self) -> str:
        assert self._up.wait(180), "the demo did not come up:\n" + "".join(self.lines)
        return "".join(self.lines)

    def descendants(self) -> set[int]:
        found, todo = set(), [self.proc.pid]
        while todo:
            pid = todo.pop()
            for children in Path(f"/proc/{pid}/task").glob("*/children"):
                for child in map(int, children.read_text().split()):
                    if child not in found:
                        found.add(child)
                        todo.append(child)
        return found


def login_page(browser, url: str, name: str, password: str):
    """Logged in as `name` (whose role may have no alarm board to land on)."""
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(url + "login")
    page.get_by_test_id("login-name").fill(name)
    page.get_by_test_id("login-password").fill(password)
    page.get_by_test_id("login-submit").click()
    page.wait_for_url(lambda u: "/login" not in u)
    return page


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper that is not the demo counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_gone(pids: set[int], timeout: float = 30) -> set[int]:
    deadline = time.monotonic() + timeout
    while (left := {p for p in pids if alive(p)}) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def device_row(tmp_path: Path) -> tuple[str | None, int]:
    """(state, last applied seq) of the demo terminal in head office's database."""
    try:
        with sqlite3.connect(tmp_path / "var" / "hq" / "hq.db") as db:
            row = db.execute("SELECT state, last_seq FROM devices WHERE device = ?", (DEVICE,)).fetchone()
    except sqlite3.Error:
        row = None
    return row or (None, 0)


def test_the_demo_shows_both_sides_and_ctrl_c_leaves_nothing_running(browser, artifacts, tmp_path):
    demo = Demo(tmp_path / "var")
    try:
        out = demo.wait_up()
        logins = dict(re.findall(r"^\s+(\w+)\s+password (\S+)$", out, re.M))
        assert set(logins) == {"monitor", "vault_manager", "complaint_officer", "admin"}, out
        assert len(set(logins.values())) == 4 and all(len(p) >= 12 for p in logins.values())
        assert demo.screen_url in out and demo.hq_url in out
        children = demo.descendants()
        assert len(children) >= 3, f"mosquitto, head office and the terminal: {children}"

        screen = browser.new_page(viewport={"width": 800, "height": 480})
        screen.goto(demo.screen_url)
        expect(screen.get_by_test_id("staff-toggle")).to_be_visible()
        screen.screenshot(path=str(artifacts("e2e/demo-01-terminal.png")))

        board = login(browser, SimpleNamespace(url=demo.hq_url), "monitor", logins["monitor"])
        expect(board.get_by_test_id("who")).to_contain_text("monitor")
        board.get_by_test_id("nav-devices").click()
        row = board.get_by_test_id(f"device-{DEVICE}")
        expect(row).to_have_attribute("data-state", "online", timeout=30000)
        board.screenshot(path=str(artifacts("e2e/demo-02-head-office-devices.png")))

        # the admin uploads the example dispatch the demo wrote: published to the terminal, which says so
        dispatch = re.search(r"^a dispatch for today to upload as admin on \S+: (\S+)$", out, re.M).group(1)
        admin = login(browser, SimpleNamespace(url=demo.hq_url), "admin", logins["admin"])
        admin.goto(demo.hq_url + "schedule")
        expect(admin.locator("body")).to_have_attribute("data-ready", "true")
        admin.get_by_test_id("schedule-file").set_input_files(dispatch)
        admin.get_by_test_id("schedule-submit").click()
        expect(admin.get_by_test_id("schedule-result")).to_contain_text("branch-01", timeout=30000)
        expect(screen.get_by_test_id("schedule-notice")).to_contain_text("排班已更新", timeout=30000)
        admin.screenshot(path=str(artifacts("e2e/demo-03-schedule.png")))
        screen.screenshot(path=str(artifacts("e2e/demo-04-terminal-schedule-notice.png")))

        # the complaint officer's page has head office's complaint key (the terminal seals to its public half)
        officer = login_page(browser, demo.hq_url, "complaint_officer", logins["complaint_officer"])
        officer.goto(demo.hq_url + "complaints")
        expect(officer.get_by_test_id("who")).to_contain_text("complaint_officer")
        expect(officer.get_by_test_id("complaints-no-key")).to_be_hidden()
        for page in (screen, board, admin, officer):
            page.close()

        demo.proc.send_signal(signal.SIGINT)
        assert demo.proc.wait(90) == 0, "".join(demo.lines)
        assert not wait_gone(children), f"left running after Ctrl-C: {wait_gone(children, 0)}"
        # the terminal was stopped first, so head office recorded it going offline before it stopped itself
        state, applied = device_row(tmp_path)
        assert state == "offline" and applied > 0
        # a second run starts head office afresh (new passwords) and takes the terminal's journal in again
        again = Demo(tmp_path / "var")
        try:
            out2 = again.wait_up()
            assert dict(re.findall(r"^\s+(\w+)\s+password (\S+)$", out2, re.M))["monitor"] != logins["monitor"]
            deadline = time.monotonic() + 60
            while (device_row(tmp_path)[1] < applied) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert device_row(tmp_path)[1] >= applied, "head office did not take the journal in again"
        finally:
            again.proc.send_signal(signal.SIGINT)
            assert again.proc.wait(90) == 0
    finally:
        if demo.proc.poll() is None:
            demo.proc.kill()


def test_without_mosquitto_the_terminal_runs_alone_and_a_killed_demo_takes_it_along(tmp_path):
    bare = tmp_path / "bin"           # a PATH with no mosquitto on it
    bare.mkdir()
    demo = Demo(tmp_path / "var", env={**os.environ, "PATH": str(bare)})
    try:
        out = demo.wait_up()
        assert "mosquitto is not installed" in out and "apt-get install --no-install-recommends mosquitto" in out
        assert "Running the terminal alone" in out and "password" not in out
        assert demo.screen_url in out and not (tmp_path / "var" / "hq").exists()
        children = demo.descendants()
        assert len(children) == 1
        demo.proc.kill()               # not a clean stop: the terminal must not be left behind all the same
        demo.proc.wait(10)
        assert not wait_gone(children), "the terminal outlived a killed demo"
    finally:
        if demo.proc.poll() is None:
            demo.proc.kill()
