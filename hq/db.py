"""Head office's database: every terminal's journal as it was appended there, once, in order (SPEC §2.5).

SQLite by default (a file: the demo needs nothing), PostgreSQL with a `postgresql://` URL (psycopg 3).
The same tables and statements on both. What decides what is applied next is the `devices` row of a
device, read under a row lock (PostgreSQL `FOR UPDATE`; SQLite `BEGIN IMMEDIATE` locks the file) in the
same transaction that inserts the entries, so any number of `serve` workers may receive a device's
messages in any order: an entry is applied only when it follows the last applied one and links to its
hash; `(device, seq)` is the primary key, so nothing is stored twice.

A lost connection (a database restart) is retried with backoff until it comes back; a batch is
committed whole or not at all, and the caller acknowledges its MQTT message only after the commit.
"""
from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import psycopg

from protocol import safejson
from protocol.chain import GENESIS_HASH, checked_body, entry_hash
from protocol.messages import MAX_ENTRY_DEPTH

log = logging.getLogger("handover.hq.db")

ALARM_CHANNEL = "hq_alarm"      # PostgreSQL NOTIFY channel: one notification per alarm, sent at its commit

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS devices (
        device      TEXT PRIMARY KEY,
        last_seq    BIGINT NOT NULL DEFAULT 0,     -- the last entry applied, in order
        last_hash   TEXT NOT NULL,
        newest_seen BIGINT NOT NULL DEFAULT 0,     -- the highest seq heard of (stream, urgent or health)
        site_id     TEXT,
        state       TEXT,
        health      TEXT,
        updated     TEXT)""",
    """CREATE TABLE IF NOT EXISTS entries (
        device    TEXT NOT NULL,
        seq       BIGINT NOT NULL,
        id        TEXT NOT NULL,
        ts        TEXT NOT NULL,
        kind      TEXT NOT NULL,
        task_id   TEXT,
        body      TEXT NOT NULL,                   -- canonical JSON (sorted keys): the text the hash covers
        prev_hash TEXT NOT NULL,
        hash      TEXT NOT NULL,
        PRIMARY KEY (device, seq))""",
    """CREATE TABLE IF NOT EXISTS alarms (
        device   TEXT NOT NULL,
        entry_id TEXT NOT NULL,
        seq      BIGINT NOT NULL,
        ts       TEXT NOT NULL,
        body     TEXT NOT NULL,
        received TEXT NOT NULL,                    -- when head office committed it
        PRIMARY KEY (device, entry_id))""",
    """CREATE TABLE IF NOT EXISTS quarantine (
        device   TEXT NOT NULL,
        seq      BIGINT,
        reason   TEXT NOT NULL,
        received TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS replies (
        device   TEXT NOT NULL,
        msg_id   TEXT,
        payload  TEXT NOT NULL,
        received TEXT NOT NULL)""",
    # the monitoring centre's page (hq/web): who may log in, their sessions, and what each of them did
    """CREATE TABLE IF NOT EXISTS users (
        name     TEXT PRIMARY KEY,
        role     TEXT NOT NULL,
        password TEXT NOT NULL,                    -- scrypt, with its parameters and salt (hq.web.auth)
        created  TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS web_sessions (
        token_hash TEXT PRIMARY KEY,               -- sha256 of the cookie: the database never holds a live token
        name       TEXT NOT NULL,
        csrf       TEXT NOT NULL,
        created    TEXT NOT NULL,
        last_seen  TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS audit (
        at     TEXT NOT NULL,
        name   TEXT,                               -- who (NULL: nobody logged in, e.g. a refused login)
        action TEXT NOT NULL,
        detail TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS alarm_acks (
        device   TEXT NOT NULL,
        entry_id TEXT NOT NULL,
        name     TEXT NOT NULL,
        note     TEXT NOT NULL,
        at       TEXT NOT NULL,
        msg_id   TEXT,                             -- the downlink sent to the terminal (NULL: silent, never sent)
        PRIMARY KEY (device, entry_id))""",
    # The day's schedule (hq/schedule.py): sites, each site's copy of the day's tasks with its version,
    # what was sent where (MQTT msg_id or USB bundle seq: "published" is not "applied"; replies and
    # the terminal's import entries tell that), and the people head office imported.
    """CREATE TABLE IF NOT EXISTS schedule_sites (
        site_id TEXT PRIMARY KEY,
        name    TEXT NOT NULL,
        type    TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS schedule_tasks (
        day     TEXT NOT NULL,
        site_id TEXT NOT NULL,
        task_id TEXT NOT NULL,
        version BIGINT NOT NULL,
        digest  TEXT NOT NULL,
        body    TEXT NOT NULL,                     -- the task as the terminal gets it, with its version
        PRIMARY KEY (day, site_id, task_id))""",
    """CREATE TABLE IF NOT EXISTS schedule_versions (
        day      TEXT NOT NULL,
        site_id  TEXT NOT NULL,
        version  BIGINT NOT NULL,
        imported TEXT NOT NULL,
        tasks    TEXT NOT NULL,                    -- the task ids of this version (JSON list)
        PRIMARY KEY (day, site_id, version))""",
    """CREATE TABLE IF NOT EXISTS schedule_sends (
        day        TEXT NOT NULL,
        site_id    TEXT NOT NULL,
        version    BIGINT NOT NULL,
        device     TEXT NOT NULL,
        what       TEXT NOT NULL,                  -- tasks | personnel
        channel    TEXT NOT NULL,                  -- mqtt | usb
        msg_id     TEXT,
        bundle_seq BIGINT,
        sent       TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS bundle_seqs (
        device TEXT NOT NULL,
        kind   TEXT NOT NULL,
        seq    BIGINT NOT NULL,
        PRIMARY KEY (device, kind))""",
    """CREATE TABLE IF NOT EXISTS hq_people (
        person_id TEXT PRIMARY KEY,
        body      TEXT NOT NULL,                   -- the person as imported: photo and templates (base64)
        imported  TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS schedule_enrolments (
        device    TEXT NOT NULL,                   -- a finger_enrolled entry taken into hq_people (or not: why)
        seq       BIGINT NOT NULL,
        person_id TEXT,
        outcome   TEXT NOT NULL,
        taken     TEXT NOT NULL,
        PRIMARY KEY (device, seq))""",
    # complaints handled at head office (hq/complaints.py): read from the entries above. Personal details
    # stay sealed to head office's complaint key (`sealed`), opened only when an officer reads them.
    """CREATE TABLE IF NOT EXISTS hq_complaints (
        device      TEXT NOT NULL,
        ref         TEXT NOT NULL,
        site_id     TEXT NOT NULL,
        received_at TEXT NOT NULL,
        channel     TEXT NOT NULL,
        category    TEXT NOT NULL,
        status      TEXT NOT NULL,
        anonymous   BOOLEAN NOT NULL,
        deadlines   TEXT NOT NULL,                 -- JSON: acknowledge_by, reply_by, outer_limit (working days)
        escalations TEXT NOT NULL,                 -- JSON list of triggers
        updated     TEXT NOT NULL,
        sealed      TEXT,                          -- the customer's details, sealed; NULL: the terminal had no key
        PRIMARY KEY (device, ref))""",
    """CREATE TABLE IF NOT EXISTS hq_complaint_steps (
        device        TEXT NOT NULL,
        seq           BIGINT NOT NULL,             -- the journal entry that recorded the step
        ref           TEXT NOT NULL,
        action        TEXT NOT NULL,
        before_status TEXT NOT NULL,
        after_status  TEXT NOT NULL,
        actor         TEXT NOT NULL,
        source        TEXT NOT NULL,
        at            TEXT NOT NULL,
        params        TEXT NOT NULL,               -- JSON: the step's non-personal parameters
        sealed        TEXT,                        -- its free texts, sealed
        PRIMARY KEY (device, seq))""",
    """CREATE TABLE IF NOT EXISTS hq_complaint_due (
        device TEXT NOT NULL,
        seq    BIGINT NOT NULL,
        ref    TEXT NOT NULL,
        lim    TEXT NOT NULL,
        due    TEXT NOT NULL,
        state  TEXT NOT NULL,
        at     TEXT NOT NULL,
        PRIMARY KEY (device, seq))""",
    """CREATE TABLE IF NOT EXISTS hq_complaint_sent (
        msg_id  TEXT PRIMARY KEY,
        device  TEXT NOT NULL,
        ref     TEXT NOT NULL,
        action  TEXT NOT NULL,
        officer TEXT NOT NULL,
        at      TEXT NOT NULL,
        sealed  TEXT NOT NULL)                     -- the parameters as sent, sealed to the complaint key""",
    """CREATE TABLE IF NOT EXISTS hq_complaint_cursor (
        device   TEXT PRIMARY KEY,
        last_seq BIGINT NOT NULL)""",
    # the route board (hq/routes.py) finds a day's handovers by their task ids: one start and one end a
    # handover, so ingest barely pays for this index (an index of every entry cost it 6-10%: bench_hq_routes)
    "CREATE INDEX IF NOT EXISTS hq_routes_handovers ON entries (task_id) "
    "WHERE kind IN ('handover_started', 'handover_ended')",
    # per monitor: which announcements the board speaks besides alarms (alarms are always spoken)
    """CREATE TABLE IF NOT EXISTS hq_routes_voice (
        name          TEXT PRIMARY KEY,            -- the user (users.name)
        confirmations BOOLEAN NOT NULL,            -- an officer's confirmation at a handover
        completions   BOOLEAN NOT NULL,            -- a handover ended
        updated       TEXT NOT NULL)""",
    # records (hq/records.py): door-attempt faces as they came up, still sealed to head office's records key
    # (opened only when an allowed user looks); the records search reads the newest handovers, or one day's,
    # by time (partial: one entry a handover). A handover's entries by task: hq_routes_handovers above.
    """CREATE TABLE IF NOT EXISTS hq_records_snapshots (
        device   TEXT NOT NULL,
        hash     TEXT NOT NULL,                    -- sha256 of the JPEG: the attempt entry's `snapshot`
        key_id   TEXT NOT NULL,
        sealed   TEXT NOT NULL,
        received TEXT NOT NULL,
        PRIMARY KEY (device, hash))""",
    """CREATE INDEX IF NOT EXISTS hq_records_ended ON entries (ts) WHERE kind = 'handover_ended'""",
)

def _walk(device: str, entries: list[dict], state: list, rows: list, alarms: list, set_aside: list) -> Applied:
    """Check one batch against the device's state [last_seq, last_hash, newest_seen] (updated in place):
    the rows to insert, alarms and set-aside entries are appended to the lists given."""
    out = Applied()
    last_seq, last_hash, newest = state
    for entry in entries:
        seq = entry["seq"]
        newest = max(newest, seq)
        if seq <= last_seq:
            out.duplicates += 1
            continue
        if seq != last_seq + 1:
            out.gap = True          # go-back-N: what follows a gap waits for the resend
            break
        if safejson.nesting(entry["body"]) > MAX_ENTRY_DEPTH:
            # Set aside with an alarm; the stream goes on after it (the next entry links to its hash).
            reason = f"body nested deeper than {MAX_ENTRY_DEPTH} levels"
            set_aside.append((device, seq, reason, _now()))
            out.quarantined.append({"seq": seq, "reason": reason})
            last_seq, last_hash = seq, entry["hash"]
            continue
        problem, body = checked_body(entry, last_hash)
        if problem:
            out.problems.append(problem)
            break
        rows.append((device, seq, entry["id"], entry["ts"], entry["kind"], entry["task_id"], body,
                     entry["prev_hash"], entry["hash"]))
        out.applied += 1
        out.committed.append(entry)
        if entry["kind"] == "alarm":
            alarms.append((out, (device, entry)))
        last_seq, last_hash = seq, entry["hash"]
    state[:] = [last_seq, last_hash, newest]
    out.last_seq = last_seq
    return out


# What a lost or restarting database raises: retried. Anything else is a bug or bad data and propagates.
_CONNECTION_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError, sqlite3.OperationalError)


DATABASE_ERRORS = (psycopg.Error, sqlite3.Error)     # what the CLI reports as a message, not a traceback


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@dataclass
class Applied:
    """What one batch did."""
    applied: int = 0
    duplicates: int = 0
    gap: bool = False                   # an entry after a missing one: what follows waits for a resend
    last_seq: int = 0
    problems: list[str] = field(default_factory=list)       # chain breaks: nothing after them is applied
    new_alarms: list[dict] = field(default_factory=list)    # committed now and not before (push these)
    committed: list[dict] = field(default_factory=list)     # every entry applied now (the route board's feed)
    quarantined: list[dict] = field(default_factory=list)
    busy: bool = False                  # another worker held the device's row: nothing was done (skip_busy)


class Cursor:
    """One transaction's statements, written with `?` placeholders for both databases."""

    def __init__(self, raw, postgres: bool):
        self._raw, self._pg = raw, postgres

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self._pg else sql

    def execute(self, sql: str, params: tuple = ()) -> int:
        cur = self._raw.execute(self._sql(sql), params)
        return cur.rowcount

    def executemany(self, sql: str, rows: list[tuple]) -> None:
        if self._pg:
            self._raw.executemany(self._sql(sql), rows)
        else:
            self._raw.executemany(sql, rows)

    def copy_rows(self, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
        """Append rows to `table`: PostgreSQL's COPY (a tenth of executemany's client CPU and a quarter of its
        time here: one stream, no statement a row); SQLite runs in-process, where executemany is as cheap."""
        names = ", ".join(columns)
        if self._pg:
            with self._raw.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            self._raw.executemany(f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(columns))})", rows)

    def all(self, sql: str, params: tuple = ()) -> list[tuple]:
        return list(self._raw.execute(self._sql(sql), params).fetchall())

    def one(self, sql: str, params: tuple = ()) -> tuple | None:
        return self._raw.execute(self._sql(sql), params).fetchone()


class Database:
    """One connection to head office's database; use one per thread."""

    def __init__(self, url: str | Path, *, stop: threading.Event | None = None, retry_for: float | None = None):
        self.url = str(url)
        self.postgres = is_postgres(self.url)
        self._stop = stop or threading.Event()
        self._retry_for = retry_for           # None: retry while not stopped
        self._conn = None
        self.reconnects = 0

    # -- connection ---------------------------------------------------------------------------------

    def _connect(self):
        if self.postgres:
            return psycopg.connect(self.url, autocommit=True, connect_timeout=5)
        conn = sqlite3.connect(self.url.removeprefix("sqlite:///"), isolation_level=None, timeout=30,
                               check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")     # a commit that returned survives a power cut
        return conn

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Cursor]:
        if self._conn is None:
            self._conn = self._connect()
        if self.postgres:
            with self._conn.transaction(), self._conn.cursor() as raw:
                yield Cursor(raw, True)
        else:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield Cursor(self._conn, False)
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def run(self, work):
        """work(cursor) in one transaction; a lost connection is reopened and the whole work retried."""
        delay, started = 0.1, time.monotonic()
        while True:
            try:
                with self._transaction() as cur:
                    return work(cur)
            except _CONNECTION_ERRORS as exc:
                self.close()
                out_of_time = self._retry_for is not None and time.monotonic() - started > self._retry_for
                if self._stop.is_set() or out_of_time:
                    raise
                self.reconnects += 1
                log.warning("database unavailable (%s); retrying in %.1f s", type(exc).__name__, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, 2.0)

    def create_schema(self) -> "Database":
        def work(cur: Cursor) -> None:
            if self.postgres:     # two workers starting at once must not race to create the same table
                cur.execute("SELECT pg_advisory_xact_lock(15)")
            for statement in _SCHEMA:
                cur.execute(statement)
        self.run(work)
        return self

    # -- writing --------------------------------------------------------------------------------------

    def apply(self, device: str, entries: list[dict]) -> Applied:
        """Apply one journal batch of `device` in one transaction: in sequence, chain verified, once."""
        return self.apply_many([(device, entries)])[0]

    def apply_many(self, batches: list[tuple[str, list[dict]]], *, skip_busy: bool = False) -> list[Applied]:
        """Several journal batches (of any devices, each device's in their order) in one transaction, with
        a handful of statements whatever their number: the devices' rows are locked in one statement (in
        device order, the same in every worker, so two workers' transactions never deadlock), the entries
        inserted in one executemany and the rows updated in another."""
        return self.run(lambda cur: self._apply_many(cur, batches, skip_busy))

    def _apply_many(self, cur: Cursor, batches: list[tuple[str, list[dict]]], skip_busy: bool) -> list[Applied]:
        devices = sorted({device for device, _ in batches})
        state = self._lock_devices(cur, devices, skip_busy)
        if len(state) < len(devices):
            # A device heard of for the first time: its row, then lock again. (With skip_busy, also a device
            # another worker holds: its row exists, nothing is inserted.)
            cur.executemany("INSERT INTO devices (device, last_hash) VALUES (?, ?) ON CONFLICT (device) DO NOTHING",
                            [(d, GENESIS_HASH) for d in devices if d not in state])
            state = self._lock_devices(cur, devices, skip_busy)
        results, rows, alarms, set_aside = [], [], [], []
        for device, entries in batches:
            if device not in state:
                results.append(Applied(busy=True))
                continue
            out = _walk(device, entries, state[device], rows, alarms, set_aside)
            results.append(out)
        devices = [d for d in devices if d in state]
        if not devices:
            return results
        if rows:
            cur.copy_rows("entries", ("device", "seq", "id", "ts", "kind", "task_id", "body", "prev_hash", "hash"),
                          rows)
        if set_aside:
            cur.executemany("INSERT INTO quarantine (device, seq, reason, received) VALUES (?, ?, ?, ?)", set_aside)
        for out, (device, entry) in alarms:
            if self._record_alarm(cur, device, entry):
                out.new_alarms.append(entry)
        now = _now()
        if self.postgres:   # one statement for all the devices, not one a device
            cur.execute("UPDATE devices d SET last_seq = u.last_seq, last_hash = u.last_hash, "
                        "newest_seen = u.newest_seen, updated = ? FROM unnest(?::text[], ?::bigint[], ?::text[], "
                        "?::bigint[]) AS u(device, last_seq, last_hash, newest_seen) WHERE d.device = u.device",
                        (now, devices, *(list(c) for c in zip(*(state[d] for d in devices)))))
        else:
            cur.executemany("UPDATE devices SET last_seq = ?, last_hash = ?, newest_seen = ?, updated = ? "
                            "WHERE device = ?", [(*state[d], now, d) for d in devices])
        return results

    def _lock_devices(self, cur: Cursor, devices: list[str], skip_busy: bool = False) -> dict[str, list]:
        """[last_seq, last_hash, newest_seen] of each known device, its row locked (in device order, the
        same in every worker, so two workers' transactions never deadlock). With skip_busy (PostgreSQL), a
        row another transaction holds is left out rather than waited for."""
        marks = ", ".join("?" * len(devices))
        lock = (" FOR UPDATE SKIP LOCKED" if skip_busy else " FOR UPDATE") if self.postgres else ""
        return {d: [last_seq, last_hash, newest] for d, last_seq, last_hash, newest in cur.all(
            f"SELECT device, last_seq, last_hash, newest_seen FROM devices WHERE device IN ({marks}) "
            f"ORDER BY device{lock}", tuple(devices))}

    def _record_alarm(self, cur: Cursor, device: str, entry: dict) -> bool:
        """True if this alarm is new here (so it is pushed once, whichever path brought it first)."""
        added = cur.one("INSERT INTO alarms (device, entry_id, seq, ts, body, received) VALUES (?, ?, ?, ?, ?, ?) "
                        "ON CONFLICT (device, entry_id) DO NOTHING RETURNING 1",
                        (device, entry["id"], entry["seq"], entry["ts"], _json(entry["body"]), _now())) is not None
        if added and self.postgres:     # the monitoring board LISTENs: told at the commit, not by polling
            note = {"device": device, "id": entry["id"], "seq": entry["seq"], "body": entry["body"]}
            cur.execute("SELECT pg_notify(?, ?)", (ALARM_CHANNEL, _json(note)))
        return added

    def urgent(self, device: str, entry: dict) -> bool:
        """An entry from the urgent topic: an alarm is committed now (True if new). The hash is checked
        first (ValueError if it does not match); its place in the chain is checked when it comes through
        the ordered stream."""
        added = self.urgent_many([(device, entry)])[0]
        if added is None:
            raise ValueError(f"urgent entry {entry['id']} does not match its hash")
        return added

    def urgent_many(self, items: list[tuple[str, dict]]) -> list[bool | None]:
        """Several urgent entries in one transaction (one commit, however many arrived meanwhile): for each,
        True if it is an alarm new here, False if not, None if refused (its hash does not match: nothing of
        it written)."""
        checked = [entry_hash(e["seq"], e["ts"], e["kind"], e["task_id"], e["body"], e["prev_hash"]) == e["hash"]
                   for _, e in items]

        def work(cur: Cursor) -> list[bool | None]:
            out: list[bool | None] = []
            for (device, entry), ok in zip(items, checked):
                if not ok:
                    out.append(None)
                    continue
                out.append(entry["kind"] == "alarm" and self._record_alarm(cur, device, entry))
                cur.execute("INSERT INTO devices (device, last_hash) VALUES (?, ?) ON CONFLICT (device) DO NOTHING",
                            (device, GENESIS_HASH))
                # newest_seen is only the gap watcher's hint, and the stream's writer may hold this device's
                # row in a transaction of up to 100 messages: an alarm does not wait for it (the writer sets
                # the hint itself from the same entry in the stream).
                skip = " FOR UPDATE SKIP LOCKED" if self.postgres else ""
                cur.execute(f"UPDATE devices SET newest_seen = ? WHERE device IN (SELECT device FROM devices "
                            f"WHERE device = ? AND newest_seen < ?{skip})", (entry["seq"], device, entry["seq"]))
            return out
        return self.run(work) if any(checked) else [None] * len(items)

    def status(self, device: str, site_id: str, state: str) -> None:
        self.run(lambda cur: cur.execute(
            "INSERT INTO devices (device, last_hash, site_id, state, updated) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (device) DO UPDATE SET site_id = excluded.site_id, state = excluded.state, "
            "updated = excluded.updated", (device, GENESIS_HASH, site_id, state, _now())))

    def health(self, device: str, payload: dict) -> None:
        seen = payload["journal"]["last_seq"]

        def work(cur: Cursor) -> None:
            cur.execute("INSERT INTO devices (device, last_hash) VALUES (?, ?) ON CONFLICT (device) DO NOTHING",
                        (device, GENESIS_HASH))
            cur.execute("UPDATE devices SET health = ?, newest_seen = CASE WHEN newest_seen < ? THEN ? "
                        "ELSE newest_seen END WHERE device = ?", (_json(payload), seen, seen, device))
        self.run(work)

    def reply(self, device: str, payload: dict) -> None:
        self.run(lambda cur: cur.execute("INSERT INTO replies (device, msg_id, payload, received) VALUES (?, ?, ?, ?)",
                                         (device, payload["msg_id"], _json(payload), _now())))

    def quarantine(self, device: str, seq: int | None, reason: str) -> None:
        self.run(lambda cur: cur.execute("INSERT INTO quarantine (device, seq, reason, received) VALUES (?, ?, ?, ?)",
                                         (device, seq, reason, _now())))

    # -- reading --------------------------------------------------------------------------------------

    def behind(self) -> list[tuple[str, int, str | None, str | None]]:
        """(device, last_seq, site_id, state) of devices that have sent more than is applied."""
        return self.run(lambda cur: cur.all(
            "SELECT device, last_seq, site_id, state FROM devices WHERE newest_seen > last_seq"))

    def device(self, device: str) -> dict | None:
        row = self.run(lambda cur: cur.one(
            "SELECT last_seq, last_hash, newest_seen, site_id, state FROM devices WHERE device = ?", (device,)))
        if row is None:
            return None
        return dict(zip(("last_seq", "last_hash", "newest_seen", "site_id", "state"), row))

    def last_seqs(self, devices: list[str]) -> dict[str, int]:
        """The last applied seq of each of `devices` that the database knows."""
        if not devices:
            return {}
        marks = ", ".join("?" * len(devices))
        return dict(self.run(lambda cur: cur.all(f"SELECT device, last_seq FROM devices WHERE device IN ({marks})",
                                                 tuple(devices))))

    def devices(self) -> list[str]:
        return [r[0] for r in self.run(lambda cur: cur.all("SELECT device FROM devices ORDER BY device"))]

    def alarms(self, device: str | None = None) -> list[dict]:
        rows = self.run(lambda cur: cur.all(
            "SELECT device, entry_id, seq, ts, body, received FROM alarms ORDER BY device, seq"))
        return [{"device": d, "id": i, "seq": s, "ts": t, "body": json.loads(b), "received": r}
                for d, i, s, t, b, r in rows if device is None or d == device]

    def entries(self, device: str, after: int = 0, limit: int = 5000) -> list[dict]:
        """Applied entries of `device` with seq > after, in seq order, as they were sent."""
        rows = self.run(lambda cur: cur.all(
            "SELECT seq, id, ts, kind, task_id, body, prev_hash, hash FROM entries WHERE device = ? AND seq > ? "
            "ORDER BY seq LIMIT ?", (device, after, limit)))
        return [{"id": i, "seq": s, "ts": t, "kind": k, "task_id": task, "body": json.loads(b), "prev_hash": p,
                 "hash": h} for s, i, t, k, task, b, p, h in rows]

    def count(self, table: str) -> int:
        if table not in ("entries", "alarms", "devices", "quarantine", "replies"):
            raise ValueError(f"no table {table}")
        return self.run(lambda cur: cur.one(f"SELECT count(*) FROM {table}"))[0]
