"""The door camera's own process: `python -m drivers.camera.worker SOURCE [--frames N] [--timeout S]`.

OpenCV and numpy are ~58 MB of a process; the agent starts this worker when a handover begins or a finger
lands, and stops it when the camera has rested a while (drivers/camera/process.py), so a terminal at rest
does not carry them. It speaks drivers/camera/wire.py on stdin/stdout; end of input ends it.
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
from typing import BinaryIO

from drivers.camera import wire
from drivers.camera.opencv import Best, OpenCvCamera, encode_jpeg


class _Pipe:
    """Messages to the agent, from the command loop and the grabbing thread alike."""

    def __init__(self, out: BinaryIO):
        self._out = out
        self._lock = threading.Lock()

    def send(self, message: wire.Message) -> None:
        with self._lock:
            self._out.write(wire.encode(message))
            self._out.flush()


class _Streaming(Best):
    """Each better face goes to the agent as it is found, so at the decision the agent has it without
    waiting for the frame in hand."""

    def __init__(self, pipe: _Pipe):
        super().__init__()
        self._pipe = pipe

    def offer(self, crop) -> None:
        before = self.take()
        super().offer(crop)
        if self.take() is not before:
            self._pipe.send(wire.Face(encode_jpeg(crop).jpeg))


def _health(camera: OpenCvCamera) -> wire.Health:
    h = camera.health()
    return wire.Health(h.state, h.last_error)


def _snap(camera: OpenCvCamera, stop: threading.Event, pipe: _Pipe) -> None:
    shot = camera.grab(stop, _Streaming(pipe))
    pipe.send(_health(camera))
    pipe.send(wire.End(shot.reason or ""))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source", help="/dev/videoN, a camera index, or a video file")
    ap.add_argument("--frames", type=int, default=5)
    ap.add_argument("--timeout", type=float, default=0.3)
    args = ap.parse_args(argv)
    # the pipe to the agent is ours alone: anything a library prints on fd 1 goes to stderr (the log) instead
    pipe = _Pipe(os.fdopen(os.dup(1), "wb"))
    os.dup2(2, 1)
    source = int(args.source) if args.source.isdigit() else args.source
    camera = OpenCvCamera(source, frames=args.frames, timeout=args.timeout)
    pipe.send(_health(camera))
    pipe.send(wire.Ready())
    stop, job = threading.Event(), None
    try:
        while command := sys.stdin.buffer.read(1):
            if command == wire.SNAP:
                if job is not None:
                    job.join()               # the agent asks for one snapshot at a time; this only orders them
                stop = threading.Event()
                job = threading.Thread(target=_snap, args=(camera, stop, pipe), name="grab")
                job.start()
            elif command == wire.DECIDED:
                stop.set()
            else:
                print(f"camera worker: unknown command {command!r}", file=sys.stderr)
                return 2
    finally:
        stop.set()
        if job is not None:
            job.join()
        camera.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
