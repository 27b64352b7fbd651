"""The door camera as the agent drives it: OpenCV runs in a worker process (drivers/camera/worker.py) that is
started when it is wanted and stopped when the camera has rested for `keep_warm` seconds.

Why a process: OpenCV and numpy are ~58 MB resident, more than the rest of the agent at rest, and a process
is the only way to give that memory back. The price is the worker's start (~0.3-0.5 s here: Python, cv2,
the cascade, opening the camera), so the terminal wakes the camera when a handover begins, before the first
escort reaches the door. A finger at the door with the camera at rest starts it too; an attempt decided before
the worker is up waits for it and its first frame (the face is the attempt's second factor), so only such a
cold attempt is slower than the decision + the frame in hand.
Same interface and behaviour as the in-process OpenCvCamera: frames from the finger's landing to the decision,
the best face returned at once at the decision.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys

from drivers.camera import wire
from drivers.events import FaceSnapshot
from drivers.health import HealthMixin

log = logging.getLogger(__name__)

KEEP_WARM = 600.0       # seconds without a snapshot or a wake before the worker is stopped
START_WAIT = 15.0       # a worker not up in this long is stopped; that attempt goes without a face
STUCK = 5.0             # a worker silent this long past the decision (or its time budget) is stopped


class CameraProcess(HealthMixin):
    def __init__(self, source: int | str, frames: int = 5, timeout: float = 0.3, name: str = "camera",
                 keep_warm: float = KEEP_WARM):
        if frames < 1:
            raise ValueError(f"frames must be at least 1, got {frames}")
        self.name = name
        self.source = source
        self.frames = frames
        self.timeout = timeout
        self.keep_warm = keep_warm
        self._worker: _Worker | None = None
        self._lock = asyncio.Lock()           # one snapshot at a time, as the worker's camera allows
        self._rest: asyncio.TimerHandle | None = None
        self._background: set[asyncio.Task] = set()
        # health before the worker has looked: whether the device node (or file) is there, without OpenCV
        path = f"/dev/video{source}" if isinstance(source, int) else source
        if not os.path.exists(path):
            self._set_health("missing", f"cannot open camera {source!r}")

    @property
    def warm(self) -> bool:
        """Whether the worker is running (started or starting)."""
        return self._worker is not None

    def wake(self) -> None:
        """A handover has begun: start the worker now, so the first finger at the door finds it ready."""
        self._used()
        if self._worker is None:
            self._worker = _Worker(self)

    async def snapshot(self, decided: asyncio.Event | None = None) -> FaceSnapshot:
        """Up to `frames` frames within `timeout`. Once `decided` is set no further frame is grabbed, and if a
        face has been seen it is the snapshot at once: the frame in hand finishes in the worker."""
        await self._lock.acquire()
        try:
            self.wake()
            worker = self._worker
            shot, finishing = await self._exchange(worker, decided)
        except BaseException:
            self._lock.release()
            raise
        if finishing is None:
            self._lock.release()
            return shot
        # the face is in hand; the worker's end of this snapshot is read before the next one starts
        task = asyncio.create_task(self._finish(worker, finishing))
        self._background.add(task)
        task.add_done_callback(lambda t: (self._background.discard(t), self._lock.release()))
        return shot

    async def close(self) -> None:
        if self._rest is not None:
            self._rest.cancel()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        async with self._lock:
            await self._stop_worker()

    # --- inside ---
    async def _exchange(self, worker: "_Worker", decided: asyncio.Event | None):
        """(the snapshot, or (it, deadline) when the worker's end is still to come)."""
        loop = asyncio.get_running_loop()
        if not worker.ready.is_set():
            # cold (a finger at once after the arrival): the face is what makes the attempt a second factor, so
            # this attempt waits for the worker rather than go without one
            await _first([worker.ready.wait(), worker.gone.wait()], START_WAIT)
            if not worker.ready.is_set():
                if not worker.gone.is_set():
                    self._stuck(worker)
                return FaceSnapshot(None, False, "no_camera"), None
        if not await worker.send(wire.SNAP):
            return FaceSnapshot(None, False, "no_camera"), None
        face, told = None, decided is not None and decided.is_set()
        if told:                                  # decided already: the frame in hand only
            await worker.send(wire.DECIDED)
        deadline = loop.time() + self.timeout + STUCK
        decision = asyncio.ensure_future(decided.wait()) if decided is not None and not told else None
        try:
            while True:
                if decision is not None and decision.done() and not told:
                    told = True
                    await worker.send(wire.DECIDED)
                    deadline = loop.time() + STUCK
                    if face is not None:
                        return FaceSnapshot(face, True), deadline
                message = await worker.next(deadline, decision if not told else None)
                if message is _DECISION:
                    continue
                if message is None:               # gone, or silent past the deadline
                    if not worker.gone.is_set():
                        self._stuck(worker)
                    return FaceSnapshot(None, False, "no_camera"), None
                if isinstance(message, wire.Face):
                    face = message.jpeg
                    if told:                      # decided: this face is the one; the worker's end comes later
                        return FaceSnapshot(face, True), deadline
                elif isinstance(message, wire.End):
                    if face is not None:
                        return FaceSnapshot(face, True), None
                    return FaceSnapshot(None, False, message.reason or "no_face"), None
        finally:
            if decision is not None:
                decision.cancel()

    async def _finish(self, worker: "_Worker", deadline: float) -> None:
        while True:
            message = await worker.next(deadline, None)
            if message is None:
                if not worker.gone.is_set():
                    self._stuck(worker)
                return
            if isinstance(message, wire.End):
                return

    def _stuck(self, worker: "_Worker") -> None:
        self._set_health("degraded", "camera worker stopped answering; restarted at the next snapshot")
        worker.kill()
        if self._worker is worker:
            self._worker = None

    def _used(self) -> None:
        if self._rest is not None:
            self._rest.cancel()
        self._rest = asyncio.get_running_loop().call_later(self.keep_warm, self._rest_now)

    def _rest_now(self) -> None:
        if self._lock.locked():                   # mid-snapshot: not idle after all
            return self._used()
        task = asyncio.create_task(self._stop_worker())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _stop_worker(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            await worker.stop()

    def _worker_gone(self, worker: "_Worker", error: str | None) -> None:
        if self._worker is worker:
            self._worker = None
        if error is not None:
            log.warning("camera worker: %s", error)
            self._set_health("missing", error)

    def _argv(self) -> list[str]:
        return [sys.executable, "-m", "drivers.camera.worker", str(self.source),
                "--frames", str(self.frames), "--timeout", str(self.timeout)]


_DECISION = object()


class _Worker:
    """One run of the worker process: its pipes, and the messages read from it."""

    def __init__(self, owner: CameraProcess):
        self.owner = owner
        self.ready = asyncio.Event()
        self.gone = asyncio.Event()
        self.messages: asyncio.Queue = asyncio.Queue()
        self.proc: asyncio.subprocess.Process | None = None
        self.stopping = False
        self.task = asyncio.create_task(self._run(), name="camera-worker")

    async def _run(self) -> None:
        error = None
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *self.owner._argv(), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
            buffer = b""
            while chunk := await self.proc.stdout.read(65536):
                messages, buffer = wire.split(buffer + chunk)
                for message in messages:
                    if isinstance(message, wire.Health):
                        self.owner._set_health(message.state, message.detail)
                    elif isinstance(message, wire.Ready):
                        self.ready.set()
                    else:
                        self.messages.put_nowait(message)
            code = await self.proc.wait()
            if not self.stopping:
                error = f"camera worker exited with status {code}"
        except wire.WireError as exc:
            error = str(exc)
            self.kill()
        except OSError as exc:
            error = f"camera worker could not start: {exc}"
        finally:
            if self.proc is not None:             # every pipe closed, so the transport closes with the process
                if self.proc.returncode is None:
                    self.kill()
                self.proc.stdin.close()
                await self.proc.stdout.read()
                await self.proc.wait()
            self.gone.set()
            self.owner._worker_gone(self, error)

    async def send(self, command: bytes) -> bool:
        if self.proc is None or self.gone.is_set():
            return False
        try:
            self.proc.stdin.write(command)
            await self.proc.stdin.drain()
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    async def next(self, deadline: float, decision: asyncio.Future | None):
        """The next message; _DECISION if `decision` came first; None when gone or past `deadline`."""
        if not self.messages.empty():
            return self.messages.get_nowait()
        get = asyncio.ensure_future(self.messages.get())
        gone = asyncio.ensure_future(self.gone.wait())
        waits = {get, gone} | ({decision} if decision is not None else set())
        try:
            timeout = max(0.0, deadline - asyncio.get_running_loop().time())
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not get.done():
                get.cancel()
        if get.done() and not get.cancelled():
            return get.result()
        if decision is not None and decision.done():
            return _DECISION
        if not self.messages.empty():
            return self.messages.get_nowait()
        return None

    def kill(self) -> None:
        self.stopping = True
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    async def stop(self) -> None:
        """End of input: the worker releases the camera and exits."""
        self.stopping = True
        if self.proc is not None and self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(asyncio.shield(self.task), 5.0)
        except asyncio.TimeoutError:
            self.kill()
            await self.task


async def _first(aws: list, timeout: float) -> bool:
    """Wait for the first of `aws`; False on timeout."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        done, _ = await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        return bool(done)
    finally:
        for t in tasks:
            t.cancel()
