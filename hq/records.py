"""Handover records at head office (SPEC §2.5, issue 16): search the handovers every terminal journaled,
open one (its report, timeline, alarms, dispositions, faces), export it, and verify its entries' chain.

A record is a `handover_ended` entry (it carries the report the terminal built with flows/report.py and
printed: head office shows that report, it does not build another); its entries are the device's, from
its `handover_started` to its end. The faces the door camera took arrive sealed to head office's records
key (protocol/snapshot.py): `store_snapshot` opens each once to check it is the photo its hash names, keeps
it sealed, and `snapshot` opens it again for one viewer. The functions take no roles: the page checks them.
"""
from __future__ import annotations

import base64
import binascii
import json
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from pathlib import Path
from typing import Callable

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from hq.db import Cursor, Database
from protocol.chain import GENESIS_HASH, chain_problem
from protocol.keys import create_x25519, load_x25519
from protocol.sealed import key_id
from protocol.snapshot import HASH, SnapshotError, open_snapshot

log = logging.getLogger("handover.hq.records")

SEARCH_LIMIT = 200          # rows shown
SCAN = 4000                 # handovers read for one search (newest first)
MAX_TERM = 64
DETAIL_LIMIT = 5000         # entries of one handover (a day's handover is some tens)
_SKIP = ("staff_session", "staff_session_ended", "staff_pending", "staff_pending_cleared", "screen_mode")


PRIVATE_FILE, PUBLIC_FILE = "records.pem", "records.pub.pem"


class RecordsError(ValueError):
    """A refused search or an unknown record; the message names what is wrong."""


@dataclass(frozen=True)
class Query:
    day: date | None = None
    site: str = ""
    truck: str = ""
    person: str = ""
    box: str = ""

    @classmethod
    def parse(cls, params) -> "Query":
        """From the page's query string; RecordsError names a bad field (nothing is searched)."""
        day = params.get("date") or ""
        try:
            parsed = date.fromisoformat(day) if day else None
        except ValueError:
            raise RecordsError("date: give YYYY-MM-DD") from None
        terms = {}
        for name in ("site", "truck", "person", "box"):
            value = str(params.get(name) or "").strip()
            if len(value) > MAX_TERM or any(ord(c) < 32 for c in value):
                raise RecordsError(f"{name}: at most {MAX_TERM} printable characters")
            terms[name] = value
        return cls(parsed, **terms)


def _fold(text: str) -> str:
    """What a person types and what is stored, compared without spaces, dots (沪A·C1234) or case."""
    return "".join(c for c in str(text) if c.isalnum()).upper()


# --- search -----------------------------------------------------------------------------------------

def people_names(db: Database, ids: list[str] | None = None) -> dict[str, str]:
    """person_id -> name, of the people head office imported (all, or those of `ids`)."""
    def work(cur: Cursor) -> list[tuple]:
        if ids is None:
            return cur.all("SELECT person_id, body FROM hq_people")
        if not ids:
            return []
        return cur.all(f"SELECT person_id, body FROM hq_people WHERE person_id IN ({','.join('?' * len(ids))})",
                       tuple(ids))
    return {pid: json.loads(body).get("name", "") for pid, body in db.run(work)}


