"""The day's schedule (排班) at head office: the escort company's dispatch in, one version per site and
day, out to each site's terminal (SPEC §2.1, §2.5; docs/schedule.md).

A dispatch file (CSV, UTF-8, or XLSX: the first sheet) has a header row and one row per stop:

  date        2026-11-30                     the day of the run
  route       R07                            the run's id; its rows are its stops
  stop        1                              the stop's place in the route (1, 2, ...)
  site        BR-001                         the site of this stop (known at head office)
  kind        delivery | collection | allocation | atm_replenishment
  window_start, window_end   09:30           this stop's window, local time (--tz), end after start
  plate       沪A·C1234                       the truck; beacon: its BLE identity
  beacon      ibeacon:<uuid>:<major>:<minor> | eddystone:<20 hex>:<12 hex>
  escorts     E01;E02                        工号, at least two; the first leads
  boxes       XB1-01:04A1B2C3D4E5F6;...      box number:tag UID (hex), handed over at this stop
  confirmers  O01;O02                        optional: the officers who may confirm at this stop

A route's rows must agree on kind, truck and escorts. Boxes of a delivery (or replenishment, allocation)
go to the row's site from the route's first stop (the vault); boxes of a collection leave the row's site
for the route's last stop (the vault).

The whole file is checked before anything is stored: every bad row is named with its row number as the
spreadsheet shows it (the header is row 1), its column and why, and nothing is applied if any row is bad.
Each site's terminal gets the tasks stopping there, each with this stop's window; a task's version goes up
only when its content changed, and the site's version for the day only when one of its tasks did — so a
late change (a truck or escort swapped) publishes a new version to the affected sites and no others.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Iterable, Iterator
from zoneinfo import ZoneInfo

from hq.db import Cursor, Database
from protocol import messages

MAX_FILE_SIZE = 20 * 1024 * 1024
MAX_ROWS = 20_000
MAX_PROBLEMS = 200          # named in full; beyond, counted
DEFAULT_TZ = "Asia/Shanghai"

REQUIRED = ("date", "route", "stop", "site", "kind", "window_start", "window_end", "plate", "beacon", "escorts")
OPTIONAL = ("boxes", "confirmers")
KINDS = tuple(messages.validator("tasks").schema["$defs"]["task"]["properties"]["kind"]["enum"])
# Boxes of these kinds go to the row's site from the route's first stop; a collection's the other way.
_COLLECTED = ("collection",)

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,31}")
_HHMM = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)(:00)?")
_IBEACON = re.compile(r"ibeacon:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}:(\d{1,5}):(\d{1,5})")
_EDDYSTONE = re.compile(r"eddystone:[0-9a-f]{20}:[0-9a-f]{12}")
_TAG = re.compile(r"(?:[0-9A-F]{2}){4,10}")           # 4- to 10-byte UIDs
# list separators: ASCII and the full-width comma, semicolon and enumeration comma people type in Chinese
_SEPARATORS = re.compile("[;,\\s\uff0c\uff1b\u3001]+")


@dataclass(frozen=True)
class RowProblem:
    row: int            # as the spreadsheet shows it: the header is row 1; 0 for the file as a whole
    column: str
    why: str

    def __str__(self) -> str:
        return f"row {self.row}, {self.column}: {self.why}" if self.row else f"{self.column}: {self.why}"


class ScheduleRejected(ValueError):
    """The dispatch was refused whole: nothing was stored. `problems` names every bad row."""

    def __init__(self, problems: list[RowProblem], more: int = 0):
        self.problems = problems
        extra = f"\n... and {more} more" if more else ""
        super().__init__(f"dispatch refused, nothing imported ({len(problems) + more} problem(s)):\n"
                         + "\n".join(map(str, problems)) + extra)


@dataclass(frozen=True)
class Stop:
    row: int
    day: date
    route: str
    stop: int
    site: str
    kind: str
    start: datetime
    end: datetime
    plate: str
    beacon: str
    escorts: tuple[str, ...]
    boxes: tuple[tuple[str, str], ...]          # (box number, tag)
    confirmers: tuple[str, ...]


@dataclass
class ImportResult:
    rows: int
    tasks: int
    days: list[str]
    changed: dict[str, dict[str, int]] = field(default_factory=dict)       # day -> site -> new version
    unchanged: dict[str, list[str]] = field(default_factory=dict)          # day -> sites as they were
    dropped: dict[str, list[str]] = field(default_factory=dict)            # "day site" -> task ids no longer there

    def to_dict(self) -> dict:
        return {"rows": self.rows, "tasks": self.tasks, "days": self.days, "changed": self.changed,
                "unchanged": self.unchanged, "dropped": self.dropped}


# --- reading the file --------------------------------------------------------------------------

def read_rows(data: bytes, filename: str) -> tuple[list[str], list[tuple[int, list]]]:
    """The header (lower-cased names) and the data rows with their row numbers, from CSV or XLSX bytes.
    ScheduleRejected names what cannot be read."""
    if len(data) > MAX_FILE_SIZE:
        raise ScheduleRejected([RowProblem(0, "file", f"{len(data)} bytes; the limit is {MAX_FILE_SIZE}")])
    name = filename.lower()
    if name.endswith((".xlsx", ".xlsm")):
        rows = _xlsx_rows(data)
    elif name.endswith((".csv", ".txt")):
        rows = _csv_rows(data)
    else:
        raise ScheduleRejected([RowProblem(0, "file", f"{filename!r} is neither .csv nor .xlsx")])
    numbered = [(n, r) for n, r in rows if not all(_blank(v) for v in r)]     # blank lines are skipped
    if not numbered:
        raise ScheduleRejected([RowProblem(0, "file", "no header row: the file is empty")])
    (_, header), body = numbered[0], numbered[1:]
    names = [str(v).strip().lower() if v is not None else "" for v in header]
    missing = [c for c in REQUIRED if c not in names]
    dup = sorted({c for c in names if c and names.count(c) > 1})
    problems = [RowProblem(1, c, "column missing from the header") for c in missing]
    problems += [RowProblem(1, c, "column given twice") for c in dup]
    if problems:
        raise ScheduleRejected(problems)
    if len(body) > MAX_ROWS:
        raise ScheduleRejected([RowProblem(0, "file", f"{len(body)} rows; the limit is {MAX_ROWS}")])
    return names, body


def _blank(v) -> bool:
    return v is None or (isinstance(v, str) and not v.strip())


def _csv_rows(data: bytes) -> list[tuple[int, list]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ScheduleRejected([RowProblem(0, "file", f"not UTF-8 text (byte {exc.start}); save the CSV as UTF-8")]) \
            from None
    if "\x00" in text:
        raise ScheduleRejected([RowProblem(0, "file", "contains NUL bytes: not a CSV text file")])
    # Rows are numbered as a spreadsheet shows them (header = 1), not by text line: a cell holding a line
    # break is still one row to the dispatcher who opens the file in Excel/WPS.
    reader = csv.reader(io.StringIO(text, newline=""))
    out = []
    try:
        for number, fields in enumerate(reader, 1):
            out.append((number, fields))
    except csv.Error as exc:
        raise ScheduleRejected([RowProblem(len(out) + 1, "file", f"not valid CSV: {exc}")]) from None
    return out


def _xlsx_rows(data: bytes) -> list[tuple[int, list]]:
    # openpyxl reports a damaged workbook with many exception types (zip, XML, its own, ValueError...):
    # whichever it is, the file is refused by name and nothing is stored.
    # Imported here, not at the top: every `handover-hq` command (a restarting `serve` worker above all)
    # would otherwise load the XLSX reader it never uses, ~0.5 s on a busy machine.
    import openpyxl
    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:
        raise ScheduleRejected([RowProblem(0, "file", f"not a readable XLSX workbook ({type(exc).__name__})")]) \
            from None
    try:
        if not book.worksheets:
            raise ScheduleRejected([RowProblem(0, "file", "the workbook has no sheet")])
        out = []
        for n, values in enumerate(book.worksheets[0].iter_rows(values_only=True), 1):
            if n > MAX_ROWS + 1 + 1000:       # blank rows included: stop reading a sheet of a million rows
                raise ScheduleRejected([RowProblem(0, "file", f"more than {MAX_ROWS} rows")])
            out.append((n, list(values)))
        return out
    except ScheduleRejected:
        raise
    except Exception as exc:
        raise ScheduleRejected([RowProblem(0, "file", f"not a readable XLSX workbook ({type(exc).__name__})")]) \
            from None
    finally:
        book.close()


# --- checking rows ------------------------------------------------------------------------------

class _Row:
    """One row's cells by column name; each reader notes a problem and returns None when the cell is bad."""

    def __init__(self, n: int, names: list[str], values: list, problems: list[RowProblem]):
        self.n, self.problems = n, problems
        self.cells = {name: values[i] if i < len(values) else None for i, name in enumerate(names) if name}
        self.bad = False

    def problem(self, column: str, why: str) -> None:
        self.bad = True
        self.problems.append(RowProblem(self.n, column, why))

    def text(self, column: str, required: bool = True) -> str | None:
        v = self.cells.get(column)
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if isinstance(v, (int, str)) and not isinstance(v, bool):
            s = str(v).strip()
            if s:
                return s
        elif v is not None:
            self.problem(column, f"expected text, got a {type(v).__name__}")
            return None
        if required:
            self.problem(column, "empty")
        return None

    def ident(self, column: str) -> str | None:
        s = self.text(column)
        if s is not None and not _ID.fullmatch(s):
            self.problem(column, f"{s[:40]!r} is not an id (letters, digits, - _ . ; up to 32)")
            return None
        return s

    def day(self) -> date | None:
        v = self.cells.get("date")
        if isinstance(v, datetime):
            if v.time() != time(0):
                self.problem("date", "a date, not a date and time, is expected")
                return None
            return v.date()
        if isinstance(v, date):
            return v
        s = self.text("date")
        if s is None:
            return None
        try:
            if len(s) != 10:            # fromisoformat also takes 20261130 and week dates: not what people type
                raise ValueError
            return date.fromisoformat(s)
        except ValueError:
            self.problem("date", f"{s[:40]!r} is not a date like 2026-11-30")
            return None

    def clock(self, column: str) -> time | None:
        v = self.cells.get(column)
        if isinstance(v, datetime):
            v = v.time()
        if isinstance(v, time):
            if v.second or v.microsecond:
                self.problem(column, "whole minutes only")
                return None
            return v.replace(tzinfo=None)
        s = self.text(column)
        if s is None:
            return None
        m = _HHMM.fullmatch(s)
        if not m:
            self.problem(column, f"{s[:40]!r} is not a time like 09:30")
            return None
        return time(int(m.group(1)), int(m.group(2)))

    def ids(self, column: str, required: bool) -> tuple[str, ...] | None:
        s = self.text(column, required)
        if s is None:
            return None if required else ()
        out = tuple(x for x in _SEPARATORS.split(s) if x)
        bad = [x for x in out if not _ID.fullmatch(x)]
        if bad:
            self.problem(column, f"{bad[0][:40]!r} is not an id")
            return None
        if len(set(out)) != len(out):
            self.problem(column, "an id is given twice")
            return None
        return out


