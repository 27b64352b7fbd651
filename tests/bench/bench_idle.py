"""Benchmark: the agent at rest (issue 20, item 6): RSS, CPU and context switches per second.

    python tests/bench/bench_idle.py [--seconds 20]

Each case is a new process started with its own state (tests/bench/agentrun.py), left idle for 5 s,
then watched for `--seconds`: VmRSS at the end, CPU time (user+system, all threads) and voluntary plus
involuntary context switches of all its threads over the window. Cases: a bare aiohttp app (the
baseline, same run), the agent in simulation, with the serial devices real (both UART fingerprint
modules, the door relay, the printer), and with every real driver this machine can drive (PC/SC, BLE
through bleak, the OpenCV camera on a video file too). Goals: idle RSS <= 70 MB with real drivers; no
busy loop at rest.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from agentrun import agent_argv, bare_argv, fresh_port, real_drivers_config, rss_kb, started  # noqa: E402


def switches(pid: int) -> int:
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            lines = Path(f"/proc/{pid}/task/{tid}/status").read_text().splitlines()
        except OSError:
            continue                       # a thread that ended meanwhile
        total += sum(int(line.split()[1]) for line in lines if "ctxt_switches" in line)
    return total


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def watch(argv: list[str], port: int, seconds: float) -> tuple[float, float, float]:
    with started(argv, port) as (proc, _, _):
        time.sleep(5)                      # start-up work (library sync, first pushes) is done
        s0, c0, t0 = switches(proc.pid), cpu_seconds(proc.pid), time.monotonic()
        time.sleep(seconds)
        dt = time.monotonic() - t0
        return rss_kb(proc.pid) / 1024, (switches(proc.pid) - s0) / dt, 100 * (cpu_seconds(proc.pid) - c0) / dt


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-idle-") as tmp:
        tmp = Path(tmp)
        with real_drivers_config(tmp) as every, real_drivers_config(tmp, serial_only=True) as serial:
            cases = {
                "bare aiohttp app": bare_argv,
                "agent, simulation": lambda port: agent_argv(tmp / "sim", port, None),
                "agent, serial devices real": lambda port: agent_argv(tmp / "serial", port, serial),
                "agent, every real driver": lambda port: agent_argv(tmp / "real", port, every),
            }
            print(f"idle, watched for {args.seconds:.0f} s after 5 s at rest:")
            for name, make in cases.items():
                port = fresh_port()
                rss, cs, cpu = watch(make(port), port, args.seconds)
                print(f"  {name:28s} RSS {rss:6.1f} MB   {cs:6.1f} context switches/s   CPU {cpu:4.1f}%", flush=True)
    print("  goals: RSS <= 70 MB with real drivers; no busy loop at rest")
    return 0


if __name__ == "__main__":
    sys.exit(main())
