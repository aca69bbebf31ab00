"""Reading the daemon's journal read-only, as the bridge and `irlamp history` do (SR-12, SR-13).

A user who may read but not write the state directory cannot create the shared-memory index a
WAL reader needs. While the daemon runs its index exists and SQLite reads without writing it;
when the daemon is stopped (no write-ahead log) the file alone holds every record and is read
`immutable`. The two callers use that fallback differently, on purpose:

- `irlamp history` (and `plot`) open the journal for one read. They fall back to `immutable` only
  when the normal open was refused as read-only or permission-denied (not because the file
  itself could not be reached), and never while a write-ahead log exists; a read that fails
  after the open is reported, not retried.
- The bridge keeps its normal reader open across reads. When there is none, or the one it just
  opened fails its read, any journal error falls back to `immutable` for that one read (never
  kept), unless a write-ahead log exists. A kept reader that fails is closed; the next read
  opens anew.

These tests pin each behaviour by watching which opens happen (`JournalReader._open`, with the
real files underneath); the same two users run as `nobody` in
`test_the_one_helper_reads_as_nobody_while_the_daemon_runs_and_after_it_stopped`.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest
from nobody_helpers import directory_for_nobody, run_python_as_nobody, why_nobody_was_denied

from controller.bridge.events import JournalEvents
from controller.service.history import EXIT_NO_JOURNAL, EXIT_UNREADABLE, read_journal
from controller.service.journal import (
    SCHEMA_VERSION,
    Journal,
    JournalError,
    JournalReader,
    journal_path,
)
from controller.service.storage import DAMAGED, PERMISSION, READ_ONLY

WALL = 1_800_000_000.0
EVENTS = ["x-fault-1", "x-session-1"]


class Opens:
    """Records every `JournalReader` open ('normal' or 'immutable'). While `refuse_normal` is
    set the normal open fails with it; the next `broken_normal_opens` normal opens succeed but
    every read on them fails (without touching the files, as for a user who made nothing); the
    next `fail_reads` reads on a real normal reader fail."""

    def __init__(self, monkeypatch):
        self.seen: list[str] = []
        self.refuse_normal: BaseException | None = None
        self.broken_normal_opens = 0
        self.fail_reads = 0
        real_open, real_newest_ids = JournalReader._open, JournalReader.newest_ids

        def fake_open(reader, immutable):
            self.seen.append("immutable" if immutable else "normal")
            reader.opened_immutable = immutable
            if not immutable and self.refuse_normal is not None:
                raise self.refuse_normal
            if not immutable and self.broken_normal_opens:
                self.broken_normal_opens -= 1
                reader._conn = sqlite3.connect(":memory:")
                reader._conn.close()  # every query raises sqlite3.ProgrammingError
                return SCHEMA_VERSION
            return real_open(reader, immutable)

        def fake_newest_ids(reader):
            if not reader.opened_immutable and self.fail_reads:
                self.fail_reads -= 1
                raise JournalError("journal: a read failed (test)", READ_ONLY)
            return real_newest_ids(reader)

        monkeypatch.setattr(JournalReader, "_open", fake_open)
        monkeypatch.setattr(JournalReader, "newest_ids", fake_newest_ids)


@pytest.fixture
def opens(monkeypatch) -> Opens:
    return Opens(monkeypatch)


@pytest.fixture
def state(tmp_path) -> Path:
    """A stopped daemon's state directory: one fault, one ended session, no write-ahead log."""
    directory = tmp_path / "state"
    directory.mkdir()
    with Journal(directory, "boot") as journal:
        journal.record_fault("skin_overheat", "a", WALL, 1.0)
        sid = journal.start_session(WALL + 1, 2.0)
        journal.end_session(sid, 60.0, "completed", 38.0, 400.0, WALL + 100, 101.0)
    assert not Path(f"{journal_path(directory)}-wal").exists()
    return directory


def refused(kind: str | None, *, because_path_unreachable: bool = False) -> JournalError:
    error = JournalError(f"journal: refused as {kind} (test)", kind)
    if because_path_unreachable:
        error.__cause__ = PermissionError(13, "Permission denied")
    return error


def one_read(state: Path, read=lambda reader: reader.newest_ids()):
    err = io.StringIO()
    found, code = read_journal(state, "history", read, err)
    return found, code, err.getvalue()


def bridge(state: Path, tmp_path: Path) -> JournalEvents:
    return JournalEvents(str(state), str(tmp_path / "bridge"), "x", 100, read_only=True)


def ids(events) -> list[str]:
    return [event.event_id for event in events]


# --- irlamp history: one read -----------------------------------------------------------------


def test_one_read_opens_normally_and_closes_its_reader(state, opens):
    found, code, _ = one_read(state, lambda reader: reader)
    assert code is None and opens.seen == ["normal"]
    with pytest.raises(JournalError):
        found.newest_ids()  # closed after the read


@pytest.mark.parametrize("kind", [READ_ONLY, PERMISSION])
def test_one_read_falls_back_to_immutable_when_refused_as_read_only_and_the_daemon_is_stopped(state, opens, kind):
    opens.refuse_normal = refused(kind)
    found, code, _ = one_read(state)
    assert (found, code) == ((1, 1), None)
    assert opens.seen == ["normal", "immutable"]
    assert sorted(p.name for p in state.iterdir()) == ["journal.sqlite3", "journal.sqlite3.created"]


def test_one_read_never_reads_immutable_while_the_daemon_has_its_log(state, opens):
    with Journal(state, "boot"):  # the daemon runs: its write-ahead log exists
        opens.refuse_normal = refused(READ_ONLY)
        found, code, err = one_read(state)
    assert (found, code) == (None, EXIT_UNREADABLE) and "refused as read_only" in err
    assert opens.seen == ["normal"]


