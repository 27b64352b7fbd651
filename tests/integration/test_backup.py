"""The scheduled backup: a consistent, verified copy while the agent keeps journaling, rotated."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest

from agent.backup import run_backup
from agent.config import load_config
from agent.journal import Journal, JournalError, verify_file


def config_for(tmp_path: Path, keep: int = 3):
    toml = tmp_path / "handover.toml"
    toml.write_text(f'[site]\nid = "b1"\n[paths]\nstate_dir = "{tmp_path / "state"}"\n[backup]\nkeep = {keep}\n')
    (tmp_path / "state").mkdir()
    return load_config(toml)


def test_backup_while_another_writer_appends_verifies_and_rotates(tmp_path):
    config = config_for(tmp_path, keep=3)
    agent = Journal(config.paths.journal_path)     # the running agent's own connection
    agent.append("boot", {"n": 0})
    stop = threading.Event()
    appended: list[int] = []

    def handovers() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            agent.append("box_read", {"tag": f"T{n:05d}", "pad": "x" * 200}, task_id=f"task-{n % 7}")
            appended.append(n)

    writer = threading.Thread(target=handovers)
    writer.start()
    try:
        copies = []
        while len(copies) < 5:
            copies.append(run_backup(config))
    finally:
        stop.set()
        writer.join()

    assert len(appended) > 0
    kept = sorted(config.paths.backups_dir.glob("journal-*.db"))
    assert kept == sorted(copies[-3:])                      # rotation keeps the newest `keep`
    counts = [verify_file(c).checked for c in copies[-3:]]
    assert all(verify_file(c).ok for c in kept)
    assert counts == sorted(counts) and counts[-1] >= 1     # each copy a consistent, growing prefix
    assert verify_file(config.paths.journal_path).ok
    agent.close()


def test_backup_refuses_when_there_is_no_journal_and_creates_none(tmp_path):
    config = config_for(tmp_path)
    with pytest.raises(JournalError, match="no journal at .*journal.db to back up"):
        run_backup(config)
    assert not config.paths.journal_path.exists()
