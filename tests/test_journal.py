"""SR-12: the session/fault journal is durable, versioned, and fails with clear messages."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest

from controller.service.journal import (
    MIGRATIONS,
    SCHEMA_VERSION,
    Journal,
    JournalError,
    JournalReader,
    journal_path,
)

WALL = 1_767_600_000.0  # 2026-01-05


@pytest.fixture
def journal(tmp_path):
    j = Journal(tmp_path / "state", "boot-1")
    yield j
    j.close()


def test_creates_directory_and_database_in_wal_with_full_sync(tmp_path):
    state = tmp_path / "a" / "b"
    with Journal(state, "boot-1") as j:
        assert journal_path(state).is_file()
        assert j._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert j.schema_version() == SCHEMA_VERSION
    other = sqlite3.connect(journal_path(state))
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    other.close()


def test_session_round_trip_survives_reopen(tmp_path):
    with Journal(tmp_path, "boot-1") as j:
        sid = j.start_session(WALL, 100.0)
        j.checkpoint(sid, 5.0, 34.5, 420.0, WALL + 5, 105.0)
        j.end_session(sid, 600.0, "completed", 39.0, 380.0, WALL + 700, 800.0)
    with Journal(tmp_path, "boot-2") as j:
        [s] = j.recent_sessions()
    assert (s.id, s.boot_id, s.start_wall, s.start_mono) == (sid, "boot-1", WALL, 100.0)
    assert (s.end_wall, s.end_mono, s.on_s, s.end_reason) == (WALL + 700, 800.0, 600.0, "completed")
    assert (s.max_skin_c, s.min_distance_mm) == (39.0, 380.0)


def test_every_write_is_committed_when_the_call_returns(journal, tmp_path):
    sid = journal.start_session(WALL, 1.0)
    journal.checkpoint(sid, 5.0, None, None, WALL + 5, 6.0)
    fid = journal.record_fault("skin_overheat", "44.1 C", WALL + 6, 7.0)
    assert not journal._conn.in_transaction
    with JournalReader(tmp_path / "state") as reader:  # another connection sees it all
        assert reader.recent_sessions()[0].on_s == 5.0
        assert reader.unacknowledged_faults()[0].id == fid


def test_checkpoint_never_lowers_on_time_and_only_widens_extremes(journal):
    sid = journal.start_session(WALL, 1.0)
    journal.checkpoint(sid, 10.0, 36.0, 400.0, WALL + 10, 11.0)
    journal.checkpoint(sid, 7.0, 35.0, 450.0, WALL + 15, 16.0)
    [s] = journal.recent_sessions()
    assert (s.on_s, s.max_skin_c, s.min_distance_mm) == (10.0, 36.0, 400.0)
    journal.checkpoint(sid, 12.0, None, None, WALL + 20, 21.0)
    [s] = journal.recent_sessions()
    assert (s.on_s, s.max_skin_c, s.min_distance_mm) == (12.0, 36.0, 400.0)
    journal.end_session(sid, 15.0, "stopped_by_button", 37.5, 390.0, WALL + 25, 26.0)
    [s] = journal.recent_sessions()
    assert (s.on_s, s.max_skin_c, s.min_distance_mm) == (15.0, 37.5, 390.0)


def test_writes_to_a_closed_or_unknown_session_are_refused(journal):
    sid = journal.start_session(WALL, 1.0)
    journal.end_session(sid, 3.0, "completed", None, None, WALL + 3, 4.0)
    with pytest.raises(JournalError, match=f"session {sid} is not open"):
        journal.checkpoint(sid, 4.0, None, None, WALL + 4, 5.0)
    with pytest.raises(JournalError, match="is not open"):
        journal.end_session(sid, 4.0, "completed", None, None, WALL + 4, 5.0)
    with pytest.raises(JournalError, match="session 999 is not open"):
        journal.checkpoint(999, 4.0, None, None, WALL + 4, 5.0)
    assert journal.recent_sessions()[0].on_s == 3.0


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), None, "5"])
def test_non_finite_numbers_are_refused(journal, bad):
    sid = journal.start_session(WALL, 1.0)
    with pytest.raises(ValueError, match="on_s must be a finite number"):
        journal.checkpoint(sid, bad, None, None, WALL + 1, 2.0)


def test_close_interrupted_keeps_checkpointed_on_time_and_ends_conservatively(tmp_path):
    with Journal(tmp_path, "boot-1") as j:
        done = j.start_session(WALL, 10.0)
        j.end_session(done, 60.0, "completed", None, None, WALL + 60, 70.0)
        cut = j.start_session(WALL + 4000, 4010.0)
        j.checkpoint(cut, 25.0, 38.0, 350.0, WALL + 4025, 4035.0)
        # process dies here: no end_session
    with Journal(tmp_path, "boot-2") as j:
        assert j.close_interrupted(5.0) == [cut]
        assert j.close_interrupted(5.0) == []
        s = j.recent_sessions()[0]
    assert (s.id, s.end_reason, s.on_s) == (cut, "interrupted", 25.0)
    assert (s.end_wall, s.end_mono) == (WALL + 4030, 4040.0)
    assert (s.max_skin_c, s.min_distance_mm) == (38.0, 350.0)


def test_session_cut_before_its_first_checkpoint_ends_after_its_start(journal):
    sid = journal.start_session(WALL, 10.0)
    assert journal.close_interrupted(5.0) == [sid]
    s = journal.recent_sessions()[0]
    assert (s.on_s, s.end_wall, s.end_mono) == (0.0, WALL + 5, 15.0)


def test_faults_are_recorded_and_acknowledged_once(journal):
    first = journal.record_fault("distance_io_error", "errno 121", WALL, 1.0)
    second = journal.record_fault("skin_overheat", "43.6 C", WALL + 10, 11.0)
    assert [f.id for f in journal.unacknowledged_faults()] == [first, second]
    assert journal.acknowledge_faults(WALL + 20) == 2
    assert journal.acknowledge_faults(WALL + 30) == 0
    third = journal.record_fault("button_stuck", "", WALL + 40, 41.0)
    _, faults = journal.history(1, WALL + 50)
    assert [(f.id, f.ack_wall) for f in faults] == [(third, None), (second, WALL + 20), (first, WALL + 20)]


def test_queries_order_and_windows(journal):
    ids = []
    for day in range(5):
        sid = journal.start_session(WALL + day * 86400, day * 86400.0)
        journal.end_session(sid, 60.0, "completed", None, None, WALL + day * 86400 + 60, day * 86400.0 + 60)
        ids.append(sid)
    open_id = journal.start_session(WALL + 5 * 86400, 5 * 86400.0)
    assert [s.id for s in journal.sessions_since(WALL + 3 * 86400)] == [ids[3], ids[4], open_id]
    assert [s.id for s in journal.recent_sessions(limit=2)] == [open_id, ids[4]]
    assert [s.id for s in journal.sessions_for_limits(count=3)] == [ids[3], ids[4], open_id]
    sessions, _ = journal.history(2.5, WALL + 5 * 86400 + 100)
    assert [s.id for s in sessions] == [open_id, ids[4], ids[3]]


def test_newest_record_wall_uses_only_times_the_clock_really_showed(journal):
    assert journal.newest_record_wall() is None
    sid = journal.start_session(WALL, 1.0)
    assert journal.newest_record_wall() == WALL
    journal.checkpoint(sid, 5.0, None, None, WALL + 5, 6.0)
    assert journal.newest_record_wall() == WALL + 5
    journal.record_fault("skin_overheat", "", WALL + 7, 8.0)
    journal.acknowledge_faults(WALL + 9)
    assert journal.newest_record_wall() == WALL + 9
    journal.close_interrupted(100.0)  # synthetic end at WALL + 105 is not a clock reading
    assert journal.newest_record_wall() == WALL + 9
    journal.note_clock_synced(WALL + 20, 21.0)
    assert journal.newest_record_wall() == WALL + 20


def test_clock_offset_of_a_synced_boot_is_attached_to_its_sessions(tmp_path):
    with Journal(tmp_path, "boot-1") as j:
        j.start_session(WALL - 3600, 50.0)  # written before the clock was set
        j.note_clock_synced(WALL + 100.0, 200.0)
        j.note_clock_synced(WALL + 100.3, 200.0)  # within half a second: not rewritten
        j.close_interrupted(5.0)
    with Journal(tmp_path, "boot-2") as j:
        j.start_session(WALL + 500, 30.0)
        first, second = j.sessions_for_limits()
    assert first.boot_clock_offset_s == WALL - 100.0
    assert second.boot_clock_offset_s is None


def _create_v1(path, rows):
    conn = sqlite3.connect(path)
    for statement in MIGRATIONS[0]:
        conn.execute(statement)
    conn.executemany(
        """INSERT INTO sessions (boot_id, start_wall, start_mono, end_wall, end_mono,
        on_s, end_reason, max_skin_c, min_distance_mm) VALUES (?,?,?,?,?,?,?,?,?)""",
        rows,
    )
    conn.execute(
        "INSERT INTO faults (boot_id, wall, mono, code, detail) VALUES ('old', ?, 5, 'skin_overheat', 'x')", (WALL,)
    )
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()


def test_migrates_a_version_1_journal_and_keeps_its_records(tmp_path):
    _create_v1(
        journal_path(tmp_path),
        [
            ("old", WALL, 10.0, WALL + 600, 610.0, 600.0, "completed", 40.0, 330.0),
            ("old", WALL + 5000, 5010.0, None, None, 120.0, None, 38.0, None),  # cut off
        ],
    )
    with Journal(tmp_path, "new-boot") as j:
        assert j.schema_version() == SCHEMA_VERSION == 5
        assert j.integrity_check() == "ok"
        closed = j.close_interrupted(5.0)
        done, cut = j.sessions_for_limits()
        assert [f.code for f in j.unacknowledged_faults()] == ["skin_overheat"]
        j.note_clock_synced(WALL + 9000, 100.0)  # the v3 table exists and works
    assert closed == [cut.id]
    assert (done.on_s, done.end_reason, done.max_skin_c) == (600.0, "completed", 40.0)
    # a v1 session had no checkpoint columns: it is closed conservatively from its start
    assert (cut.on_s, cut.end_reason, cut.end_wall, cut.end_mono) == (120.0, "interrupted", WALL + 5005, 5015.0)


def _create_old(path, version: int, columns: str, values: str, params: tuple) -> None:
    """A journal of an older schema `version` holding one ended session and its boot's clock."""
    conn = sqlite3.connect(path)
    for step in MIGRATIONS[:version]:
        for statement in step:
            conn.execute(statement)
    conn.execute(f"INSERT INTO sessions ({columns}) VALUES ({values})", params)
    conn.execute("INSERT INTO boot_clocks VALUES ('old', ?, ?)", (WALL - 10.0, WALL))
    conn.execute(f"PRAGMA user_version = {version}")
    conn.commit()
    conn.close()


