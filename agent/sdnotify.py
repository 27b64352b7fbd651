"""A tiny sd_notify client: tells systemd the agent is ready, alive, and stopping.

The protocol is one datagram to the unix socket named by $NOTIFY_SOCKET (a leading '@' means the
abstract namespace). Outside systemd the variable is unset and every call does nothing.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, address: str | None = None):
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET")
        self._address: str | None = None
        if address:
            self._address = "\0" + address[1:] if address.startswith("@") else address
        self._sock: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, state: str) -> None:
        if self._address is None:
            return
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(state.encode(), self._address)
        except OSError as e:
            # systemd going away must not take the agent down; the watchdog will notice.
            log.warning("sd_notify %s failed: %s", state.split("=", 1)[0], e)

    def ready(self) -> None:
        self.notify("READY=1")

    def watchdog(self) -> None:
        self.notify("WATCHDOG=1")

    def status(self, text: str) -> None:
        self.notify("STATUS=" + text.replace("\n", " "))

    def stopping(self) -> None:
        self.notify("STOPPING=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval(default: float | None = None) -> float | None:
    """Half of $WATCHDOG_USEC in seconds (systemd's advice), if the watchdog is on for this process."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return default
    try:
        return int(usec) / 1_000_000 / 2
    except ValueError:
        return default


async def watchdog_loop(notifier: Notifier, interval: float | None = None) -> None:
    """Ping WATCHDOG=1 from the event loop itself, so a blocked loop stops pinging and gets restarted."""
    interval = interval if interval is not None else watchdog_interval()
    if interval is None or not notifier.enabled:
        return
    while True:
        notifier.watchdog()
        await asyncio.sleep(interval)
