"""Faults and session ends from the daemon's journal (read-only), with a persisted cursor.

At least once: the cursor (`<bridge state dir>/cursor.json`: the highest fault id and ended
session id the broker acknowledged) moves only after the broker's PUBACK for a whole batch, so
an event is re-sent after any outage of the broker or the bridge, never skipped. Event ids are
stable (`<lamp id>-fault-<journal id>`, `<lamp id>-session-<journal id>`) so a receiver can drop
duplicates. Batches are bounded (`backlog_per_round`); on the very first start (no cursor)
only the newest `first_start_backlog` old events are sent.

Reading: the bridge's user may read but not write the daemon's state directory. SQLite then
opens a WAL journal read-only as long as the daemon has it open (its -shm and -wal exist);
when the daemon is stopped (no -wal), the main file holds everything and is read `immutable`
for that one read (`controller.service.journal.ReadOnlyJournal`, keep_open=True).
"""

from __future__ import annotations

import heapq
import json
import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from controller.bridge.live_state import iso_utc
from controller.core.faults import fault_info
from controller.service.history import END_REASON_WORDS
from controller.service.journal import JournalError, JournalReader, ReadOnlyJournal
from controller.service.status_writer import write_status_atomic

log = logging.getLogger("irlamp.bridge")

CURSOR_FILENAME = "cursor.json"


@dataclass(frozen=True)
class Cursor:
    fault_id: int = 0
    session_id: int = 0


@dataclass(frozen=True)
class Event:
    event_id: str
    wall: float
    fault_id: int | None
    session_id: int | None
    payload: dict


def load_cursor(path: Path) -> Cursor | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Cursor(int(data["fault_id"]), int(data["session_id"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("cursor %s unreadable (%s): starting as on a first start", path, exc)
        return None


def save_cursor(path: Path, cursor: Cursor) -> None:
    write_status_atomic(path, {"fault_id": cursor.fault_id, "session_id": cursor.session_id})


def fault_event(lamp_id: str, record) -> Event:
    info = fault_info(record.code)
    return Event(
        f"{lamp_id}-fault-{record.id}",
        record.wall,
        record.id,
        None,
        {
            "event_type": "fault",
            "id": f"{lamp_id}-fault-{record.id}",
            "code": record.code,
            "detail": record.detail,
            "meaning": info.meaning,
            "advice": info.advice,
            "blink": f"red {info.red} / amber {info.amber}",
            "time": iso_utc(record.wall),
            "acknowledged": record.ack_wall is not None,
        },
    )


def session_event(lamp_id: str, record) -> Event:
    return Event(
        f"{lamp_id}-session-{record.id}",
        record.end_wall,
        None,
        record.id,
        {
            "event_type": "session_ended",
            "id": f"{lamp_id}-session-{record.id}",
            "code": record.end_reason,
            "meaning": END_REASON_WORDS.get(record.end_reason, record.end_reason),
            "on_s": round(record.on_s, 1),
            "max_skin_c": record.max_skin_c,
            "min_distance_mm": record.min_distance_mm,
            "start": iso_utc(record.start_wall),
            "time": iso_utc(record.end_wall),
        },
    )


class JournalEvents:
    """Pending events after the cursor, oldest first, from the daemon's journal."""

    def __init__(
        self,
        daemon_state_dir: str,
        bridge_state_dir: str,
        lamp_id: str,
        first_start_backlog: int,
        *,
        read_only: bool = False,
    ):
        self.lamp_id = lamp_id
        self.cursor_path = Path(bridge_state_dir) / CURSOR_FILENAME
        self.first_start_backlog = first_start_backlog
        self.read_only = read_only  # `irlamp bridge --print`: never writes the cursor
        self.cursor = load_cursor(self.cursor_path)
        self._journal = ReadOnlyJournal(daemon_state_dir, keep_open=True)
        self._problem: str | None = None

    def pending(self, limit: int) -> list[Event]:
        """Up to `limit` unsent events in time order; [] when the journal cannot be read now."""
        try:
            with_reader = self._journal.read(lambda reader: self._pending(reader, limit))
        except (JournalError, FileNotFoundError, sqlite3.Error) as exc:
            self._close()
            if str(exc) != self._problem:
                log.warning("cannot read the journal (events wait until it can be read): %s", exc)
            self._problem = str(exc)
            return []
        self._problem = None
        return with_reader

    def _pending(self, reader: JournalReader, limit: int) -> list[Event]:
        newest_fault, newest_session = reader.newest_ids()
        cursor = self.cursor
        if cursor is not None and (cursor.fault_id > newest_fault or cursor.session_id > newest_session):
            log.warning("the journal is older than the cursor (replaced?): sending its events again")
            cursor = None
        if cursor is None:
            skip = self.first_start_backlog
            cursor = Cursor(max(0, newest_fault - skip), max(0, newest_session - skip))
            self.commit(cursor)
        faults = [fault_event(self.lamp_id, f) for f in reader.faults_after(cursor.fault_id, limit)]
        ends = [session_event(self.lamp_id, s) for s in reader.ended_sessions_after(cursor.session_id, limit)]
        # merge, not sort: each kind stays in id order, so the cursor never skips one
        return list(heapq.merge(faults, ends, key=lambda e: e.wall))[:limit]

    def commit(self, cursor: Cursor) -> None:
        self.cursor = cursor
        if self.read_only:
            return
        try:
            save_cursor(self.cursor_path, cursor)
        except OSError as exc:  # kept in memory; after a restart the events are sent again
            log.error("cannot save the event cursor %s: %s", self.cursor_path, exc)

    def advance(self, sent: list[Event]) -> None:
        """The broker acknowledged every event in `sent`: move the cursor past them."""
        old = self.cursor or Cursor()
        faults = [e.fault_id for e in sent if e.fault_id is not None]
        sessions = [e.session_id for e in sent if e.session_id is not None]
        self.commit(Cursor(max([old.fault_id, *faults]), max([old.session_id, *sessions])))

    def _close(self) -> None:
        try:
            self._journal.close()
        except JournalError as exc:
            log.warning("%s", exc)

    def close(self) -> None:
        self._close()
