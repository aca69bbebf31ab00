"""The journal's own writer: the control loop hands records over and never waits for the disk.

A Raspberry Pi's SD card can stall an fsync for seconds. The control loop must keep
confirming the guard and reading the button meanwhile, so every journal write leaves the
loop as a typed record (`StartSession`, `Checkpoint`, `EndSession`, `Fault`,
`AcknowledgeFaults`) handed to `JournalWriter.submit()`, which only appends to a queue.
The records are committed, in the order they were handed over, by one of two engines:

  - a thread of its own (the real daemon): `JournalWriter(..., disk=None)`;
  - `SimulatedDisk` (the scenario simulator and tests): nothing runs until `pump()` is
    called, and each commit takes `commit_s` of *simulated* time (0: at once; None: never
    returns), so runs stay deterministic while a slow or stuck disk can still be played.

Promises:
  - `submit()` never blocks and never drops a record that must not be lost (session start
    and end, faults, acknowledgements). A newer checkpoint replaces a checkpoint still
    waiting in the queue (only the newest progress matters). `CAPACITY` is the backlog at
    which the writer reports itself full (new starts are refused, see safety.JournalHealth);
    the backlog beyond it is bounded by what latches once or needs a human press.
  - A record that fails (JournalError: disk full, I/O error) is retried after `RETRY_S`, and
    nothing behind it is committed first: order is kept. `last_error` says why (one line
    naming the file and a fix) until a commit succeeds again; the control loop ends a running
    session on it at once, and `stalled_s` grows meanwhile as for a stuck disk.
  - `committed(ticket)` says whether a record is durable; `stalled_s(now)` how long the oldest
    record not yet committed has been waiting (a checkpoint that replaced a waiting one
    inherits its wait); `limits_view()` the journal's sessions as of the
    newest commit, read on the writer's side, so the loop's daily-limit decision never reads
    the disk either.
  - `close(timeout_s)` drains the backlog (bounded) and closes the journal on the writer's
    own thread; what could not be written is logged with its count.

The SQLite connection is used by one thread at a time: the daemon's start-up reads happen
before the writer takes it over, and only the writer touches it afterwards.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
from collections import deque
from dataclasses import dataclass, replace
from typing import Callable, Union

from controller.service.journal import Journal, JournalError, SessionRecord, TracePoint

log = logging.getLogger("irlamp.journal")

CAPACITY = 32  # backlog at which the writer reports itself full
RETRY_S = 1.0  # wait before retrying a record whose commit failed
LIMITS_SESSIONS = 32  # sessions read back for the daily limits (>= any sessions_per_day)


@dataclass(frozen=True)
class StartSession:
    wall: float
    mono: float
    distance_mm: float
    skin_c: float


@dataclass(frozen=True)
class Checkpoint:
    on_s: float
    max_skin_c: float | None
    min_distance_mm: float | None
    wall: float
    mono: float
    light: dict | None = None  # the distance sensor's light so far (journal.LIGHT_FIELDS)
    counters: dict | None = None  # dose and switch-ons so far (journal.COUNTER_FIELDS)
    trace: tuple[TracePoint, ...] = ()  # the trace rows since the previous checkpoint


@dataclass(frozen=True)
class EndSession:
    on_s: float
    reason: str
    max_skin_c: float | None
    min_distance_mm: float | None
    wall: float
    mono: float
    light: dict | None = None
    counters: dict | None = None
    trace: tuple[TracePoint, ...] = ()
    trace_retention_s: float | None = None  # after the end: prune traces older than this


@dataclass(frozen=True)
class Fault:
    code: str
    detail: str
    wall: float
    mono: float


@dataclass(frozen=True)
class AcknowledgeFaults:
    wall: float


Record = Union[StartSession, Checkpoint, EndSession, Fault, AcknowledgeFaults]


@dataclass(frozen=True)
class LimitsView:
    """What the daily limits need from the journal, read after the commit of `as_of_ticket`."""

    sessions: tuple[SessionRecord, ...]
    newest_record_wall: float | None
    as_of_ticket: int


class SimulatedDisk:
    """Commit timing on the simulated clock: each commit takes `commit_s` (None: never returns).
    `commit_s` may also be a function of the record, e.g. a list of random delays in a test."""

    def __init__(self, commit_s: float | None | Callable[[Record], float | None] = 0.0):
        self.commit_s = commit_s
        self.version = 0

    def set_commit_s(self, commit_s: float | None) -> None:
        """From now on each commit takes `commit_s` (one in progress is re-timed from its start)."""
        self.commit_s = commit_s
        self.version += 1

    def duration_s(self, record: Record) -> float:
        value = self.commit_s(record) if callable(self.commit_s) else self.commit_s
        return math.inf if value is None else max(0.0, float(value))


@dataclass
class _Pending:
    ticket: int
    record: Record
    handed_s: float


class JournalWriter:
    def __init__(
        self,
        journal: Journal,
        monotonic: Callable[[], float],
        *,
        disk: SimulatedDisk | None = None,
        on_commit: Callable[[], None] | None = None,
    ):
        self.journal = journal
        self.monotonic = monotonic
        self.disk = disk
        self.on_commit = on_commit
        self._lock = threading.Condition()
        self._queue: deque[_Pending] = deque()
        self._next_ticket = 1
        self._committed_ticket = 0
        self._progress_s = monotonic()  # when the latest commit completed
        self._session_id: int | None = None  # the open session, once its start is committed
        self._clock_note: tuple[float, float] | None = None
        self.last_error: str | None = None
        self.lost = 0
        self._closing = False
        self._closed = False
        self._limits = self._read_limits(0)
        # simulated engine: (disk version, completion time) of the head record's commit
        self._head_due: tuple[int, float] | None = None
        self._thread: threading.Thread | None = None
        if disk is None:
            self._thread = threading.Thread(target=self._run, name="irlamp-journal", daemon=True)
            self._thread.start()

    # -- the control loop's side (never blocks on the disk) -----------------------------------
    def submit(self, record: Record) -> int:
        """Hand a record over; returns its ticket (records commit in ticket order)."""
        now = self.monotonic()
        with self._lock:
            tail = self._queue[-1] if len(self._queue) > 1 else None  # the head may be in progress
            if isinstance(record, Checkpoint) and tail is not None and isinstance(tail.record, Checkpoint):
                # newer progress; its wait still counts from the first; no trace row is dropped
                tail.record = replace(record, trace=tail.record.trace + record.trace)
                return tail.ticket
            ticket = self._next_ticket
            self._next_ticket += 1
            self._queue.append(_Pending(ticket, record, now))
            self._lock.notify_all()
        if self.disk is not None:
            self.pump()
        return ticket

    def note_clock_synced(self, wall: float, mono: float) -> None:
        """The wall clock is synchronised now; written when the writer has nothing else to do."""
        with self._lock:
            self._clock_note = (wall, mono)
            self._lock.notify_all()
        if self.disk is not None:
            self.pump()

    def committed(self, ticket: int) -> bool:
        return ticket <= self._committed_ticket

    @property
    def backlog(self) -> int:
        return len(self._queue)

    @property
    def full(self) -> bool:
        return len(self._queue) >= CAPACITY

    def stalled_s(self, now_s: float) -> float:
        """Seconds the oldest record not yet committed has been waiting (0 when idle). A record
        is handed over at least every checkpoint interval while a session exists, so this also
        bounds how old the newest durable checkpoint can get: checkpoint_s + stalled_s."""
        with self._lock:
            return max(0.0, now_s - self._queue[0].handed_s) if self._queue else 0.0

    def limits_view(self) -> LimitsView:
        return self._limits

    # -- committing (the writer's side) ---------------------------------------------------------
    def _apply(self, record: Record) -> None:
        j = self.journal
        if isinstance(record, StartSession):
            self._session_id = j.start_session(record.wall, record.mono)
            log.info(
                "session %s started (distance %.0f mm, skin %.2f C)",
                self._session_id,
                record.distance_mm,
                record.skin_c,
            )
        elif isinstance(record, Checkpoint):
            if self._session_id is not None:
                j.checkpoint(
                    self._session_id,
                    record.on_s,
                    record.max_skin_c,
                    record.min_distance_mm,
                    record.wall,
                    record.mono,
                    light=record.light,
                    counters=record.counters,
                    trace=record.trace,
                )
        elif isinstance(record, EndSession):
            if self._session_id is not None:
                j.end_session(
                    self._session_id,
                    record.on_s,
                    record.reason,
                    record.max_skin_c,
                    record.min_distance_mm,
                    record.wall,
                    record.mono,
                    light=record.light,
                    counters=record.counters,
                    trace=record.trace,
                )
            self._session_id = None
            if record.trace_retention_s is not None:
                pruned = j.prune_traces(record.wall - record.trace_retention_s)
                if pruned:
                    log.info("pruned %d trace rows older than the retention", pruned)
        elif isinstance(record, Fault):
            j.record_fault(record.code, record.detail, record.wall, record.mono)
        elif isinstance(record, AcknowledgeFaults):
            j.acknowledge_faults(record.wall)
        else:
            raise TypeError(f"not a journal record: {record!r}")

    def _read_limits(self, ticket: int) -> LimitsView:
        return LimitsView(
            tuple(self.journal.sessions_for_limits(LIMITS_SESSIONS)), self.journal.newest_record_wall(), ticket
        )

    def _commit_head(self, done_s: Callable[[], float]) -> bool:
        """Commit the oldest record; True on success. On failure the record stays first."""
        head = self._queue[0]
        try:
            self._apply(head.record)
            limits = self._read_limits(head.ticket)
        except Exception as exc:  # noqa: BLE001 - any failure: keep the record, retry, report it
            message = str(exc) if isinstance(exc, JournalError) else f"{type(exc).__name__}: {exc}"
            if message != self.last_error:
                log.error("journal write failed, will retry (lamp goes off if it persists): %s", message)
            self.last_error = message
            return False
        with self._lock:
            self._queue.popleft()
            self._committed_ticket = head.ticket
            self._limits = limits
            self._progress_s = done_s()
        if self.last_error is not None:
            log.warning("journal writes succeed again")
            self.last_error = None
        if self.on_commit is not None:
            self.on_commit()
        return True

    def _write_clock_note(self) -> None:
        with self._lock:
            note, self._clock_note = self._clock_note, None
        if note is None:
            return
        try:
            self.journal.note_clock_synced(*note)
        except Exception as exc:  # noqa: BLE001 - an optimisation for the limits; retried next second
            log.warning("could not note the synchronised clock: %s", exc)

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._queue and self._clock_note is None and not self._closing:
                    self._lock.wait()
                if not self._queue and self._clock_note is None:
                    break  # closing and drained
                busy = bool(self._queue)
            if not busy:
                self._write_clock_note()
                continue
            if not self._commit_head(self.monotonic):
                with self._lock:
                    if self._closing:
                        break
                    self._lock.wait(RETRY_S)
        self._close_journal()

    # -- the simulated engine ----------------------------------------------------------------------
    def next_due_s(self) -> float | None:
        """Simulated engine: when the next commit completes (None: nothing pending, or never)."""
        if self.disk is None or not self._queue:
            return None
        due = self._head_due_s()
        return due if math.isfinite(due) else None

    def _head_due_s(self) -> float:
        """The head's commit begins when it was handed over or the previous one ended."""
        disk = self.disk
        if disk is None:
            raise RuntimeError("commit times are scheduled only on a simulated disk")
        if self._head_due is None or self._head_due[0] != disk.version:
            start = max(self._queue[0].handed_s, self._progress_s)
            self._head_due = (disk.version, start + disk.duration_s(self._queue[0].record))
        return self._head_due[1]

    def pump(self) -> int:
        """Simulated engine: complete every commit due by now; returns how many completed."""
        if self.disk is None or self._closed:
            return 0
        now = self.monotonic()
        done = 0
        while self._queue:
            due = self._head_due_s()
            if due > now:
                break
            self._head_due = None
            if self._commit_head(functools.partial(float, due)):
                done += 1
            else:  # retried RETRY_S later
                self._head_due = (self.disk.version, now + RETRY_S)
                break
        if not self._queue:
            self._write_clock_note()
        return done

    # -- shutdown --------------------------------------------------------------------------------
    def close(self, timeout_s: float) -> bool:
        """Write the backlog (waiting at most `timeout_s`), then close the journal.
        Returns True when everything handed over was committed."""
        if self._closed:
            return True
        if self._thread is not None:
            with self._lock:
                self._closing = True
                self._lock.notify_all()
            self._thread.join(timeout_s)
            drained = not self._thread.is_alive()
        else:
            while self._queue and math.isfinite(self._head_due_s()):
                self._head_due = None
                if not self._commit_head(self.monotonic):
                    break
            drained = not self._queue
            self._close_journal()
        if not drained or self._queue:
            self.lost = len(self._queue)
            log.error(
                "journal: %d record(s) not written before exit (waited %.0f s; last error: %s); "
                "the last committed checkpoint stands",
                self.lost,
                timeout_s,
                self.last_error,
            )
        self._closed = True
        return not self.lost

    def _close_journal(self) -> None:
        try:
            self.journal.close()
        except Exception as exc:  # noqa: BLE001 - closing is the last thing; report it only
            log.error("journal: %s", exc)
