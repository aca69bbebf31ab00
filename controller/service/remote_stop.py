"""The daemon's one remote input (SR-13): "stop the running session", from the MQTT bridge.

A Unix datagram socket `<runtime_dir>/stop.sock`, mode 0660: the daemon's user owns it and
its group (the daemon's group, which the bridge's unit adds to the bridge's user: it needs that
group to read the journal anyway) may write; nobody else may. And because a person may be in
that group too (to read the journal without sudo), the kernel's account of who sent each
datagram (SO_PASSCRED) must name the bridge's user `irlamp-bridge`, the daemon's own user or
root; a request from anyone else is ignored and counted. No network is involved: the daemon
keeps `PrivateNetwork=yes`, AF_UNIX sockets on the file system still work.

Promises:
- `take()` never blocks: it drains at most `MAX_DATAGRAMS_PER_STEP` waiting datagrams and says
  whether one of them was exactly `STOP_REQUEST`. The control loop calls it every 0.2 s
  (`daemon.REMOTE_STOP_LOOK_S`; each call is a system call, not worth making at every step)
  and hands the answer to the safety decision as an input (`StepInputs.remote_stop`), which
  ends a running session like a button stop press and does nothing without one.
- Every other datagram (any other bytes, empty, too long) is ignored and counted; the log gets
  at most one line per `LOG_EVERY_S` about them, with the running count.
- There is no request to start a session, acknowledge a fault or change a setting: the
  protocol has no words for them.
- A channel that cannot be opened (no runtime directory) is logged once; the lamp is unaffected
  and remote STOP is simply unavailable.
"""

from __future__ import annotations

import logging
import os
import pwd
import socket
import struct
import time
from pathlib import Path

log = logging.getLogger("irlamp")

STOP_SOCKET_FILENAME = "stop.sock"
STOP_REQUEST = b"irlamp stop-session v1"
BRIDGE_USER = "irlamp-bridge"
_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
SOCKET_MODE = 0o660
MAX_DATAGRAMS_PER_STEP = 64
MAX_DATAGRAM_BYTES = 512
LOG_EVERY_S = 60.0


def stop_socket_path(runtime_dir: str | Path) -> Path:
    return Path(runtime_dir) / STOP_SOCKET_FILENAME


class IgnoredInputs:
    """Counts inputs that were not the one accepted request; logs at most once per `every_s`."""

    def __init__(self, what: str, logger: logging.Logger = log, monotonic=time.monotonic, every_s: float = LOG_EVERY_S):
        self.what, self.log, self.monotonic, self.every_s = what, logger, monotonic, every_s
        self.count = 0
        self._logged = 0
        self._last_log_s = float("-inf")

    def add(self, n: int = 1) -> None:
        self.count += n
        now = self.monotonic()
        if self.count == self._logged or now - self._last_log_s < self.every_s:
            return
        self._last_log_s = now
        self.log.warning(
            "%s: ignored %d input(s) that were not a stop request (%d in total)",
            self.what,
            self.count - self._logged,
            self.count,
        )
        self._logged = self.count


class RemoteStopChannel:
    """The daemon's end: bound, non-blocking, read from the control loop."""

    def __init__(self, path: Path, allowed_uids: frozenset[int], monotonic=time.monotonic):
        self.path = Path(path)
        self.allowed_uids = allowed_uids
        self.ignored = IgnoredInputs(f"remote stop channel {self.path}", monotonic=monotonic)
        self.accepted = 0
        self.path.unlink(missing_ok=True)  # a socket left by a crashed daemon
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self._sock.setblocking(False)
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            self._sock.bind(str(self.path))  # umask 0022: nobody but the owner can write yet
            os.chmod(self.path, SOCKET_MODE)
        except OSError:
            self._sock.close()
            raise

    def take(self) -> bool:
        """True when a stop request arrived since the last call. Never blocks."""
        stop = False
        rejected = 0
        for _ in range(MAX_DATAGRAMS_PER_STEP):
            try:
                data, ancdata, _flags, _address = self._sock.recvmsg(
                    MAX_DATAGRAM_BYTES + 1, socket.CMSG_SPACE(_UCRED.size)
                )
            except (BlockingIOError, InterruptedError):
                break
            if data == STOP_REQUEST and _sender_uid(ancdata) in self.allowed_uids:
                stop = True
                self.accepted += 1
            else:
                rejected += 1
        if rejected:
            self.ignored.add(rejected)
        return stop

    @property
    def rejected(self) -> int:
        return self.ignored.count

    def close(self) -> None:
        self._sock.close()
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("cannot remove %s: %s", self.path, exc)


def _sender_uid(ancdata) -> int | None:
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and len(data) >= _UCRED.size:
            return _UCRED.unpack_from(data)[1]
    return None


def allowed_sender_uids() -> frozenset[int]:
    """root, the daemon's own user, and the bridge's user if it exists."""
    try:
        bridge = {pwd.getpwnam(BRIDGE_USER).pw_uid}
    except KeyError:  # no bridge installed: only root and the daemon's own user
        bridge = set()
    return frozenset({0, os.getuid(), *bridge})


def open_remote_stop(runtime_dir: str | Path | None) -> RemoteStopChannel | None:
    """The channel in `runtime_dir`, or None (logged) when it cannot be made there."""
    if runtime_dir is None:
        return None
    path = stop_socket_path(runtime_dir)
    try:
        return RemoteStopChannel(path, allowed_sender_uids())
    except OSError as exc:
        log.warning("remote stop unavailable: cannot open %s: %s", path, exc.strerror or exc)
        return None


def send_stop_request(path: str | Path) -> None:
    """The bridge's end: one datagram. Raises OSError when the daemon is not listening."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.sendto(STOP_REQUEST, str(path))