_V3_COLUMNS = (
    "boot_id, start_wall, start_mono, end_wall, end_mono, on_s, end_reason, max_skin_c, "
    "min_distance_mm, checkpoint_wall, checkpoint_mono"
)
_V3_VALUES = "'old', ?, 10, ?, 610, 600, 'completed', 40.5, 331, ?, 610"


def _create_v3(path):
    _create_old(path, 3, _V3_COLUMNS, _V3_VALUES, (WALL, WALL + 600, WALL + 600))


LIGHT = {
    "min_signal_mcps": 3.5,
    "max_signal_mcps": 4.5,
    "min_ambient_mcps": 0.05,
    "max_ambient_mcps": 1.2,
    "distance_samples": 300,
    "distance_doubts": 6,
}


def test_migrates_a_version_3_journal_keeping_its_sessions_with_light_unknown(tmp_path):
    _create_v3(journal_path(tmp_path))
    with pytest.raises(JournalError, match="schema version 3.*start the irlamp daemon once"):
        JournalReader(tmp_path)
    with Journal(tmp_path, "new-boot") as j:
        assert j.schema_version() == SCHEMA_VERSION
        assert j.integrity_check() == "ok"
        (old,) = j.sessions_for_limits()
        sid = j.start_session(WALL + 5000, 20.0)
        j.checkpoint(sid, 5.0, 33.0, 400.0, WALL + 5005, 25.0, light=LIGHT)
        j.end_session(
            sid,
            9.0,
            "completed",
            33.5,
            398.0,
            WALL + 5009,
            29.0,
            light={
                **LIGHT,
                "min_signal_mcps": 3.9,
                "max_ambient_mcps": 0.9,
                "distance_samples": 450,
                "distance_doubts": 9,
            },
        )
    assert (old.on_s, old.end_reason, old.max_skin_c, old.min_distance_mm, old.boot_clock_offset_s) == (
        600.0,
        "completed",
        40.5,
        331.0,
        WALL - 10.0,
    )
    assert (old.min_signal_mcps, old.max_ambient_mcps, old.distance_samples, old.distance_doubts) == (
        None,
        None,
        None,
        None,
    )  # not measured: unknown, never a made-up 0
    with JournalReader(tmp_path) as reader:
        new = reader.recent_sessions(1)[0]
    # the ranges only widen (3.5 stays the lowest signal, 1.2 the highest ambient); counts only rise
    assert (new.min_signal_mcps, new.max_signal_mcps, new.min_ambient_mcps, new.max_ambient_mcps) == (
        3.5,
        4.5,
        0.05,
        1.2,
    )
    assert (new.distance_samples, new.distance_doubts) == (450, 9)


