"""`irlamp journal recover`: put a damaged journal aside and start a new one that counts the
rest of the day as used up (SR-7: lost records count against the user, never for them).

What it does, with the daemon stopped (it takes the daemon's lock, so it refuses while one runs):
1. Checks the journal the way the daemon does at start. A journal the daemon would accept is
   left alone ("nothing to recover"); one that never existed needs no recovery (a fresh
   install), one that existed and is gone (`journal.created_marker_path`) does.
2. Builds the new journal completely in a scratch directory beside it. Into it go
   `LOST_DAY_PLACEHOLDERS` closed sessions, each with end reason 'journal_recovered', zero
   on-time, started and ended now (this boot's monotonic and wall clocks). Why sessions and not
   a new table or a fault: `limits.start_allowance` counts sessions, and this way the existing
   rules alone make the rest of the day used up, conservatively in every clock case:
     - daily limit: as many sessions today as the hard ceiling allows, so no configuration
       (which may only lower it) lets another start before local midnight; with an
       unsynchronised clock the 26 h window applies instead, and after a reboot at least the
       uptime rule (longer, never shorter);
     - cool-down: they ended now, so min_gap runs from now by the monotonic clock.
   `irlamp history` shows them as "journal lost: day counted as used up".
3. Hard-links the damaged file (and its -wal and -shm) aside as
   `journal-damaged-YYYYmmdd-HHMMSS.sqlite3` (+ -wal, -shm); nothing is ever deleted or copied,
   so a full disk cannot stop it. Then removes the old -wal/-shm names (SQLite must not apply
   the old log to the new file) and renames the new journal into place. At every instant the
   journal path holds either the damaged file (refused at start) or the new one.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import TextIO

from controller.service.config import _BOUNDS
from controller.service.dirlock import DirectoryBusy, adopt_directory_owner, lock_state_dir
from controller.service.journal import Journal, JournalError, created_marker_path, journal_path
from controller.service.status_reader import local_time
from controller.service.storage import DAMAGED, StorageError

# The hard ceiling of session.sessions_per_day: a configuration may only lower it.
LOST_DAY_PLACEHOLDERS = int(_BOUNDS["session.sessions_per_day"][1])
RECOVERED_END_REASON = "journal_recovered"
EXIT_OK, EXIT_FAILED, EXIT_REFUSED = 0, 1, 2


def _aside_name(directory: Path, stamp: str) -> str:
    for n in range(100):
        name = f"journal-damaged-{stamp}{'' if n == 0 else f'-{n}'}.sqlite3"
        if not any((directory / f"{name}{suffix}").exists() for suffix in ("", "-wal", "-shm")):
            return name
    raise JournalError(f"{directory}: too many journal-damaged-{stamp}* files")


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def recover_journal(
    state_dir: str | Path,
    *,
    boot_id: str,
    clock_synced: bool,
    now_wall: float | None = None,
    now_mono: float | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Returns the exit code: 0 recovered or nothing to do, 1 failed, 2 refused (daemon running)."""
    out, err = out or sys.stdout, err or sys.stderr
    state_dir = Path(state_dir)
    path = journal_path(state_dir)
    try:
        lock = lock_state_dir(state_dir)
    except (DirectoryBusy, StorageError) as exc:
        print(f"irlamp journal recover: {exc}", file=err)
        return EXIT_REFUSED
    with lock:
        if not any(p.exists() for p in (path, Path(f"{path}-wal"), created_marker_path(path))):
            print(f"no journal at {path}: nothing to recover (the daemon makes a new one at its first start)", file=out)
            return EXIT_OK
        try:
            Journal(state_dir, boot_id).close()
        except JournalError as exc:
            if exc.kind != DAMAGED:
                print(f"irlamp journal recover: {exc}", file=err)
                return EXIT_FAILED
            damage = str(exc)
        else:
            print(f"journal {path} is healthy: nothing to recover (left as it is)", file=out)
            return EXIT_OK
        now_wall = time.time() if now_wall is None else now_wall
        now_mono = time.monotonic() if now_mono is None else now_mono
        try:
            aside = _replace(state_dir, path, boot_id, clock_synced, now_wall, now_mono)
        except (OSError, JournalError) as exc:
            print(f"irlamp journal recover: failed, the damaged journal is still in place: {exc}", file=err)
            return EXIT_FAILED
    print(f"was: {damage}", file=out)
    print(f"kept the damaged journal as {state_dir / aside} (nothing deleted)", file=out)
    print(
        f"started a new journal {path}; it counts the rest of today as used up: no session "
        f"before local midnight ({local_time(now_wall, None, '%Y-%m-%d')} ends) nor before "
        f"the cool-down from now has passed. Start irlamp again: sudo systemctl start irlamp",
        file=out,
    )
    return EXIT_OK


def _replace(state_dir: Path, path: Path, boot_id: str, clock_synced: bool, now_wall: float, now_mono: float) -> str:
    scratch = state_dir / f".recovering-{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    try:
        with Journal(scratch, boot_id) as fresh:
            if clock_synced:
                fresh.note_clock_synced(now_wall, now_mono)
            fresh.record_lost_day(LOST_DAY_PLACEHOLDERS, RECOVERED_END_REASON, now_wall, now_mono)
        new_file = journal_path(scratch)
        if Path(f"{new_file}-wal").exists():  # its close could not fold the log into the file
            raise JournalError(f"journal {new_file}: could not be completed (log left over)")
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now_wall))
        aside = _aside_name(state_dir, stamp)
        for suffix in ("", "-wal", "-shm"):
            original = Path(f"{path}{suffix}")
            if original.exists():
                os.link(original, state_dir / f"{aside}{suffix}")
        _fsync_dir(state_dir)
        for suffix in ("-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        adopt_directory_owner(new_file, state_dir)  # after sudo: still the daemon's file
        os.replace(new_file, path)
        _fsync_dir(state_dir)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return aside
