"""The pinhole camera beside the door module, through OpenCV.

Each door attempt grabs a few frames, finds faces with the Haar cascade that ships with OpenCV 4,
and keeps the largest face (with some margin, so a person can recognise it) as a JPEG. The frames that
matter are those while the finger is on the module: the agent starts the snapshot when the finger lands
and sets `decided` when the module has decided; then no further frame is grabbed, and the best face seen
so far is the snapshot without waiting for the frame being examined. The
capture stays open between snapshots: opening a camera costs more than the whole time budget.
Grabbing and detection run in a worker thread so the event loop never waits on the camera.

The agent runs this class in a process of its own (drivers/camera/worker.py, driven by process.py): OpenCV
and numpy cost ~58 MB, which a terminal at rest does not need.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time

import cv2

from drivers.events import FaceSnapshot
from drivers.health import HealthMixin

log = logging.getLogger(__name__)

CASCADE = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
MARGIN = 0.25                 # share of the face size kept around it: hair, chin, ears help a human compare
DETECT_WIDTH = 320            # detect on a reduced frame: a 720p frame at full size alone would eat the budget


class OpenCvCamera(HealthMixin):
    def __init__(self, source: int | str, frames: int = 5, timeout: float = 0.3,
                 name: str = "camera", min_face: int = 40):
        if frames < 1:
            raise ValueError(f"frames must be at least 1, got {frames}")
        self.name = name
        self.source = source
        self.frames = frames
        self.timeout = timeout
        self.min_face = min_face
        # one thread for detection: OpenCV's pool would take every core from the event loop that journals and
        # shows the attempt, and on a busy small board one thread is no slower (measured in bench_door_path)
        cv2.setNumThreads(1)
        self._detector = cv2.CascadeClassifier(CASCADE)
        if self._detector.empty():
            raise RuntimeError(f"OpenCV has no Haar cascade at {CASCADE} (OpenCV 5 wheels ship none: pin <5)")
        self._capture: cv2.VideoCapture | None = None
        self._lock = threading.Lock()          # one grab at a time; the capture is not thread-safe
        self._open()                           # so health is true from the start, and the first attempt is fast

    def wake(self) -> None:
        pass                                   # opened in the constructor: always ready

    async def snapshot(self, decided: asyncio.Event | None = None) -> FaceSnapshot:
        """Up to `frames` frames within `timeout`. Once `decided` is set no further frame is grabbed, and if a
        face has been seen it is the snapshot at once: the frame in hand finishes in the background."""
        stop, best = threading.Event(), Best()
        if decided is not None and decided.is_set():
            stop.set()                           # decided already: one frame, now
        work = asyncio.ensure_future(asyncio.to_thread(self.grab, stop, best))
        if decided is None or stop.is_set():
            return await work
        waiter = asyncio.ensure_future(decided.wait())
        try:
            await asyncio.wait({work, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if work.done():
            return work.result()
        stop.set()
        crop = best.take()
        if crop is None:
            return await work                    # no face yet: the frame in hand may have one
        work.add_done_callback(lambda f: f.cancelled() or f.exception())   # its result is not needed
        return await asyncio.to_thread(encode_jpeg, crop)

    async def close(self) -> None:
        await asyncio.to_thread(self.release)

    def release(self) -> None:
        with self._lock:
            self._release()

    def grab(self, stop: threading.Event, best: "Best") -> FaceSnapshot:
        """The snapshot itself, blocking: frames until `frames`, the time budget or `stop`; each face is
        offered to `best`."""
        with self._lock:
            cycle_start = time.monotonic()
            deadline = cycle_start + self.timeout
            frame = self._read()
            if frame is None:
                return FaceSnapshot(None, False, "no_camera")
            grabbed = 1
            while True:
                best.offer(self._largest_face(frame))
                # stop when another read + detect, as long as the last one, would overrun the budget
                now = time.monotonic()
                cycle, cycle_start = now - cycle_start, now
                if grabbed >= self.frames or now + cycle >= deadline or stop.is_set():
                    break
                ok, frame = self._capture.read()
                if not ok:
                    break                        # keep what we have; the next snapshot reopens
                grabbed += 1
            crop = best.take()
            return FaceSnapshot(None, False, "no_face") if crop is None else encode_jpeg(crop)

    def _read(self):
        """First frame of a snapshot; reopens once, so a replugged camera is picked up again."""
        for _ in range(2):
            if self._capture is None and not self._open():
                return None
            ok, frame = self._capture.read()
            if ok:
                self._set_health("connected")
                return frame
            self._release()
        self._set_health("missing", f"camera {self.source!r} gives no frames")
        return None

    def _open(self) -> bool:
        self._capture = cv2.VideoCapture(self.source)
        # a camera queues frames while nobody reads: keep one, so a snapshot is of who is there now
        self._capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        if self._capture.isOpened():
            self._set_health("connected")
            return True
        self._release()
        self._set_health("missing", f"cannot open camera {self.source!r}")
        return False

    def _release(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None

    def _largest_face(self, frame):
        height, width = frame.shape[:2]
        scale = min(1.0, DETECT_WIDTH / width)
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        if scale < 1.0:
            gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        faces = self._detector.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5,
                                                minSize=(self.min_face, self.min_face))
        if len(faces) == 0:
            return None
        x, y, w, h = (int(v / scale) for v in max(faces, key=lambda f: f[2] * f[3]))
        mx, my = int(w * MARGIN), int(h * MARGIN)
        return frame[max(0, y - my):min(height, y + h + my), max(0, x - mx):min(width, x + w + mx)]


class Best:
    """The largest face crop so far, shared by the grabbing thread and the caller waiting for a decision."""

    def __init__(self):
        self._lock = threading.Lock()
        self._crop = None

    def offer(self, crop) -> None:
        with self._lock:
            if crop is not None and (self._crop is None or crop.size > self._crop.size):
                self._crop = crop

    def take(self):
        with self._lock:
            return self._crop


# head office's cap on a face (protocol/snapshot.py; tests/unit/test_snapshot_fuzz.py holds them equal): met
# here, where OpenCV is loaded anyway, so the agent never re-encodes a face
FACE_MAX_SIDE = 320
FACE_MAX_BYTES = 64 * 1024


def encode_jpeg(crop) -> FaceSnapshot:
    height, width = crop.shape[:2]
    if max(height, width) > FACE_MAX_SIDE:
        scale = FACE_MAX_SIDE / max(height, width)
        crop = cv2.resize(crop, (max(1, round(width * scale)), max(1, round(height * scale))),
                          interpolation=cv2.INTER_AREA)
    for quality in (85, 70, 55, 40):
        ok, jpeg = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if len(jpeg) <= FACE_MAX_BYTES:
            break
    return FaceSnapshot(jpeg.tobytes(), True)
