"""Durable journal of lamp sessions and faults (SR-12): SQLite, WAL, durable commits.

What this module promises:
- Every write method runs in its own transaction, committed with `synchronous=FULL` in WAL
  mode before it returns: once a call has returned, its record survives a crash or a power cut.
- A SIGKILL or power cut at any instant leaves a database that opens and passes
  `PRAGMA integrity_check` (SQLite's WAL guarantee; `tests/test_crash_safety.py` kills a
  writer hundreds of times to check it).
- A session cut off by a crash keeps the on-time of its last checkpoint and still counts;
  `close_interrupted()` ends it with reason 'interrupted' at a conservative end time.
- Session ids only grow (AUTOINCREMENT), so id order is the true order in which sessions
  started, whatever the wall clock said. The daily limits rely on this.
- Every SQLite failure (missing directory, unreadable or corrupt file, full disk) surfaces as
  a one-line `JournalError` that names the journal file, says what is wrong in plain words and
  how to fix it (`controller/service/storage.py`; `kind` tells a damaged journal from a full disk).
- Lost records are never a fresh start: a journal that is empty, not SQLite, truncated, or
  gone after it once existed is refused (kind DAMAGED) until `irlamp journal recover`
  (controller/service/recovery.py) has kept it aside and used up the rest of the day. A new journal is
  built complete under a temporary name and renamed into place.

Times: `*_wall` are epoch seconds (`time.time()`), `*_mono` are `time.monotonic()` seconds of
the boot named by the record's `boot_id` (`/proc/sys/kernel/random/boot_id`); monotonic values
of different boots cannot be compared. `note_clock_synced()` stores, per boot, wall - mono at
a moment the wall clock was known to be right; with it the true wall time of every record of
that boot (even those written before the clock was set) is `offset + mono`.

One process writes (`Journal`, the daemon); any number may read (`JournalReader`, opened
read-only; `ReadOnlyJournal` for a user who may not write the directory: `irlamp history`,
the MQTT bridge). Use a connection from one thread at a time
(the daemon hands its `Journal` to the writer thread after start-up).
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, TypeVar
from urllib.parse import quote

from controller.core.records import SessionRecord
from controller.service.storage import (
    DAMAGED,
    DAMAGED_ADVICE,
    PERMISSION,
    README_RECOVERY,
    READ_ONLY,
    StorageError,
    explain_read_access,
    storage_error,
)

log = logging.getLogger("irlamp.journal")
T = TypeVar("T")

JOURNAL_FILENAME = "journal.sqlite3"
BUSY_TIMEOUT_S = 5.0
# Offsets noted for the same boot that differ by less than this are not rewritten.
_OFFSET_REWRITE_S = 0.5

# Schema history. Version N is reached by running MIGRATIONS[N - 1]; never edit a released step.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (  # v1: sessions and faults
        """CREATE TABLE sessions (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            boot_id TEXT NOT NULL,
            start_wall REAL NOT NULL, start_mono REAL NOT NULL,
            end_wall REAL, end_mono REAL,
            on_s REAL NOT NULL DEFAULT 0,
            end_reason TEXT, max_skin_c REAL, min_distance_mm REAL)""",
        """CREATE TABLE faults (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            boot_id TEXT NOT NULL, wall REAL NOT NULL, mono REAL NOT NULL,
            code TEXT NOT NULL, detail TEXT NOT NULL DEFAULT '', ack_wall REAL)""",
    ),
    (  # v2: checkpoints, so a crashed session can be closed at its last known time
        "ALTER TABLE sessions ADD COLUMN checkpoint_wall REAL",
        "ALTER TABLE sessions ADD COLUMN checkpoint_mono REAL",
        """UPDATE sessions SET checkpoint_wall = COALESCE(end_wall, start_wall),
                               checkpoint_mono = COALESCE(end_mono, start_mono)""",
    ),
    (  # v3: per-boot wall-clock offsets; indexes for the time-window queries
        """CREATE TABLE boot_clocks (
            boot_id TEXT PRIMARY KEY, wall_minus_mono_s REAL NOT NULL, noted_wall REAL NOT NULL)""",
        "CREATE INDEX sessions_by_start_wall ON sessions(start_wall)",
        "CREATE INDEX faults_by_wall ON faults(wall)",
    ),
    (  # v4: what the distance sensor said about its light per session (SR-15): the range of
        # its signal and ambient rates, and how many of its samples were doubted. Old sessions
        # keep NULL (not measured), never a made-up zero.
        "ALTER TABLE sessions ADD COLUMN min_signal_mcps REAL",
        "ALTER TABLE sessions ADD COLUMN max_signal_mcps REAL",
        "ALTER TABLE sessions ADD COLUMN min_ambient_mcps REAL",
        "ALTER TABLE sessions ADD COLUMN max_ambient_mcps REAL",
        "ALTER TABLE sessions ADD COLUMN distance_samples INTEGER",
        "ALTER TABLE sessions ADD COLUMN distance_doubts INTEGER",
    ),
    (  # v5 (SR-14, issue 13): each session's heat dose (CEM43 minutes) and lamp switch-ons, and
        # a trace of each session (about one row a second) for its picture. Old sessions keep
        # NULL (not measured) and have no trace.
        "ALTER TABLE sessions ADD COLUMN dose_cem43 REAL",
        "ALTER TABLE sessions ADD COLUMN switches INTEGER",
        "ALTER TABLE sessions ADD COLUMN doubt_switches INTEGER",
        """CREATE TABLE trace (
            session_id INTEGER NOT NULL REFERENCES sessions(id),
            t_s REAL NOT NULL,                -- seconds since the session's start (monotonic)
            lamp_on INTEGER NOT NULL, distance_mm REAL, skin_c REAL, state TEXT NOT NULL)""",
        "CREATE INDEX trace_by_session ON trace(session_id, t_s)",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)
LIGHT_FIELDS = (
    "min_signal_mcps",
    "max_signal_mcps",
    "min_ambient_mcps",
    "max_ambient_mcps",
    "distance_samples",
    "distance_doubts",
)
# What only grows during a session (v5): recorded as the largest value handed over.
COUNTER_FIELDS = ("dose_cem43", "switches", "doubt_switches")


class JournalError(StorageError):
    """The journal cannot be opened, read or written. The message is one line naming the file
    and, for a full disk, a permission problem or damage, what to do (`kind`: see storage)."""


SQLITE_MAGIC = b"SQLite format 3\x00"
CREATED_MARKER_SUFFIX = ".created"
_HEADER_BYTES = 100


def _damaged(path: Path, what: str) -> JournalError:
    return JournalError(f"journal {path}: {what}{DAMAGED_ADVICE}; see {README_RECOVERY}", DAMAGED)


def created_marker_path(path: Path) -> Path:
    """A file that says a journal once existed at `path`: its disappearance is lost records,
    not a fresh install. Written right after a journal is created (and when an older journal
    without one is opened)."""
    return path.with_name(path.name + CREATED_MARKER_SUFFIX)


def check_not_damaged(path: Path) -> bool:
    """Refuse (JournalError, kind DAMAGED) a journal file that exists but cannot hold the
    records: empty, not SQLite, or shorter than its own header says. Returns whether the file
    exists. Only what can be told without SQLite; SQLite's own checks follow at open.

    A journal is never legitimately empty, or missing beside its log or after it once existed
    (`created_marker_path`): irlamp creates it complete under another name and renames it into
    place (see `Journal`). Only a journal that never existed here is a fresh install."""
    wal = Path(f"{path}-wal")
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        if wal.exists() and wal.stat().st_size > 0:
            raise _damaged(
                path, f"is missing but its write-ahead log {wal.name} is there (the journal file was deleted or moved)"
            ) from None
        marker = created_marker_path(path)
        if marker.exists():
            raise _damaged(
                path, f"is missing, but a journal existed here ({marker.name}): it was deleted or moved"
            ) from None
        return False
    except OSError as exc:
        raise storage_error(path, exc, "examine", f"journal {path}", JournalError) from exc
    if size == 0:
        raise _damaged(path, "is empty (0 bytes): its records are lost")
    try:
        with open(path, "rb") as file:
            header = file.read(_HEADER_BYTES)
    except OSError as exc:
        raise storage_error(path, exc, "read", f"journal {path}", JournalError) from exc
    if len(header) < _HEADER_BYTES or not header.startswith(SQLITE_MAGIC):
        raise _damaged(path, f"is not an SQLite database ({size} bytes; overwritten or cut short)")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    header_size_valid = header[24:28] == header[92:96]
    # With a write-ahead log present, a checkpoint cut off by a crash may have written the new
    # header before the pages: SQLite repairs that from the log, so only judge a file without one.
    if header_size_valid and not (wal.exists() and wal.stat().st_size > 0) and pages * page_size > size:
        raise _damaged(path, f"is truncated ({size} of {pages * page_size} bytes)")
    return True


@dataclass(frozen=True)
class TracePoint:
    """One row of a session's trace: `t_s` seconds after its start."""

    t_s: float
    lamp_on: bool
    distance_mm: float | None
    skin_c: float | None
    state: str


