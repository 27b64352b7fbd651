"""A real pcscd with vsmartcard's vpcd readers, and virtual cards to put on them.

Only one pcscd can run per machine (its socket path is fixed), so tests using these fixtures must
not run in parallel with each other (marker `pcsc`).
"""
from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import socket
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from smartcard import scard

from drivers.cards.virtual_card import VirtualCard

VPCD_READER = "Virtual PCD 00 00"
VPCD_PORT = 35963


def _pcscd_running() -> bool:
    return subprocess.run(["pgrep", "-x", "pcscd"], capture_output=True).returncode == 0


def _readers() -> list[str]:
    hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hresult != scard.SCARD_S_SUCCESS:
        return []
    try:
        hresult, readers = scard.SCardListReaders(context, [])
        return readers if hresult == scard.SCARD_S_SUCCESS else []
    finally:
        scard.SCardReleaseContext(context)


def wait_reader_empty(reader: str = VPCD_READER, timeout: float = 10.0) -> None:
    """Block until pcscd sees no card on `reader` (vpcd notices a card left within ~0.5 s): a card
    put on before that would look, to pcscd, like the one that left."""
    hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    assert hresult == scard.SCARD_S_SUCCESS, "pcscd is not running"
    try:
        state, deadline = scard.SCARD_STATE_UNAWARE, time.monotonic() + timeout
        while not state & scard.SCARD_STATE_EMPTY:
            assert time.monotonic() < deadline, f"a card stayed on {reader}"
            hresult, states = scard.SCardGetStatusChange(context, 500, [(reader, state)])
            if hresult == scard.SCARD_S_SUCCESS:
                state = states[0][1] & ~scard.SCARD_STATE_CHANGED
    finally:
        scard.SCardReleaseContext(context)


class Pcscd:
    """pcscd in the foreground, owned by the test; `kill()` and `start()` play a crash and restart."""

    def __init__(self, log_path: Path):
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        # vpcd listens on fixed TCP ports (35963...), inside the kernel's ephemeral range: on a busy machine a
        # client connection (a browser, an MQTT session) may hold one as its local port, TIME_WAIT included,
        # and vpcd's bind then fails. That clears within a minute, so a failed start is stopped (never left
        # running to block every later PC/SC test) and tried again for up to 90 s.
        give_up = time.monotonic() + 90
        while True:
            try:
                self._start_once()
                return
            except RuntimeError:
                self.kill()
                if time.monotonic() > give_up or "Address already in use" not in self._log_tail():
                    raise
                time.sleep(2)

    def _log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""

    def _start_once(self) -> None:
        deadline = time.monotonic() + 10
        while _pcscd_running():     # a previous pcscd (ours, killed) may still be exiting
            if time.monotonic() > deadline:
                raise RuntimeError("another pcscd is running on this machine; PC/SC tests need it stopped")
            time.sleep(0.05)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(["pcscd", "-f"], stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 10
        while VPCD_READER not in _readers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"pcscd did not offer the vpcd readers; see {self.log_path}:\n" + self._log_tail())
            time.sleep(0.01)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None


@contextlib.contextmanager
def machine_lock():
    """One pcscd per machine, and vpcd's TCP ports are the machine's: PC/SC tests of every test run
    (two checkouts, two sessions) take turns. A lock file serves runs that share /tmp; an abstract
    socket name, which belongs to the network namespace, also serves a root of its own on the same
    machine (a chroot, as the fresh-machine probe makes). Both are let go when the process dies."""
    with open("/tmp/handover-pcscd.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as name:
            while True:
                try:
                    name.bind("\0handover-pcscd.lock")
                    break
                except OSError as e:
                    if e.errno != errno.EADDRINUSE:
                        raise
                    time.sleep(0.1)
            yield


@pytest.fixture
def pcscd(tmp_path):
    if shutil.which("pcscd") is None:
        pytest.fail("pcscd is not installed (apt-get install --no-install-recommends pcscd vsmartcard-vpcd)")
    if not Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so").exists():
        pytest.fail("vsmartcard-vpcd is not installed (apt-get install --no-install-recommends vsmartcard-vpcd)")
    with machine_lock():
        daemon = Pcscd(tmp_path / "pcscd.log")
        daemon.start()
        try:
            yield daemon
        finally:
            daemon.stop()


@pytest.fixture
def cards():
    """Factory for virtual cards on the first vpcd reader; every card is removed at teardown."""
    made: list[VirtualCard] = []

    def make(uid: str, **kwargs) -> VirtualCard:
        card = VirtualCard(uid, port=VPCD_PORT, **kwargs)
        made.append(card)
        return card

    yield make
    for card in made:
        card.remove()


class Events:
    """Collects what a driver emits and lets a test wait for the event it expects."""

    def __init__(self):
        self.items: list = []
        self._changed = asyncio.Event()

    def __call__(self, event) -> None:
        self.items.append(event)
        self._changed.set()

    def of(self, kind) -> list:
        return [e for e in self.items if isinstance(e, kind)]

    async def wait_for(self, predicate, timeout: float = 10.0, since: int = 0):
        """The first event from index `since` on that matches; TimeoutError if none comes."""
        async def first_match():
            while True:
                for event in self.items[since:]:
                    if predicate(event):
                        return event
                self._changed.clear()
                await self._changed.wait()
        return await asyncio.wait_for(first_match(), timeout)
