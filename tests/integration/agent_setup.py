"""What the tests and benches that start `handover-agent run` on real drivers share: the configuration file
naming the drivers, and the day's people and tasks as signed bundles in the inbox, the way a field
technician brings them (imported at start). Benches import it too (tests/bench puts this folder on sys.path).
"""
from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.bundle import pack_bundle
from protocol.keys import DeviceKeys

# the crew of the real-driver tests: two escorts and the officer, each with one enrolled finger
CREW = (("E1", "赵一", "escort"), ("E2", "钱二", "escort"), ("O1", "孙三", "officer"))


def real_driver_config(path: Path, *, door: str, counter: str, site: str = "BR-100", device: str = "dev-real-1",
                       door_password: int | None = None, cards: str = "simulator", ble: str = "simulator",
                       camera: str = "none", camera_source: Path | None = None, printer_file: Path | None = None,
                       relay_port: str | None = None, touch_pins: tuple[int, int] | None = None) -> Path:
    """An agent configuration with both fingerprint modules on UART (`door`, `counter`: their ports) and the
    other devices as named: cards/ble/camera by driver, the printer to `printer_file` and the door output
    on a serial relay at `relay_port` when given (simulated otherwise), the modules' touch wires on
    `touch_pins` (door, counter) when given. Voice stays text: espeak would need a sound card."""
    door_pin, counter_pin = touch_pins or (None, None)
    sections = {
        "site": {"id": site, "type": "branch"},
        "device": {"id": device},
        "devices.fingerprint_door": {"driver": "uart", "port": door, "password": door_password, "touch_pin": door_pin},
        "devices.fingerprint_counter": {"driver": "uart", "port": counter, "touch_pin": counter_pin},
        "devices.cards": {"driver": cards},
        "devices.ble": {"driver": ble},
        "devices.camera": {"driver": camera, "source": camera_source},
        "devices.voice": {"driver": "text"},
        "devices.printer": {"driver": "file", "path": printer_file} if printer_file else {"driver": "simulator"},
        "devices.door": {"driver": "serial-relay", "port": relay_port} if relay_port else {"driver": "simulator"},
    }
    path.write_text("".join(f"[{name}]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in keys.items() if v is not None)
                            for name, keys in sections.items()), encoding="utf-8")
    return path


def _toml(value) -> str:
    # a JSON string is a TOML basic string (same escapes); paths and ports are strings
    return str(value) if isinstance(value, int) else json.dumps(str(value), ensure_ascii=False)


def crew_people(templates: dict[str, bytes], crew=CREW) -> list[dict]:
    """The personnel payload for `crew`, each with their template on the right index finger."""
    return [{"person_id": pid, "name": name, "role": role, "company": "押运一队",
             "templates": [{"finger": "right_index", "data": base64.b64encode(templates[pid]).decode()}]}
            for pid, name, role in crew]


def delivery_task(task_id: str, site: str, plate: str, tag: str, now: datetime, **extra) -> dict:
    """One delivery to `site` in a window around `now`, one box (`tag`), escorts E1 and E2, officer O1."""
    return {"task_id": task_id, "version": 1, "kind": "delivery",
            "window_start": (now - timedelta(hours=1)).isoformat(), "window_end": (now + timedelta(hours=1)).isoformat(),
            "route": [site], "vehicle": {"vehicle_id": "V9", "plate": plate, "beacon": "ibeacon:x:1:1"},
            "escorts": ["E1", "E2"], "boxes": [{"box_id": "RB-01", "tag": tag, "destination": site}],
            "confirmers": ["O1"], **extra}


def inbox_bundles(state: Path, device: str, now: datetime, payloads: list[tuple[str, dict]]) -> None:
    """A head-office signing key the device trusts, and each (kind, payload) packed in order as a bundle
    signed by it and encrypted to the device, in state/inbox."""
    keys = DeviceKeys.load_or_create(state / "keys", device)
    hq = Ed25519PrivateKey.generate()
    (state / "keys" / "hq_signers").mkdir(parents=True)
    (state / "keys" / "hq_signers" / "hq.pem").write_bytes(hq.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    inbox = state / "inbox"
    inbox.mkdir(parents=True)
    for seq, (kind, payload) in enumerate(payloads, 1):
        (inbox / f"{kind}-{seq:06d}.htb").write_bytes(pack_bundle(
            kind, payload, device, keys.bundle_public, hq, seq, now + timedelta(days=1), now))
