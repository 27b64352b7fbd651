"""Which task a truck's arrival belongs to, or which vehicle alarm it raises (SPEC §2.3)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterable

from flows.decisions import Alarm, AlarmKind
from flows.model import Task


@dataclass(frozen=True)
class ArrivalMatch:
    task: Task | None
    alarm: Alarm | None = None


def match_arrival(beacon: str, open_tasks_here: Iterable[Task], known_tasks: Iterable[Task],
                  now: datetime) -> ArrivalMatch:
    """`open_tasks_here`: today's tasks stopping at this site not yet handed over here.
    `known_tasks`: tasks the device knows with this beacon (or all of them), to tell a wrong truck from
    an unknown one."""
    mine = [t for t in open_tasks_here if t.vehicle.beacon == beacon]
    if mine:
        # prefer the task whose window holds now, else the nearest window
        def distance(t: Task) -> float:
            if t.window_start <= now <= t.window_end:
                return 0.0
            return min(abs((t.window_start - now).total_seconds()), abs((t.window_end - now).total_seconds()))
        return ArrivalMatch(min(mine, key=lambda t: (distance(t), t.window_start, t.task_id)))
    plates = {t.vehicle.beacon: t.vehicle.plate for t in known_tasks}
    if beacon in plates:
        return ArrivalMatch(None, Alarm(AlarmKind.WRONG_VEHICLE, {"beacon": beacon, "plate": plates[beacon]},
                                        blocking=False))
    return ArrivalMatch(None, Alarm(AlarmKind.UNKNOWN_VEHICLE, {"beacon": beacon}, blocking=False))
