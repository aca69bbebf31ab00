"""Caregiver-grade messages for storage trouble: full disk, read-only or foreign state
directory, permission problems, disk I/O errors and a damaged journal.

`explain_storage_error(path, exc, action)` turns an OSError or a sqlite3.Error into one line
that names the file or directory, says what is wrong in plain words and what to do, and points
to the README's "Recovery" section. `storage_problem(exc, path)` is the bare classification.
No I/O beyond `os.stat`/`os.statvfs`/`os.access` on the path named (to tell a full disk from a
failing card, and to say who owns what).
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import sqlite3
import stat
from pathlib import Path

DISK_FULL, IO_ERROR, READ_ONLY, PERMISSION, DAMAGED = ("disk_full", "io_error", "read_only", "permission", "damaged")
# Below this much free space a "disk I/O error" is taken to be a full disk: SQLite needs a few
# pages for its write-ahead log and shared-memory index, and the status file a few hundred bytes.
NEARLY_FULL_BYTES = 1 << 20
README_RECOVERY = 'README, "Recovery"'
RECOVER_COMMAND = "sudo irlamp journal recover"
SERVICE_USER = "irlamp"

# SQLite primary result codes (sqlite3.Error.sqlite_errorcode & 0xff)
_SQLITE_PERM, _SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_CORRUPT = 3, 8, 10, 11
_SQLITE_FULL, _SQLITE_CANTOPEN, _SQLITE_NOTADB = 13, 14, 26
_BY_SQLITE_CODE = {
    _SQLITE_FULL: DISK_FULL,
    _SQLITE_IOERR: IO_ERROR,
    _SQLITE_READONLY: READ_ONLY,
    _SQLITE_PERM: PERMISSION,
    _SQLITE_CORRUPT: DAMAGED,
    _SQLITE_NOTADB: DAMAGED,
}
_BY_ERRNO = {
    errno.ENOSPC: DISK_FULL,
    errno.EDQUOT: DISK_FULL,
    errno.EFBIG: DISK_FULL,
    errno.EIO: IO_ERROR,
    errno.EROFS: READ_ONLY,
    errno.EACCES: PERMISSION,
    errno.EPERM: PERMISSION,
}


class StorageError(Exception):
    """The state directory cannot be used. The message is one line with a fix; `kind` is one of
    the problems above, or None."""

    def __init__(self, message: str, kind: str | None = None):
        super().__init__(message)
        self.kind = kind

    @property
    def needs_a_person(self) -> bool:
        """True when restarting cannot help (damaged journal, permissions, read-only disk)."""
        return self.kind in (DAMAGED, PERMISSION, READ_ONLY)


def _existing(path: Path) -> Path | None:
    for candidate in (path, *path.parents):
        try:
            candidate.stat()
            return candidate
        except OSError:
            continue
    return None


def free_bytes(path: str | Path) -> int | None:
    """Bytes an unprivileged user may still write on the file system holding `path`."""
    where = _existing(Path(path))
    if where is None:
        return None
    try:
        vfs = os.statvfs(where)
    except OSError:
        return None
    return vfs.f_bavail * vfs.f_frsize


def storage_problem(exc: BaseException, path: str | Path) -> str | None:
    """DISK_FULL, IO_ERROR, READ_ONLY, PERMISSION, DAMAGED, or None (something else)."""
    kind = None
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        kind = _BY_SQLITE_CODE.get(code & 0xFF) if isinstance(code, int) else None
        text = str(exc).lower()
        if kind is None:  # errors raised without a code (tests, older builds): by their text
            kind = (
                DISK_FULL
                if "disk is full" in text
                else DAMAGED
                if "malformed" in text or "not a database" in text
                else READ_ONLY
                if "readonly" in text
                else IO_ERROR
                if "disk i/o error" in text
                else None
            )
        if kind is None and (code is not None and code & 0xFF == _SQLITE_CANTOPEN or "unable to open" in text):
            where = _existing(Path(path))
            if where is not None and not os.access(where, os.R_OK | (os.X_OK if where.is_dir() else 0)):
                kind = PERMISSION
    elif isinstance(exc, OSError):
        kind = _BY_ERRNO.get(exc.errno) if exc.errno is not None else None
    if kind == READ_ONLY and isinstance(exc, sqlite3.Error) and not _read_only_file_system(path):
        kind = PERMISSION  # SQLite says "readonly database" for a file it may not write, too
    if kind == IO_ERROR:
        free = free_bytes(path)
        if free is not None and free < NEARLY_FULL_BYTES:
            kind = DISK_FULL
    return kind


# Why, in plain words, and the fix; README_RECOVERY is appended.
DAMAGED_ADVICE = (
    f", so today's sessions cannot be counted. Stop irlamp and run "
    f"`{RECOVER_COMMAND}` (it keeps the damaged file and counts the rest of today "
    f"as used up)"
)
_PLAIN_WORDS = {
    DISK_FULL: "the disk is full ({detail}{free}). Free some space (df -h {directory}; e.g. "
    "sudo journalctl --vacuum-size=50M, sudo apt clean), then sudo systemctl "
    "restart irlamp",
    READ_ONLY: "the file system is read-only ({detail}); after disk errors Linux remounts the "
    "SD card read-only: check dmesg, then reboot",
    PERMISSION: "permission denied; {owner} and this runs as {me}. The daemon runs as user "
    "{user}: sudo chown -R {user}:{user} {directory}; to only read it, see the "
    "caregivers' group",
    IO_ERROR: "disk I/O error ({detail}{free}); the disk may be full or the SD card failing: "
    "check df -h {directory} and dmesg",
    DAMAGED: "the journal is damaged ({detail})" + DAMAGED_ADVICE,  # (it holds no braces)
}


def _read_only_file_system(path: str | Path) -> bool:
    where = _existing(Path(path))
    try:
        return where is not None and bool(os.statvfs(where).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _owner(path: Path) -> str:
    where = _existing(path)
    if where is None:
        return f"{path} does not exist"
    try:
        st = where.stat()
    except OSError:
        return f"{where} cannot be examined"

    def name(lookup, ident: int) -> str:
        try:
            return lookup(ident)[0]
        except KeyError:
            return str(ident)

    return (
        f"{where} belongs to {name(pwd.getpwuid, st.st_uid)}:{name(grp.getgrgid, st.st_gid)}"
        f" (mode {stat.S_IMODE(st.st_mode):04o})"
    )


def _me() -> str:
    try:
        return pwd.getpwuid(os.geteuid())[0]
    except KeyError:
        return f"uid {os.geteuid()}"


def _free_words(path: Path) -> str:
    free = free_bytes(path)
    return "" if free is None else f", {free // 1024} KiB left"


def storage_error(
    path: str | Path,
    exc: BaseException,
    action: str,
    subject: str | None = None,
    cls: type[StorageError] = StorageError,
):
    """`cls(explain_storage_error(...), kind)`."""
    return cls(explain_storage_error(path, exc, action, subject), storage_problem(exc, path))


def explain_storage_error(path: str | Path, exc: BaseException, action: str, subject: str | None = None) -> str:
    """One line: what could not be done to `path`, why in plain words, and the fix.
    `subject` starts the line (default: the path)."""
    path = Path(path)
    detail = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        detail = exc.strerror
    directory = path if path.is_dir() else path.parent
    kind = storage_problem(exc, path)
    head = f"{subject or path}: cannot {action}"
    if kind is None:
        return f"{head}: {detail}"
    words = _PLAIN_WORDS[kind].format(
        detail=detail, directory=directory, free=_free_words(path), owner=_owner(path), me=_me(), user=SERVICE_USER
    )
    return f"{head}: {words}; see {README_RECOVERY}"


def explain_read_access(path: str | Path) -> str:
    """One line for a caregiver who may not read the journal: who owns it and how to get in."""
    path = Path(path)
    blocked = next(
        (
            p
            for p in (*reversed(path.parents), path)
            if p.exists() and not os.access(p, os.R_OK | (os.X_OK if p.is_dir() else 0))
        ),
        path.parent,
    )
    me = _me()
    return (
        f"cannot read {path}: permission denied ({_owner(blocked)}; you are {me}). To read "
        f"the history without sudo, an administrator adds you to the read-only caregivers' "
        f"group once: sudo usermod -aG {SERVICE_USER} {me} (then log in again); or use "
        f"sudo irlamp history"
    )
