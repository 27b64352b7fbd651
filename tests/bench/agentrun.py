"""What the start-up and memory benches share: the agent as a subprocess, configured in simulation or
with every real driver this machine can drive, and READY read the way systemd reads it.

Real drivers: both fingerprint modules over UART (the module emulator on ptys, served from the bench
process), the card reader through PC/SC (pcscd may or may not be running: the driver copes), BLE through
bleak (no kernel Bluetooth here: the scanner retries in the background), the OpenCV camera on a video
file, the receipt printer to a file, the door output on a serial relay (a pty). Voice stays text: espeak
would need a sound card.
"""
from __future__ import annotations

import contextlib
import os
import pty
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tty
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "integration")]

from agent_setup import real_driver_config  # noqa: E402
from conftest import free_port  # noqa: E402

from drivers.fingerprint.emulator import ModuleEmulator  # noqa: E402


def face_video(path: Path) -> None:
    """A short MJPG clip of a real face (scikit-image's astronaut), the door camera's stand-in."""
    import cv2                              # the bench's own setup; not what the agent process imports
    from skimage import data as skdata
    frame = cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR)
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (frame.shape[1], frame.shape[0]))
    for _ in range(30):
        out.write(frame)
    out.release()


def _drain_forever(fd: int, stop: threading.Event) -> None:
    # the relay pty: read what the agent writes so it never blocks on a full buffer
    while not stop.is_set():
        if select.select([fd], [], [], 0.2)[0]:
            with contextlib.suppress(OSError):
                os.read(fd, 256)


@contextlib.contextmanager
def real_drivers_config(tmp: Path, serial_only: bool = False, touch_pin: int | None = None):
    """Yield a configuration file naming every real driver (`serial_only`: the UART fingerprint modules,
    the serial relay and the file printer; simulated cards, BLE and camera); the emulators live until
    the block ends. `touch_pin`: the door module's touch wire on that GPIO, the counter's on the next (the
    agent then needs GPIOZERO_PIN_FACTORY=mock here: pins nobody drives, modules nobody touches)."""
    door_fp, counter_fp = ModuleEmulator(), ModuleEmulator()
    door_path, counter_path = door_fp.plug(), counter_fp.plug()
    master, slave = pty.openpty()
    tty.setraw(slave)
    stop = threading.Event()
    drain = threading.Thread(target=_drain_forever, args=(master, stop), daemon=True)
    drain.start()
    face_video(tmp / "door-camera.avi")
    cards, ble, camera = ("simulator",) * 3 if serial_only else ("pcsc", "bleak", "opencv")
    name = f"handover-serial{touch_pin or ''}.toml" if serial_only else "handover.toml"
    cfg = real_driver_config(tmp / name, door=door_path,
                             counter=counter_path, device="dev-bench-1", cards=cards, ble=ble, camera=camera,
                             camera_source=tmp / "door-camera.avi", printer_file=tmp / "receipt.bin",
                             relay_port=os.ttyname(slave),
                             touch_pins=(touch_pin, touch_pin + 1) if touch_pin is not None else None)
    try:
        yield cfg
    finally:
        stop.set()
        drain.join()
        door_fp.unplug()
        counter_fp.unplug()
        os.close(master)
        os.close(slave)


def agent_argv(state_dir: Path, port: int, config: Path | None) -> list[str]:
    argv = [sys.executable, "-m", "agent.cli", "run", "--state-dir", str(state_dir), "--port", str(port)]
    return argv + (["--config", str(config)] if config else ["--simulate"])


BARE_APP = """
import asyncio, os, socket, sys
from aiohttp import web

async def main():
    app = web.Application()
    app.router.add_get("/", lambda r: web.Response(text="ok"))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", int(sys.argv[1])).start()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.sendto(b"READY=1", os.environ["NOTIFY_SOCKET"])
    await asyncio.Event().wait()

asyncio.run(main())
"""


def bare_argv(port: int) -> list[str]:
    return [sys.executable, "-c", BARE_APP, str(port)]


def _http_up(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        try:
            s.connect(("127.0.0.1", port))
            s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
            return s.recv(12).startswith(b"HTTP/1.")
        except OSError:
            return False


@contextlib.contextmanager
def started(argv: list[str], port: int, wrap=lambda a: a, timeout: float = 120.0, env: dict | None = None):
    """Start argv with a NOTIFY_SOCKET of our own (and `env` added); yield (proc, seconds to READY=1, seconds
    to HTTP up). The process is killed when the block ends."""
    with tempfile.TemporaryDirectory(prefix="notify-") as d:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(f"{d}/notify")
        sock.setblocking(False)
        env = {**os.environ, **(env or {}), "NOTIFY_SOCKET": f"{d}/notify", "PYTHONPATH": str(ROOT)}
        env.pop("WATCHDOG_USEC", None)
        # an installed agent has its bytecode compiled (pip install does it); a first, untimed start
        # writes it for this checkout, so no timed start pays for compiling sources
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        t0 = time.perf_counter()
        proc = subprocess.Popen(wrap(argv), env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        err: list[bytes] = []
        threading.Thread(target=lambda: err.extend(proc.stderr), daemon=True).start()  # never block on a full pipe
        ready = http = None
        try:
            while ready is None or http is None:
                if time.perf_counter() - t0 > timeout or proc.poll() is not None:
                    tail = b"".join(err[-30:]).decode(errors="replace")
                    raise RuntimeError(f"{argv[:4]} did not come up (exit {proc.poll()}): {tail}")
                if ready is None:
                    with contextlib.suppress(BlockingIOError):
                        while True:
                            if sock.recv(4096).split(b"\n")[0] == b"READY=1":
                                ready = time.perf_counter() - t0
                                break
                if http is None and _http_up(port):
                    http = time.perf_counter() - t0
                time.sleep(0.005)
            yield proc, ready, http
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            sock.close()


def fresh_port() -> int:
    return free_port()


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")