@dataclass(frozen=True)
class FaultRecord:
    id: int
    wall: float
    code: str
    detail: str
    ack_wall: float | None  # None while unacknowledged


_SESSION_COLUMNS = """s.id, s.boot_id, s.start_wall, s.start_mono, s.end_wall, s.end_mono, s.on_s,
    s.end_reason, s.max_skin_c, s.min_distance_mm, b.wall_minus_mono_s,
    s.min_signal_mcps, s.max_signal_mcps, s.min_ambient_mcps, s.max_ambient_mcps,
    s.distance_samples, s.distance_doubts, s.dose_cem43, s.switches, s.doubt_switches
    FROM sessions s LEFT JOIN boot_clocks b ON b.boot_id = s.boot_id"""
_FAULT_COLUMNS = "id, wall, code, detail, ack_wall FROM faults"


def journal_path(state_dir: str | Path) -> Path:
    return Path(state_dir) / JOURNAL_FILENAME


def _row_id(cursor: sqlite3.Cursor) -> int:
    """The id of the row the cursor's INSERT made."""
    if cursor.lastrowid is None:
        raise RuntimeError("the journal did not return the new row's id")
    return cursor.lastrowid


def _require_finite(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"journal: {name} must be a finite number, got {value!r}")
    return float(value)


def _optional_finite(name: str, value: float | None) -> float | None:
    return None if value is None else _require_finite(name, value)


