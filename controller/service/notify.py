"""systemd's notify protocol (sd_notify) over $NOTIFY_SOCKET; a no-op when it is unset.

READY=1 once the control loop runs, WATCHDOG=1 only from a healthy loop, STOPPING=1 on
shutdown, STATUS=... with a one-line state. Errors sending are swallowed on purpose only
in the sense that they are logged once: systemd's own watchdog then notices the silence.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger("irlamp.notify")


class SystemdNotifier:
    def __init__(self, address: str | None = None):
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        self.address = "\0" + address[1:] if address.startswith("@") else address
        self._sock: socket.socket | None = None
        self._warned = False
        if self.address:
            # Non-blocking: the control loop sends these, and must never wait on a full queue
            # (a busy PID 1); a dropped WATCHDOG=1 is what systemd's watchdog is there to judge.
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, *lines: str) -> bool:
        if self._sock is None:
            return False
        try:
            self._sock.sendto("\n".join(lines).encode(), self.address)
            return True
        except OSError as exc:
            if not self._warned:
                log.warning("cannot notify systemd at %r: %s", self.address, exc)
                self._warned = True
            return False

    def ready(self, status: str) -> bool:
        return self.send("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def status(self, status: str) -> bool:
        return self.send(f"STATUS={status}")

    def stopping(self, status: str = "stopping") -> bool:
        return self.send("STOPPING=1", f"STATUS={status}")

    def watchdog_interval_s(self) -> float | None:
        """Half of systemd's WatchdogSec (WATCHDOG_USEC), when it applies to this process."""
        usec = os.environ.get("WATCHDOG_USEC")
        pid = os.environ.get("WATCHDOG_PID")
        if not usec or (pid and pid != str(os.getpid())):
            return None
        return int(usec) / 2e6

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
