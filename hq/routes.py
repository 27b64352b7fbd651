"""The route board at head office (SPEC §2.5, issue 16): each truck's route of a day, stop by stop, from the
schedule head office published (hq/schedule.py: each site's copy of a run, with its window) and the fleet's
journal entries in head office's database (handover started / escort verified / box accepted / officer
confirmed / handover ended, per device and task). The judgement itself is hq/route_board.py.

Also what the board announces besides alarms (an officer's confirmation, a handover ended): `announcement`
reads it from one committed entry."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterable
from zoneinfo import ZoneInfo

from hq.db import Cursor, Database
from hq.route_board import PlannedStop, StopRecord, judge, skipped
from hq.schedule import DEFAULT_TZ

# the entries the board reads: a handover's start and end (their report counts a finished one), and while it
# runs the attempts and reads whose decisions count it
ENDS = ("handover_started", "handover_ended")
STEPS = ("finger_attempt", "password_attempt", "box_read")
KINDS = ENDS + STEPS
# ENDS as SQL, written as the partial index hq_routes_handovers is (hq/db.py), so SQLite's planner uses it
_ENDS_SQL = "kind IN ('handover_started', 'handover_ended')"
_CHUNK = 300            # running handovers read in one statement (3 parameters each); task ids: 900
ANNOUNCED = ("confirmation", "completion")
OUTCOMES = ("completed", "completed_with_exception", "aborted")


@dataclass
class _Stop:
    """What one site's terminals journaled of one task (a handover restarted from step 1 counts again)."""
    device: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    outcome: str | None = None
    escorts: set[str] = field(default_factory=set)
    boxes: set[str] = field(default_factory=set)
    officer: str | None = None


def _moment(text) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else None


def _decisions(body: dict) -> list[dict]:
    found = body.get("decisions")
    return [d for d in found if isinstance(d, dict)] if isinstance(found, list) else []


def _records(rows: Iterable[tuple], device_sites: dict[str, str]) -> dict[tuple[str, str], _Stop]:
    """{(task_id, site_id): what happened there}, from entries in (device, seq) order."""
    out: dict[tuple[str, str], _Stop] = {}
    where: dict[tuple[str, str], str] = {}        # (device, task) -> the site its handover_started named
    for device, _, ts, kind, task_id, body in rows:
        body = json.loads(body)
        if not isinstance(body, dict):
            continue
        if kind == "handover_started":
            site = body.get("site_id") if isinstance(body.get("site_id"), str) else device_sites.get(device)
            if site is None:
                continue
            where[(device, task_id)] = site
            stop = out.setdefault((task_id, site), _Stop())
            if stop.ended_at is None:       # a second terminal at the vault does not undo a finished handover
                stop.device, stop.started_at = device, _moment(ts)
                stop.escorts, stop.boxes, stop.officer = set(), set(), None
            continue
        site = where.get((device, task_id)) or device_sites.get(device)
        if site is None:
            continue
        stop = out.setdefault((task_id, site), _Stop(device=device))
        if kind == "handover_ended":
            report = body.get("report") if isinstance(body.get("report"), dict) else {}
            stop.ended_at = _moment(report.get("ended_at")) or _moment(ts)
            stop.started_at = stop.started_at or _moment(report.get("arrived_at")) or stop.ended_at
            stop.outcome = report.get("outcome") if isinstance(report.get("outcome"), str) else None
            if isinstance(report.get("boxes_counted"), list):
                stop.boxes = {b for b in report["boxes_counted"] if isinstance(b, str)}
            listed = report.get("people") if isinstance(report.get("people"), list) else []
            people = [p for p in listed if isinstance(p, dict) and p.get("verified_at")]
            stop.escorts = {p.get("person_id") for p in people if p.get("role") in ("escort", "escort_lead")}
            stop.officer = next((p.get("person_id") for p in people if p.get("role") == "officer"), None)
            continue
        for d in _decisions(body):
            kind_of = d.get("type")
            if kind_of == "TaskRestarted":
                stop.escorts, stop.boxes, stop.officer = set(), set(), None
            elif kind_of == "EscortVerified" and isinstance(d.get("person_id"), str):
                stop.escorts.add(d["person_id"])
            elif kind_of == "BoxAccepted" and isinstance(d.get("box_id"), str):
                stop.boxes.add(d["box_id"])
            elif kind_of == "OfficerConfirmed" and isinstance(d.get("person_id"), str):
                stop.officer = d["person_id"]
    return out


def local_time(ts) -> str:
    """An entry's time on the schedule's clock (HH:MM); "" when it is not a time."""
    moment = _moment(ts)
    return moment.astimezone(ZoneInfo(DEFAULT_TZ)).strftime("%H:%M") if moment else ""


def _hhmm(moment: datetime | None, like: datetime) -> str | None:
    """A time as the schedule's clock shows it (the window's offset)."""
    return moment.astimezone(like.tzinfo).strftime("%H:%M") if moment else None


def route_id(task_id: str, day: str) -> str:
    """The dispatch's route id (hq.schedule.task_id is "<route>-<YYYYMMDD>")."""
    suffix = "-" + day.replace("-", "")
    return task_id[:-len(suffix)] if task_id.endswith(suffix) else task_id