class _JournalQueries:
    """Read-side queries shared by the writer and the read-only reader."""

    path: Path
    _conn: sqlite3.Connection

    def _error(self, action: str, exc: BaseException) -> JournalError:
        return storage_error(self.path, exc, action, f"journal {self.path}", JournalError)

    def _query(self, action: str, sql: str, params: tuple = ()) -> list[tuple]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise self._error(action, exc) from exc

    def _sessions(self, where_order_limit: str, params: tuple = ()) -> list[SessionRecord]:
        rows = self._query("read sessions", f"SELECT {_SESSION_COLUMNS} {where_order_limit}", params)
        return [SessionRecord(*row) for row in rows]

    def _faults(self, where_order: str, params: tuple = ()) -> list[FaultRecord]:
        rows = self._query("read faults", f"SELECT {_FAULT_COLUMNS} {where_order}", params)
        return [FaultRecord(*row) for row in rows]

    def sessions_since(self, wall: float) -> list[SessionRecord]:
        """Sessions that started or ended at or after `wall`, or are still open; oldest first.

        Selection trusts the recorded wall times. For the daily limits prefer
        `sessions_for_limits()`, which does not."""
        return self._sessions(
            "WHERE s.start_wall >= ? OR s.end_wall >= ? OR s.end_wall IS NULL ORDER BY s.id", (wall, wall)
        )

    def sessions_for_limits(self, count: int = 32) -> list[SessionRecord]:
        """The newest `count` sessions by id (true start order), oldest first.

        Independent of any wall clock. With `count` >= sessions_per_day this is all
        `limits.start_allowance` needs (see that module)."""
        newest = self._sessions("ORDER BY s.id DESC LIMIT ?", (int(count),))
        return newest[::-1]

    def recent_sessions(self, limit: int = 20) -> list[SessionRecord]:
        """The newest `limit` sessions, newest first."""
        return self._sessions("ORDER BY s.id DESC LIMIT ?", (int(limit),))

    def history(self, days: float, now_wall: float) -> tuple[list[SessionRecord], list[FaultRecord]]:
        """Sessions started and faults recorded within `days` before `now_wall` (or later than
        it, should the clock have been set back), newest first."""
        since_wall = now_wall - days * 86400.0
        sessions = self._sessions("WHERE s.start_wall >= ? ORDER BY s.id DESC", (since_wall,))
        faults = self._faults("WHERE wall >= ? ORDER BY id DESC", (since_wall,))
        return sessions, faults

    def session(self, session_id: int) -> SessionRecord | None:
        found = self._sessions("WHERE s.id = ?", (int(session_id),))
        return found[0] if found else None

    def trace(self, session_id: int) -> list[TracePoint]:
        """A session's trace, oldest first (empty: none recorded, or pruned)."""
        rows = self._query(
            "read a session's trace",
            """SELECT t_s, lamp_on, distance_mm, skin_c, state
            FROM trace WHERE session_id = ? ORDER BY t_s""",
            (int(session_id),),
        )
        return [TracePoint(t, bool(on), d, skin, state) for t, on, d, skin, state in rows]

    def faults_between(self, from_wall: float, to_wall: float) -> list[FaultRecord]:
        return self._faults("WHERE wall >= ? AND wall <= ? ORDER BY id", (from_wall, to_wall))

    def unacknowledged_faults(self) -> list[FaultRecord]:
        """Faults nobody has acknowledged yet, oldest first (e.g. to re-latch after a restart)."""
        return self._faults("WHERE ack_wall IS NULL ORDER BY id")

    def faults_after(self, fault_id: int, limit: int) -> list[FaultRecord]:
        """Up to `limit` faults with an id above `fault_id`, oldest first (the MQTT bridge's cursor)."""
        return self._faults("WHERE id > ? ORDER BY id LIMIT ?", (int(fault_id), int(limit)))

    def ended_sessions_after(self, session_id: int, limit: int) -> list[SessionRecord]:
        """Up to `limit` ended sessions with an id above `session_id`, oldest first."""
        return self._sessions(
            "WHERE s.id > ? AND s.end_reason IS NOT NULL ORDER BY s.id LIMIT ?", (int(session_id), int(limit))
        )

    def newest_ids(self) -> tuple[int, int]:
        """(highest fault id, highest session id), 0 for none."""
        rows = self._query(
            "read newest ids",
            """SELECT (SELECT COALESCE(MAX(id), 0) FROM faults),
            (SELECT COALESCE(MAX(id), 0) FROM sessions)""",
        )
        return int(rows[0][0]), int(rows[0][1])

    def newest_record_wall(self) -> float | None:
        """The latest wall time the clock actually showed when a record was written (session
        start, checkpoint or end, fault, acknowledgement, clock note); None for an empty journal.

        The synthetic end time `close_interrupted` gives a crashed session is not included."""
        rows = self._query(
            "read newest record time",
            """SELECT MAX(w) FROM (
            SELECT MAX(start_wall) AS w FROM sessions
            UNION ALL SELECT MAX(checkpoint_wall) FROM sessions
            UNION ALL SELECT MAX(wall) FROM faults
            UNION ALL SELECT MAX(ack_wall) FROM faults
            UNION ALL SELECT MAX(noted_wall) FROM boot_clocks)""",
        )
        return rows[0][0]

    def integrity_check(self) -> str:
        """'ok', or SQLite's description of the damage."""
        rows = self._query("check integrity", "PRAGMA integrity_check")
        return "; ".join(str(row[0]) for row in rows)

    def schema_version(self) -> int:
        return int(self._query("read schema version", "PRAGMA user_version")[0][0])

    def close(self) -> None:
        try:
            self._conn.close()
        except sqlite3.Error as exc:
            raise self._error("close", exc) from exc

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class JournalReader(_JournalQueries):
    """Read-only view of an existing journal: never creates, migrates or writes anything,
    and never blocks the daemon (WAL readers do not take write locks)."""

    def __init__(self, state_dir: str | Path, *, immutable: bool = False):
        """`immutable`: for a reader that cannot create the -shm file (no write access to the
        directory) while no writer has the journal open (no -wal file): reads the main file
        as it is. Keep such a reader only for one read; the daemon may start at any moment."""
        self.path = journal_path(state_dir)
        try:
            exists = self.path.is_file()
        except PermissionError as exc:
            raise JournalError(explain_read_access(self.path), PERMISSION) from exc
        if not check_not_damaged(self.path) or not exists:  # gone after it existed: damaged
            raise FileNotFoundError(f"no journal at {self.path}")
        version = self._open(immutable)
        if version != SCHEMA_VERSION:
            self._conn.close()
            hint = (
                "start the irlamp daemon once to upgrade it"
                if version < SCHEMA_VERSION
                else "it was written by a newer irlamp"
            )
            raise JournalError(
                f"journal {self.path}: schema version {version}, this irlamp reads version {SCHEMA_VERSION}; {hint}"
            )

    def _open(self, immutable: bool) -> int:
        """Connect read-only; return the schema version."""
        uri = f"file:{quote(str(self.path.resolve()))}?mode=ro{'&immutable=1' if immutable else ''}"
        try:
            self._conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as exc:
            raise self._error("open read-only", exc) from exc
        try:
            return self.schema_version()
        except JournalError:
            self._conn.close()
            raise


