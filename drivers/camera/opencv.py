"""The pinhole camera beside the door module, through OpenCV.

Each door attempt grabs a few frames, finds faces with the Haar cascade that ships with OpenCV 4,
and keeps the largest face (with some margin, so a person can recognise it) as a JPEG. The frames that
matter are those while the finger is on the module: the agent starts the snapshot when the finger lands
and sets `enough` when the module has decided, and the snapshot ends with the frame in hand. The
capture stays open between snapshots: opening a camera costs more than the whole time budget.
Grabbing and detection run in a worker thread so the event loop never waits on the camera.
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
        self._detector = cv2.CascadeClassifier(CASCADE)
        if self._detector.empty():
            raise RuntimeError(f"OpenCV has no Haar cascade at {CASCADE} (OpenCV 5 wheels ship none: pin <5)")
        self._capture: cv2.VideoCapture | None = None
        self._lock = threading.Lock()          # one grab at a time; the capture is not thread-safe
        self._open()                           # so health is true from the start, and the first attempt is fast

    async def snapshot(self, enough: threading.Event | None = None) -> FaceSnapshot:
        """Up to `frames` frames within `timeout`; no frame after the first once `enough` is set."""
        return await asyncio.to_thread(self._snapshot, enough)

    async def close(self) -> None:
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        with self._lock:
            self._release()

    def _snapshot(self, enough: threading.Event | None = None) -> FaceSnapshot:
        with self._lock:
            cycle_start = time.monotonic()
            deadline = cycle_start + self.timeout
            frame = self._read()
            if frame is None:
                return FaceSnapshot(None, False, "no_camera")
            best = None                          # (area, crop)
            grabbed = 1
            while True:
                crop = self._largest_face(frame)
                if crop is not None and (best is None or crop.shape[0] * crop.shape[1] > best[0]):
                    best = (crop.shape[0] * crop.shape[1], crop)
                # stop when another read + detect, as long as the last one, would overrun the budget
                now = time.monotonic()
                cycle, cycle_start = now - cycle_start, now
                if grabbed >= self.frames or now + cycle >= deadline or (enough is not None and enough.is_set()):
                    break
                ok, frame = self._capture.read()
                if not ok:
                    break                        # keep what we have; the next snapshot reopens
                grabbed += 1
            if best is None:
                return FaceSnapshot(None, False, "no_face")
            ok, jpeg = cv2.imencode(".jpg", best[1], [cv2.IMWRITE_JPEG_QUALITY, 85])
            return FaceSnapshot(jpeg.tobytes(), True)

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