def _entries(cur: Cursor, task_ids: list[str]) -> list[tuple]:
    """The entries of these tasks the board reads, in (device, seq) order. Starts and ends come through the
    small partial index (one row per handover: ingest barely pays for it); a handover still running is read
    on from its start along the device's own key, (device, seq)."""
    rows = []
    for at in range(0, len(task_ids), _CHUNK * 3):  # a day's 20,000 tasks are more parameters than SQLite takes
        chunk = task_ids[at:at + _CHUNK * 3]
        rows += cur.all(f"SELECT device, seq, ts, kind, task_id, body FROM entries WHERE {_ENDS_SQL} "
                        f"AND task_id IN ({', '.join('?' * len(chunk))})", tuple(chunk))
    last: dict[tuple[str, str], tuple[int, str]] = {}
    for device, seq, _, kind, task_id, _ in rows:
        if seq > last.get((device, task_id), (0, ""))[0]:
            last[(device, task_id)] = (seq, kind)
    running = [(device, seq, task_id) for (device, task_id), (seq, kind) in last.items() if kind == "handover_started"]
    steps = ", ".join("?" * len(STEPS))
    for at in range(0, len(running), _CHUNK):       # one statement for many: a round trip each was most of it
        chunk = running[at:at + _CHUNK]
        rows += cur.all(f"WITH r (device, seq, task_id) AS (VALUES {', '.join(['(?, ?, ?)'] * len(chunk))}) "
                        f"SELECT e.device, e.seq, e.ts, e.kind, e.task_id, e.body FROM r JOIN entries e "
                        f"ON e.device = r.device AND e.seq > r.seq AND e.task_id = r.task_id WHERE e.kind IN ({steps})",
                        (*(v for row in chunk for v in row), *STEPS))
    return sorted(rows, key=lambda r: (r[0], r[1]))


def _routes(cur: Cursor, day: str, task_ids: list[str] | None, now: datetime, names: dict[str, str]) -> list[dict]:
    only = f" AND task_id IN ({', '.join('?' * len(task_ids))})" if task_ids else ""
    rows = cur.all(f"SELECT site_id, task_id, body FROM schedule_tasks WHERE day = ?{only} ORDER BY task_id, site_id",
                   (day, *(task_ids or ())))
    if not rows:
        return []
    # each site's copy of a run (hq.schedule.site_tasks): the same route, truck, escorts and boxes, its own window
    copies: dict[str, dict[str, dict]] = {}
    for site, tid, body in rows:
        copies.setdefault(tid, {})[site] = json.loads(body)
    sites = dict(cur.all("SELECT site_id, name FROM schedule_sites"))
    device_sites = dict(cur.all("SELECT device, site_id FROM devices WHERE site_id IS NOT NULL"))
    wanted = sorted(copies)
    records = _records(_entries(cur, wanted), device_sites)
    out = []
    for tid in wanted:
        by_site = copies[tid]
        run = next(iter(by_site.values()))
        path = [s for s in run["route"] if s in by_site]
        planned = [PlannedStop(s, datetime.fromisoformat(by_site[s]["window_start"]),
                               datetime.fromisoformat(by_site[s]["window_end"])) for s in path]
        found = {s: records[(tid, s)] for s in path if (tid, s) in records}
        states = judge(planned, {s: StopRecord(r.started_at, r.ended_at) for s, r in found.items()}, now)
        stops = []
        for n, (stop, state) in enumerate(zip(planned, states), 1):
            record = found.get(stop.site_id, _Stop())
            # the boxes that change hands here: those leaving it or coming to it (at the vault, all of the run's)
            boxes = [b for b in run["boxes"] if stop.site_id in (b.get("origin"), b.get("destination"))]
            stops.append({
                "position": n, "site_id": stop.site_id,
                "site": names.get(stop.site_id) or sites.get(stop.site_id) or stop.site_id,
                "window_start": stop.window_start.isoformat(), "window_end": stop.window_end.isoformat(),
                "window": f"{_hhmm(stop.window_start, stop.window_start)}–{_hhmm(stop.window_end, stop.window_start)}",
                "state": state.value, "device": record.device,
                "arrived": _hhmm(record.started_at, stop.window_start),
                "ended": _hhmm(record.ended_at, stop.window_start), "outcome": record.outcome,
                "escorts_verified": [e for e in run["escorts"] if e in record.escorts],
                "escorts_planned": len(run["escorts"]),
                "boxes_counted": len(record.boxes), "boxes_planned": len(boxes),
                "officer": record.officer})
        out.append({"task_id": tid, "route": route_id(tid, day), "day": day, "kind": run["kind"],
                    "plate": run["vehicle"]["plate"], "escorts": list(run["escorts"]), "stops": stops,
                    "skipped": skipped(planned, states),
                    "skipped_names": [s["site"] for s in stops if s["state"] == "skipped"]})
    out.sort(key=lambda r: (r["stops"][0]["window_start"] if r["stops"] else "", r["route"]))
    return out


