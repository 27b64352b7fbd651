"""Enrolment at the branch (SPEC §2.4, issue 11): an officer signed flows.staff's ENROLMENT purpose; this
performs it. Two captures at the counter module (the door module when there is no counter one), RegModel,
the duplicate check, stored in every module (agent.devices.enrol_finger), then the template sealed in the
store and the enrolment journaled in one transaction.

The journal entry carries ids, the slot and the template's SHA-256, never a name nor the template in clear:
the journal syncs to head office, and the template stays sealed at rest in the store (device data key).
For head office the entry carries the template once more, HPKE-sealed to head office's enrolment key
(keys/hq_enrolment.pem, X25519) and bound to the device, person, finger and hash; without that key
provisioned it carries null and says so. The driver call runs as its own task, so the terminal's event
loop keeps serving the door while a person presses their finger.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from agent.devices import enrol_finger
from agent.journal import Journal
from agent.store import Store, Template
from drivers.base import FingerprintModule
from drivers.fingerprint.uart import DuplicateFinger
from flows.decisions import Prompt
from protocol.enrolment import seal_for_hq
from protocol.keys import KeyFileError, load_public

log = logging.getLogger("handover.enrolment")

POLL = 0.05          # seconds between looks at the module's capture count (for "press again")

# each stage the screen shows, and what the terminal says on reaching it
STAGE_PROMPTS = {"press": "enrol_press_finger", "press_again": "enrol_press_again", "done": "enrol_done",
                 "duplicate": "enrol_duplicate", "failed": "enrol_failed", "cancelled": "enrol_cancelled"}
FINISHED = frozenset({"done", "duplicate", "failed", "cancelled"})

HQ_KEY_FILE = "hq_enrolment.pem"     # in the keys directory, installed with the device like hq_signers/


def load_hq_key(keys_dir: str | Path, name: str = HQ_KEY_FILE,
                what: str = "enrolled templates") -> X25519PublicKey | None:
    """One of head office's X25519 public keys in the keys directory (the enrolment key by default), if
    installed. A bad file is logged, never stops the terminal: `what` then simply does not travel."""
    path = Path(keys_dir) / name
    if not path.is_file():
        return None
    try:
        key = load_public(path.read_bytes())
    except (OSError, KeyFileError) as exc:
        log.error("%s: %s; %s will not travel to head office", path, exc, what)
        return None
    if not isinstance(key, X25519PublicKey):
        log.error("%s: head office's key must be X25519; %s will not travel", path, what)
        return None
    return key


@dataclass
class EnrolmentStatus:
    person_id: str
    finger: str
    slot: int
    stage: str                       # a key of STAGE_PROMPTS

    @property
    def running(self) -> bool:
        return self.stage not in FINISHED


class BranchEnrolment:
    def __init__(self, store: Store, journal: Journal, fingerprints: dict[str, FingerprintModule],
                 say: Callable[[Prompt], None], changed: Callable[[], None], *, device_id: str,
                 hq_key: X25519PublicKey | None):
        self._device_id = device_id
        self._hq_key = hq_key
        self._store = store
        self._journal = journal
        self._fingerprints = fingerprints
        self._say = say
        self._changed = changed
        self.status: EnrolmentStatus | None = None
        self._job: asyncio.Task | None = None

    @property
    def station(self) -> str:
        return "counter" if "counter" in self._fingerprints else "door"

    async def run(self, person_id: str, finger: str, officer_id: str, method: str) -> None:
        if self._job is not None and not self._job.done():      # one capture at a time on one module
            self._job.cancel()
        slot = self._store.slot_for(person_id, finger)
        station = self.station
        module = self._fingerprints[station]
        self._stage(EnrolmentStatus(person_id, finger, slot, "press"))
        self._job = job = asyncio.create_task(enrol_finger(self._fingerprints, station, slot))
        status = self.status
        while not job.done():
            await asyncio.wait({job}, timeout=POLL)
            if status.stage == "press" and module.enrol_captures >= 1 and not job.done():
                self._stage(status, "press_again")
        base = {"person_id": person_id, "finger": finger, "slot": slot, "station": station,
                "officer_id": officer_id, "method": method}
        try:
            result = job.result()
        except asyncio.CancelledError:
            self._journal.append("finger_enrol_failed", {**base, "reason": "cancelled"})
            return self._stage(status, "cancelled")
        except DuplicateFinger as exc:
            self._journal.append("finger_enrol_failed", {**base, "reason": "duplicate",
                                                         "existing_slot": exc.existing_slot})
            return self._stage(status, "duplicate")
        except Exception as exc:         # timeout, a lost reply, the module gone: the officer can try again
            log.warning("enrolment at %s failed: %s", station, exc)
            self._journal.append("finger_enrol_failed", {**base, "reason": "capture_failed"})
            return self._stage(status, "failed")
        body = {**base, "template_sha256": hashlib.sha256(result.template).hexdigest(),
                "template_bytes": len(result.template), "not_stored": sorted(result.not_stored)}
        body["template_for_hq"] = (seal_for_hq(result.template, self._hq_key, self._device_id, body)
                                   if self._hq_key is not None else None)
        try:
            with self._journal.transaction():
                body["slot"] = self._store.put_template(Template(person_id, finger, result.template))
                self._journal.append("finger_enrolled", body)
        except Exception:                # e.g. a full disk: not journaled, so not enrolled here
            self._stage(status, "failed")
            raise
        for other, why in result.not_stored.items():
            log.warning("enrolled template not in the %s module yet: %s", other, why)
        self._stage(status, "done")

    def cancel(self) -> None:
        """Staff gave up on a running capture, or closed a finished one's screen."""
        if self._job is not None and not self._job.done():
            self._job.cancel()           # the driver abandons the capture (drivers.fingerprint.uart)
        else:
            self.status = None
            self._changed()

    def _stage(self, status: EnrolmentStatus, stage: str | None = None) -> None:
        if stage is not None:
            status.stage = stage
        self.status = status
        self._say(Prompt(STAGE_PROMPTS[status.stage], {"person_id": status.person_id},
                         urgent=status.stage in ("duplicate", "failed")))
        self._changed()
