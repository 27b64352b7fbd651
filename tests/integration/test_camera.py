"""The OpenCV camera against a video file standing in for the pinhole camera."""
import asyncio

import cv2
import numpy as np
import pytest
from skimage import data

from drivers.camera.opencv import OpenCvCamera


def video(path, rgb_image, frames=10):
    bgr = cv2.cvtColor(rgb_image, cv2.COLOR_RGB2BGR)
    h, w = bgr.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (w, h))
    assert writer.isOpened()
    for _ in range(frames):
        writer.write(bgr)
    writer.release()
    return str(path)


@pytest.fixture(scope="module")
def face_video(tmp_path_factory):
    return video(tmp_path_factory.mktemp("cam") / "astronaut.avi", data.astronaut())


@pytest.fixture(scope="module")
def no_face_video(tmp_path_factory):
    return video(tmp_path_factory.mktemp("cam") / "coffee.avi", data.coffee())


async def test_face_is_found_and_cropped_as_jpeg(face_video):
    camera = OpenCvCamera(face_video, frames=3)
    snap = await camera.snapshot()
    await camera.close()
    assert snap.face_found and snap.reason is None
    assert snap.jpeg[:2] == b"\xff\xd8"
    crop = cv2.imdecode(np.frombuffer(snap.jpeg, np.uint8), cv2.IMREAD_COLOR)
    # the astronaut's face is about 95 px square at (177, 66) in a 512 px frame: a crop around it
    assert 95 <= crop.shape[0] <= 200 and 95 <= crop.shape[1] <= 200
    # and it is the face region: the detector finds a face in the crop itself
    detector = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    assert len(detector.detectMultiScale(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY), 1.1, 5)) >= 1
    assert camera.health().state == "connected"


async def test_snapshots_keep_coming_past_the_end_of_the_stand_in_video(face_video):
    camera = OpenCvCamera(face_video, frames=4)                # 10-frame file: reopened when exhausted
    snaps = [await camera.snapshot() for _ in range(5)]
    await camera.close()
    assert all(s.face_found for s in snaps)


async def test_no_face(no_face_video):
    camera = OpenCvCamera(no_face_video)
    snap = await camera.snapshot()
    await camera.close()
    assert snap == type(snap)(None, False, "no_face")
    assert camera.health().state == "connected"


async def test_no_camera_is_reported_and_health_missing(tmp_path):
    camera = OpenCvCamera(str(tmp_path / "video9.avi"))
    assert camera.health().state == "missing"                  # known before the first door attempt
    snap = await camera.snapshot()
    assert (snap.jpeg, snap.face_found, snap.reason) == (None, False, "no_camera")
    health = camera.health()
    assert health.state == "missing" and "video9.avi" in health.last_error


async def test_camera_plugged_in_later_is_picked_up(tmp_path):
    path = tmp_path / "late.avi"
    camera = OpenCvCamera(str(path))
    assert (await camera.snapshot()).reason == "no_camera"
    video(path, data.astronaut(), frames=5)
    assert (await camera.snapshot()).face_found
    assert camera.health().state == "connected"
    await camera.close()


def test_zero_frames_is_refused():
    with pytest.raises(ValueError, match="frames"):
        OpenCvCamera(0, frames=0)


async def test_a_snapshot_ends_with_the_frame_in_hand_once_the_module_has_decided(tmp_path):
    """The frames that matter are those while the finger is on the module: once `decided` is set no further
    frame is grabbed, and the face found so far is the snapshot."""
    source = video(tmp_path / "long.avi", data.astronaut(), frames=40)
    camera = OpenCvCamera(source, frames=5, timeout=10.0)
    await camera.snapshot()                                    # opened and warmed up, as at start-up
    position = lambda: int(camera._capture.get(cv2.CAP_PROP_POS_FRAMES))  # noqa: E731
    start = position()
    assert (await camera.snapshot()).face_found
    assert position() - start == 5, "left alone, it takes its five frames"
    decided = asyncio.Event()
    decided.set()
    start = position()
    snap = await camera.snapshot(decided)
    assert snap.face_found and snap.jpeg[:2] == b"\xff\xd8"
    assert position() - start == 1, "after the decision, only the frame in hand"
    await camera.close()