def search(db: Database, q: Query, sites: dict[str, str] | None = None, limit: int = SEARCH_LIMIT) -> list[dict]:
    """Handovers matching every term given, newest first: site by code or name, truck by plate, person by id
    or name, box by number or tag, day by the handover's own (local) date. Without a day, the newest
    SCAN handovers are searched; with one, that day's (any day: the ended index is by time)."""
    sites = sites or {}

    def work(cur: Cursor) -> tuple[list, dict]:
        where, params = "kind = 'handover_ended'", []
        if q.day is not None:      # entry times are UTC; a site's day lies within a day either side of it
            where += " AND ts >= ? AND ts < ?"
            params += [(q.day - timedelta(days=1)).isoformat(), (q.day + timedelta(days=2)).isoformat()]
        rows = cur.all(f"SELECT device, seq, task_id, ts, body FROM entries WHERE {where} "
                       "ORDER BY ts DESC, device, seq DESC LIMIT ?", (*params, SCAN))
        tags: dict[tuple[str, str], list[str]] = {}
        if q.box:                  # box tags are in the task the handover started with
            pairs = sorted({(device, task_id) for device, _, task_id, _, _ in rows})
            for i in range(0, len(pairs), 200):
                chunk = pairs[i:i + 200]
                match = " OR ".join("(device = ? AND task_id = ?)" for _ in chunk)
                for device, task_id, body in cur.all(
                        # the IN term as the partial index hq_routes_handovers states it, so SQLite uses it
                        "SELECT device, task_id, body FROM entries WHERE kind IN ('handover_started', "
                        f"'handover_ended') AND kind = 'handover_started' AND ({match})",
                        tuple(v for pair in chunk for v in pair)):
                    task = json.loads(body).get("task") or {}
                    tags.setdefault((device, task_id), []).extend(
                        str(b.get("tag", "")) for b in task.get("boxes", []) if isinstance(b, dict))
        return rows, tags
    rows, tags = db.run(work)
    names = _names_like(db, q.person) if q.person else {}
    out, seen = [], set()
    for device, seq, task_id, ts, body in rows:
        if (device, task_id) in seen:
            continue            # a task handed over twice: its last report
        seen.add((device, task_id))
        report = json.loads(body).get("report") or {}
        row = _summary(device, seq, task_id, ts, report, sites)
        if _matches(q, row, report, tags.get((device, task_id), []), names):
            out.append(row)
            if len(out) >= limit:
                break
    return out


def _names_like(db: Database, term: str) -> dict[str, str]:
    """Names of the people whose record holds `term` (a LIKE narrows it in the database: bodies carry photos)."""
    escaped = term.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    rows = db.run(lambda cur: cur.all("SELECT person_id, body FROM hq_people WHERE lower(body) LIKE ? ESCAPE '\\'",
                                      (f"%{escaped}%",)))
    return {pid: json.loads(body).get("name", "") for pid, body in rows}


def _summary(device: str, seq: int, task_id: str, ts: str, report: dict, sites: dict[str, str]) -> dict:
    site_id = report.get("site_id") or ""
    return {"device": device, "handover": task_id, "seq": seq, "ts": ts, "site_id": site_id,
            "site": sites.get(site_id, site_id), "plate": report.get("plate") or "", "kind": report.get("kind"),
            "arrived_at": report.get("arrived_at"), "ended_at": report.get("ended_at"),
            "outcome": report.get("outcome"), "boxes_planned": len(report.get("boxes_planned") or ()),
            "boxes_counted": len(report.get("boxes_counted") or ()),
            "exceptions": len(report.get("exceptions") or ())}


def _local_day(iso: str | None) -> date | None:
    try:
        return datetime.fromisoformat(iso).date() if iso else None
    except ValueError:
        return None


def _matches(q: Query, row: dict, report: dict, tags: list[str], names: dict[str, str]) -> bool:
    if q.day is not None and _local_day(row["arrived_at"] or row["ended_at"] or row["ts"]) != q.day:
        return False
    if q.site and _fold(q.site) not in (_fold(row["site_id"]), _fold(row["site"])):
        return False
    if q.truck and _fold(q.truck) not in _fold(row["plate"]):
        return False
    if q.person:
        want = _fold(q.person)
        ids = [str(p.get("person_id", "")) for p in report.get("people") or () if isinstance(p, dict)]
        if not any(want == _fold(i) or (names.get(i) and want in _fold(names[i])) for i in ids):
            return False
    if q.box:
        boxes = [*(report.get("boxes_planned") or ()), *(report.get("boxes_counted") or ()), *tags]
        if _fold(q.box) not in (_fold(b) for b in boxes):
            return False
    return True


# --- one handover -----------------------------------------------------------------------------------

