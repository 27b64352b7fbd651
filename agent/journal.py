"""The device's tamper-evident journal (SPEC §3): the source of truth and the sync outbox.

Every entry is appended to one SQLite table in WAL mode with synchronous=FULL, so an append
that has returned survives a power cut. Each entry carries the hash of the previous one, so an
edited, removed or reordered entry breaks the chain and `verify()` names where (entries cut from
the end show only against a cursor past it, e.g. sync's). Head office can re-check published
entries with `protocol.chain.entry_hash` alone.

Only this module writes the `journal` table, and only by appending; triggers refuse UPDATE and
DELETE so no other code on the shared connection can change history by accident.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path


from protocol.chain import GENESIS_HASH, canonical, entry_hash
from protocol.keys import fsync_dir

log = logging.getLogger(__name__)

_READ_CHUNK = 500
_TS_FORMAT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
_BACKUP_NAME = re.compile(r"journal-(\d{8}T\d{6}Z)(?:-(\d+))?\.db")

_SCHEMA = """
BEGIN;
CREATE TABLE IF NOT EXISTS journal (
    seq       INTEGER PRIMARY KEY,
    ts        TEXT NOT NULL,
    kind      TEXT NOT NULL,
    task_id   TEXT,
    body      TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS journal_task_id ON journal (task_id);
CREATE TRIGGER IF NOT EXISTS journal_no_update BEFORE UPDATE ON journal
BEGIN SELECT RAISE(ABORT, 'journal entries are append-only: UPDATE refused'); END;
CREATE TRIGGER IF NOT EXISTS journal_no_delete BEFORE DELETE ON journal
BEGIN SELECT RAISE(ABORT, 'journal entries are append-only: DELETE refused'); END;
CREATE TABLE IF NOT EXISTS cursors (
    name TEXT PRIMARY KEY,
    seq  INTEGER NOT NULL
);
COMMIT;
"""
_COLUMNS = "seq, ts, kind, task_id, body, prev_hash, hash"
_INSERT = f"INSERT INTO journal ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"


class JournalError(Exception):
    """The journal cannot do what was asked; the message says why. Nothing was changed."""


@dataclasses.dataclass(frozen=True, slots=True)
class Entry:
    seq: int
    ts: str
    kind: str
    task_id: str | None
    body: dict
    prev_hash: str
    hash: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    first_bad_seq: int | None
    reason: str | None


_json_string = json.encoder.encode_basestring  # what json.dumps uses for strings when ensure_ascii=False


def _append_hash(seq: int, ts: str, kind: str, task_id: str | None, body_json: str, prev_hash: str) -> str:
    """entry_hash for append's hot path: the same canonical text (keys in sorted order), built
    around the already-encoded body so the body is serialised once. verify() uses entry_hash."""
    task = "null" if task_id is None else _json_string(task_id)
    # prev_hash is hex and ts is our own format: neither can hold a character JSON would escape
    text = (
        f'{{"body":{body_json},"kind":{_json_string(kind)},"prev_hash":"{prev_hash}",'
        f'"seq":{seq},"task_id":{task},"ts":"{ts}"}}'
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


_second_prefix: tuple[int, str] = (-1, "")


def utc_timestamp(moment: datetime | None = None) -> str:
    """ISO 8601 UTC with milliseconds, the journal's one timestamp format."""
    global _second_prefix
    if moment is not None:
        return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds")[:-6] + "Z"  # +00:00 -> Z
    # the append path: format the date and time once per second, only the milliseconds each time
    ms = time.time_ns() // 1_000_000
    second, prefix = _second_prefix
    if ms // 1000 != second:
        second = ms // 1000
        prefix = datetime.fromtimestamp(second, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        _second_prefix = (second, prefix)
    return f"{prefix}.{ms % 1000:03d}Z"


def _is_timestamp(ts) -> bool:
    if not isinstance(ts, str) or not _TS_FORMAT.fullmatch(ts):
        return False
    try:
        datetime.fromisoformat(ts[:-1])
    except ValueError:  # e.g. month 13
        return False
    return True


def _entry_from_row(row: tuple) -> Entry:
    seq, ts, kind, task_id, body, prev_hash, hash_ = row
    return Entry(seq, ts, kind, task_id, json.loads(body), prev_hash, hash_)


def _read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(
        path.resolve().as_uri() + "?mode=ro", uri=True, check_same_thread=False, isolation_level=None
    )


def _check_chain(conn: sqlite3.Connection) -> VerifyResult:
    """Walk every row in seq order, recomputing each hash and link; stop at the first bad one."""
    checked = 0
    expected_seq = 1
    prev_hash = GENESIS_HASH
    while True:
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM journal WHERE seq >= ? ORDER BY seq LIMIT ?", (expected_seq, _READ_CHUNK)
        ).fetchall()
        for seq, ts, kind, task_id, body, stored_prev, stored_hash in rows:
            if seq != expected_seq:
                return VerifyResult(
                    False, checked, expected_seq,
                    f"entry {expected_seq} is missing: the journal goes from {expected_seq - 1} to {seq}",
                )
            if stored_prev != prev_hash:
                return VerifyResult(
                    False, checked, seq,
                    f"entry {seq} does not link to entry {seq - 1}: its prev_hash differs from "
                    f"that entry's hash (entry {seq - 1} was altered or replaced)",
                )
            try:
                recomputed = entry_hash(seq, ts, kind, task_id, json.loads(body), stored_prev)
            except (TypeError, ValueError):
                return VerifyResult(False, checked, seq, f"entry {seq} has a body that is not valid JSON")
            if recomputed != stored_hash:
                return VerifyResult(
                    False, checked, seq, f"entry {seq} does not match its hash: its content or hash was edited"
                )
            checked += 1
            expected_seq = seq + 1
            prev_hash = stored_hash
        if len(rows) < _READ_CHUNK:
            break
    # The chain cannot show entries cut from its end; a cursor past the end can (sync acked them).
    beyond = conn.execute(
        "SELECT name, seq FROM cursors WHERE seq > ? ORDER BY seq DESC LIMIT 1", (checked,)
    ).fetchone()
    if beyond:
        return VerifyResult(
            False, checked, checked + 1,
            f"cursor {beyond[0]!r} is at entry {beyond[1]} but the journal ends at {checked}: "
            f"entries after {checked} were removed",
        )
    return VerifyResult(True, checked, None, None)


def verify_file(path: str | os.PathLike) -> VerifyResult:
    """Check the chain of the journal at `path`, opened read-only (for `journal verify --db`).

    Raises JournalError when the file is not a journal at all; a broken chain is a VerifyResult.
    """
    path = Path(path)
    if not path.is_file():
        raise JournalError(f"no journal file at {path}")
    try:
        conn = _read_only(path)
    except sqlite3.Error as exc:
        raise JournalError(f"cannot open {path} as SQLite: {exc}") from exc
    try:
        return _check_chain(conn)
    except sqlite3.OperationalError as exc:
        if not Path(f"{path}-wal").is_file():
            raise JournalError(f"{path} is not a readable journal: {exc}") from exc
    except sqlite3.Error as exc:
        raise JournalError(f"{path} is not a readable journal: {exc}") from exc
    finally:
        conn.close()
    # A WAL without its index (-shm) where none can be made (a write-protected stick, a read-only
    # mount, the copy a technician took after a power cut): check a copy, leaving the files as they are.
    with tempfile.TemporaryDirectory(prefix="journal-verify-") as tmp:
        copy = Path(tmp) / path.name
        shutil.copyfile(path, copy)
        shutil.copyfile(f"{path}-wal", f"{copy}-wal")
        conn = sqlite3.connect(copy, isolation_level=None)
        try:
            return _check_chain(conn)
        except sqlite3.Error as exc:
            raise JournalError(f"{path} is not a readable journal: {exc}") from exc
        finally:
            conn.close()


class Journal:
    """Append-only, hash-chained event log in one SQLite file, shared with the store's tables.

    Writes to other tables in this file go through `journal.db` inside `journal.transaction()`,
    so they commit atomically with the entries that record them.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise JournalError(f"cannot create the journal: directory {self.path.parent} does not exist")
        # Autocommit at the driver level: this class issues BEGIN/COMMIT itself (nested blocks are
        # SAVEPOINTs), and a bare write on the shared connection commits on its own.
        try:
            self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        except sqlite3.Error as exc:
            raise JournalError(f"cannot open the journal at {self.path}: {exc}") from exc
        if mode.lower() != "wal":
            self._conn.close()
            raise JournalError(f"the journal at {self.path} cannot use WAL mode (got {mode!r})")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._conn.executescript(_SCHEMA)
        self.db = self._conn     # the shared write connection, for store tables written with entries
        # Readers use their own connection: in WAL it sees only committed entries, so another
        # thread never reads an entry of a transaction that may still roll back.
        self._reader = _read_only(self.path)
        self._read_lock = threading.Lock()
        self._lock = threading.RLock()
        self._backup_lock = threading.Lock()
        self._subscribers: list[Callable[[Entry], None]] = []
        row = self._conn.execute(f"SELECT {_COLUMNS} FROM journal ORDER BY seq DESC LIMIT 1").fetchone()
        self._head: Entry | None = _entry_from_row(row) if row else None  # last committed
        self._tx_head: Entry | None = self._head  # last written, committed or not
        self._tx_pending: list[Entry] = []
        self._tx_depth = 0

    # -- writing -----------------------------------------------------------------------------

    def append(self, kind: str, body: dict, *, task_id: str | None = None, ts: str | None = None) -> Entry:
        """Append one entry; it is durable when this returns (or at the end of the open transaction).

        The returned entry carries the caller's body as given (not re-parsed: this path runs once per
        fsync and every microsecond counts); its hash covers the body's canonical JSON, which is
        exactly what readers and head office get."""
        if not isinstance(kind, str) or not kind:
            raise JournalError(f"entry kind must be a non-empty string, got {kind!r}")
        if not isinstance(body, dict):
            raise JournalError(f"body of a {kind!r} entry must be a dict, got {type(body).__name__}")
        if task_id is not None and not isinstance(task_id, str):
            raise JournalError(f"task_id of a {kind!r} entry must be a string or None, got {type(task_id).__name__}")
        if ts is None:
            ts = utc_timestamp()
        elif not _is_timestamp(ts):
            raise JournalError(f"ts of a {kind!r} entry must look like 2026-11-22T07:30:00.123Z, got {ts!r}")
        try:
            body_json = canonical(body)
        except (TypeError, ValueError) as exc:
            raise JournalError(f"body of a {kind!r} entry is not JSON-serialisable: {exc}") from exc

        with self._lock:
            prev = self._tx_head
            seq = prev.seq + 1 if prev else 1
            prev_hash = prev.hash if prev else GENESIS_HASH
            hash_ = _append_hash(seq, ts, kind, task_id, body_json, prev_hash)
            entry = Entry(seq, ts, kind, task_id, body, prev_hash, hash_)
            try:
                # Outside a transaction this single INSERT autocommits (and fsyncs the WAL).
                self._conn.execute(_INSERT, (seq, ts, kind, task_id, body_json, prev_hash, hash_))
            except sqlite3.IntegrityError as exc:
                raise JournalError(
                    f"entry {seq} already exists: another process is writing this journal ({self.path})"
                ) from exc
            except sqlite3.Error as exc:
                raise JournalError(f"could not append a {kind!r} entry: {exc}") from exc
            self._tx_head = entry
            if self._tx_depth:
                self._tx_pending.append(entry)
            else:
                self._head = entry
                self._notify([entry])
            return entry

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic, durable unit for store writes and appends; nested blocks are savepoints.

        Other threads' appends wait until the block ends. On an exception everything written in
        the block is rolled back and the chain continues from where it was before. Never `await`
        inside the block: the lock is per thread, so another coroutine's append would join it.
        """
        with self._lock:
            depth = self._tx_depth
            head_before, pending_before = self._tx_head, len(self._tx_pending)
            savepoint = f"journal_{depth}"
            try:
                self._conn.execute("BEGIN IMMEDIATE" if depth == 0 else f"SAVEPOINT {savepoint}")
            except sqlite3.Error as exc:
                raise JournalError(f"could not start a transaction on {self.path}: {exc}") from exc
            self._tx_depth += 1
            try:
                yield
            except BaseException:
                self._tx_depth -= 1
                self._tx_head = head_before
                del self._tx_pending[pending_before:]
                if depth == 0:
                    self._rollback()
                elif self._conn.in_transaction:
                    self._conn.execute(f"ROLLBACK TO {savepoint}")
                    self._conn.execute(f"RELEASE {savepoint}")
                raise
            self._tx_depth -= 1
            if depth:
                self._conn.execute(f"RELEASE {savepoint}")
                return
            try:
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                self._tx_head, self._tx_pending = head_before, []
                raise JournalError(f"could not commit the transaction: {exc}") from exc
            committed, self._tx_pending = self._tx_pending, []
            if committed:
                self._head = committed[-1]
                self._notify(committed)

    def _rollback(self) -> None:
        # An error may already have ended the transaction inside SQLite.
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    def subscribe(self, callback: Callable[[Entry], None]) -> None:
        """Call `callback(entry)` after each entry commits, in journal order. Keep it quick."""
        with self._lock:
            self._subscribers.append(callback)

    def _notify(self, entries: list[Entry]) -> None:
        for entry in entries:
            for callback in self._subscribers:
                try:
                    callback(entry)
                except Exception:
                    # Bodies may carry personal data: log only where it happened.
                    log.exception("journal subscriber %r failed on entry %d (%s)", callback, entry.seq, entry.kind)

    def set_cursor(self, name: str, seq: int) -> None:
        """Persist a named position in the journal (sync's acknowledged seq)."""
        if not isinstance(name, str) or not name:
            raise JournalError(f"cursor name must be a non-empty string, got {name!r}")
        with self._lock:
            last = self._tx_head.seq if self._tx_head else 0
            if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq <= last:
                raise JournalError(f"cursor {name!r} must be a seq between 0 and {last}, got {seq!r}")
            self._conn.execute(
                "INSERT INTO cursors (name, seq) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET seq = excluded.seq",
                (name, seq),
            )

    def get_cursor(self, name: str) -> int:
        """The persisted position named `name`; 0 if it was never set."""
        with self._lock:
            row = self._conn.execute("SELECT seq FROM cursors WHERE name = ?", (name,)).fetchone()
        return row[0] if row else 0

    # -- reading (committed entries only) ------------------------------------------------------

    def entries(self, after_seq: int = 0, limit: int | None = None) -> Iterator[Entry]:
        """Committed entries with seq > after_seq, in order; at most `limit` of them."""
        remaining = limit
        while remaining is None or remaining > 0:
            chunk = _READ_CHUNK if remaining is None else min(_READ_CHUNK, remaining)
            with self._read_lock:
                rows = self._reader.execute(
                    f"SELECT {_COLUMNS} FROM journal WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, chunk)
                ).fetchall()
            for row in rows:
                yield _entry_from_row(row)
            if len(rows) < chunk:
                return
            after_seq = rows[-1][0]
            if remaining is not None:
                remaining -= len(rows)

    def stored_rows(self, after_seq: int, limit: int) -> list[tuple]:
        """Up to `limit` committed entries after `after_seq` as stored: (seq, ts, kind, task_id, body as its
        canonical JSON text, prev_hash, hash). For sync, which sends the body on as it is: parsing it only
        to encode it again was most of the cost of a drain."""
        with self._read_lock:
            return self._reader.execute(
                f"SELECT {_COLUMNS} FROM journal WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit)
            ).fetchall()

    def entries_for_task(self, task_id: str) -> list[Entry]:
        with self._read_lock:
            rows = self._reader.execute(
                f"SELECT {_COLUMNS} FROM journal WHERE task_id = ? ORDER BY seq", (task_id,)
            ).fetchall()
        return [_entry_from_row(row) for row in rows]

    def last_of(self, kinds: tuple[str, ...]) -> Entry | None:
        """The last committed entry of one of these kinds (what the screen last showed, at a restart)."""
        marks = ",".join("?" * len(kinds))
        with self._read_lock:
            row = self._reader.execute(
                f"SELECT {_COLUMNS} FROM journal WHERE kind IN ({marks}) ORDER BY seq DESC LIMIT 1", kinds
            ).fetchone()
        return _entry_from_row(row) if row else None

    def head(self) -> Entry | None:
        """The last committed entry, or None for an empty journal."""
        return self._head

    def last_seq(self) -> int:
        head = self._head
        return head.seq if head else 0

    def verify(self) -> VerifyResult:
        """Recompute every hash and link; the result names the first bad entry."""
        return verify_file(self.path)  # its own connection: readers are not held up meanwhile

    # -- backups -------------------------------------------------------------------------------

    def backup(self, dest_dir: str | os.PathLike, keep: int = 7) -> Path:
        """Consistent, verified copy of the whole file into dest_dir; keeps the newest `keep` copies."""
        dest_dir = Path(dest_dir)
        if not isinstance(keep, int) or keep < 1:
            raise JournalError(f"backup keep must be a whole number of at least 1, got {keep!r}")
        if not dest_dir.is_dir():
            raise JournalError(f"backup directory {dest_dir} does not exist")
        with self._backup_lock:
            for leftover in dest_dir.glob("journal-*.db.partial"):  # from a backup cut short
                leftover.unlink()
            final = self._backup_name(dest_dir)
            partial = final.with_name(final.name + ".partial")
            try:
                self._copy_to(partial)
                result = verify_file(partial)
                if not result.ok:
                    raise JournalError(f"backup copy {final.name} failed verification: {result.reason}")
                os.replace(partial, final)
                fsync_dir(dest_dir)
            finally:
                partial.unlink(missing_ok=True)
            self._rotate(dest_dir, keep)
        return final

    def _copy_to(self, partial: Path) -> None:
        dest = sqlite3.connect(partial, isolation_level=None)
        try:
            # One step copies a single consistent snapshot; appends continue meanwhile (WAL).
            with self._read_lock:
                self._reader.backup(dest)
            # A standalone file: no -wal/-shm beside the copy.
            dest.execute("PRAGMA journal_mode=DELETE")
        except sqlite3.Error as exc:
            raise JournalError(f"could not copy the journal to {partial.parent}: {exc}") from exc
        finally:
            dest.close()
        fd = os.open(partial, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    @staticmethod
    def _backup_copies(dest_dir: Path) -> list[tuple[tuple[str, int], Path]]:
        """This journal's backups in dest_dir, oldest first, keyed by (timestamp, counter)."""
        copies = []
        for path in dest_dir.iterdir():
            match = _BACKUP_NAME.fullmatch(path.name)
            if match:
                copies.append(((match[1], int(match[2] or 1)), path))
        return sorted(copies)

    def _backup_name(self, dest_dir: Path) -> Path:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        # A second backup within the same second gets a counter after every earlier one.
        taken = [n for (other, n), _ in self._backup_copies(dest_dir) if other == stamp]
        if not taken:
            return dest_dir / f"journal-{stamp}.db"
        return dest_dir / f"journal-{stamp}-{max(taken) + 1}.db"

    def _rotate(self, dest_dir: Path, keep: int) -> None:
        for _, path in self._backup_copies(dest_dir)[:-keep]:
            path.unlink()

    def close(self) -> None:
        with self._lock, self._read_lock:
            self._reader.close()
            self._conn.close()