class ReadOnlyJournal:
    """The journal read by a user who may read but not write the state directory (the MQTT
    bridge, a caregiver's `irlamp history` or `plot`). Such a user cannot create the
    shared-memory index a WAL reader needs: while the daemon runs it exists and SQLite reads
    without writing it; when the daemon is stopped there is no write-ahead log, the file alone
    holds every record, and it is read `immutable` for that one read (never kept: the daemon
    may start at any moment). Nothing is read `immutable` while a write-ahead log exists.

    `keep_open=False` (history, plot): every `read` opens, reads once and closes. It reads
    `immutable` only when the normal open was refused as read-only or permission-denied on the
    file itself (a path the user cannot reach stays refused); a read that fails is not retried.

    `keep_open=True` (the bridge): the normal reader stays open across reads. When there is
    none yet, or the one just opened fails its read, any `JournalError` falls back to
    `immutable` for that read. A kept reader's failure is raised: `close()`, and the next read
    opens anew."""

    def __init__(self, state_dir: str | Path, *, keep_open: bool):
        self.state_dir = state_dir
        self.keep_open = keep_open
        self._kept: JournalReader | None = None

    def read(self, action: Callable[[JournalReader], T]) -> T:
        """`action(reader)`'s result. Raises FileNotFoundError (no journal) or JournalError."""
        if self._kept is not None:
            return action(self._kept)
        if not self.keep_open:
            with self._open_for_one_read() as reader:
                return action(reader)
        try:
            self._kept = JournalReader(self.state_dir)
            return action(self._kept)
        except JournalError:
            self._close_kept_logging_errors()
            if self._write_ahead_log_exists():
                raise
        with JournalReader(self.state_dir, immutable=True) as reader:
            return action(reader)

    def _open_for_one_read(self) -> JournalReader:
        try:
            return JournalReader(self.state_dir)
        except JournalError as exc:
            if (
                exc.kind not in (READ_ONLY, PERMISSION)
                or isinstance(exc.__cause__, PermissionError)
                or self._write_ahead_log_exists()
            ):
                raise
        return JournalReader(self.state_dir, immutable=True)

    def _write_ahead_log_exists(self) -> bool:
        return Path(f"{journal_path(self.state_dir)}-wal").exists()

    def _close_kept_logging_errors(self) -> None:
        try:
            self.close()
        except JournalError as exc:
            log.warning("%s", exc)

    def close(self) -> None:
        """Close the kept reader, if any (the next read opens anew)."""
        if self._kept is not None:
            reader, self._kept = self._kept, None
            reader.close()


