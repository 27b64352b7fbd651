"""What the device knows: tasks, people, fingerprint templates, photos, bundle sequence numbers.

Lives in the journal's SQLite file so an import and its journal entry commit together
(`with journal.transaction(): store.upsert_task(...); journal.append(...)`). People's names,
photos and templates are personal data: sealed at rest (agent.sealing), never logged.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import sqlite3
import threading
from collections.abc import MutableMapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from agent.sealing import SealError, Sealer
from flows.model import Box, Person, Task, TaskRow
from protocol.keys import fsync_dir


# one encoder for all bodies (json.dumps with an option builds one per call); bodies are parsed JSON or
# to_dict()s, which hold no cycles to look for: 10,000 tasks in a fifth less time
_body_json = json.JSONEncoder(ensure_ascii=False, check_circular=False).encode


@dataclass(frozen=True)
class Template:
    """One enrolled finger. A duress finger matches normally but raises a silent alarm (SPEC §2.3)."""
    person_id: str
    finger: str                 # e.g. "right_index"
    template: bytes
    duress: bool = False


@dataclass(frozen=True)
class SlotOwner:
    person_id: str
    finger: str
    duress: bool


class Store:
    def __init__(self, db: sqlite3.Connection, sealer: Sealer, photos_dir: str | os.PathLike):
        self.db = db
        self._sealer = sealer
        self._photos = Path(photos_dir)
        self._photos.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._create()
        # bumped on every write, so what is kept in memory (agent.today, the simulator panel) knows it is stale
        self.tasks_version = 0
        self.people_version = 0

    def _create(self) -> None:
        c = self.db
        c.execute("CREATE TABLE IF NOT EXISTS tasks (task_id TEXT PRIMARY KEY, version INTEGER NOT NULL,"
                  " day TEXT NOT NULL, beacon TEXT NOT NULL, body TEXT NOT NULL)")
        # one index for a truck's tasks of a day (an arrival). Tasks by site are found through task_stops:
        # the planner never took an index on day alone (EXPLAIN QUERY PLAN), and each index is paid for by
        # every import (a day's schedule: 10,000 rows)
        c.execute("DROP INDEX IF EXISTS tasks_day")
        c.execute("DROP INDEX IF EXISTS tasks_beacon")
        c.execute("CREATE INDEX IF NOT EXISTS tasks_beacon_day ON tasks(beacon, day)")
        # a day can hold thousands of tasks across all sites: look up by stop and by tag, never by scanning.
        # A task's own stops and boxes are deleted by these keys, read from its body, not through an index
        # by task: only a re-planned or withdrawn task needs them, and every import paid for two more indexes
        c.execute("CREATE TABLE IF NOT EXISTS task_stops (site_id TEXT NOT NULL, task_id TEXT NOT NULL,"
                  " PRIMARY KEY (site_id, task_id))")
        c.execute("CREATE TABLE IF NOT EXISTS task_boxes (tag TEXT NOT NULL, task_id TEXT NOT NULL,"
                  " box_id TEXT NOT NULL, destination TEXT NOT NULL, origin TEXT, PRIMARY KEY (tag, task_id))")
        c.execute("DROP INDEX IF EXISTS task_stops_task")
        c.execute("DROP INDEX IF EXISTS task_boxes_task")
        c.execute("CREATE TABLE IF NOT EXISTS people (person_id TEXT PRIMARY KEY, role TEXT NOT NULL,"
                  " sealed BLOB NOT NULL)")
        c.execute("CREATE TABLE IF NOT EXISTS templates (slot INTEGER PRIMARY KEY, person_id TEXT NOT NULL,"
                  " finger TEXT NOT NULL, duress INTEGER NOT NULL, sealed BLOB NOT NULL,"
                  " UNIQUE(person_id, finger))")
        c.execute("CREATE TABLE IF NOT EXISTS site_names (site_id TEXT PRIMARY KEY, name TEXT NOT NULL)")
        c.execute("CREATE TABLE IF NOT EXISTS bundle_seq (kind TEXT PRIMARY KEY, seq INTEGER NOT NULL)")
        c.execute("CREATE TABLE IF NOT EXISTS box_keys (tag TEXT PRIMARY KEY, sealed BLOB NOT NULL)")
        c.execute("CREATE TABLE IF NOT EXISTS tag_counters (tag TEXT PRIMARY KEY, counter INTEGER NOT NULL)")
        c.execute("CREATE TABLE IF NOT EXISTS credentials (person_id TEXT PRIMARY KEY, scrypt BLOB NOT NULL)")
        c.execute("CREATE TABLE IF NOT EXISTS stop_progress (task_id TEXT NOT NULL, site_id TEXT NOT NULL,"
                  " at TEXT NOT NULL, PRIMARY KEY (task_id, site_id))")
        c.execute("CREATE TABLE IF NOT EXISTS stop_skips (task_id TEXT NOT NULL, site_id TEXT NOT NULL,"
                  " at TEXT NOT NULL, PRIMARY KEY (task_id, site_id))")

    # --- tasks ---
    def upsert_task(self, task: Task) -> bool:
        """Store a task unless the same or a newer version is already here. True when stored."""
        return bool(self.upsert_tasks([task]))

    def upsert_tasks(self, tasks: list[Task]) -> list[Task]:
        """upsert_task for many (a day's schedule): a few statements for all, not five per task.
        Returns the tasks stored; of one id given twice, the later wins when its version is higher."""
        return [tasks[i] for i in self._upsert_rows([t.to_row() for t in tasks])]

    def upsert_task_rows(self, rows: list[TaskRow]) -> list[TaskRow]:
        """upsert_tasks for tasks as Task.row_from_dict gives them (an import: no Task built)."""
        return [rows[i] for i in self._upsert_rows(rows)]

    def _upsert_rows(self, rows: list[TaskRow]) -> list[int]:
        """The indexes of the rows stored."""
        have: dict[str, int] = {}
        ids = [r.task_id for r in rows]
        for i in range(0, len(ids), 500):           # older SQLite builds allow 999 bound parameters
            chunk = ids[i:i + 500]
            have.update(self.db.execute(f"SELECT task_id, version FROM tasks WHERE task_id IN "
                                        f"({','.join('?' * len(chunk))})", chunk))
        existed = set(have)
        stored: list[int] = []
        for i, r in enumerate(rows):
            if have.get(r.task_id, 0) < r.version:
                have[r.task_id] = r.version
                stored.append(i)
        if not stored:
            return stored
        latest = list({rows[i].task_id: rows[i] for i in stored}.values())   # of two versions in one batch, the newer
        # a newer version: its stops and boxes replace the old version's (read before its body goes)
        self._delete_stops_and_boxes([r.task_id for r in latest if r.task_id in existed])
        c = self.db
        c.executemany("INSERT OR REPLACE INTO tasks (task_id, version, day, beacon, body) VALUES (?,?,?,?,?)",
                      [(r.task_id, r.version, r.day, r.beacon,
                        r.body if type(r.body) is str else _body_json(r.body)) for r in latest])
        c.executemany("INSERT OR IGNORE INTO task_stops (site_id, task_id) VALUES (?,?)",
                      [(site, r.task_id) for r in latest for site in r.route])
        c.executemany("INSERT OR REPLACE INTO task_boxes (tag, task_id, box_id, destination, origin)"
                      " VALUES (?,?,?,?,?)", [box for r in latest for box in r.boxes])
        self.tasks_version += 1
        return stored

    def withdraw_tasks(self, task_ids: list[str]) -> None:
        """Remove tasks head office took out of the schedule (the caller checked none has started)."""
        self._delete_stops_and_boxes(task_ids)
        self.db.executemany("DELETE FROM tasks WHERE task_id=?", [(t,) for t in task_ids])
        if task_ids:
            self.tasks_version += 1

    def _delete_stops_and_boxes(self, task_ids: list[str]) -> None:
        """Delete the stored tasks' stop and box rows by their keys, as their bodies name them."""
        stops, boxes = [], []
        for i in range(0, len(task_ids), 500):
            chunk = task_ids[i:i + 500]
            for (body,) in self.db.execute(f"SELECT body FROM tasks WHERE task_id IN ({','.join('?' * len(chunk))})",
                                           chunk):
                row = Task.row_from_dict(json.loads(body))
                stops += [(site, row.task_id) for site in row.route]
                boxes += [(box[0], row.task_id) for box in row.boxes]
        self.db.executemany("DELETE FROM task_stops WHERE site_id=? AND task_id=?", stops)
        self.db.executemany("DELETE FROM task_boxes WHERE tag=? AND task_id=?", boxes)

    def task(self, task_id: str) -> Task | None:
        row = self.db.execute("SELECT body FROM tasks WHERE task_id=?", (task_id,)).fetchone()
        return Task.from_dict(json.loads(row[0])) if row else None

    def tasks_on(self, day: date, site_id: str | None = None, *, beacon: str | None = None) -> list[Task]:
        """Tasks whose window touches `day` (a night run from 23:30 to 00:30 is on both days), that stop
        at `site_id` and/or whose truck has `beacon`, when given."""
        sql, args = "SELECT body FROM tasks t WHERE day BETWEEN ? AND ?", [(day - timedelta(days=1)).isoformat(),
                                                                            day.isoformat()]
        if site_id is not None:
            sql += " AND task_id IN (SELECT task_id FROM task_stops WHERE site_id=?)"
            args.append(site_id)
        if beacon is not None:
            sql += " AND beacon=?"
            args.append(beacon)
        tasks = [Task.from_dict(json.loads(r[0])) for r in self.db.execute(sql, args)]
        tasks = [t for t in tasks if t.window_start.date() <= day <= t.window_end.date()]
        return sorted(tasks, key=lambda t: (t.window_start, t.task_id))

    def box_for_tag(self, tag: str, day: date) -> Box | None:
        """The box a tag belongs to in any task whose window touches `day`."""
        rows = self.db.execute(
            "SELECT b.box_id, b.destination, b.origin, t.body FROM task_boxes b JOIN tasks t USING (task_id)"
            " WHERE b.tag=? AND t.day BETWEEN ? AND ?",
            (tag.upper(), (day - timedelta(days=1)).isoformat(), day.isoformat()))
        for box_id, destination, origin, body in rows:
            task = Task.from_dict(json.loads(body))
            if task.window_start.date() <= day <= task.window_end.date():
                return Box(box_id, tag.upper(), destination, origin)
        return None

    def task_count(self) -> int:
        return self.db.execute("SELECT count(*) FROM tasks").fetchone()[0]

    # --- people ---
    def upsert_person(self, person: Person) -> None:
        self.upsert_people([person])

    def upsert_people(self, people: list[Person]) -> None:
        """upsert_person for many (a personnel import): one statement for all."""
        seal = self._sealer.seal
        self.db.executemany("INSERT OR REPLACE INTO people (person_id, role, sealed) VALUES (?,?,?)", [
            (p.person_id, p.role.value, seal(json.dumps(p.to_dict(), ensure_ascii=False).encode(), p.person_id.encode()))
            for p in people])
        self.people_version += 1

    def person(self, person_id: str) -> Person | None:
        row = self.db.execute("SELECT sealed FROM people WHERE person_id=?", (person_id,)).fetchone()
        if not row:
            return None
        return Person.from_dict(json.loads(self._sealer.open(row[0], person_id.encode())))

    def people(self) -> list[Person]:
        ids = [r[0] for r in self.db.execute("SELECT person_id FROM people ORDER BY person_id")]
        return [p for p in (self.person(i) for i in ids) if p]

    def remove_person(self, person_id: str) -> list[int]:
        """Forget a person and their templates; returns the module slots to clear."""
        slots = [r[0] for r in self.db.execute("SELECT slot FROM templates WHERE person_id=?", (person_id,))]
        self.db.execute("DELETE FROM templates WHERE person_id=?", (person_id,))
        self.db.execute("DELETE FROM people WHERE person_id=?", (person_id,))
        self.people_version += 1
        return slots

    # --- fingerprint templates: one slot per (person, finger), the same slot on every module ---
    def put_template(self, t: Template) -> int:
        slot = self.slot_for(t.person_id, t.finger)
        sealed = self._sealer.seal(t.template, f"{t.person_id}/{t.finger}".encode())
        self.db.execute(
            "INSERT OR REPLACE INTO templates (slot, person_id, finger, duress, sealed) VALUES (?,?,?,?,?)",
            (slot, t.person_id, t.finger, int(t.duress), sealed))
        self.people_version += 1
        return slot

    def put_templates(self, templates: list[Template]) -> list[int]:
        """put_template for each, in order (the same slots it would give), with one read of the slots
        taken and one statement for all: a personnel import brings thousands."""
        if not templates:
            return []
        owned = {(p, f): s for s, p, f in self.db.execute("SELECT slot, person_id, finger FROM templates")}
        used = set(owned.values())
        free = 0                    # the lowest slot not taken, as _free_slot finds it
        slots, rows = [], []
        for t in templates:
            slot = owned.get((t.person_id, t.finger))
            if slot is None:
                while free in used:
                    free += 1
                slot = owned[(t.person_id, t.finger)] = free
                used.add(slot)
            slots.append(slot)
            rows.append((slot, t.person_id, t.finger, int(t.duress),
                         self._sealer.seal(t.template, f"{t.person_id}/{t.finger}".encode())))
        self.db.executemany(
            "INSERT OR REPLACE INTO templates (slot, person_id, finger, duress, sealed) VALUES (?,?,?,?,?)", rows)
        self.people_version += 1
        return slots

    def slot_for(self, person_id: str, finger: str) -> int:
        """The slot this finger has, or would get: an enrolment stores in the module before the store."""
        row = self.db.execute("SELECT slot FROM templates WHERE person_id=? AND finger=?",
                                   (person_id, finger)).fetchone()
        return row[0] if row else self._free_slot()

    def _free_slot(self) -> int:
        count, top = self.db.execute("SELECT count(*), max(slot) FROM templates").fetchone()
        if top is None or top + 1 == count:        # no holes: the next slot (no scan per template)
            return count
        used = {r[0] for r in self.db.execute("SELECT slot FROM templates")}
        return next(i for i in range(len(used) + 1) if i not in used)

    def slot_owner(self, slot: int) -> SlotOwner | None:
        row = self.db.execute("SELECT person_id, finger, duress FROM templates WHERE slot=?",
                                   (slot,)).fetchone()
        return SlotOwner(row[0], row[1], bool(row[2])) if row else None

    def slots_of(self, person_id: str) -> dict[str, int]:
        return {r[1]: r[0] for r in self.db.execute(
            "SELECT slot, finger FROM templates WHERE person_id=? ORDER BY slot", (person_id,))}

    def slots(self) -> list[tuple[int, SlotOwner]]:
        """Who is enrolled in which module slot, without opening the sealed templates."""
        rows = self.db.execute("SELECT slot, person_id, finger, duress FROM templates ORDER BY slot")
        return [(slot, SlotOwner(p, f, bool(d))) for slot, p, f, d in rows]

    def templates(self) -> list[tuple[int, Template]]:
        rows = self.db.execute("SELECT slot, person_id, finger, duress, sealed FROM templates ORDER BY slot")
        return [(s, Template(p, f, self._sealer.open(b, f"{p}/{f}".encode()), bool(d))) for s, p, f, d, b in rows]

    # --- photos: sealed files named by the hash of their plaintext ---
    def put_photo(self, data: bytes) -> str:
        return self.write_photo(data)[0]

    def write_photo(self, data: bytes, *, sync_name: bool = True) -> tuple[str, bool]:
        """put_photo, also saying whether this call wrote the file (an import that fails removes those).
        sync_name=False leaves the new name to the caller's one sync_photo_names() before anything
        refers to it: an import of a thousand photos then pays one directory fsync, not a thousand."""
        digest = hashlib.sha256(data).hexdigest()
        path = self._photos / f"{digest}.sealed"
        try:
            # written in place, not renamed into place (a rename per photo is a quarter of a personnel
            # import's photo time; a look for the name first, another fifth): the seal tells a whole
            # file from one a power cut left torn
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            if self._photo_opens(path, digest):
                return digest, False
            # torn, or still being written by another thread: a whole copy replaces it at once
            fd, tmp = None, path.with_suffix(f".{threading.get_ident()}.tmp")
        with open(tmp if fd is None else fd, "wb") as f:
            f.write(self._sealer.seal(data, digest.encode()))     # sealed once the name is ours: ~10% faster
            f.flush()
            os.fsync(f.fileno())
        if fd is None:
            os.replace(tmp, path)
        if sync_name:
            fsync_dir(self._photos)     # journal entries reference it: its name must survive a power cut
        return digest, True

    def _photo_opens(self, path: Path, digest: str) -> bool:
        try:
            self._sealer.open(path.read_bytes(), digest.encode())
        except (OSError, SealError):
            return False
        return True

    def sync_photo_names(self) -> None:
        """Make the names of photos written with sync_name=False survive a power cut."""
        fsync_dir(self._photos)

    def has_photo(self, digest: str) -> bool:
        return (self._photos / f"{digest}.sealed").exists()

    def discard_photo(self, digest: str) -> None:
        """Remove a photo an import wrote but never committed (nothing refers to it)."""
        (self._photos / f"{digest}.sealed").unlink(missing_ok=True)

    def photo(self, digest: str) -> bytes | None:
        if not all(c in "0123456789abcdef" for c in digest) or len(digest) != 64:
            return None
        path = self._photos / f"{digest}.sealed"
        return self._sealer.open(path.read_bytes(), digest.encode()) if path.exists() else None

    # --- anti-clone box tags (NTAG 424 DNA SUN): keys per tag, sealed; the last read counter per tag ---
    def put_site_names(self, names: dict[str, str]) -> None:
        """Names of sites as the task data gives them; a later name for the same site replaces the earlier."""
        self.db.executemany("INSERT OR REPLACE INTO site_names (site_id, name) VALUES (?,?)", names.items())

    def site_name(self, site_id: str) -> str | None:
        row = self.db.execute("SELECT name FROM site_names WHERE site_id = ?", (site_id,)).fetchone()
        return row[0] if row else None

    def site_names(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT site_id, name FROM site_names"))

    def put_box_keys(self, tag: str, meta_key: bytes, file_key: bytes) -> None:
        if len(meta_key) != 16 or len(file_key) != 16:
            raise ValueError(f"box {tag}: SUN keys must be 16 bytes each (AES-128)")
        self.db.execute("INSERT OR REPLACE INTO box_keys (tag, sealed) VALUES (?,?)",
                             (tag.upper(), self._sealer.seal(meta_key + file_key, tag.upper().encode())))

    def box_keys(self, tag: str) -> tuple[bytes, bytes] | None:
        """The card reader's key lookup: (SDM meta-read key, SDM file-read key) for a tag, if registered."""
        row = self.db.execute("SELECT sealed FROM box_keys WHERE tag=?", (tag.upper(),)).fetchone()
        if not row:
            return None
        keys = self._sealer.open(row[0], tag.upper().encode())
        return keys[:16], keys[16:]

    def box_meta_read_keys(self) -> list[bytes]:
        """The distinct SDM meta-read keys: a random-UID tag hides the UID that would name its keys."""
        found: list[bytes] = []
        for tag, sealed in self.db.execute("SELECT tag, sealed FROM box_keys"):
            meta = self._sealer.open(sealed, tag.encode())[:16]
            if meta not in found:
                found.append(meta)
        return found

    def tag_counters(self, journal) -> "TagCounters":
        return TagCounters(self.db, journal)

    # --- officer passwords, where a site allows them: scrypt with a per-person salt, never in clear ---
    _SCRYPT = {"n": 2 ** 14, "r": 8, "p": 1, "dklen": 32}

    def set_password(self, person_id: str, password: str) -> None:
        salt = os.urandom(16)
        digest = hashlib.scrypt(password.encode(), salt=salt, **self._SCRYPT)
        self.db.execute("INSERT OR REPLACE INTO credentials (person_id, scrypt) VALUES (?,?)",
                             (person_id, salt + digest))

    def check_password(self, person_id: str, password: str) -> bool:
        row = self.db.execute("SELECT scrypt FROM credentials WHERE person_id=?", (person_id,)).fetchone()
        if not row:
            hashlib.scrypt(password.encode(), salt=b"0" * 16, **self._SCRYPT)   # same cost: no timing oracle
            return False
        salt, digest = row[0][:16], row[0][16:]
        return hmac.compare_digest(hashlib.scrypt(password.encode(), salt=salt, **self._SCRYPT), digest)

    # --- anti-rollback for bundles (SPEC §5) ---
    def last_bundle_seq(self, kind: str) -> int:
        row = self.db.execute("SELECT seq FROM bundle_seq WHERE kind=?", (kind,)).fetchone()
        return row[0] if row else 0

    def set_bundle_seq(self, kind: str, seq: int) -> None:
        if seq <= self.last_bundle_seq(kind):
            raise ValueError(f"bundle sequence for {kind} must increase (have {self.last_bundle_seq(kind)}, got {seq})")
        self.db.execute("INSERT OR REPLACE INTO bundle_seq (kind, seq) VALUES (?,?)", (kind, seq))

    # --- what head office reported of other stops (route skip, SPEC §2.3) ---
    def record_stop_done(self, task_id: str, site_id: str, at: str) -> None:
        self.db.execute("INSERT OR IGNORE INTO stop_progress (task_id, site_id, at) VALUES (?,?,?)",
                             (task_id, site_id, at))

    def stops_done(self, task_id: str) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT site_id FROM stop_progress WHERE task_id=?", (task_id,))}

    def record_stop_skipped(self, task_id: str, site_id: str, at: str) -> None:
        """Head office judged, from the fleet's records, that the truck passed this stop by."""
        self.db.execute("INSERT OR IGNORE INTO stop_skips (task_id, site_id, at) VALUES (?,?,?)",
                             (task_id, site_id, at))

    def stops_skipped(self, task_id: str) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT site_id FROM stop_skips WHERE task_id=?", (task_id,))}


class TagCounters(MutableMapping):
    """The last accepted SUN read counter per tag, persisted, so a replayed (cloned) tag message is
    refused after a restart too. Each write is its own journal transaction: the connection is shared
    with the sync thread, and a bare write could otherwise join (and roll back with) its transaction."""

    def __init__(self, db: sqlite3.Connection, journal):
        self._conn = db
        self._journal = journal

    def __getitem__(self, tag: str) -> int:
        row = self._conn.execute("SELECT counter FROM tag_counters WHERE tag=?", (tag,)).fetchone()
        if row is None:
            raise KeyError(tag)
        return row[0]

    def __setitem__(self, tag: str, counter: int) -> None:
        with self._journal.transaction():
            self._conn.execute("INSERT OR REPLACE INTO tag_counters (tag, counter) VALUES (?,?)", (tag, int(counter)))

    def __delitem__(self, tag: str) -> None:
        with self._journal.transaction():
            self._conn.execute("DELETE FROM tag_counters WHERE tag=?", (tag,))

    def __iter__(self):
        return iter([r[0] for r in self._conn.execute("SELECT tag FROM tag_counters")])

    def __len__(self) -> int:
        return self._conn.execute("SELECT count(*) FROM tag_counters").fetchone()[0]
