"""Past handovers at the branch (issue 17 item 1): the journal is the record, this reads it for staff.

A record is a handover that ended here (its `handover_ended` entry carries the printed report); its
timeline is every journal entry of its task. Search is by day (the arrival's local date), truck plate
and box (number or tag). A reprint is journaled as a reprint before it is printed, and the paper says
it is a copy.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime

from agent.journal import Entry, Journal
from flows.report import HandoverReport

SEARCH_LIMIT = 50           # rows on one screen's list, newest first
_TIMELINE_SKIP = ("staff_session", "staff_session_ended", "staff_pending", "staff_pending_cleared", "screen_mode")


@dataclass(frozen=True)
class Record:
    report: HandoverReport
    seq: int                        # the handover_ended entry
    tags: tuple[str, ...]           # the task's box tags, for search by tag
    reprints: int


class RecordsError(ValueError):
    """Bad search or an unknown record; the message names what is wrong."""


def _day_of(iso: str | None) -> date | None:
    try:
        return datetime.fromisoformat(iso).date() if iso else None
    except ValueError:
        return None


class Records:
    def __init__(self, journal: Journal):
        self.journal = journal

    def _rows(self, kinds: tuple[str, ...]) -> list[tuple[int, str, str | None, dict]]:
        marks = ",".join("?" * len(kinds))
        rows = self.journal.db.conn.execute(
            f"SELECT seq, kind, task_id, body FROM journal WHERE kind IN ({marks}) ORDER BY seq", kinds).fetchall()
        return [(seq, kind, task_id, json.loads(body)) for seq, kind, task_id, body in rows]

    def all(self) -> list[Record]:
        tags: dict[str, tuple[str, ...]] = {}
        reprints: dict[str, int] = {}
        ended: dict[str, tuple[int, dict]] = {}
        for seq, kind, task_id, body in self._rows(("handover_started", "handover_ended", "report_reprinted")):
            if kind == "handover_started":
                tags[task_id] = tuple(str(b.get("tag", "")).upper() for b in body.get("task", {}).get("boxes", []))
            elif kind == "handover_ended":
                ended[task_id] = (seq, body["report"])        # a task handed over twice: its last report
            else:
                reprints[task_id] = reprints.get(task_id, 0) + 1
        out = [Record(HandoverReport.from_dict(report), seq, tags.get(task_id, ()), reprints.get(task_id, 0))
               for task_id, (seq, report) in ended.items()]
        return sorted(out, key=lambda r: r.seq, reverse=True)

    def search(self, day: date | None = None, plate: str = "", box: str = "") -> list[Record]:
        plate = "".join(plate.split()).upper()
        box = box.strip().upper()
        out = []
        for r in self.all():
            if day is not None and _day_of(r.report.arrived_at or r.report.ended_at) != day:
                continue
            if plate and plate not in r.report.plate.replace(" ", "").upper():
                continue
            if box and not any(box == x.upper() for x in (*r.report.boxes_planned, *r.report.boxes_counted, *r.tags)):
                continue
            out.append(r)
        return out[:SEARCH_LIMIT]

    def get(self, task_id: str) -> Record:
        for r in self.all():
            if r.report.task_id == task_id:
                return r
        raise RecordsError(f"no finished handover for task {task_id}")

    def timeline(self, task_id: str) -> list[Entry]:
        """What happened, in order: arrivals, attempts, boxes, alarms, dispositions, the end, reprints."""
        return [e for e in self.journal.entries_for_task(task_id) if e.kind not in _TIMELINE_SKIP]

    def record_reprint(self, task_id: str, by: str, at: datetime) -> int:
        """Journals the reprint (before the paper comes out); returns its copy number."""
        with self.journal.transaction():
            copy = self.get(task_id).reprints + 1
            self.journal.append("report_reprinted", {"task_id": task_id, "by": by, "at": at.isoformat(),
                                                     "copy": copy}, task_id=task_id)
        return copy
