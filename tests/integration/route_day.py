"""A route's day for the route board's tests: the escort company's dispatch (a CSV head office imports with
hq.schedule) and what each stop's terminal journals of its handover, in the agent's own entry shapes
(agent.terminal.Terminal.feed: the event, the step and the flows decisions encoded by agent.codec; the
report of flows.report at the end), appended to a real agent Journal."""
from __future__ import annotations

import csv
import dataclasses
import io
from datetime import date, datetime, timedelta, timezone

from agent.codec import encode
from flows.decisions import BoxAccepted, EscortVerified, OfficerConfirmed, Step, StepChanged
from flows.events import BoxPresented, FingerPresented, VehicleArrived
from flows.model import Box
from flows.report import HandoverReport, PersonLine

SITES = ("site_id,name,type\nVLT-01,中心金库,vault\nBR-001,城东支行,branch\nBR-002,城西支行,branch\n"
         "BR-003,城南支行,branch\n")
NAMES = {"VLT-01": "中心金库", "BR-001": "城东支行", "BR-002": "城西支行", "BR-003": "城南支行"}
HEADER = ["date", "route", "stop", "site", "kind", "window_start", "window_end", "plate", "beacon", "escorts", "boxes"]
PLATE = "沪A·C1234"
BEACON = "ibeacon:e2c56db5-dffb-48d2-b060-d0f5a71096e0:100:1"
ESCORTS = ("E01", "E02")
ROUTE = ("VLT-01", "BR-001", "BR-002", "BR-003")
# two boxes for each branch, handed out at the vault
BOXES = {"BR-001": [("XB1-01", "04A1B2C3D4E501"), ("XB1-02", "04A1B2C3D4E502")],
         "BR-002": [("XB2-01", "04A1B2C3D4E503"), ("XB2-02", "04A1B2C3D4E504")],
         "BR-003": [("XB3-01", "04A1B2C3D4E505"), ("XB3-02", "04A1B2C3D4E506")]}


_DESTINATION = {number: site for site, boxes in BOXES.items() for number, _ in boxes}


def dispatch(day: date, windows: list[tuple[str, str]], route: str = "R07") -> bytes:
    """The CSV of one delivery run over ROUTE, stop n in windows[n] (HH:MM, HH:MM)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    for n, (site, (start, end)) in enumerate(zip(ROUTE, windows), 1):
        boxes = ";".join(f"{b}:{t}" for b, t in BOXES.get(site, []))
        writer.writerow([day.isoformat(), route, n, site, "delivery", start, end, PLATE, BEACON, ";".join(ESCORTS),
                         boxes])
    return out.getvalue().encode()


def task_id(day: date, route: str = "R07") -> str:
    return f"{route}-{day:%Y%m%d}"


def _boxes_at(site: str) -> list[tuple[str, str]]:
    return [b for boxes in BOXES.values() for b in boxes] if site == ROUTE[0] else BOXES.get(site, [])


def _ts(moment: datetime) -> str:
    """The journal's own form: UTC with milliseconds and Z."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def start_stop(journal, day: date, site: str, at: datetime, *, officer: str | None = "O01", route: str = "R07") -> None:
    """A handover at `site`: the truck arrived, both escorts verified at the door, this stop's boxes read,
    the officer confirmed (unless officer is None)."""
    tid = task_id(day, route)
    boxes = _boxes_at(site)

    def feed(kind: str, event, step: Step, decisions: list, t: datetime) -> None:
        journal.append(kind, {"event": encode(event), "at": t.isoformat(), "step": step.value,
                              "decisions": [encode(d) for d in decisions]}, task_id=tid, ts=_ts(t))
    journal.append("handover_started", {"task": {"task_id": tid}, "site_id": site, "inputs": {}}, task_id=tid,
                   ts=_ts(at))
    feed("arrival", VehicleArrived(BEACON), Step.ESCORT_VERIFICATION, [StepChanged(Step.ESCORT_VERIFICATION)], at)
    t = at
    for escort in ESCORTS:
        t += timedelta(seconds=20)
        feed("finger_attempt", FingerPresented("door", "match", escort), Step.ESCORT_VERIFICATION,
             [EscortVerified(escort, None)], t)
    for number, tag in boxes:
        t += timedelta(seconds=10)
        feed("box_read", BoxPresented(tag, Box(number, tag, _DESTINATION[number])), Step.BOX_HANDOVER, [BoxAccepted(number, tag, False)], t)
    if officer:
        t += timedelta(seconds=30)
        feed("finger_attempt", FingerPresented("counter", "match", officer), Step.OFFICER_CONFIRMATION,
             [OfficerConfirmed(officer, "fingerprint")], t)


def end_stop(journal, day: date, site: str, arrived: datetime, ended: datetime, outcome: str = "completed",
             route: str = "R07") -> None:
    """The handover at `site` ends: its report, as flows.report builds it."""
    boxes = tuple(sorted(b for b, _ in _boxes_at(site)))
    people = tuple(PersonLine(e, "escort_lead" if i == 0 else "escort", arrived.isoformat(timespec="seconds"), None)
                   for i, e in enumerate(ESCORTS)) + (PersonLine("O01", "officer", ended.isoformat(timespec="seconds"),
                                                                 None),)
    report = HandoverReport(task_id=task_id(day, route), kind="delivery", site_id=site,
                            site_type="vault" if site == ROUTE[0] else "branch", plate=PLATE,
                            arrived_at=arrived.isoformat(timespec="seconds"), arrival_manual=False,
                            ended_at=ended.isoformat(timespec="seconds"), outcome=outcome, people=people,
                            officer_method="fingerprint", boxes_planned=boxes, boxes_counted=boxes, uid_only_boxes=(),
                            exceptions=(), dispositions=(), restarts=0)
    journal.append("handover_ended", {"report": dataclasses.asdict(report)}, task_id=task_id(day, route), ts=_ts(ended))


def as_uplink(device: str, entries) -> list[dict]:
    """Journal entries as head office receives them (protocol/schemas/entry.json)."""
    return [{"id": f"{device}:{e.seq}", "seq": e.seq, "ts": e.ts, "kind": e.kind, "task_id": e.task_id,
             "body": e.body, "prev_hash": e.prev_hash, "hash": e.hash} for e in entries]
