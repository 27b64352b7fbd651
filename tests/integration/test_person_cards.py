"""Issue 17 item 2 on the real agent in-process (simulated devices): every person card carries the employee
number (工号) the printed report carries, and an enrolment near its end says so on the card; one that is not
near its end says nothing."""
from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

from agent.config import load_config
from agent.devices import Devices
from agent.sample import TRUCKS
from agent.terminal import Terminal
from agent.view import VALIDITY_SHOWN_DAYS, build_view
from drivers.ble.sim import SimulatedBeaconScanner
from drivers.camera.sim import SimulatedCamera
from drivers.cards.sim import SimulatedCardReader
from drivers.door.sim import SimulatedDoor
from drivers.fingerprint.sim import SimulatedFingerprint
from drivers.printer.sim import SimulatedPrinter
from drivers.voice.sim import TextVoice


def devices() -> Devices:
    return Devices({"door": SimulatedFingerprint("door"), "counter": SimulatedFingerprint("counter")},
                   SimulatedCardReader(), SimulatedBeaconScanner(), SimulatedCamera(), TextVoice(),
                   SimulatedPrinter(), SimulatedDoor())


async def test_person_cards_show_the_employee_number_and_an_enrolment_near_its_end(tmp_path):
    config = load_config(None).as_simulation()
    config = dataclasses.replace(config, paths=dataclasses.replace(config.paths, state_dir=tmp_path / "state"))
    t = Terminal(config, devices())
    await t.start()
    try:
        today = t.today()
        soon, later = today + timedelta(days=12), today + timedelta(days=VALIDITY_SHOWN_DAYS + 40)
        t.store.upsert_person(dataclasses.replace(t.people["E02"], valid_until=soon))
        t.store.upsert_person(dataclasses.replace(t.people["E01"], valid_until=later))
        t.reload_people()
        t.devices.ble.approach(TRUCKS[0].beacon, -50)
        for _ in range(400):
            if t.active is not None:
                break
            await asyncio.sleep(0.05)
        view = build_view(t, "zh-CN")
        cards = {e["person_id"]: e for e in view["handover"]["escorts"]}
        assert cards["E01"]["employee_no"] == "E01" and cards["E02"]["employee_no"] == "E02"
        assert (cards["E02"]["valid_until"], cards["E02"]["days_left"]) == (soon.isoformat(), 12)
        assert cards["E01"]["valid_until"] is None and cards["E01"]["days_left"] is None    # far from its end
    finally:
        await t.stop()
