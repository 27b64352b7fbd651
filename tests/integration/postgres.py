"""A real PostgreSQL for head office's tests: a throwaway cluster (Debian's postgresql 15) in a temp dir on a
free port, run as the unprivileged `postgres` user (initdb refuses root). `kill()` is SIGKILL of the
postmaster (its backends follow it out), `start()` again recovers from the WAL."""
from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import pytest

BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(*argv: str) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else list(argv)


_POSTGRES_USER = {"user": "postgres", "group": "postgres", "extra_groups": []} if os.geteuid() == 0 else {}


class Postgres:
    def __init__(self):
        # Not under pytest's tmp_path: its parents are root's 0700 directories the postgres user cannot enter.
        self.folder = Path(tempfile.mkdtemp(prefix="hq-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
        self.data = self.folder / "data"
        self.port = free_port()
        self.url = f"postgresql://app@127.0.0.1:{self.port}/postgres"
        self.proc: subprocess.Popen | None = None
        subprocess.run(_as_postgres(str(BIN / "initdb"), "-D", str(self.data), "-U", "app", "--auth=trust",
                                    "-E", "UTF8", "--no-sync"), check=True, capture_output=True)

    def start(self) -> "Postgres":
        """Start the server as our own child (so a killed one is reaped at once, not left a zombie whose
        pid keeps postmaster.pid looking alive) and wait until it accepts connections."""
        log = open(self.folder / "log", "ab")
        self.proc = subprocess.Popen([str(BIN / "postgres"), "-D", str(self.data), "-p", str(self.port),
                                      "-k", str(self.folder), "-c", "listen_addresses=127.0.0.1"],
                                     stdout=log, stderr=log, **_POSTGRES_USER)
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited: {(self.folder / 'log').read_text()[-2000:]}")
            ready = subprocess.run([str(BIN / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)])
            if ready.returncode == 0:
                return self
            time.sleep(0.05)
        raise RuntimeError("PostgreSQL did not accept connections within 60 s")

    def kill(self) -> None:
        """kill -9 of the postmaster; returns once its backends have gone too, so it can start again."""
        if self.proc is None or self.proc.poll() is not None:
            return
        backends = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout.split()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        deadline = time.monotonic() + 30
        while any(_alive(int(pid)) for pid in backends):
            if time.monotonic() > deadline:
                raise RuntimeError("PostgreSQL backends did not exit after the postmaster was killed")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)       # "fast" shutdown
            self.proc.wait(60)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    """Running, not a zombie (a reparented backend may stay a zombie where nobody reaps it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


# Fixtures for head office's tests, imported by name (`from postgres import db_url, postgres`), as
# pcsc_fixtures' and mqtt_fixtures' are.

@pytest.fixture(scope="module")
def postgres():
    pg = Postgres().start()
    yield pg
    pg.remove()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """Head office's database on both engines: a SQLite file, or a fresh database in the module's cluster."""
    if request.param == "sqlite":
        return str(tmp_path / "hq.db")
    return fresh_database(request.getfixturevalue("postgres"))


def fresh_database(pg: Postgres) -> str:
    name = f"hq_{random.getrandbits(40):x}"
    with psycopg.connect(pg.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return pg.url.rsplit("/", 1)[0] + "/" + name
