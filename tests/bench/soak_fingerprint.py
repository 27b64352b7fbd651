"""Soak: thousands of touches at a door module that misbehaves at random (issue 11).

    python tests/bench/soak_fingerprint.py --touches 2000 [--seed 7] [--fault-rate 0.35] [--touch-wire]

The UART driver polls the module emulator on a pty. Each touch is an enrolled escort (one of the library's
slots) or a stranger, resting for three captures; before it, with probability --fault-rate, one fault is
queued (late / lost / corrupt reply, busy module, power cycle with a password, slow search), and now and
then the module restarts between touches. Printed at the end, and the exit status is 1 unless both are 0:
  false matches  - a match for a slot the finger is not enrolled in
  silent touches - a touch with no outcome at all (not even "press again")
Timeouts are shortened (fast emulator, 0.1 s margin) so 2,000 touches take minutes, not hours.
With --touch-wire the module's touch output is wired to the driver (a gpiozero mock pin): GenImg is sent only
while it says a finger is there.
"""
from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from gpiozero.pins.mock import MockFactory  # noqa: E402

from drivers.events import FingerRead  # noqa: E402
from drivers.fingerprint.emulator import ModuleEmulator, finger_template  # noqa: E402
from drivers.fingerprint.protocol import Instruction  # noqa: E402
from drivers.fingerprint.uart import UartFingerprint  # noqa: E402

G, T, S = Instruction.GEN_IMG, Instruction.IMG2TZ, Instruction.SEARCH
FAULTS = [("late", S, 0.9), ("late", S, 0.1), ("late", T, 0.9), ("lost", G, 0), ("lost", T, 0), ("lost", S, 0),
          ("corrupt", G, 0), ("corrupt", T, 0), ("corrupt", S, 0), ("busy", G, 1.2), ("busy", S, 1.2),
          ("power_cycle", G, 0), ("power_cycle", T, 0), ("power_cycle", S, 0), ("slow_search", None, 0.3)]
PASSWORD = 0x5EC2E7
SLOTS = 40
SILENT_AFTER = 15.0


async def soak(touches: int, seed: int, fault_rate: float, touch_wire: bool) -> dict:
    rng = random.Random(seed)
    factory = MockFactory()
    pin = factory.pin(23)
    wire = (lambda on: pin.drive_high() if on else pin.drive_low()) if touch_wire else None
    module = ModuleEmulator(capacity=100, password=PASSWORD, touch_output=wire)
    enrolled = {slot: finger_template(f"escort-{slot}", 512) for slot in range(SLOTS)}
    for slot, template in enrolled.items():
        module.library[slot] = template
        module.add_finger(f"escort-{slot}", template)
    driver = UartFingerprint("door", module.plug(), password=PASSWORD, poll_interval=0.01, reply_timeout=0.1,
                             reconnect_interval=0.05, touch_pin=23 if touch_wire else None, pin_factory=factory)
    reads: list[FingerRead] = []
    driver.sync_library(enrolled)
    await driver.start(lambda e: reads.append(e) if isinstance(e, FingerRead) else None)
    while not await driver.library_synced():
        await asyncio.sleep(0.01)
    stats = Counter()
    started = time.monotonic()
    try:
        for n in range(touches):
            slot = rng.randrange(SLOTS) if rng.random() < 0.6 else None
            finger = f"escort-{slot}" if slot is not None else None
            fault = None
            if rng.random() < fault_rate:
                kind, instruction, seconds = fault = rng.choice(FAULTS)
                module.inject(kind, instruction, seconds)
                stats["faults injected"] += 1
                stats[f"fault {kind} {instruction.name if instruction else 'any'}"] += 1
            elif rng.random() < 0.02:
                fault = "power blip"
                module.power_cycle()                    # a blip between touches
                stats["faults injected"] += 1
                stats["fault power blip between touches"] += 1
            before = len(reads)
            commands = Counter(module.commands)
            module.tap(finger, images=3)
            deadline = time.monotonic() + SILENT_AFTER
            while len(reads) == before and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            while module.taps_waiting() and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            await asyncio.sleep(0.03)
            got = reads[before:]
            stats["touches"] += 1
            if not got:
                stats["silent touches"] += 1
                sent = {Instruction(k).name: v for k, v in (module.commands - commands).items()}
                print(f"SILENT touch {n}: fault {fault}, waiting taps {module.taps_waiting()}, commands {sent}, "
                      f"health {driver.health().state} {driver.health().last_error}", flush=True)
                module.faults.clear()
                continue
            if len(got) > 1:
                stats["touches read twice"] += 1
            for read in got:
                stats[f"outcome {read.outcome}"] += 1
                if read.outcome == "match" and read.slot != slot:
                    stats["false matches"] += 1
                    print(f"FALSE MATCH at touch {n}: finger in slot {slot}, read {read}", flush=True)
            if (n + 1) % 250 == 0:
                print(f"  {n + 1} touches, {stats['faults injected']} faults, "
                      f"{time.monotonic() - started:.0f} s", flush=True)
        stats["faults applied by the module"] = len(module.faults_applied)
        stats["finding the finger"] = driver.health().detail["touch"]
    finally:
        await driver.stop()
        module.stop()
    stats["seconds"] = round(time.monotonic() - started)
    return stats


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--touches", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--fault-rate", type=float, default=0.35)
    parser.add_argument("--touch-wire", action="store_true", help="the module's touch output wired to a GPIO input")
    args = parser.parse_args()
    stats = asyncio.run(soak(args.touches, args.seed, args.fault_rate, args.touch_wire))
    for key in ("finding the finger", "touches", "faults injected", "faults applied by the module", "false matches", "silent touches",
                "touches read twice", "seconds"):
        print(f"{key:32s} {stats.get(key, 0)}")
    for key in sorted(k for k in stats if k.startswith(("outcome", "fault "))):
        print(f"  {key:30s} {stats[key]}")
    return 0 if stats.get("false matches", 0) == 0 and stats.get("silent touches", 0) == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
