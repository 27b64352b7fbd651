"""The duress rule (SPEC §2.3), in one place: a person who presents the finger enrolled as their duress
finger is in danger now, whatever the step. The alarm is silent (head office only) and never blocks: the
flow must look normal to whoever is watching. Each finger reaches exactly one machine (flows.staff routes
it), and that machine asks this rule once."""
from __future__ import annotations

from flows.decisions import Alarm, AlarmKind
from flows.events import FingerPresented


def duress_alarm(finger: FingerPresented) -> list[Alarm]:
    if finger.duress and finger.outcome == "match" and finger.person_id is not None:
        return [Alarm(AlarmKind.DURESS, {"person_id": finger.person_id, "station": finger.station},
                      silent=True, blocking=False)]
    return []
