"""The agent with every real driver configured against the real stacks this machine has (issue 4):
fingerprint modules over UART (the module emulator on two ptys), box tags through a real pcscd with a
vpcd virtual card, the door camera from a video file with a real face, the door output on a serial relay
(a pty), the receipt printer to a file (ESC/POS). BLE cannot run here (no kernel Bluetooth), so the truck
arrives manually, signed by the officer's finger — the path the SPEC gives for a failed beacon.

The day's tasks and people arrive the way a field technician brings them: signed, encrypted bundles in
the inbox, imported at start, templates loaded into both modules.
"""
from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
import tty
from datetime import datetime
from zoneinfo import ZoneInfo

import cv2
import pytest
from agent_setup import crew_people, delivery_task, inbox_bundles, real_driver_config
from pcsc_fixtures import cards, pcscd, wait_reader_empty  # noqa: F401 (fixtures)
from skimage import data as skdata

from agent.journal import Journal
from drivers.door.relay import LCUS1_OFF, LCUS1_ON
from drivers.fingerprint.emulator import ModuleEmulator

pytestmark = pytest.mark.pcsc

SITE, DEVICE = "BR-100", "dev-real-1"
BOX_TAG = "04A1B2C3D4E5F6"
TEMPLATES = {pid: os.urandom(512) for pid in ("E1", "E2", "O1")}
SUN_KEYS = (os.urandom(16), os.urandom(16))          # the box's NTAG 424 DNA meta-read and file-read keys


def face_video(path) -> None:
    frame = cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR)
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (frame.shape[1], frame.shape[0]))
    for _ in range(120):
        out.write(frame)
    out.release()


def bundles(state, now: datetime) -> None:
    task = delivery_task("T-REAL-1", SITE, "沪A·R0001", BOX_TAG, now,
                         box_keys={BOX_TAG: {"meta": SUN_KEYS[0].hex(), "file": SUN_KEYS[1].hex()}})
    inbox_bundles(state, DEVICE, now, [("personnel", {"people": crew_people(TEMPLATES)}), ("tasks", {"tasks": [task]})])


def relay_pty():
    master, slave = pty.openpty()
    tty.setraw(slave)
    return master, slave, os.ttyname(slave)


def relay_bytes(master) -> bytes:
    out = b""
    while select.select([master], [], [], 0.3)[0]:
        out += os.read(master, 64)
    return out


