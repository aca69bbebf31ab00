"""One daemon per lamp: exclusive locks on the state directory and on the status file.

Two daemons on one journal would each close the other's open session as "cut off by a
crash", overwrite each other's status file and latch false faults; two daemons writing one
status file (different journals, same runtime directory) would make `irlamp status` report
whichever wrote last. So every writer (`irlamp run`, `irlamp simulate --state-dir`,
`irlamp journal recover`) takes, before it touches anything else:

- `<state_dir>/irlamp.lock`, and
- `<status file>.lock` beside the status file it will write,

each with `flock(LOCK_EX | LOCK_NB)`, held until the process ends. A second writer is refused
at once with `DirectoryBusy` (one line naming the directory and the holder's pid).

Why flock and not a pid file: the kernel drops a flock when the process dies, however it dies
(SIGKILL, watchdog abort, crash, power cut: the lock is not on disk), so there is never a stale
lock to clean up by hand and no guessing whether a pid written before a reboot now belongs to
some unrelated process. The pid written into the lock file is only for the message.
flock, not fcntl/lockf: POSIX record locks are per process and silently released when the
process closes ANY descriptor of the file (SQLite opens and closes its own), flock locks
belong to the open file description.

Readers (`irlamp status`, `irlamp history`) never take these locks. The lock files are mode
0600: a caregiver who may read the state directory cannot open them, so cannot hold them.
"""

from __future__ import annotations

import errno
import fcntl
import os
from dataclasses import dataclass, field
from pathlib import Path

from controller.service.storage import storage_error

STATE_LOCK_FILENAME = "irlamp.lock"
LOCK_SUFFIX = ".lock"


class DirectoryBusy(Exception):
    """Another irlamp process holds the lock. The message is one line."""


class LockUnavailable(Exception):
    """The lock file `path` cannot be created or opened (permissions, read-only, full disk)."""

    def __init__(self, message: str, path: Path):
        super().__init__(message)
        self.path = path


def adopt_directory_owner(path: Path, directory: Path | None = None) -> None:
    """Run as root (sudo) in a directory that belongs to another user (the irlamp user's state
    directory; default: `path`'s own): give `path` to that user and group, so that the daemon
    can still open it."""
    if os.geteuid() != 0:
        return
    owner = (directory or path.parent).stat()
    if owner.st_uid != 0:
        os.chown(path, owner.st_uid, owner.st_gid)


def _holder_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _lock_file(path: Path, what: str) -> int:
    """Open and exclusively flock `path`; return the descriptor. Raises DirectoryBusy or
    LockUnavailable."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        adopt_directory_owner(path)
    except OSError as exc:
        raise LockUnavailable(f"cannot create the lock file {path}: {exc.strerror or exc}", path) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        pid = _holder_pid(fd)
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            holder = f"pid {pid}" if pid else "another process"
            raise DirectoryBusy(
                f"{what} is in use by another irlamp ({holder}): only one daemon "
                f"per lamp. Stop that one first (sudo systemctl stop irlamp), or "
                f"give this one its own --state-dir and --runtime-dir"
            ) from exc
        raise LockUnavailable(f"cannot lock {path}: {exc.strerror or exc}", path) from exc
    try:  # for the message a second process prints; the lock itself is the flock
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError:
        pass  # a full disk must not stop the lock: the pid is only informative
    return fd


@dataclass
class WriterLock:
    """The locks one writer holds; `release()` (or process exit) drops them."""

    paths: list[Path] = field(default_factory=list)
    _fds: list[int] = field(default_factory=list)

    def release(self) -> None:
        while self._fds:
            os.close(self._fds.pop())

    def __enter__(self) -> WriterLock:
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()


def lock_for_writing(state_dir: str | Path, status_file: str | Path | None = None) -> WriterLock:
    """Take the state directory's lock and, if given, the status file's; all or nothing.
    The state directory must exist."""
    state_dir = Path(state_dir)
    held = WriterLock()
    targets = [(state_dir / STATE_LOCK_FILENAME, f"state directory {state_dir}")]
    if status_file is not None:
        status_file = Path(status_file)
        targets.append((status_file.with_name(status_file.name + LOCK_SUFFIX), f"status file {status_file}"))
    try:
        for path, what in targets:
            held._fds.append(_lock_file(path, what))
            held.paths.append(path)
    except BaseException:
        held.release()
        raise
    return held


def lock_state_dir(state_dir: str | Path, status_file: str | Path | None = None) -> WriterLock:
    """Create the state directory if needed and take the writer locks. Raises DirectoryBusy
    when another irlamp holds them, StorageError (one line with a fix) when the directory or
    its lock file cannot be used."""
    state_dir = Path(state_dir)
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        return lock_for_writing(state_dir, status_file)
    except OSError as exc:
        raise storage_error(state_dir, exc, "use it as the state directory") from exc
    except LockUnavailable as exc:
        raise storage_error(exc.path, exc.__cause__ or exc, "open it (irlamp's lock file)") from exc
