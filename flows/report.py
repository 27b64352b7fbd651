"""The handover report (交接报告): what is printed, kept as a file and shown (SPEC §2.2 step 5)."""
from __future__ import annotations

from dataclasses import dataclass

from flows.handover import Handover


@dataclass(frozen=True)
class PersonLine:
    """Ids only: names are personal data, resolved where the report is shown or printed."""
    person_id: str
    role: str                  # "escort", "escort_lead", "officer"
    verified_at: str | None
    marked_at: str | None
    snapshot: str | None = None  # the door camera's face at the verification (photo hash), for head office's records


@dataclass(frozen=True)
class HandoverReport:
    task_id: str
    kind: str
    site_id: str
    site_type: str
    plate: str
    arrived_at: str | None
    arrival_manual: bool
    ended_at: str | None
    outcome: str | None
    people: tuple[PersonLine, ...]
    officer_method: str | None
    boxes_planned: tuple[str, ...]
    boxes_counted: tuple[str, ...]
    uid_only_boxes: tuple[str, ...]
    exceptions: tuple[dict, ...]       # non-silent alarms: a duress alarm never appears on local paper
    dispositions: tuple[dict, ...]
    restarts: int

    @classmethod
    def from_dict(cls, d: dict) -> "HandoverReport":
        """From its journaled form (what a restart reads back)."""
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        fields["people"] = tuple(PersonLine(**p) for p in d["people"])
        return cls(**fields)


def build_report(h: Handover) -> HandoverReport:
    iso = lambda t: t.isoformat(timespec="seconds") if t else None  # noqa: E731
    people = [PersonLine(e, "escort_lead" if e == h.lead else "escort",
                         iso(h.verified[e].at) if e in h.verified else None, iso(h.marks.get(e)),
                         h.verified[e].snapshot if e in h.verified else None)
              for e in h.task.escorts]
    if h.officer:
        pid = h.officer.person_id
        people.append(PersonLine(pid, "officer", iso(h.officer.at), iso(h.marks.get(pid))))
    return HandoverReport(
        task_id=h.task.task_id, kind=h.task.kind.value, site_id=h.site.site_id, site_type=h.site.site_type.value,
        plate=h.task.vehicle.plate, arrived_at=iso(h.arrived_at), arrival_manual=h.arrival_manual_by is not None,
        ended_at=iso(h.ended_at), outcome=h.outcome.value if h.outcome else None, people=tuple(people),
        officer_method=h.officer_method,
        boxes_planned=tuple(sorted(b.box_id for b in h.expected.values())),
        boxes_counted=tuple(sorted(r.box.box_id for r in h.boxes_read.values())),
        uid_only_boxes=tuple(sorted(r.box.box_id for r in h.boxes_read.values() if r.uid_only)),
        exceptions=tuple({"kind": a.alarm.kind.value, "at": iso(a.at), **a.alarm.detail}
                         for a in h.alarms if not a.alarm.silent),
        dispositions=tuple({"officer_id": d.officer_id, "code": d.code, "text": d.text,
                            "resolution": d.resolution, "at": iso(d.at)} for d in h.dispositions),
        restarts=h.restarts)
