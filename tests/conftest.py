"""Shared fixtures: a real agent process in simulation, and a real headless Chromium."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-quic", "--no-first-run", "--disable-dev-shm-usage"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class AgentProcess:
    """`handover-agent run --simulate` in a subprocess, on a free port and its own state directory."""
    state_dir: Path
    port: int
    proc: subprocess.Popen | None = None
    log: list[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self, *extra: str, simulate: bool = True) -> "AgentProcess":
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "run", *(["--simulate"] if simulate else []),
             "--state-dir", str(self.state_dir), "--port", str(self.port), *extra],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        seen = []
        for line in self.proc.stdout:           # log lines may come first; the address line says it is up
            seen.append(line)
            if "screen at" in line:
                assert self.url in line
                # keep reading, so a chatty agent never blocks on a full pipe; the tail helps a failing test
                self.log = seen
                threading.Thread(target=lambda: [seen.append(x) for x in self.proc.stdout], daemon=True).start()
                return self
            if len(seen) > 200:
                break
        self.proc.kill()
        raise AssertionError("agent did not start:\n" + "".join(seen))

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=20)
        self.proc = None
        return code

    def view(self, lang: str | None = None) -> dict:
        q = f"?lang={lang}" if lang else ""
        with urllib.request.urlopen(self.url + "api/view" + q, timeout=5) as r:
            return json.load(r)

    def post(self, path: str, body: dict) -> dict:
        req = urllib.request.Request(self.url + path.lstrip("/"), data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.load(r)

    def wait_for(self, predicate, timeout: float = 10.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            v = self.view()
            if predicate(v):
                return v
            if time.monotonic() > deadline:
                raise AssertionError(f"screen never reached the expected state; last prompt: "
                                     f"{v['prompts'][:1]}, handover: {v['handover'] and v['handover']['step']}")
            time.sleep(0.05)


@pytest.fixture
def agent(tmp_path):
    a = AgentProcess(tmp_path / "state", free_port())
    yield a
    if a.proc is not None:
        a.stop(signal.SIGKILL)


@pytest.fixture(scope="module")
def browser():
    """Module-scoped: sync Playwright runs its own event loop, which must be gone before the
    asyncio tests of other modules run."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def artifacts():
    def path_for(name: str) -> Path:
        out = ARTIFACTS / name
        out.parent.mkdir(parents=True, exist_ok=True)
        return out
    return path_for