def _boxes(row: _Row) -> tuple[tuple[str, str], ...] | None:
    s = row.text("boxes", required=False)
    if s is None:
        return ()
    out = []
    for item in (x for x in _SEPARATORS.split(s) if x):
        number, sep, tag = item.partition(":")
        if not sep or not _ID.fullmatch(number):
            row.problem("boxes", f"{item[:40]!r} is not BOX:TAG (a box number, a colon, the tag's hex UID)")
            return None
        tag = tag.upper()
        if not _TAG.fullmatch(tag):
            row.problem("boxes", f"box {number}: tag {tag[:40]!r} is not a 4- to 10-byte hex UID")
            return None
        out.append((number, tag))
    return tuple(out)


def _beacon(row: _Row) -> str | None:
    s = row.text("beacon")
    if s is None:
        return None
    s = s.lower()
    m = _IBEACON.fullmatch(s)
    if m and int(m.group(1)) <= 0xFFFF and int(m.group(2)) <= 0xFFFF:
        return s
    if _EDDYSTONE.fullmatch(s):
        return s
    row.problem("beacon", f"{s[:60]!r} is not ibeacon:<uuid>:<major>:<minor> or eddystone:<namespace>:<instance>")
    return None


def parse_dispatch(data: bytes, filename: str, *, sites: Iterable[str], people: Iterable[str] | None = None,
                   tz: str = DEFAULT_TZ) -> list[Stop]:
    """Every row checked, then the rows checked against each other; ScheduleRejected names every bad row.
    `sites`: the site ids head office knows; `people`: the person ids it knows (None: personnel not
    imported yet, escorts are not checked)."""
    names, body = read_rows(data, filename)
    zone = ZoneInfo(tz)
    known_sites, known_people = set(sites), set(people) if people is not None else None
    problems: list[RowProblem] = []
    stops: list[Stop] = []
    boxed: list[tuple[int, date, tuple[tuple[str, str], ...]]] = []     # also from rows bad elsewhere
    for n, values in body:
        row = _Row(n, names, values, problems)
        day, route, site = row.day(), row.ident("route"), row.ident("site")
        number = row.text("stop")
        if number is not None and not (number.isascii() and number.isdigit() and 1 <= int(number) <= 999):
            row.problem("stop", f"{number[:20]!r} is not a stop number (1 to 999)")
        kind = row.text("kind")
        if kind is not None and kind not in KINDS:
            row.problem("kind", f"{kind[:40]!r} is not one of {', '.join(KINDS)}")
        start, end = row.clock("window_start"), row.clock("window_end")
        if start is not None and end is not None and end <= start:
            row.problem("window_end", f"{end:%H:%M} is not after window_start {start:%H:%M}")
        plate = row.text("plate")
        if plate is not None and len(plate) > 16:
            row.problem("plate", "longer than 16 characters")
        beacon = _beacon(row)
        escorts = row.ids("escorts", required=True)
        if escorts is not None and len(escorts) < 2:
            row.problem("escorts", f"{len(escorts)} escort; at least two are assigned to a truck")
        confirmers = row.ids("confirmers", required=False)
        boxes = _boxes(row)
        if site is not None and site not in known_sites:
            row.problem("site", f"unknown site {site!r}: not among the {len(known_sites)} sites head office knows")
        if known_people is not None:
            for column, who in (("escorts", escorts), ("confirmers", confirmers)):
                unknown = [p for p in who or () if p not in known_people]
                if unknown:
                    row.problem(column, f"{', '.join(unknown)} not in the personnel head office imported")
        if day is not None and boxes:
            boxed.append((n, day, boxes))
        if not row.bad:
            stops.append(Stop(n, day, route, int(number), site, kind, datetime.combine(day, start, zone),
                              datetime.combine(day, end, zone), plate, beacon, escorts, boxes, confirmers or ()))
    problems += _cross_check(stops) + _boxes_once(boxed)
    if problems:
        problems.sort(key=lambda p: (p.row, p.column))
        raise ScheduleRejected(problems[:MAX_PROBLEMS], max(0, len(problems) - MAX_PROBLEMS))
    return stops


