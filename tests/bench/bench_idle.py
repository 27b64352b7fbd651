"""Benchmark: the agent at rest (issue 20, item 6): RSS, CPU and context switches per second.

    python tests/bench/bench_idle.py [--seconds 20]

Each case is a new process started with its own state (tests/bench/agentrun.py), left idle for 5 s,
then watched for `--seconds`: VmRSS at the end, CPU time (user+system, all threads) and voluntary plus
involuntary context switches of all its threads over the window. Cases: a bare aiohttp app (the
baseline, same run), the agent in simulation, with the serial devices real (both UART fingerprint
modules, the door relay, the printer; polling, and again with the modules' touch wires configured,
through gpiozero's mock pins since this machine has no GPIO), and with every real driver this machine can
drive (PC/SC, BLE through bleak, the OpenCV camera on a video file too). The camera runs in a worker
process only while a handover is open (drivers/camera/process.py): every figure is the sum over the agent
and its descendants, and the worker's own RSS while warm is printed beside them. Goals: idle RSS <= 70 MB with real drivers; no
busy loop at rest.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from agentrun import ROOT, agent_argv, bare_argv, fresh_port, real_drivers_config, rss_kb, started  # noqa: E402

from drivers.camera import wire  # noqa: E402


def family(pid: int) -> list[int]:
    """The process and every descendant (the camera worker, when one runs): memory is not hidden in a child."""
    pids, at = [pid], 0
    while at < len(pids):
        for tid in os.listdir(f"/proc/{pids[at]}/task"):
            try:
                pids += [int(c) for c in Path(f"/proc/{pids[at]}/task/{tid}/children").read_text().split()]
            except OSError:
                continue
        at += 1
    return pids


def switches(pid: int) -> int:
    total = 0
    for p in family(pid):
        for tid in os.listdir(f"/proc/{p}/task"):
            try:
                lines = Path(f"/proc/{p}/task/{tid}/status").read_text().splitlines()
            except OSError:
                continue                       # a thread that ended meanwhile
            total += sum(int(line.split()[1]) for line in lines if "ctxt_switches" in line)
    return total


def cpu_seconds(pid: int) -> float:
    total = 0
    for p in family(pid):
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def watch(argv: list[str], port: int, seconds: float, env: dict | None = None) -> tuple[float, float, float, int]:
    with started(argv, port, env=env) as (proc, _, _):
        time.sleep(5)                      # start-up work (library sync, first pushes) is done
        s0, c0, t0 = switches(proc.pid), cpu_seconds(proc.pid), time.monotonic()
        time.sleep(seconds)
        dt = time.monotonic() - t0
        pids = family(proc.pid)
        return (sum(rss_kb(p) for p in pids) / 1024, (switches(proc.pid) - s0) / dt,
                100 * (cpu_seconds(proc.pid) - c0) / dt, len(pids))


def warm_worker_mb(video: Path) -> float:
    """RSS of the camera worker while warm (a handover open), after a snapshot: what a handover adds."""
    worker = subprocess.Popen([sys.executable, "-m", "drivers.camera.worker", str(video)], cwd=ROOT,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        worker.stdin.write(wire.SNAP)
        worker.stdin.flush()
        buffer, ended = b"", False
        while not ended:
            chunk = worker.stdout.read1(65536)
            if not chunk:
                raise RuntimeError("camera worker ended before the snapshot did")
            messages, buffer = wire.split(buffer + chunk)
            ended = any(isinstance(m, wire.End) for m in messages)
        return rss_kb(worker.pid) / 1024
    finally:
        worker.stdin.close()
        worker.wait(timeout=30)


TOUCH_PIN = 23
MOCK_PINS = {"GPIOZERO_PIN_FACTORY": "mock"}    # no GPIO here: the wires are pins nobody drives, as at rest

PIECES = {
    "python itself": "",
    "aiohttp (the screen's server)": "import aiohttp.web",
    "the agent (terminal, journal, screen, sync)": "import agent.cli, agent.terminal, agent.screen.server",
    "UART fingerprint driver (pyserial, gpiozero)": "import drivers.fingerprint.uart",
    "PC/SC card driver (pyscard)": "import drivers.cards.pcsc",
    "BLE driver (bleak, dbus-fast)": "import drivers.ble.scanner",
    "numpy": "import numpy",
    "OpenCV (cv2, with numpy)": "import cv2",
}


def pieces() -> None:
    """What each piece costs on its own: RSS of a fresh interpreter after importing it (shared libraries
    count in RSS as in the agent's figure)."""
    probe = "import re; print(re.search(r'VmRSS:\\s+(\\d+)', open('/proc/self/status').read()).group(1))"
    print("  what each piece costs alone (fresh interpreter, RSS after import):")
    base = None
    for name, code in PIECES.items():
        out = subprocess.run([sys.executable, "-c", f"{code}\n{probe}"], cwd=ROOT, capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
        mb = int(out.stdout.split()[-1]) / 1024
        base = mb if base is None else base
        print(f"    {name:46s} {mb:6.1f} MB" + (f"  (+{mb - base:5.1f})" if code else ""), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-idle-") as tmp:
        tmp = Path(tmp)
        with real_drivers_config(tmp) as every, real_drivers_config(tmp, serial_only=True) as serial, \
                real_drivers_config(tmp, serial_only=True, touch_pin=TOUCH_PIN) as wired:
            cases = {
                "bare aiohttp app": (bare_argv, None),
                "agent, simulation": (lambda port: agent_argv(tmp / "sim", port, None), None),
                "agent, serial devices real": (lambda port: agent_argv(tmp / "serial", port, serial), None),
                "  the same, touch wires": (lambda port: agent_argv(tmp / "wired", port, wired), MOCK_PINS),
                "agent, every real driver": (lambda port: agent_argv(tmp / "real", port, every), None),
            }
            print(f"idle, watched for {args.seconds:.0f} s after 5 s at rest (process + descendants):")
            for name, (make, env) in cases.items():
                port = fresh_port()
                rss, cs, cpu, n = watch(make(port), port, args.seconds, env)
                print(f"  {name:28s} RSS {rss:6.1f} MB   {cs:6.1f} context switches/s   CPU {cpu:4.1f}%"
                      f"   ({n} process{'es' if n > 1 else ''})", flush=True)
            print(f"  camera worker while warm (a handover open, after a snapshot): RSS "
                  f"{warm_worker_mb(tmp / 'door-camera.avi'):6.1f} MB, on top of the agent", flush=True)
    pieces()
    print("  goals: RSS <= 70 MB with real drivers; no busy loop at rest")
    return 0


if __name__ == "__main__":
    sys.exit(main())