def test_light_fields_are_checked(tmp_path):
    with Journal(tmp_path, "b") as j:
        sid = j.start_session(WALL, 1.0)
        with pytest.raises(ValueError, match="unknown light fields"):
            j.checkpoint(sid, 1.0, None, None, WALL + 1, 2.0, light={"lux": 3})
        with pytest.raises(ValueError, match="max_ambient_mcps must be a finite number"):
            j.checkpoint(sid, 1.0, None, None, WALL + 1, 2.0, light={"max_ambient_mcps": float("nan")})


def test_refuses_a_journal_from_a_newer_irlamp(tmp_path):
    with Journal(tmp_path, "b"):
        pass
    conn = sqlite3.connect(journal_path(tmp_path))
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(JournalError, match=rf"schema version {SCHEMA_VERSION + 1} is newer") as info:
        Journal(tmp_path, "b")
    assert str(journal_path(tmp_path)) in str(info.value)


@pytest.mark.parametrize(
    "content", [b"this is not a database, just text\n" * 200, b"SQLite format 3\x00" + b"\xff" * 4000]
)
def test_garbage_file_gives_one_line_error_naming_the_file(tmp_path, content):
    journal_path(tmp_path).write_bytes(content)
    with pytest.raises(JournalError) as info:
        Journal(tmp_path, "b")
    message = str(info.value)
    assert str(journal_path(tmp_path)) in message and "\n" not in message