def _cross_check(stops: list[Stop]) -> list[RowProblem]:
    """What only the rows together show: a route whose rows disagree, a stop or site given twice in a route."""
    problems = []
    first: dict[tuple[date, str], Stop] = {}
    seen_stop: dict[tuple[date, str, int], int] = {}
    seen_site: dict[tuple[date, str, str], int] = {}
    for s in stops:
        lead = first.setdefault((s.day, s.route), s)
        for column, mine, theirs in (("kind", s.kind, lead.kind), ("plate", s.plate, lead.plate),
                                     ("beacon", s.beacon, lead.beacon), ("escorts", s.escorts, lead.escorts)):
            if mine != theirs:
                problems.append(RowProblem(s.row, column, f"differs from row {lead.row} of route {s.route}"))
        if (other := seen_stop.setdefault((s.day, s.route, s.stop), s.row)) != s.row:
            problems.append(RowProblem(s.row, "stop", f"stop {s.stop} of route {s.route} is also on row {other}"))
        if (other := seen_site.setdefault((s.day, s.route, s.site), s.row)) != s.row:
            problems.append(RowProblem(s.row, "site", f"route {s.route} stops at {s.site} again (row {other})"))
    return problems


def _boxes_once(boxed: list[tuple[int, date, tuple[tuple[str, str], ...]]]) -> list[RowProblem]:
    """A box tag or box number twice in a day (on two rows, or twice on one)."""
    problems = []
    tags: dict[tuple[date, str], int] = {}
    numbers: dict[tuple[date, str], int] = {}
    for n, day, boxes in boxed:
        for i, (number, tag) in enumerate(boxes):
            if (other := tags.setdefault((day, tag), n)) != n or any(t == tag for _, t in boxes[:i]):
                problems.append(RowProblem(n, "boxes", f"box tag {tag} is also on row {other} the same day"))
            if (other := numbers.setdefault((day, number), n)) != n or any(b == number for b, _ in boxes[:i]):
                problems.append(RowProblem(n, "boxes", f"box {number} is also on row {other} the same day"))
    return problems