class Journal(_JournalQueries):
    """The daemon's read-write journal at `<state_dir>/journal.sqlite3`, for boot `boot_id`.

    Opening creates the directory and file if needed, switches to WAL, checks the file's
    integrity and migrates an older schema. A file that is not an irlamp journal, is damaged,
    or is newer than this code raises JournalError."""

    def __init__(self, state_dir: str | Path, boot_id: str):
        if not boot_id:
            raise ValueError("journal: boot_id must not be empty")
        self.boot_id = boot_id
        self.path = journal_path(state_dir)
        self._noted_offset_s: float | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._error("create its directory", exc) from exc
        if not check_not_damaged(self.path):
            self._create()
        self._conn = self._connect(self.path)
        try:
            self._prepare()
            self._mark_created()
        except BaseException:
            self._conn.close()
            raise

    def _mark_created(self) -> None:
        marker = created_marker_path(self.path)
        if marker.exists():
            return
        try:
            marker.write_text(
                "a journal was created here; if journal.sqlite3 is missing, its "
                "records were lost: run `irlamp journal recover`\n"
            )
        except OSError as exc:
            raise self._error("mark that it exists", exc) from exc

    def _connect(self, path: Path) -> sqlite3.Connection:
        try:
            # check_same_thread=False: the daemon opens and repairs the journal at start-up, then
            # hands it to its writer thread (controller/service/journal_writer.py); one thread at a time.
            return sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise self._error("open", exc) from exc

    def _create(self) -> None:
        """A new journal, made complete under a temporary name and renamed into place, so that
        a crash or a full disk during creation never leaves an empty `journal.sqlite3` (which
        would be refused as lost records at the next start)."""
        tmp = self.path.with_name(f".{self.path.name}.new")
        for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
            leftover.unlink(missing_ok=True)  # an unfinished creation: held no records
        self._conn = self._connect(tmp)
        try:
            self._prepare()
        finally:
            self._conn.close()  # the last connection checkpoints the log into the file
        try:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, self.path)
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise self._error("create", exc) from exc

    def _prepare(self) -> None:
        try:
            mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            self._conn.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error as exc:
            raise self._error("open", exc) from exc
        if str(mode).lower() != "wal":
            raise JournalError(f"journal {self.path}: cannot switch to WAL mode (got {mode!r})")
        damage = self._query("check integrity", "PRAGMA quick_check")
        if damage != [("ok",)]:
            detail = "; ".join(str(row[0]) for row in damage[:3])
            raise _damaged(self.path, f"is damaged ({detail})")
        self._migrate()

    def _migrate(self) -> None:
        with self._write("migrate schema") as conn:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise JournalError(
                    f"journal {self.path}: schema version {version} is newer than "
                    f"this irlamp understands ({SCHEMA_VERSION})"
                )
            if version == 0 and conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]:
                raise _damaged(self.path, "holds other tables: not an irlamp journal")
            for step in range(version, SCHEMA_VERSION):
                for statement in MIGRATIONS[step]:
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextmanager
    def _write(self, action: str) -> Iterator[sqlite3.Connection]:
        """One transaction, committed (durably) when the block ends, rolled back on error."""
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise self._error(action, exc) from exc

    def close_interrupted(self, checkpoint_s: float) -> list[int]:
        """End every session still open (its process died): reason 'interrupted', on-time as of
        its last checkpoint, end = last checkpoint + `checkpoint_s` (the latest the lamp can have
        been on if checkpoints come at least every `checkpoint_s`, so the cool-down is counted
        from no earlier than the true end). Call once at start-up, before `start_session`.
        Returns the ids closed."""
        gap_s = _require_finite("checkpoint_s", checkpoint_s)
        with self._write("close interrupted sessions") as conn:
            ids = [row[0] for row in conn.execute("SELECT id FROM sessions WHERE end_wall IS NULL ORDER BY id")]
            conn.execute(
                """UPDATE sessions SET end_reason = 'interrupted',
                end_wall = COALESCE(checkpoint_wall, start_wall) + ?,
                end_mono = COALESCE(checkpoint_mono, start_mono) + ?
                WHERE end_wall IS NULL""",
                (gap_s, gap_s),
            )
        return ids

    def start_session(self, start_wall: float, start_mono: float) -> int:
        """Record a session that starts now (on-time 0); returns its id."""
        wall, mono = _require_finite("start_wall", start_wall), _require_finite("start_mono", start_mono)
        with self._write("start a session") as conn:
            cursor = conn.execute(
                """INSERT INTO sessions (boot_id, start_wall, start_mono, on_s,
                checkpoint_wall, checkpoint_mono) VALUES (?, ?, ?, 0, ?, ?)""",
                (self.boot_id, wall, mono, wall, mono),
            )
            return _row_id(cursor)

    def record_lost_day(self, count: int, reason: str, wall: float, mono: float) -> list[int]:
        """Record `count` closed placeholder sessions that start and end now with zero on-time
        and end reason `reason`: records were lost, and these make the daily limits count the
        rest of the day as used up (see controller/service/recovery.py). Returns their ids."""
        if not isinstance(reason, str) or not reason:
            raise ValueError(f"journal: end reason must be a non-empty string, got {reason!r}")
        wall, mono = _require_finite("wall", wall), _require_finite("mono", mono)
        with self._write("record the lost day") as conn:
            return [
                _row_id(
                    conn.execute(
                        """INSERT INTO sessions (boot_id, start_wall, start_mono,
                end_wall, end_mono, on_s, end_reason, checkpoint_wall, checkpoint_mono)
                VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?)""",
                        (self.boot_id, wall, mono, wall, mono, reason, wall, mono),
                    )
                )
                for _ in range(int(count))
            ]

    def checkpoint(
        self,
        session_id: int,
        on_s: float,
        max_skin_c: float | None,
        min_distance_mm: float | None,
        wall: float,
        mono: float,
        *,
        light: dict | None = None,
        counters: dict | None = None,
        trace: tuple[TracePoint, ...] = (),
    ) -> None:
        """Durably record an open session's progress. The recorded on-time never decreases and
        the extremes only widen. `light`: the distance sensor's light so far (keys of
        LIGHT_FIELDS, values None when unknown). Raises JournalError if the session is not open."""
        self._update_open(
            session_id,
            "checkpoint a session",
            on_s,
            max_skin_c,
            min_distance_mm,
            wall,
            mono,
            end=None,
            light=light,
            counters=counters,
            trace=trace,
        )

    def end_session(
        self,
        session_id: int,
        on_s: float,
        reason: str,
        max_skin_c: float | None,
        min_distance_mm: float | None,
        end_wall: float,
        end_mono: float,
        *,
        light: dict | None = None,
        counters: dict | None = None,
        trace: tuple[TracePoint, ...] = (),
    ) -> None:
        """Close an open session with its final values. Raises JournalError if it is not open."""
        if not isinstance(reason, str) or not reason:
            raise ValueError(f"journal: end reason must be a non-empty string, got {reason!r}")
        self._update_open(
            session_id,
            "end a session",
            on_s,
            max_skin_c,
            min_distance_mm,
            end_wall,
            end_mono,
            end=reason,
            light=light,
            counters=counters,
            trace=trace,
        )

    @staticmethod
    def _known_values(values: dict | None, fields: tuple[str, ...], what: str) -> dict | None:
        """`values` checked against `fields` (each finite or None; missing ones None)."""
        if not values:
            return None
        unknown = set(values) - set(fields)
        if unknown:
            raise ValueError(f"journal: unknown {what} fields {sorted(unknown)}")
        return {key: _optional_finite(key, values.get(key)) for key in fields}

    def prune_traces(self, older_than_wall: float) -> int:
        """Delete the traces of sessions that started before `older_than_wall` (the retention
        limit); the sessions themselves are kept. Returns how many trace rows went."""
        cutoff = _require_finite("older_than_wall", older_than_wall)
        with self._write("prune old traces") as conn:
            return conn.execute(
                """DELETE FROM trace WHERE session_id IN
                (SELECT id FROM sessions WHERE start_wall < ? AND end_wall IS NOT NULL)""",
                (cutoff,),
            ).rowcount

    @staticmethod
    def _widen_light(conn: sqlite3.Connection, session_id: int, values: dict) -> None:
        """Widen an open session's light ranges and raise its sample counts (never narrow)."""
        conn.execute(
            """UPDATE sessions SET
                min_signal_mcps = MIN(COALESCE(:min_signal_mcps, min_signal_mcps),
                    COALESCE(min_signal_mcps, :min_signal_mcps)),
                max_signal_mcps = MAX(COALESCE(:max_signal_mcps, max_signal_mcps),
                    COALESCE(max_signal_mcps, :max_signal_mcps)),
                min_ambient_mcps = MIN(COALESCE(:min_ambient_mcps, min_ambient_mcps),
                    COALESCE(min_ambient_mcps, :min_ambient_mcps)),
                max_ambient_mcps = MAX(COALESCE(:max_ambient_mcps, max_ambient_mcps),
                    COALESCE(max_ambient_mcps, :max_ambient_mcps)),
                distance_samples = MAX(COALESCE(:distance_samples, distance_samples),
                    COALESCE(distance_samples, :distance_samples)),
                distance_doubts = MAX(COALESCE(:distance_doubts, distance_doubts),
                    COALESCE(distance_doubts, :distance_doubts))
                WHERE id = :id AND end_wall IS NULL""",
            {**values, "id": int(session_id)},
        )

    def _update_open(
        self,
        session_id: int,
        action: str,
        on_s: float,
        max_skin_c: float | None,
        min_distance_mm: float | None,
        wall: float,
        mono: float,
        end: str | None,
        light: dict | None = None,
        counters: dict | None = None,
        trace: tuple[TracePoint, ...] = (),
    ) -> None:
        light_values = self._known_values(light, LIGHT_FIELDS, "light")
        counter_values = self._known_values(counters, COUNTER_FIELDS, "counter")
        trace_rows = [
            (
                int(session_id),
                _require_finite("t_s", p.t_s),
                int(bool(p.lamp_on)),
                _optional_finite("distance_mm", p.distance_mm),
                _optional_finite("skin_c", p.skin_c),
                str(p.state),
            )
            for p in trace
        ]
        values = (
            _require_finite("on_s", on_s),
            _optional_finite("max_skin_c", max_skin_c),
            _optional_finite("min_distance_mm", min_distance_mm),
            _require_finite("wall", wall),
            _require_finite("mono", mono),
        )
        on, skin, distance, wall_s, mono_s = values
        ending = end is not None
        with self._write(action) as conn:
            if light_values is not None:
                self._widen_light(conn, session_id, light_values)
            if counter_values is not None:
                conn.execute(
                    """UPDATE sessions SET
                    dose_cem43 = MAX(COALESCE(:dose_cem43, dose_cem43), COALESCE(dose_cem43, :dose_cem43)),
                    switches = MAX(COALESCE(:switches, switches), COALESCE(switches, :switches)),
                    doubt_switches = MAX(COALESCE(:doubt_switches, doubt_switches),
                                         COALESCE(doubt_switches, :doubt_switches))
                    WHERE id = :id AND end_wall IS NULL""",
                    {**counter_values, "id": int(session_id)},
                )
            if trace_rows:
                conn.executemany(
                    """INSERT INTO trace (session_id, t_s, lamp_on, distance_mm, skin_c, state)
                    SELECT ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM sessions WHERE id = ? AND end_wall IS NULL)""",
                    [(*row, row[0]) for row in trace_rows],
                )
            cursor = conn.execute(
                f"""UPDATE sessions SET
                on_s = MAX(on_s, ?),
                max_skin_c = MAX(COALESCE(?, max_skin_c), COALESCE(max_skin_c, ?)),
                min_distance_mm = MIN(COALESCE(?, min_distance_mm), COALESCE(min_distance_mm, ?)),
                checkpoint_wall = ?, checkpoint_mono = ?
                {", end_wall = ?, end_mono = ?, end_reason = ?" if ending else ""}
                WHERE id = ? AND end_wall IS NULL""",
                (
                    on,
                    skin,
                    skin,
                    distance,
                    distance,
                    wall_s,
                    mono_s,
                    *((wall_s, mono_s, end) if ending else ()),
                    int(session_id),
                ),
            )
            if cursor.rowcount != 1:
                raise JournalError(f"journal {self.path}: cannot {action}: session {session_id} is not open")

    def record_fault(self, code: str, detail: str, wall: float, mono: float) -> int:
        """Record a fault (unacknowledged); returns its id."""
        if not isinstance(code, str) or not code:
            raise ValueError(f"journal: fault code must be a non-empty string, got {code!r}")
        with self._write("record a fault") as conn:
            cursor = conn.execute(
                "INSERT INTO faults (boot_id, wall, mono, code, detail) VALUES (?, ?, ?, ?, ?)",
                (self.boot_id, _require_finite("wall", wall), _require_finite("mono", mono), code, str(detail)),
            )
            return _row_id(cursor)

    def acknowledge_faults(self, wall: float) -> int:
        """Mark every unacknowledged fault as acknowledged at `wall`; returns how many."""
        with self._write("acknowledge faults") as conn:
            return conn.execute(
                "UPDATE faults SET ack_wall = ? WHERE ack_wall IS NULL", (_require_finite("wall", wall),)
            ).rowcount

    def note_clock_synced(self, wall: float, mono: float) -> None:
        """Tell the journal that the wall clock is synchronised (NTP) right now. Stores this
        boot's wall - mono, which lets the daily limits place this boot's records on the true
        timeline after a later reboot. Cheap to call every loop: writes only when the offset
        moved by more than half a second. The newest note wins (after a suspend the offset
        grows, which only makes earlier records look more recent: the conservative side)."""
        offset_s = _require_finite("wall", wall) - _require_finite("mono", mono)
        previous_s = self._noted_offset_s
        if previous_s is not None and abs(offset_s - previous_s) < _OFFSET_REWRITE_S:
            return
        with self._write("note the clock offset") as conn:
            conn.execute(
                """INSERT INTO boot_clocks (boot_id, wall_minus_mono_s, noted_wall)
                VALUES (?, ?, ?) ON CONFLICT(boot_id) DO UPDATE SET
                wall_minus_mono_s = excluded.wall_minus_mono_s, noted_wall = excluded.noted_wall""",
                (self.boot_id, offset_s, wall),
            )
        self._noted_offset_s = offset_s
