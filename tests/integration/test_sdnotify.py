"""sd_notify on a real unix datagram socket: READY, periodic WATCHDOG, and silence when the loop hangs."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# A small agent stand-in: ready, pings from the loop, then blocks its loop as a hung handler would.
# It marks the phases with STATUS, so the test reads the order of the datagrams, not their timing
# (a busy machine may delay any of them).
PROGRAM = textwrap.dedent("""
    import asyncio, time
    from agent.sdnotify import Notifier, watchdog_loop

    class Counted(Notifier):
        pings = 0
        def watchdog(self):
            self.pings += 1
            super().watchdog()

    async def until_pings(n, count):
        while n.pings < count:
            await asyncio.sleep(0.02)

    async def main():
        n = Counted()
        pinger = asyncio.create_task(watchdog_loop(n))
        n.ready()
        n.status("serving")
        await until_pings(n, 4)          # a healthy loop pings again and again
        n.status("blocked")
        time.sleep(1.5)                  # the loop is stuck for 15 watchdog intervals: no ping may go
        n.status("unblocked")
        await until_pings(n, n.pings + 1)
        n.stopping()
        pinger.cancel()

    asyncio.run(main())
""")


def receive_all(sock: socket.socket, seconds: float) -> list[tuple[float, str]]:
    got: list[tuple[float, str]] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = sock.recv(4096)
            got.append((time.monotonic(), data.decode()))
        except socket.timeout:
            break
        if got[-1][1] == "STOPPING=1":
            break
    return got


@pytest.mark.parametrize("abstract", [False, True])
def test_ready_then_watchdog_pings_that_stop_when_the_loop_blocks(tmp_path, abstract):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if abstract:
        name = f"handover-test-{os.getpid()}-{time.monotonic_ns()}"
        sock.bind("\0" + name)
        address = "@" + name
    else:
        address = str(tmp_path / "notify.sock")
        sock.bind(address)
    env = {**os.environ, "NOTIFY_SOCKET": address, "WATCHDOG_USEC": "200000", "PYTHONPATH": str(ROOT)}
    env.pop("WATCHDOG_PID", None)
    proc = subprocess.Popen([sys.executable, "-c", PROGRAM], env=env, cwd=ROOT)
    try:
        messages = receive_all(sock, 60)
    finally:
        proc.wait(timeout=60)
        sock.close()
    assert proc.returncode == 0
    texts = [m for _, m in messages]
    assert "READY=1" in texts and "STATUS=serving" in texts and texts[-1] == "STOPPING=1"

    phases = ["READY=1", "STATUS=serving", "STATUS=blocked", "STATUS=unblocked", "STOPPING=1"]
    assert [m for m in texts if m != "WATCHDOG=1"] == phases, texts
    at = [texts.index(m) for m in phases]
    pings_in = [texts[a + 1:b].count("WATCHDOG=1") for a, b in zip(at, at[1:])]
    # pinging while serving, silent while the loop is blocked, pinging again once it runs
    assert pings_in[1] >= 4 and pings_in[2] == 0 and pings_in[3] >= 1, texts


def test_without_notify_socket_every_call_is_a_no_op(monkeypatch):
    from agent.sdnotify import Notifier, watchdog_interval

    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    n = Notifier()
    n.ready(); n.watchdog(); n.status("x"); n.stopping()
    assert not n.enabled and watchdog_interval() is None


def test_watchdog_meant_for_another_process_is_ignored(monkeypatch):
    from agent.sdnotify import watchdog_interval

    monkeypatch.setenv("WATCHDOG_USEC", "10000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog_interval() == 5.0