# --- from stops to each site's tasks ---------------------------------------------------------------

def task_id(day: date, route: str) -> str:
    return f"{route}-{day:%Y%m%d}"


def site_tasks(stops: list[Stop]) -> dict[tuple[str, str], dict[str, dict]]:
    """{(day, site): {task_id: task body without its version}}: each site's copy of the runs stopping
    there, with this site's window and confirmers."""
    routes: dict[tuple[date, str], list[Stop]] = {}
    for s in stops:
        routes.setdefault((s.day, s.route), []).append(s)
    out: dict[tuple[str, str], dict[str, dict]] = {}
    for (day, route), rows in routes.items():
        rows.sort(key=lambda s: s.stop)
        path = [s.site for s in rows]
        lead = rows[0]
        boxes = []
        for s in rows:
            for number, tag in s.boxes:
                if lead.kind in _COLLECTED:
                    boxes.append({"box_id": number, "tag": tag, "destination": path[-1], "origin": s.site})
                else:
                    boxes.append({"box_id": number, "tag": tag, "destination": s.site, "origin": path[0]})
        common = {"task_id": task_id(day, route), "kind": lead.kind, "route": path,
                  "vehicle": {"vehicle_id": lead.plate, "plate": lead.plate, "beacon": lead.beacon},
                  "escorts": list(lead.escorts), "boxes": boxes, "min_escorts": 2}
        for s in rows:
            out.setdefault((day.isoformat(), s.site), {})[common["task_id"]] = {
                **common, "window_start": s.start.isoformat(), "window_end": s.end.isoformat(),
                "confirmers": list(s.confirmers)}
    return out


