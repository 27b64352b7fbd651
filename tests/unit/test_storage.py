"""The free-space threshold (paths.min_free_mb) and what counts as a storage failure (agent.storage)."""
from __future__ import annotations

import errno
import sqlite3

import pytest

from agent.config import ConfigError, load_config
from agent.journal import JournalError
from agent.storage import is_storage_error


def config_with(tmp_path, line: str):
    f = tmp_path / "agent.toml"
    f.write_text(f'[site]\nid = "BR-001"\ntype = "branch"\n[paths]\nstate_dir = "s"\n{line}\n', encoding="utf-8")
    return load_config(f)


def test_min_free_mb_has_a_sane_default_and_can_be_set(tmp_path):
    assert config_with(tmp_path, "").paths.min_free_mb == 64
    assert config_with(tmp_path, "min_free_mb = 200").paths.min_free_mb == 200


@pytest.mark.parametrize("value", ["0", "-5", '"64"', "1.5", "true"])
def test_a_wrong_min_free_mb_is_refused_naming_the_key(tmp_path, value):
    with pytest.raises(ConfigError, match="paths.min_free_mb"):
        config_with(tmp_path, f"min_free_mb = {value}")


@pytest.mark.parametrize("exc, storage", [
    (sqlite3.OperationalError("database or disk is full"), True),
    (sqlite3.OperationalError("disk I/O error"), True),
    (JournalError("could not append a 'x' entry: database or disk is full"), True),
    (OSError(errno.ENOSPC, "No space left on device"), True),
    (sqlite3.OperationalError("database is locked"), False),
    (JournalError("entry kind must be a non-empty string, got ''"), False),
    (ValueError("disk is full"), False),
])
def test_only_a_full_or_failing_disk_counts_as_a_storage_failure(exc, storage):
    assert is_storage_error(exc) is storage