def _span(cur: Cursor, device: str, task_id: str) -> tuple[int, int] | None:
    """(first seq, last seq) of the handover's entries: from its (last) start to its (last) end."""
    # by task alone (the partial index hq_routes_handovers; a device's primary key would scan its journal),
    # the device picked here: a task has a start and an end at a few sites
    rows = [(kind, seq) for dev, kind, seq in cur.all(
        "SELECT device, kind, seq FROM entries WHERE task_id = ? AND kind IN ('handover_started', 'handover_ended') "
        "ORDER BY seq", (task_id,)) if dev == device]
    ends = [seq for kind, seq in rows if kind == "handover_ended"]
    if not ends:
        return None
    starts = [seq for kind, seq in rows if kind == "handover_started" and seq < ends[-1]]
    return (starts[-1] if starts else ends[-1]), ends[-1]


def entries_of(db: Database, device: str, task_id: str) -> list[dict]:
    """Every entry of the device from the handover's start to its end (the chain is checked over these);
    RecordsError when there is no such finished handover."""
    def work(cur: Cursor) -> list[tuple] | None:
        span = _span(cur, device, task_id)
        if span is None:
            return None
        if span[1] - span[0] >= DETAIL_LIMIT:
            raise RecordsError(f"handover {task_id!s:.64} of {device!s:.64} spans {span[1] - span[0] + 1} entries, "
                               f"more than the {DETAIL_LIMIT} a record shows")
        # the entry before the start too: the first one's link is checked against it
        return cur.all("SELECT seq, id, ts, kind, task_id, body, prev_hash, hash FROM entries WHERE device = ? "
                       "AND seq BETWEEN ? AND ? ORDER BY seq", (device, span[0] - 1, span[1]))
    rows = db.run(work)
    if rows is None:
        raise RecordsError(f"no finished handover {task_id!s:.64} of {device!s:.64}")
    return [{"seq": s, "id": i, "ts": t, "kind": k, "task_id": task, "body": json.loads(b), "prev_hash": p,
             "hash": h} for s, i, t, k, task, b, p, h in rows]


def verify(entries: list[dict]) -> dict:
    """The handover's entries re-checked by the device's chain (protocol/chain.py): each hash recomputed
    from the entry's content and each linked to the one before. {"ok": True, "from", "to"} or
    {"ok": False, "seq": N, "problem": ...} at the first entry that does not hold."""
    if not entries:
        return {"ok": False, "seq": None, "problem": "no entries"}
    prev = GENESIS_HASH if entries[0]["seq"] == 1 else None
    for i, entry in enumerate(entries):
        if i and entry["seq"] != entries[i - 1]["seq"] + 1:
            return {"ok": False, "seq": entries[i - 1]["seq"] + 1, "problem": "an entry is missing"}
        problem = chain_problem(entry, prev if prev is not None else entry["prev_hash"])
        if problem:
            return {"ok": False, "seq": entry["seq"], "problem": problem}
        prev = entry["hash"]
    return {"ok": True, "from": entries[0]["seq"], "to": entries[-1]["seq"]}


def _faces(body: dict) -> list[tuple[str | None, str]]:
    """(person_id, snapshot hash) an entry names: a door attempt's face."""
    event = body.get("event") if isinstance(body.get("event"), dict) else body
    shot = event.get("snapshot") if isinstance(event, dict) else None
    return [(event.get("person_id"), shot)] if isinstance(shot, str) and HASH.match(shot) else []


def _what(body: dict) -> dict:
    """The few facts of an entry a timeline line shows (ids and codes; the page words them)."""
    event = body.get("event") if isinstance(body.get("event"), dict) else {}
    out = {}
    for d in body.get("decisions") or ():     # an attempt's outcome as the handover judged it
        if isinstance(d, dict) and d.get("type") == "AttemptRecorded" and isinstance(d.get("outcome"), str):
            out["outcome"] = d["outcome"]
    for key in ("person_id", "station", "outcome", "alarm", "code", "resolution", "uid", "plate", "manual"):
        for source in (body, event, body.get("detail") if isinstance(body.get("detail"), dict) else {}):
            if key in source and isinstance(source[key], (str, int, bool)) and key not in out:
                out[key] = source[key]
    box = event.get("box") if isinstance(event.get("box"), dict) else None
    if box:
        out["box"] = box.get("box_id")
    return out