def _digest(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


# --- storing ----------------------------------------------------------------------------------------

def known_sites(cur: Cursor) -> set[str]:
    """Sites registered with `schedule sites`, and those the terminals reported in their status."""
    rows = cur.all("SELECT site_id FROM schedule_sites") + cur.all(
        "SELECT site_id FROM devices WHERE site_id IS NOT NULL")
    return {r[0] for r in rows}


def known_people(cur: Cursor) -> set[str] | None:
    rows = cur.all("SELECT person_id FROM hq_people")
    return {r[0] for r in rows} if rows else None


def import_schedule(db: Database, data: bytes, filename: str, *, tz: str = DEFAULT_TZ,
                    now: datetime | None = None) -> ImportResult:
    """Check a dispatch file whole and store it: ScheduleRejected (a ValueError naming every bad row)
    and nothing changed, or the new versions per site and day. For the CLI and the monitoring page."""
    stamp = (now or datetime.now().astimezone()).isoformat(timespec="seconds")

    def work(cur: Cursor) -> ImportResult:
        stops = parse_dispatch(data, filename, sites=known_sites(cur), people=known_people(cur), tz=tz)
        per_site = site_tasks(stops)
        days = sorted({d for d, _ in per_site})
        result = ImportResult(len(stops), len({(s.day, s.route) for s in stops}), days)
        for day in days:
            # a site that had tasks this day and has none in the new file: its tasks are dropped (reported)
            old_sites = {r[0] for r in cur.all("SELECT DISTINCT site_id FROM schedule_tasks WHERE day = ?", (day,))}
            for site in sorted(old_sites | {s for d, s in per_site if d == day}):
                version = _store_site(cur, day, site, per_site.get((day, site), {}), stamp, result)
                if version:
                    result.changed.setdefault(day, {})[site] = version
                else:
                    result.unchanged.setdefault(day, []).append(site)
        return result
    return db.run(work)


def _store_site(cur: Cursor, day: str, site: str, tasks: dict[str, dict], stamp: str, result: ImportResult) -> int:
    """Store one site's tasks of a day; its new version, or 0 when nothing changed there."""
    have = {tid: (version, digest) for tid, version, digest in cur.all(
        "SELECT task_id, version, digest FROM schedule_tasks WHERE day = ? AND site_id = ?", (day, site))}
    changed = False
    for tid, body in tasks.items():
        digest = _digest(body)
        old = have.get(tid)
        if old and old[1] == digest:
            continue
        changed = True
        version = old[0] + 1 if old else 1
        cur.execute("INSERT INTO schedule_tasks (day, site_id, task_id, version, digest, body) VALUES (?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (day, site_id, task_id) DO UPDATE SET version = excluded.version, "
                    "digest = excluded.digest, body = excluded.body",
                    (day, site, tid, version, digest, json.dumps({**body, "version": version}, ensure_ascii=False)))
    gone = sorted(set(have) - set(tasks))
    if gone:
        changed = True
        result.dropped[f"{day} {site}"] = gone
        cur.executemany("DELETE FROM schedule_tasks WHERE day = ? AND site_id = ? AND task_id = ?",
                        [(day, site, tid) for tid in gone])
    if not changed:
        return 0
    last = cur.one("SELECT max(version) FROM schedule_versions WHERE day = ? AND site_id = ?", (day, site))
    version = (last[0] or 0) + 1
    cur.execute("INSERT INTO schedule_versions (day, site_id, version, imported, tasks) VALUES (?, ?, ?, ?, ?)",
                (day, site, version, stamp, json.dumps(sorted(tasks))))
    return version


def import_sites(db: Database, data: bytes) -> int:
    """Register sites from a CSV `site_id,name,type` (type: branch or vault); how many."""
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    if not rows or [c.strip().lower() for c in rows[0][:3]] != ["site_id", "name", "type"]:
        raise ValueError("sites file: the header must be site_id,name,type")
    out = []
    for n, r in enumerate(rows[1:], 2):
        if not any(c.strip() for c in r):
            continue
        if len(r) < 3 or not _ID.fullmatch(r[0].strip()) or not r[1].strip() or len(r[1]) > 64 \
                or r[2].strip() not in ("branch", "vault"):
            raise ValueError(f"sites file row {n}: expected an id, a name of 1 to 64 characters and branch|vault")
        out.append((r[0].strip(), r[1].strip(), r[2].strip()))
    db.run(lambda cur: cur.executemany(
        "INSERT INTO schedule_sites (site_id, name, type) VALUES (?, ?, ?) ON CONFLICT (site_id) DO UPDATE SET "
        "name = excluded.name, type = excluded.type", out))
    return len(out)


def tasks_payload(db: Database, day: str, site: str) -> tuple[int, dict]:
    """(version, the `tasks` downlink payload without v/msg_id) of a site's day as stored now."""
    def work(cur: Cursor):
        last = cur.one("SELECT max(version) FROM schedule_versions WHERE day = ? AND site_id = ?", (day, site))
        bodies = [json.loads(r[0]) for r in cur.all(
            "SELECT body FROM schedule_tasks WHERE day = ? AND site_id = ? ORDER BY task_id", (day, site))]
        sites = {s for b in bodies for s in b["route"]}
        names = dict(cur.all("SELECT site_id, name FROM schedule_sites")) if sites else {}
        return last[0] or 0, {"site_id": site, "tasks": bodies,
                              "sites": {s: names[s] for s in sorted(sites) if s in names},
                              "schedule": {"day": day, "version": last[0] or 1}}
    return db.run(work)
