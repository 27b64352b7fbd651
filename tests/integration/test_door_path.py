"""The door path (issue 20 item 2): the face is snapped while the module searches, and the attempt is
journaled once, with its face, as soon as the module decides.

In-process agent with its real journal and store, the module emulator behind the real UART driver with its
touch output wired (gpiozero mock pin), and the real OpenCV camera driver reading a video of a real face.
"""
from __future__ import annotations

import asyncio
import dataclasses
import os
import re
from datetime import datetime

import cv2
import numpy as np
import pytest
from skimage import data

from agent.config import load_config
from agent.devices import Devices
from agent.sample import TRUCKS
from agent.terminal import Terminal
from agent.view import build_view
from drivers.ble.sim import SimulatedBeaconScanner
from drivers.camera.opencv import CASCADE, OpenCvCamera
from drivers.camera.process import CameraProcess
from drivers.cards.sim import SimulatedCardReader
from drivers.door.sim import SimulatedDoor
from drivers.fingerprint.emulated import EmulatedFingerprint
from drivers.fingerprint.sim import SimulatedFingerprint
from drivers.printer.sim import SimulatedPrinter
from drivers.voice.sim import TextVoice
from flows.decisions import Step
from test_camera import video

SEARCH_EXTRA = 2.0          # seconds a slow Search takes on top: the face must be in hand well before it ends


async def until(predicate, timeout: float = 30.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not (result := predicate()):
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)
    return result


def attempts(terminal: Terminal) -> list:
    return [e for e in terminal.journal.entries(0) if e.kind == "finger_attempt"]


def has_face(jpeg: bytes) -> bool:
    crop = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    return len(cv2.CascadeClassifier(CASCADE).detectMultiScale(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY), 1.1, 5)) > 0


@pytest.mark.parametrize("camera_kind", [OpenCvCamera, CameraProcess], ids=["in-process", "worker-process"])
async def test_the_face_is_taken_while_the_module_searches_and_the_attempt_carries_it(tmp_path, camera_kind):
    config = load_config(None)
    config = dataclasses.replace(config, paths=dataclasses.replace(config.paths, state_dir=tmp_path / "state"))
    door = EmulatedFingerprint("door", touch=True, capacity=1000)     # Search may take 2.7 s: the slow one is in time
    # the worker process is what the agent runs (woken when the truck arrives); in-process is its engine
    camera = camera_kind(video(tmp_path / "door.avi", data.astronaut(), frames=60))
    devices = Devices({"door": door, "counter": SimulatedFingerprint("counter")}, SimulatedCardReader(),
                      SimulatedBeaconScanner(), camera, TextVoice(), SimulatedPrinter(), SimulatedDoor())
    terminal = Terminal(config, devices)
    await terminal.start()
    try:
        assert door.health().detail["touch"].startswith("GPIO")
        devices.ble.approach(TRUCKS[0].beacon)
        await until(lambda: terminal.active is not None and terminal.active.step is Step.ESCORT_VERIFICATION)
        if isinstance(camera, CameraProcess):       # the arrival woke it; the escorts walk to the door meanwhile
            assert camera.warm, "the truck's arrival starts the camera worker"
            await until(lambda: camera._worker is not None and camera._worker.ready.is_set())
        task = terminal.active.task
        escort = task.escorts[0]
        outsider = next(p for p in terminal.people.values()
                        if p.role.value == "escort" and p.person_id not in task.escorts)

        # an assigned escort, under a slow search
        door.emulator.inject("slow_search", seconds=SEARCH_EXTRA)
        door.touch(terminal.store.slots_of(escort)["right_index"])
        entry = (await until(lambda: attempts(terminal)))[0]
        assert entry.body["decisions"][0]["outcome"] == "verified"
        digest = entry.body["event"]["snapshot"]
        assert re.fullmatch(r"[0-9a-f]{64}", digest or ""), entry.body
        assert has_face(terminal.store.photo(digest)), "the snapshot is the face crop"
        shown = datetime.fromisoformat(entry.body["at"]).timestamp()
        stored = os.stat(tmp_path / "state" / "photos" / f"{digest}.sealed").st_mtime
        assert shown - stored > SEARCH_EXTRA / 2, "the face was stored while the module was still searching"
        recorded = [d for d in entry.body["decisions"] if d["type"] in ("AttemptRecorded", "EscortVerified")]
        assert [d["snapshot"] for d in recorded] == [digest, digest], "the decisions carry the same face"
        view = build_view(terminal, "zh-CN")
        shown_escort = next(e for e in view["handover"]["escorts"] if e["person_id"] == escort)
        assert shown_escort["verified"] and shown_escort["snapshot"] == f"/photos/{digest}"

        # someone enrolled but not on this task: the wrong-person alarm head office gets carries the face too
        door.touch(terminal.store.slots_of(outsider.person_id)["right_index"])
        await until(lambda: len(attempts(terminal)) == 2)
        alarm = next(e for e in terminal.journal.entries(0) if e.kind == "alarm")
        assert alarm.body["alarm"] == "wrong_person" and alarm.body["detail"]["snapshot"]
        assert has_face(terminal.store.photo(alarm.body["detail"]["snapshot"]))
        assert len(attempts(terminal)) == 2, "one touch, one attempt"
    finally:
        await terminal.stop()
