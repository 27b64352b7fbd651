"""The door camera as the agent runs it (drivers/camera/process.py): OpenCV in a worker process started when
wanted and stopped at rest, against a video file standing in for the pinhole camera."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap

import cv2
import numpy as np
from skimage import data

from drivers.camera.opencv import CASCADE
from drivers.camera.process import CameraProcess
from test_camera import video


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def until(predicate, timeout: float = 30.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not (result := predicate()):
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)
    return result


def is_face(jpeg: bytes) -> bool:
    crop = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    return len(cv2.CascadeClassifier(CASCADE).detectMultiScale(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY), 1.1, 5)) > 0


async def test_the_worker_runs_only_while_wanted_and_gives_the_face(tmp_path):
    camera = CameraProcess(video(tmp_path / "door.avi", data.astronaut(), frames=20), keep_warm=1.0)
    assert not camera.warm and camera.health().state == "connected"      # at rest: no OpenCV anywhere
    snap = await camera.snapshot()
    assert snap.face_found and is_face(snap.jpeg)
    pid = camera._worker.proc.pid
    assert alive(pid)
    await until(lambda: not alive(pid))          # a second without use: the worker is gone, its memory with it
    assert not camera.warm
    snap = await camera.snapshot()               # and comes back for the next attempt
    assert snap.face_found and is_face(snap.jpeg)
    await camera.close()
    assert not camera.warm


async def test_wake_starts_it_before_the_door(tmp_path):
    camera = CameraProcess(video(tmp_path / "door.avi", data.astronaut(), frames=20))
    decided = asyncio.Event()
    decided.set()
    # cold, and the module has decided already: the attempt waits for the worker, as it is its second factor
    snap = await camera.snapshot(decided)
    assert snap.face_found and is_face(snap.jpeg)
    await camera.close()
    assert not camera.warm
    camera.wake()                                # a handover has begun
    await until(lambda: camera._worker is not None and camera._worker.ready.is_set())
    snap = await camera.snapshot(decided)        # decided at once, warm: the frame in hand has the face
    assert snap.face_found and is_face(snap.jpeg)
    await camera.close()


async def test_the_decision_ends_the_snapshot_with_the_face_seen(tmp_path):
    source = video(tmp_path / "long.avi", data.astronaut(), frames=400)
    camera = CameraProcess(source, frames=10_000, timeout=60.0)    # left alone it would grab for a minute
    camera.wake()
    await until(lambda: camera._worker is not None and camera._worker.ready.is_set())
    decided = asyncio.Event()
    asyncio.get_running_loop().call_later(0.5, decided.set)
    snap = await asyncio.wait_for(camera.snapshot(decided), 30)
    assert snap.face_found and is_face(snap.jpeg)
    assert (await asyncio.wait_for(camera.snapshot(decided), 30)).face_found, "and the next one follows"
    await camera.close()


async def test_a_worker_that_dies_is_reported_and_restarted(tmp_path):
    camera = CameraProcess(video(tmp_path / "door.avi", data.astronaut(), frames=20))
    assert (await camera.snapshot()).face_found
    os.kill(camera._worker.proc.pid, 9)
    await until(lambda: camera.health().state == "missing")
    assert "exited" in camera.health().last_error
    snap = await camera.snapshot()
    assert snap.face_found and camera.health().state == "connected"
    await camera.close()


async def test_no_camera_then_plugged_in(tmp_path):
    path = tmp_path / "late.avi"
    camera = CameraProcess(str(path))
    assert camera.health().state == "missing"    # known before the first attempt, without starting OpenCV
    assert (await camera.snapshot()).reason == "no_camera"
    assert camera.health().state == "missing" and "late.avi" in camera.health().last_error
    video(path, data.astronaut(), frames=5)
    assert (await camera.snapshot()).face_found
    assert camera.health().state == "connected"
    await camera.close()


class Impostor(CameraProcess):
    """A worker saying `script`: what the agent does with a worker that misbehaves."""

    def __init__(self, script: str, **kw):
        super().__init__("/dev/null", **kw)
        self.script = script

    def _argv(self):
        return [sys.executable, "-c", textwrap.dedent(self.script)]


async def test_garbage_from_the_worker_is_refused_by_name():
    camera = Impostor("""
        import sys, time
        sys.stdout.buffer.write(b"R\\0\\0\\0\\0Zgarbage"); sys.stdout.flush(); time.sleep(60)
    """)
    snap = await asyncio.wait_for(camera.snapshot(), 30)
    assert (snap.jpeg, snap.reason) == (None, "no_camera")
    assert camera.health().state == "missing" and "unknown kind" in camera.health().last_error
    await camera.close()


async def test_a_silent_worker_never_holds_up_the_attempt():
    camera = Impostor("""
        import sys, time
        sys.stdout.buffer.write(b"R\\0\\0\\0\\0"); sys.stdout.flush(); time.sleep(60)
    """, timeout=0.3)
    camera.wake()
    await until(lambda: camera._worker.ready.is_set())
    decided = asyncio.Event()
    decided.set()
    snap = await asyncio.wait_for(camera.snapshot(decided), 30)
    assert (snap.jpeg, snap.reason) == (None, "no_camera")
    assert camera.health().state == "degraded"
    assert not camera.warm, "the stuck worker was stopped; the next snapshot starts a new one"
    await camera.close()


def test_the_agent_at_rest_carries_neither_opencv_nor_pillow(tmp_path):
    """The memory claim itself (issue 20: idle RSS <= 70 MB with real drivers): the agent's modules and the
    devices of a terminal configured with the OpenCV camera and the ESC/POS printer, health read, import
    neither cv2 nor numpy (the camera worker's) nor Pillow (the first print's) into the agent's process."""
    cfg = tmp_path / "handover.toml"
    cfg.write_text(f'[site]\nid = "BR-100"\ntype = "branch"\n[device]\nid = "dev-1"\n'
                   f'[devices.camera]\ndriver = "opencv"\nsource = "{tmp_path / "door.avi"}"\n'
                   f'[devices.printer]\ndriver = "file"\npath = "{tmp_path / "receipt.bin"}"\n', encoding="utf-8")
    code = textwrap.dedent(f"""
        import sys
        import agent.cli, agent.terminal, agent.screen.server
        from agent.config import load_config
        from agent.devices import build_devices
        devices = build_devices(load_config({str(cfg)!r}))
        assert type(devices.camera).__name__ == "CameraProcess", type(devices.camera)
        assert type(devices.printer).__name__ == "EscposPrinter", type(devices.printer)
        [d.health() for d in devices.all()]
        print(sorted(m for m in ("cv2", "numpy", "PIL") if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