@pytest.mark.parametrize(
    "error",
    [refused(DAMAGED), refused(None), refused(PERMISSION, because_path_unreachable=True)],
    ids=["damaged", "other", "path-unreachable"],
)
def test_one_read_does_not_fall_back_on_other_errors(state, opens, error):
    opens.refuse_normal = error
    found, code, err = one_read(state)
    assert (found, code) == (None, EXIT_UNREADABLE) and str(error) in err
    assert opens.seen == ["normal"]


def test_one_read_reports_a_failed_read_without_retrying(state, opens):
    opens.fail_reads = 1
    found, code, err = one_read(state)
    assert (found, code) == (None, EXIT_UNREADABLE) and "a read failed" in err
    assert opens.seen == ["normal"]


def test_one_read_without_a_journal_opens_nothing(tmp_path, opens):
    found, code, err = one_read(tmp_path)
    assert (found, code) == (None, EXIT_NO_JOURNAL) and "no journal at" in err
    assert opens.seen == []


# --- the bridge: a reader kept open -----------------------------------------------------------


def test_bridge_keeps_its_normal_reader_open_across_reads(state, tmp_path, opens):
    events = bridge(state, tmp_path)
    assert ids(events.pending(50)) == EVENTS
    assert ids(events.pending(50)) == EVENTS
    assert opens.seen == ["normal"]
    events.close()


@pytest.mark.parametrize("kind", [READ_ONLY, PERMISSION, DAMAGED, None])
def test_bridge_falls_back_to_immutable_for_each_read_on_any_journal_error(state, tmp_path, opens, kind):
    opens.refuse_normal = refused(kind, because_path_unreachable=kind == PERMISSION)
    events = bridge(state, tmp_path)
    assert ids(events.pending(50)) == EVENTS
    assert opens.seen == ["normal", "immutable"]
    assert ids(events.pending(50)) == EVENTS  # the immutable reader was not kept
    assert opens.seen == ["normal", "immutable"] * 2
    assert sorted(p.name for p in state.iterdir()) == ["journal.sqlite3", "journal.sqlite3.created"]


def test_bridge_never_reads_immutable_while_the_daemon_has_its_log(state, tmp_path, opens, caplog):
    events = bridge(state, tmp_path)
    with Journal(state, "boot"):
        opens.refuse_normal = refused(READ_ONLY)
        assert events.pending(50) == []
        assert events.pending(50) == []
    assert opens.seen == ["normal", "normal"]
    assert [r.getMessage() for r in caplog.records].count(
        "cannot read the journal (events wait until it can be read): journal: refused as read_only (test)"
    ) == 1  # said once, not at every poll


def test_bridge_falls_back_when_the_reader_it_just_opened_fails_its_read(state, tmp_path, opens):
    opens.broken_normal_opens = 1
    events = bridge(state, tmp_path)
    assert ids(events.pending(50)) == EVENTS
    assert opens.seen == ["normal", "immutable"]
    assert ids(events.pending(50)) == EVENTS  # the failed normal reader was not kept
    assert opens.seen == ["normal", "immutable", "normal"]
    events.close()


def test_bridge_closes_a_kept_reader_that_fails_and_opens_anew_at_the_next_read(state, tmp_path, opens):
    events = bridge(state, tmp_path)
    assert ids(events.pending(50)) == EVENTS
    opens.fail_reads = 1
    assert events.pending(50) == []  # that read waits: no fallback for a kept reader
    assert opens.seen == ["normal"]
    assert ids(events.pending(50)) == EVENTS
    assert opens.seen == ["normal", "normal"]
    events.close()


def test_bridge_without_a_journal_opens_nothing(tmp_path, opens):
    assert bridge(tmp_path / "nowhere", tmp_path).pending(50) == []
    assert opens.seen == []


# --- the one helper, as an unprivileged user ---------------------------------------------------

AS_NOBODY = """
import json, sys
from controller.service.journal import ReadOnlyJournal
kept = ReadOnlyJournal(sys.argv[1], keep_open=True)
print(json.dumps({
    "one_read": ReadOnlyJournal(sys.argv[1], keep_open=False).read(lambda reader: reader.newest_ids()),
    "kept": [kept.read(lambda reader: reader.newest_ids()) for _ in range(2)],
}))
kept.close()
"""


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="needs root and setpriv to read as a user who cannot write the state directory",
)
def test_the_one_helper_reads_as_nobody_while_the_daemon_runs_and_after_it_stopped():
    """Both ways of reading, run as `nobody` on a 0755 state directory owned by root: while the
    daemon has the journal open (its log and index exist) and after it stopped (the file alone,
    read immutable), seeing every record and creating no file."""
    with directory_for_nobody("irlamp-read-only-") as directory:
        state = directory / "state"
        state.mkdir(mode=0o755)

        def read_as_nobody() -> dict:
            proc = run_python_as_nobody(AS_NOBODY, str(state))
            assert proc.returncode == 0, proc.stderr + why_nobody_was_denied(state)
            return json.loads(proc.stdout)

        with Journal(state, "boot") as daemon:
            daemon.record_fault("skin_overheat", "a", WALL, 1.0)
            files = sorted(p.name for p in state.iterdir())
            assert "journal.sqlite3-wal" in files
            assert read_as_nobody() == {"one_read": [1, 0], "kept": [[1, 0], [1, 0]]}
            assert sorted(p.name for p in state.iterdir()) == files
        assert sorted(p.name for p in state.iterdir()) == ["journal.sqlite3", "journal.sqlite3.created"]
        assert read_as_nobody() == {"one_read": [1, 0], "kept": [[1, 0], [1, 0]]}
        assert sorted(p.name for p in state.iterdir()) == ["journal.sqlite3", "journal.sqlite3.created"]
