"""Door-attempt snapshot latency (SPEC: face crop within 300 ms of the attempt).

Run: python tests/bench/bench_camera.py [--worker-snapshots 400]
Compares OpenCvCamera.snapshot() (awaited from an event loop, camera kept open) and the agent's driver,
CameraProcess.snapshot() (the same in a warm worker process), with a raw baseline measured in the same run:
one cv2 read + full-frame Haar detection on an open capture. Then the worker's RSS over
`--worker-snapshots` snapshots (goal: flat). The stand-in camera is an MJPG video of skimage's astronaut
(one face).
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
from skimage import data

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from drivers.camera.opencv import CASCADE, OpenCvCamera  # noqa: E402
from drivers.camera.process import CameraProcess  # noqa: E402

RUNS = 60
BUDGET_MS = 300


def stand_in_video(path: Path, frames: int = 400) -> str:
    bgr = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, bgr.shape[1::-1])
    for _ in range(frames):
        writer.write(bgr)
    writer.release()
    return str(path)


def summary(samples_ms: list[float]) -> tuple[float, float]:
    ordered = sorted(samples_ms)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def raw_baseline(source: str) -> list[float]:
    capture = cv2.VideoCapture(source)
    detector = cv2.CascadeClassifier(CASCADE)
    samples = []
    for _ in range(RUNS):
        t = time.perf_counter()
        ok, frame = capture.read()
        if not ok:
            capture.release()
            capture = cv2.VideoCapture(source)
            ok, frame = capture.read()
        detector.detectMultiScale(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), 1.1, 5)
        samples.append((time.perf_counter() - t) * 1000)
    capture.release()
    return samples


async def driver(source: str) -> tuple[list[float], int]:
    camera = OpenCvCamera(source)
    await camera.snapshot()                      # first snapshot opens the camera, as at start-up
    samples, faces = [], 0
    for _ in range(RUNS):
        t = time.perf_counter()
        snap = await camera.snapshot()
        samples.append((time.perf_counter() - t) * 1000)
        faces += snap.face_found
    await camera.close()
    return samples, faces


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


async def worker(source: str, snapshots: int) -> tuple[list[float], int, list[tuple[int, float]]]:
    camera = CameraProcess(source)
    await camera.snapshot()                      # started and warm, as after a truck's arrival
    samples, faces, rss = [], 0, []
    for n in range(1, max(RUNS, snapshots) + 1):
        t = time.perf_counter()
        snap = await camera.snapshot()
        if n <= RUNS:
            samples.append((time.perf_counter() - t) * 1000)
            faces += snap.face_found
        if n == 50 or (n > 50 and n % max(1, snapshots // 4) == 0) or n == snapshots:
            rss.append((n, rss_mb(camera._worker.proc.pid)))
    await camera.close()
    return samples, faces, rss


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker-snapshots", type=int, default=400)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        source = stand_in_video(Path(tmp) / "door.avi")
        base_med, base_p99 = summary(raw_baseline(source))
        samples, faces = asyncio.run(driver(source))
        w_samples, w_faces, rss = asyncio.run(worker(source, args.worker_snapshots))
    print(f"raw cv2 read+detect (1 frame, full size): median {base_med:6.1f} ms  p99 {base_p99:6.1f} ms")
    for name, xs, found in (("OpenCvCamera.snapshot() (up to 5 frames)", samples, faces),
                            ("CameraProcess.snapshot() (worker, warm)", w_samples, w_faces)):
        med, p99 = summary(xs)
        print(f"{name}:  median {med:6.1f} ms  p99 {p99:6.1f} ms  faces {found}/{RUNS}   "
              f"ratio to raw: median {med / base_med:.2f}x  p99 {p99 / base_p99:.2f}x   budget {BUDGET_MS} ms: "
              f"{'OK' if p99 <= BUDGET_MS else 'OVER'}")
    print("camera worker RSS over snapshots: " + ", ".join(f"{n}: {mb:.1f} MB" for n, mb in rss)
          + f"   (growth after 50: {rss[-1][1] - rss[0][1]:+.1f} MB; goal: flat)")


if __name__ == "__main__":
    main()
