"""Caregiver interface: `irlamp history` reads the journal read-only and explains it."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import sqlite3

import pytest

from controller.service.history import END_REASON_WORDS, history_command
from controller.service.journal import MIGRATIONS, Journal, journal_path

UTC = dt.timezone.utc
DAY = 86400.0
NOW = dt.datetime(2026, 1, 10, 12, 0, tzinfo=UTC).timestamp()


def run(state_dir, days=7.0, as_json=False, now_wall=NOW):
    out, err = io.StringIO(), io.StringIO()
    code = history_command(state_dir, days, as_json, now_wall, tz=UTC, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def add_session(j: Journal, start_wall, on_s, reason, skin=None, distance=None):
    sid = j.start_session(start_wall, start_wall - NOW + 1e6)
    j.end_session(sid, on_s, reason, skin, distance, start_wall + on_s + 30, start_wall - NOW + 1e6 + on_s + 30)
    return sid


@pytest.fixture
def state(tmp_path):
    with Journal(tmp_path, "boot-1") as j:
        add_session(j, NOW - 20 * DAY, 600, "completed", 40.0, 350.0)  # outside 7 days
        add_session(j, NOW - 2 * DAY, 1200, "completed", 41.26, 320.0)
        add_session(j, NOW - 1 * DAY, 333, "too_close_too_long", 37.0, 290.0)
        add_session(j, NOW - 3600, 90, "gremlins", None, None)  # unknown reason: shown raw
        j.record_fault("skin_overheat", "skin 43.6 °C", NOW - 1 * DAY + 400, 5.0)
        j.acknowledge_faults(NOW - 1 * DAY + 900)
        j.record_fault("distance_io_error", "errno 121", NOW - 1800, 6.0)
    return tmp_path


def test_table_lists_sessions_and_faults_newest_first(state):
    code, out, err = run(state)
    assert code == 0 and err == ""
    sessions_part, faults_part = out.split("Faults")
    session_lines = [line for line in sessions_part.splitlines() if line.startswith("2026-")]
    assert [line[:16] for line in session_lines] == ["2026-01-10  11:0", "2026-01-09  12:0", "2026-01-08  12:0"]
    assert "    20.0  time limit reached" in session_lines[2]
    assert "41.3 °C" in session_lines[2] and "320 mm (12.6 in)" in session_lines[2]
    assert "5.5  too close for too long" in session_lines[1]
    assert "290 mm (11.4 in)" in session_lines[1]
    assert "1.5  gremlins" in session_lines[0]
    assert "2026-12-21" not in out and "2025-12-21" not in out  # 20 days ago: outside window
    fault_lines = faults_part.splitlines()
    io_error = next(i for i, line in enumerate(fault_lines) if "distance_io_error" in line)
    overheat = next(i for i, line in enumerate(fault_lines) if "skin_overheat" in line)
    assert io_error < overheat
    assert " NO " in fault_lines[io_error] and "errno 121" in fault_lines[io_error]
    assert "yes 01-09 12:15" in fault_lines[overheat]


def test_end_reasons_have_human_words():
    for reason in (
        "completed",
        "stopped_by_button",
        "too_close_too_long",
        "nobody_there",
        "overheat",
        "fault",
        "wall_time_cap",
        "interrupted",
        "daemon_stopped",
    ):
        words = END_REASON_WORDS[reason]
        assert words and words != reason


def test_json_is_one_object_with_sessions_and_faults(state):
    code, out, _ = run(state, days=30, as_json=True)
    data = json.loads(out)
    assert code == 0 and set(data) == {"sessions", "days", "faults"}
    # sessions recorded without a dose (as before v5) give days with an unknown dose, not 0
    assert [(d["date"], d["sessions"], d["dose_cem43"]) for d in data["days"]] == [
        ("2026-01-10", 1, None),
        ("2026-01-09", 1, None),
        ("2026-01-08", 1, None),
        ("2025-12-21", 1, None),
    ]
    assert [s["end_reason"] for s in data["sessions"]] == ["gremlins", "too_close_too_long", "completed", "completed"]
    newest_completed = data["sessions"][2]
    assert newest_completed["heat_minutes"] == 20.0 and newest_completed["on_s"] == 1200
    assert newest_completed["ended_by"] == "time limit reached"
    assert [f["acknowledged"] for f in data["faults"]] == [False, True]


def test_empty_window_says_none(state):
    code, out, _ = run(state, days=0.01)
    assert code == 0 and out.count("  none") == 2


def test_missing_journal_is_a_clear_message_and_creates_nothing(tmp_path):
    code, out, err = run(tmp_path / "nothing-here")
    assert code == 3 and out == ""
    assert "no journal at" in err and "nothing-here" in err and "Traceback" not in err
    assert not (tmp_path / "nothing-here").exists()


def test_garbage_journal_is_a_clear_message(tmp_path):
    journal_path(tmp_path).write_bytes(b"definitely not sqlite" * 100)
    code, out, err = run(tmp_path)
    assert code == 4 and out == "" and str(journal_path(tmp_path)) in err
    assert err.count("\n") == 1


def test_old_schema_journal_asks_for_the_daemon_to_upgrade_it(tmp_path):
    conn = sqlite3.connect(journal_path(tmp_path))
    for statement in MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    code, _, err = run(tmp_path)
    assert code == 4 and "upgrade" in err


@pytest.mark.parametrize("days", [0, -1, float("nan"), float("inf")])
def test_bad_days_is_refused(state, days):
    code, out, err = run(state, days=days)
    assert code == 2 and out == "" and "--days" in err


def test_history_does_not_alter_the_database(state):
    db = journal_path(state)
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    assert run(state)[0] == 0
    assert run(state, as_json=True)[0] == 0
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before


def test_history_is_not_blocked_by_a_writer_holding_a_transaction(state):
    with Journal(state, "boot-2") as writer:
        writer._conn.execute("BEGIN IMMEDIATE")  # the daemon in the middle of a write
        writer._conn.execute("UPDATE faults SET detail = 'uncommitted'")
        code, out, _ = run(state, as_json=True)
        writer._conn.execute("ROLLBACK")
    assert code == 0
    assert "uncommitted" not in out and len(json.loads(out)["faults"]) == 2


def test_dose_and_switch_ons_per_session_and_per_day(tmp_path):
    with Journal(tmp_path, "boot-1") as j:
        for start, dose, switches in ((NOW - 3 * 3600, 0.4, 12), (NOW - 1 * 3600, 0.35, 3)):
            sid = j.start_session(start, start - NOW + 1e6)
            j.end_session(
                sid,
                1200,
                "completed",
                41.0,
                330.0,
                start + 1300,
                start - NOW + 1e6 + 1300,
                counters={"dose_cem43": dose, "switches": switches, "doubt_switches": 1},
            )
    code, out, _ = run(tmp_path)
    assert code == 0
    assert "0.40  12 (1 doubt)  " in out and "0.35  3 (1 doubt)   " in out
    assert "  2026-01-10    0.75  (2 sessions)" in out
    code, out, _ = run(tmp_path, as_json=True)
    data = json.loads(out)
    assert data["days"] == [{"date": "2026-01-10", "sessions": 2, "dose_cem43": 0.75}]
    assert [s["switches"] for s in data["sessions"]] == [3, 12]
