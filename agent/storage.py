"""Free space on the state dir is a state the terminal shows and acts on, not a crash (issue 19 item 8).

Below `min_free` the terminal refuses new handovers while the journal can still record that it did;
the one running may finish. A reserve file, held while space is plentiful, is given back when space
runs low or the journal cannot open or write, so the agent can record that, finish, and start on a
disk that filled up; it is taken again once space returns.
"""
from __future__ import annotations

import errno
import logging
import os
import shutil
import sqlite3
from pathlib import Path

from agent.journal import Journal, JournalError

log = logging.getLogger("handover.storage")

MIB = 1024 * 1024
RESERVE_NAME = "storage.reserve"
RESERVE_BYTES = 1 * MIB


_STORAGE_MESSAGES = ("database or disk is full", "disk I/O error", "No space left on device")


def is_storage_error(exc: BaseException) -> bool:
    """A write failed for want of space (or a failing disk), not for a bug: say so, don't crash."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO):
        return True
    if isinstance(exc, (JournalError, sqlite3.OperationalError)):
        return any(m in str(exc) for m in _STORAGE_MESSAGES)
    return False


class Storage:
    def __init__(self, state_dir: str | os.PathLike, min_free_bytes: int, reserve_bytes: int = RESERVE_BYTES):
        self.dir = Path(state_dir)
        self.min_free = min_free_bytes
        self.reserve_bytes = reserve_bytes
        self.reserve = self.dir / RESERVE_NAME
        self.write_failed: str | None = None     # the last journal write that failed, until space returns
        self.free = self.free_bytes()
        self.low = self.free < self.min_free

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.dir).free

    def open_journal(self, path: str | os.PathLike) -> Journal:
        """The journal, even on a full disk: give back the reserve and try once more."""
        try:
            journal = Journal(path)
        except JournalError as exc:
            if not self.release_reserve():
                raise
            log.warning("journal could not open (%s): released the storage reserve", exc)
            journal = Journal(path)
        self.check()
        return journal

    def check(self) -> bool:
        """Look at free space now; True when the state (low or not) changed."""
        self.free = self.free_bytes()
        if not self.reserve.exists() and self.free >= self.min_free + self.reserve_bytes:
            self._take_reserve()
            self.free = self.free_bytes()
        low = self.free < self.min_free or (self.write_failed is not None and self.free < self.min_free + self.reserve_bytes)
        if low and not self.low and self.release_reserve():
            self.free = self.free_bytes()     # room to record this, and to finish the handover running
        if not low:
            self.write_failed = None
        changed, self.low = low != self.low, low
        return changed

    def failed(self, error: Exception) -> None:
        """A journal write failed: nothing more is started until space returns."""
        self.write_failed = str(error)
        self.release_reserve()
        self.low = True

    def describe(self) -> str:
        text = f"free {self.free // 1024} KiB, needs {self.min_free // 1024} KiB"
        return f"{text}; last write failed: {self.write_failed}" if self.write_failed else text

    def release_reserve(self) -> bool:
        try:
            self.reserve.unlink()
        except FileNotFoundError:
            return False
        return True

    def _take_reserve(self) -> None:
        tmp = self.reserve.with_suffix(".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.posix_fallocate(fd, 0, self.reserve_bytes)
            finally:
                os.close(fd)
            os.replace(tmp, self.reserve)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            log.warning("could not set aside the storage reserve: %s", exc)
