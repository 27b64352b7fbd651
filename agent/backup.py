"""Scheduled journal backups (`handover-agent backup`, run by handover-backup.timer).

The copy is made with SQLite's online backup API while the agent keeps appending, verified
(hash chain) before it replaces anything, and rotated to the newest `backup.keep` copies.
"""
from __future__ import annotations

from pathlib import Path

from agent.config import Config
from agent.journal import Journal, JournalError


def run_backup(config: Config) -> Path:
    """Copy the journal into paths.backups_dir; returns the verified copy. Raises JournalError."""
    source = config.paths.journal_path
    if not source.is_file():
        # Opening a Journal would create an empty one: a backup must never invent a journal.
        raise JournalError(f"no journal at {source} to back up (has the agent run yet?)")
    dest = config.paths.backups_dir
    dest.mkdir(mode=0o700, parents=True, exist_ok=True)
    journal = Journal(source)
    try:
        return journal.backup(dest, keep=config.backup.keep)
    finally:
        journal.close()