def day_routes(db: Database, day: str, now: datetime, names: dict[str, str] | None = None) -> list[dict]:
    """Every route of `day` (YYYY-MM-DD) as the board shows it at `now`; `names`: site names that win over
    the schedule's (the page's --sites)."""
    return db.run(lambda cur: _routes(cur, day, None, now, names or {}))


def routes_of(db: Database, task_ids: Iterable[str], now: datetime, names: dict[str, str] | None = None) -> list[dict]:
    """The routes of these tasks (whatever their days), judged at `now`: what a committed entry changed."""
    wanted = sorted(set(task_ids))

    def work(cur: Cursor) -> list[dict]:
        if not wanted:
            return []
        days = cur.all(f"SELECT DISTINCT day, task_id FROM schedule_tasks WHERE task_id IN "
                       f"({', '.join('?' * len(wanted))})", tuple(wanted))
        by_day: dict[str, list[str]] = {}
        for day, tid in days:
            by_day.setdefault(day, []).append(tid)
        return [r for day, tids in sorted(by_day.items()) for r in _routes(cur, day, sorted(tids), now, names or {})]
    return db.run(work)


# -- announcements -------------------------------------------------------------------------------------

def announcement(entry: dict) -> tuple[str, dict] | None:
    """(what, facts) when a committed entry is one the board may announce: an officer's confirmation
    ("confirmation", {site_id?}) or a handover ended ("completion", {site_id, plate, outcome}); else None."""
    body = entry.get("body")
    if not isinstance(body, dict):
        return None
    if entry.get("kind") == "handover_ended" and isinstance(body.get("report"), dict):
        report = body["report"]
        facts = {k: report.get(k) for k in ("site_id", "plate", "outcome")}
        ok = all(isinstance(v, str) for v in facts.values()) and facts["outcome"] in OUTCOMES
        return ("completion", facts) if ok else None
    if entry.get("kind") in ("finger_attempt", "password_attempt") and any(
            d.get("type") == "OfficerConfirmed" for d in _decisions(body)):
        return "confirmation", {}
    return None


def site_of_device(db: Database, device: str, task_id: str | None) -> str | None:
    """The site a device's entry was made at: its handover's start names it, else the device's status."""
    def work(cur: Cursor) -> str | None:
        if task_id:
            row = cur.one("SELECT body FROM entries WHERE device = ? AND task_id = ? AND kind = 'handover_started' "
                          "ORDER BY seq DESC LIMIT 1", (device, task_id))
            site = json.loads(row[0]).get("site_id") if row else None
            if isinstance(site, str):
                return site
        row = cur.one("SELECT site_id FROM devices WHERE device = ?", (device,))
        return row[0] if row else None
    return db.run(work)


def site_name(db: Database, site_id: str | None) -> str | None:
    """A site's name as the schedule's sites list gives it (`handover-hq schedule sites`)."""
    row = db.run(lambda cur: cur.one("SELECT name FROM schedule_sites WHERE site_id = ?", (site_id,))) if site_id else None
    return row[0] if row else None


def entry(db: Database, device: str, entry_id: str) -> dict | None:
    """One applied entry by its id (`<device>:<seq>`), or None."""
    _, sep, seq = entry_id.rpartition(":")
    if not sep or not seq.isdigit() or len(seq) > 18:
        return None
    row = db.run(lambda cur: cur.one("SELECT id, seq, ts, kind, task_id, body FROM entries WHERE device = ? AND seq = ?",
                                     (device, int(seq))))
    if row is None or row[0] != entry_id:
        return None
    return {"id": row[0], "seq": row[1], "ts": row[2], "kind": row[3], "task_id": row[4], "body": json.loads(row[5])}


# -- each monitor's voice settings ---------------------------------------------------------------------

def voice_settings(db: Database, name: str) -> dict[str, bool]:
    row = db.run(lambda cur: cur.one("SELECT confirmations, completions FROM hq_routes_voice WHERE name = ?", (name,)))
    return {"confirmation": bool(row[0]), "completion": bool(row[1])} if row else dict.fromkeys(ANNOUNCED, False)


def set_voice(db: Database, name: str, settings: dict[str, bool], at: str, audit) -> dict[str, bool]:
    """Store a user's announcement settings with their audit row, in one transaction.
    `audit(cur, name, action, detail)` is hq.web.auth.Auth.audit_in."""
    def work(cur: Cursor) -> None:
        cur.execute("INSERT INTO hq_routes_voice (name, confirmations, completions, updated) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET confirmations = excluded.confirmations, "
                    "completions = excluded.completions, updated = excluded.updated",
                    (name, settings["confirmation"], settings["completion"], at))
        audit(cur, name, "voice_settings_changed", dict(settings))
    db.run(work)
    return dict(settings)


def all_voice_settings(db: Database) -> dict[str, dict[str, bool]]:
    rows = db.run(lambda cur: cur.all("SELECT name, confirmations, completions FROM hq_routes_voice"))
    return {n: {"confirmation": bool(c), "completion": bool(d)} for n, c, d in rows}