def _zone_of(report: dict):
    """The site's UTC offset, as the terminal wrote its report's times (entries' own times are UTC)."""
    for key in ("arrived_at", "ended_at"):
        try:
            zone = datetime.fromisoformat(report.get(key) or "").tzinfo
        except ValueError:
            continue
        if zone is not None:
            return zone
    return timezone.utc


def _in_zone(ts: str, zone) -> str:
    try:
        return datetime.fromisoformat(ts).astimezone(zone).isoformat(timespec="seconds")
    except ValueError:
        return ts


def detail(db: Database, device: str, task_id: str, role: str, sites: dict[str, str] | None = None,
           entries: list[dict] | None = None) -> dict:
    """One handover for the page: its report as the terminal journaled it, its timeline, alarms and
    dispositions, the faces at the door beside the enrolled photos, and its chain checked. A silent (duress)
    alarm, and the attempt that raised it, show as such to monitors only."""
    entries = entries if entries is not None else entries_of(db, device, task_id)
    chain = verify(entries)
    own = [e for e in entries if e["task_id"] == task_id]
    end = next(e for e in reversed(own) if e["kind"] == "handover_ended")
    report = dict(end["body"].get("report") or {})
    silent_seen = role == "monitor"
    if not silent_seen:
        report["exceptions"] = [x for x in report.get("exceptions") or () if not (isinstance(x, dict) and x.get("silent"))]
    timeline, alarms, faces = [], [], []
    zone = _zone_of(report)
    have = _snapshots_held(db, device, [h for e in own for _, h in _faces(e["body"])])
    for e in own:
        if e["kind"] in _SKIP:
            continue
        body = e["body"]
        if e["kind"] == "alarm" and body.get("silent") and not silent_seen:
            continue
        what = _what(body)
        local = _in_zone(e["ts"], zone)      # shown in the site's time, as the report is
        line = {"seq": e["seq"], "ts": e["ts"], "local": local, "kind": e["kind"], "what": what}
        timeline.append(line)
        if e["kind"] == "alarm":
            alarms.append({"seq": e["seq"], "ts": e["ts"], "local": local, "alarm": body.get("alarm"),
                           "silent": bool(body.get("silent"))})
        for person, digest in _faces(body):
            faces.append({"seq": e["seq"], "ts": e["ts"], "local": local, "person_id": person,
                          "outcome": what.get("outcome"),
                          "hash": digest, "held": digest in have})
    ids = sorted({str(p.get("person_id")) for p in report.get("people") or () if isinstance(p, dict)}
                 | {f["person_id"] for f in faces if f["person_id"]})
    names = people_names(db, ids)
    site_id = report.get("site_id") or ""
    return {"device": device, "handover": task_id, "site": (sites or {}).get(site_id, site_id), "report": report,
            "timeline": timeline, "alarms": alarms, "dispositions": report.get("dispositions") or [],
            "faces": faces, "people": {pid: {"name": names.get(pid, ""), "photo": pid in names} for pid in ids},
            "chain": chain}


def _reveals_silent(body: dict) -> bool:
    """An entry that would tell a silent (duress) alarm: the alarm itself, or the attempt that raised it."""
    event = body.get("event")
    return bool(body.get("silent") or (isinstance(event, dict) and event.get("duress"))
                or any(isinstance(d, dict) and d.get("silent") for d in body.get("decisions") or ()))


def export(db: Database, device: str, task_id: str, role: str, by: str, render: Callable[[dict], list[str]],
           sites: dict[str, str] | None = None) -> dict:
    """What a reviewer keeps: the handover's entries as the terminal chained them (with their hashes, so the
    file can be re-checked by anyone with protocol/chain.py), the report and its text (`render(detail)`), and
    the check's result. For anyone but a monitor an entry that would tell a silent alarm keeps its seq and
    hashes, so the entries after it still link, but not its content (`"withheld"`)."""
    entries = entries_of(db, device, task_id)
    shown = detail(db, device, task_id, role, sites, entries)
    if role != "monitor":
        entries = [{**e, "body": None, "withheld": "silent_alarm"} if _reveals_silent(e["body"]) else e
                   for e in entries]
    return {"device": device, "handover": task_id, "exported_by": by,
            "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "chain": shown["chain"],
            "report": shown["report"], "report_text": render(shown), "entries": entries}