def test_refuses_a_foreign_sqlite_database(tmp_path):
    conn = sqlite3.connect(journal_path(tmp_path))
    conn.execute("CREATE TABLE recipes (name TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(JournalError, match="not an irlamp journal"):
        Journal(tmp_path, "b")


def test_unusable_state_directory_is_a_journal_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(JournalError, match="cannot create its directory"):
        Journal(blocker / "state", "b")


def test_reader_never_creates_or_changes_a_journal(tmp_path):
    with pytest.raises(FileNotFoundError):
        JournalReader(tmp_path)
    assert not journal_path(tmp_path).exists()
    with Journal(tmp_path, "b") as j:
        sid = j.start_session(WALL, 1.0)
        j.end_session(sid, 1.0, "completed", None, None, WALL + 1, 2.0)
    before = hashlib.sha256(journal_path(tmp_path).read_bytes()).hexdigest()
    with JournalReader(tmp_path) as reader:
        assert len(reader.recent_sessions()) == 1
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            reader._conn.execute("DELETE FROM sessions")
    assert hashlib.sha256(journal_path(tmp_path).read_bytes()).hexdigest() == before


def test_reader_refuses_an_old_schema_with_a_hint(tmp_path):
    _create_v1(journal_path(tmp_path), [])
    with pytest.raises(JournalError, match="start the irlamp daemon once to upgrade it"):
        JournalReader(tmp_path)


def _create_v4(path):
    _create_old(
        path,
        4,
        _V3_COLUMNS + ", min_signal_mcps, max_signal_mcps, min_ambient_mcps, "
        "max_ambient_mcps, distance_samples, distance_doubts",
        _V3_VALUES + ", 3.5, 4.5, 0.05, 1.2, 300, 6",
        (WALL, WALL + 600, WALL + 600),
    )
    conn = sqlite3.connect(path)
    conn.execute(
        "INSERT INTO faults (boot_id, wall, mono, code, detail) VALUES ('old', ?, 300, 'skin_overheat', 'x')",
        (WALL + 300,),
    )
    conn.commit()
    conn.close()


def test_migrates_a_version_4_journal_to_5_keeping_its_data_with_dose_and_trace_unknown(tmp_path):
    from controller.service.journal import TracePoint

    _create_v4(journal_path(tmp_path))
    with Journal(tmp_path, "new-boot") as j:
        assert j.schema_version() == SCHEMA_VERSION == 5
        assert j.integrity_check() == "ok"
        (old,) = j.sessions_for_limits()
        assert [f.code for f in j.unacknowledged_faults()] == ["skin_overheat"]
        sid = j.start_session(WALL + 5000, 20.0)
        j.checkpoint(
            sid,
            5.0,
            33.0,
            400.0,
            WALL + 5005,
            25.0,
            counters={"dose_cem43": 0.01, "switches": 1, "doubt_switches": 0},
            trace=(TracePoint(0.0, True, 400.0, 33.0, "running"), TracePoint(1.0, True, 401.0, 33.1, "running")),
        )
        j.end_session(
            sid,
            9.0,
            "completed",
            33.5,
            398.0,
            WALL + 5009,
            29.0,
            counters={"dose_cem43": 0.02, "switches": 3, "doubt_switches": 1},
            trace=(TracePoint(2.0, False, None, 33.2, "cooling"),),
        )
    assert (old.on_s, old.end_reason, old.max_skin_c, old.min_distance_mm) == (600.0, "completed", 40.5, 331.0)
    assert (old.min_signal_mcps, old.max_ambient_mcps, old.distance_samples, old.distance_doubts) == (
        3.5,
        1.2,
        300,
        6,
    )  # v4's data kept
    assert (old.dose_cem43, old.switches, old.doubt_switches) == (None, None, None)  # unknown, not 0
    with JournalReader(tmp_path) as reader:
        new = reader.session(sid)
        assert reader.trace(old.id) == []
        trace = reader.trace(sid)
    assert (new.dose_cem43, new.switches, new.doubt_switches) == (0.02, 3, 1)
    assert [(p.t_s, p.lamp_on, p.distance_mm, p.state) for p in trace] == [
        (0.0, True, 400.0, "running"),
        (1.0, True, 401.0, "running"),
        (2.0, False, None, "cooling"),
    ]


def test_traces_older_than_the_retention_are_pruned_and_their_sessions_kept(tmp_path):
    from controller.service.journal import TracePoint

    with Journal(tmp_path, "b") as j:
        ids = []
        for day in range(3):
            sid = j.start_session(WALL + day * 86400, 10.0 + day)
            j.end_session(
                sid,
                5.0,
                "completed",
                33.0,
                400.0,
                WALL + day * 86400 + 5,
                15.0 + day,
                trace=tuple(TracePoint(float(t), True, 400.0, 33.0, "running") for t in range(5)),
            )
            ids.append(sid)
        assert j.prune_traces(WALL + 86400 + 1) == 10  # the first two days' traces
        assert [len(j.trace(i)) for i in ids] == [0, 0, 5]
        assert len(j.sessions_for_limits()) == 3