def test_agent_runs_a_handover_on_real_drivers(agent, tmp_path, pcscd, cards):  # noqa: F811
    now = datetime.now(ZoneInfo("Asia/Shanghai"))
    state = agent.state_dir
    state.mkdir()
    bundles(state, now)
    face_video(tmp_path / "door-camera.avi")
    door_fp, counter_fp = ModuleEmulator(), ModuleEmulator()
    door_path, counter_path = door_fp.plug(), counter_fp.plug()
    for emu in (door_fp, counter_fp):
        for pid, template in TEMPLATES.items():
            emu.add_finger(pid, template)
    relay_master, relay_slave, relay_path = relay_pty()
    receipt = tmp_path / "receipt.bin"
    cfg = real_driver_config(tmp_path / "handover.toml", door=door_path, counter=counter_path, site=SITE, device=DEVICE,
                             cards="pcsc", camera="opencv", camera_source=tmp_path / "door-camera.avi",
                             printer_file=receipt, relay_port=relay_path)
    try:
        agent.start("--config", str(cfg), simulate=False)
        agent.post("api/staff/open", {})            # the day's schedule is shown to staff only
        agent.wait_for(lambda v: v["pending_auth"] is not None)
        counter_fp.tap("O1")
        v = agent.wait_for(lambda v: v["staff"] and [t["task_id"] for t in v["tasks"]] == ["T-REAL-1"])
        assert v["sim"] is None, "real devices: no simulator panel"
        # the modules connect and take their templates in the background (issue 11: start never waits for them)
        v = agent.wait_for(lambda v: {h["device"]: h["state"] for h in v["health"]}.get("fingerprint_door")
                           == {h["device"]: h["state"] for h in v["health"]}.get("fingerprint_counter") == "connected")
        deadline = time.monotonic() + 20
        while len(door_fp.library) < 3 or len(counter_fp.library) < 3:
            assert time.monotonic() < deadline, "imported templates are loaded into both modules"
            time.sleep(0.05)
        assert relay_bytes(relay_master).endswith(LCUS1_OFF), "the door output starts lowered"

        agent.post("api/manual-arrival", {"task_id": "T-REAL-1"})
        agent.wait_for(lambda v: v["pending_auth"] is not None)
        counter_fp.tap("O1")
        v = agent.wait_for(lambda v: v["handover"] and v["handover"]["step"] == "escort_verification")
        assert v["handover"]["manual"] is True

        door_fp.tap("E1")
        v = agent.wait_for(lambda v: v["handover"]["escorts"][0]["verified"])
        assert v["handover"]["escorts"][0]["snapshot"], "the door camera's face crop is shown beside the photo"
        door_fp.tap(None)                                        # a stranger's finger
        agent.wait_for(lambda v: v["prompts"][0]["key"] == "finger_not_recognised")
        door_fp.tap("E2")
        agent.wait_for(lambda v: v["handover"]["step"] == "box_handover")
        assert relay_bytes(relay_master) == LCUS1_ON, "the relay is switched on when every escort is verified"

        wait_reader_empty()
        lifted = cards(BOX_TAG, sun_keys=SUN_KEYS, remove_after_apdus=4)   # lifted before its NDEF file was read
        lifted.insert()
        assert lifted.wait_out_of_field()
        v = agent.wait_for(lambda v: v["prompts"][0]["key"] == "card_present_again")
        assert v["handover"]["step"] == "box_handover" and not v["handover"]["open_alarms"]
        wait_reader_empty()
        box = cards(BOX_TAG, sun_keys=SUN_KEYS)              # a genuine anti-clone tag
        box.insert()
        agent.wait_for(lambda v: v["handover"]["step"] == "officer_confirmation")
        box.remove()
        counter_fp.tap("O1")
        agent.wait_for(lambda v: v["handover"]["step"] == "sign_off")
        door_fp.tap("E1")
        agent.wait_for(lambda v: len(v["handover"]["marks"]) == 1)
        counter_fp.tap("O1")
        v = agent.wait_for(lambda v: v["report"] is not None)
        assert v["report"]["outcome"] == "completed"
        assert not any("仅UID标签" in line for line in v["report"]["lines"]), "the box's SUN message was verified"
        assert relay_bytes(relay_master) == LCUS1_OFF
        wait_reader_empty()
        clone = cards(BOX_TAG)                  # a UID-writable card with the box's UID and nothing else
        clone.insert()
        agent.wait_for(lambda v: v["prompts"][0]["key"] == "no_handover_in_progress")
        clone.remove()
        printed = receipt.read_bytes()
        assert b"\x1dv0" in printed, "the report went to the printer as an ESC/POS raster image"
        assert agent.stop() == 0
        j = Journal(state / "journal.db")
        box_read = next(e for e in j.entries() if e.kind == "box_read")
        clone_read = next(e for e in j.entries() if e.kind == "card_read")
        tasks_text = json.dumps([e.body for e in j.entries()])
        j.close()
        assert box_read.body["event"]["uid_only"] is False
        assert clone_read.body["event"]["refused"] == "no_ndef_app", "a keyed UID without SUN is refused, not UID-only"
        assert clone_read.body["event"]["uid_only"] is False
        assert SUN_KEYS[0].hex() not in tasks_text, "box keys never enter the journal"
    finally:
        door_fp.stop()
        counter_fp.stop()
        os.close(relay_master)
        os.close(relay_slave)
    out = subprocess.run([sys.executable, "-m", "agent.cli", "journal", "verify", "--db", str(state / "journal.db")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