# --- faces ------------------------------------------------------------------------------------------

def _snapshots_held(db: Database, device: str, hashes: list[str]) -> set[str]:
    if not hashes:
        return set()
    marks = ",".join("?" * len(hashes))
    return {h for (h,) in db.run(lambda cur: cur.all(
        f"SELECT hash FROM hq_records_snapshots WHERE device = ? AND hash IN ({marks})", (device, *hashes)))}


def store_snapshot(db: Database, key: X25519PrivateKey, device: str, payload: dict) -> bool:
    """Keep one sealed face (a snapshot uplink, schema-checked) after checking it opens to the photo its hash
    names; True if head office now holds it (again: idempotent). A blob that does not open or does not match
    is refused with a log line naming the check, and nothing is stored (SnapshotError)."""
    open_snapshot(key, device, payload["hash"], payload["sealed"])      # checked, then dropped
    db.run(lambda cur: cur.execute(
        "INSERT INTO hq_records_snapshots (device, hash, key_id, sealed, received) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (device, hash) DO NOTHING",
        (device, payload["hash"], payload["key"], payload["sealed"],
         datetime.now(timezone.utc).isoformat(timespec="milliseconds"))))
    return True


def snapshot(db: Database, key: X25519PrivateKey, device: str, digest: str) -> bytes:
    """The face, opened for one viewer (the caller audits who); RecordsError if head office does not hold it."""
    if not HASH.match(digest or ""):
        raise RecordsError("a snapshot is named by its 64-digit sha256")
    row = db.run(lambda cur: cur.one("SELECT sealed FROM hq_records_snapshots WHERE device = ? AND hash = ?",
                                     (device, digest)))
    if row is None:
        raise RecordsError(f"head office holds no snapshot {digest[:12]} of {device!s:.64}")
    try:
        return open_snapshot(key, device, digest, row[0])
    except SnapshotError as exc:
        log.error("stored snapshot refused: %s", exc)
        raise RecordsError(str(exc)) from None


def enrolled_photo(db: Database, person_id: str) -> bytes | None:
    """The photo head office imported for a person (hq_people), or None."""
    row = db.run(lambda cur: cur.one("SELECT body FROM hq_people WHERE person_id = ?", (person_id,)))
    if row is None:
        return None
    data = json.loads(row[0]).get("photo_data")
    if not isinstance(data, str):
        return None
    try:
        return base64.b64decode(data, validate=True)
    except binascii.Error:
        return None


# --- the records key: faces are sealed to its public half; `serve --records-key` opens them -------------

def create_key(keys_dir: Path) -> str:
    """Head office's records key pair (a key of its own: who may read complaints need not see faces); its id.
    The public half goes on every terminal as keys/hq_records.pem."""
    return key_id(create_x25519(keys_dir, PRIVATE_FILE, PUBLIC_FILE, "records key", "face"))


def load_key(path: Path) -> X25519PrivateKey:
    return load_x25519(path, "records key", "handover-hq records key create")


def register(subparsers) -> None:
    """`handover-hq records key create --keys DIR`."""
    r = subparsers.add_parser("records", help="handover records at head office").add_subparsers(
        dest="records_command", required=True)
    key = r.add_parser("key", help="head office's records key pair (face snapshots)").add_subparsers(
        dest="key_command", required=True)
    create = key.add_parser("create", help=f"make the key pair; give {PRIVATE_FILE} to `serve --records-key` and "
                                           f"install {PUBLIC_FILE} on terminals as keys/hq_records.pem")
    create.add_argument("--keys", type=Path, required=True)
    create.set_defaults(func=_cmd_key_create)


def _cmd_key_create(args) -> int:
    ident = create_key(args.keys)
    print(f"created records key {ident} in {args.keys}: `serve --records-key {args.keys / PRIVATE_FILE}`; "
          f"install {args.keys / PUBLIC_FILE} on terminals as keys/hq_records.pem")
    return 0
