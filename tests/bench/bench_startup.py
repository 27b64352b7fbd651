"""Benchmark: cold start to READY (issue 20, item 3), on this machine and on the Pi-class proxy.

    python tests/bench/bench_startup.py [--runs 3] [--no-proxy]

Each start is a new process with its own NOTIFY_SOCKET; READY is the moment the READY=1 datagram
arrives (what systemd waits for) and "http" the first answered GET on the screen's port. Median of
`--runs` starts of: a bare aiohttp app that does the same (the baseline, started the same way in the
same run), the agent in simulation, and the agent with every real driver this machine can drive
(tests/bench/agentrun.py). The state directory is made by a first, untimed start, so the timed ones
are restarts (after a power cut or a watchdog kill) with the sample day already imported.

On the Pi proxy (tests/bench/piproxy.py: one core, 1 ms per 4 ms) the goal is READY <= 2.5 s.
The proxy models CPU only: an SD card's slower reads and fsyncs are not modelled.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from agentrun import agent_argv, bare_argv, fresh_port, real_drivers_config, started  # noqa: E402
from piproxy import available, pi_proxy  # noqa: E402


def measure(make_argv, runs: int, wrap=lambda a: a) -> tuple[float, float]:
    readies, https = [], []
    for _ in range(runs):
        port = fresh_port()
        with started(make_argv(port), port, wrap) as (_, ready, http):
            readies.append(ready)
            https.append(http)
    return statistics.median(readies), statistics.median(https)


def run_all(tmp: Path, cfg: Path, runs: int, wrap, label: str) -> None:
    sim_state, real_state = tmp / f"sim-{label}", tmp / f"real-{label}"
    cases = {
        "bare aiohttp app": bare_argv,
        "agent, simulation": lambda port: agent_argv(sim_state, port, None),
        "agent, real drivers": lambda port: agent_argv(real_state, port, cfg),
    }
    for make in list(cases.values())[1:]:        # first start: makes keys, the sample day, the journal
        port = fresh_port()
        with started(make(port), port, wrap):
            pass
    print(f"\n{label}: median of {runs} starts, seconds from exec")
    base = None
    for name, make in cases.items():
        ready, http = measure(make, runs, wrap)
        base = base or ready
        print(f"  {name:22s} READY {ready:6.2f} s   http {http:6.2f} s   READY {ready / base:4.2f}x bare")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-proxy", action="store_true", help="this machine only")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp, real_drivers_config(Path(tmp)) as cfg:
        run_all(Path(tmp), cfg, args.runs, lambda a: a, "this machine")
        reason = available()
        if args.no_proxy:
            return 0
        if reason:
            print(f"\nPi proxy: not measured ({reason})")
            return 0
        with pi_proxy() as wrap:
            run_all(Path(tmp), cfg, args.runs, wrap, "Pi proxy (1 core, 1 ms per 4 ms)")
        print("  goal on the Pi proxy: agent READY <= 2.5 s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
