"""A Pi-class proxy: run a command pinned to one core with a quarter of that core's time.

A Raspberry-class board's core is several times slower than this machine's. We model it with the
cgroup the machine offers (cgroup v1 here): a `cpu` cgroup with cfs_quota_us/cfs_period_us = 1 ms per
4 ms, and `taskset` to one core. A short period models a slower core better than 25 ms per 100 ms,
which stalls the process for 75 ms at a time. The cgroup is removed afterwards, even on Ctrl-C.

As a library:
    with pi_proxy() as wrap:            # wrap(argv) -> argv that runs inside the proxy
        subprocess.run(wrap([sys.executable, "-c", "..."]))

As a command (root needed to make a cgroup):
    python tests/bench/piproxy.py -- python -m agent.cli run --simulate

Where the cgroup cannot be made (not root, cgroup v2 only), `available()` says why and the benches
that need it print that instead of a figure.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

CPU_ROOT = Path("/sys/fs/cgroup/cpu")
PERIOD_US = 4000
QUOTA_US = 1000
CORE = "0"


def available() -> str | None:
    """None when the proxy can run here, else the reason it cannot."""
    if not (CPU_ROOT / "cgroup.procs").exists():
        return f"no cgroup v1 cpu controller at {CPU_ROOT}"
    if os.geteuid() != 0:
        return "making a cpu cgroup needs root"
    if not shutil.which("taskset"):
        return "taskset (util-linux) is missing"
    return None


@contextlib.contextmanager
def pi_proxy(name: str | None = None, quota_us: int = QUOTA_US, period_us: int = PERIOD_US):
    """Create the cgroup; yield a function that wraps an argv so it runs inside it."""
    reason = available()
    if reason:
        raise RuntimeError(f"Pi proxy unavailable: {reason}")
    group = CPU_ROOT / (name or f"piproxy_{os.getpid()}")
    group.mkdir(exist_ok=True)
    try:
        (group / "cpu.cfs_period_us").write_text(str(period_us))
        (group / "cpu.cfs_quota_us").write_text(str(quota_us))
        procs = group / "cgroup.procs"

        def wrap(argv: list[str]) -> list[str]:
            # the shell puts itself in the group, then becomes the command (children inherit)
            return ["sh", "-c", f'echo $$ > {procs} && exec taskset -c {CORE} "$@"', "piproxy", *argv]

        yield wrap
    finally:
        _remove(group)


def _remove(group: Path) -> None:
    # a cgroup can only be removed when empty: move stragglers back to the root first
    with contextlib.suppress(FileNotFoundError):
        for pid in (group / "cgroup.procs").read_text().split():
            with contextlib.suppress(OSError):
                (CPU_ROOT / "cgroup.procs").write_text(pid)
    with contextlib.suppress(FileNotFoundError):
        group.rmdir()


def main(argv: list[str]) -> int:
    if "--" in argv:
        argv = argv[argv.index("--") + 1:]
    if not argv:
        print(__doc__)
        return 2
    reason = available()
    if reason:
        print(f"Pi proxy unavailable: {reason}", file=sys.stderr)
        return 2
    with pi_proxy() as wrap:
        return subprocess.call(wrap(argv))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
