"""Caregivers read without root (issue 9, finding 6; SR-12 and the caregiver interface).

A user without access to the 0750 state directory gets one line saying how to get access, no
traceback. A member of the directory's group reads the history read-only, while the daemon
runs (SQLite reads the write-ahead log through the daemon's shared-memory index without
writing it) and while it is stopped (no log: the file is read as immutable), creating nothing.

These run `irlamp` as the unprivileged user `nobody` (setpriv), with a made-up group id for
the state directory so nothing on the system changes; they need root and skip otherwise.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from nobody_helpers import directory_for_nobody, why_nobody_was_denied
from scenario_helpers import run_cli_as_nobody

from controller.service.journal import Journal, journal_path

CAREGIVERS_GID = 48611  # no such group needs to exist: setpriv sets the number
WALL = 1_767_600_000.0


def _as_nobody(*args: str, groups: tuple[int, ...] = ()) -> subprocess.CompletedProcess:
    return run_cli_as_nobody(*args, groups=groups)


@pytest.fixture
def nobody_tmp():
    """A fresh directory that `nobody` can enter (pytest's tmp_path is 0700 under root, and its
    base directory is not this test's to open up)."""
    with directory_for_nobody("irlamp-caregiver-") as directory:
        yield directory


@pytest.fixture
def state(nobody_tmp):
    """A state directory laid out as the installer and the service leave it: 0750, group =
    the caregivers' group, journal 0644 written by its owner (root here, irlamp on a Pi)."""
    directory = nobody_tmp / "state"
    directory.mkdir()
    os.chown(directory, 0, CAREGIVERS_GID)
    directory.chmod(0o750)
    with Journal(directory, "boot") as journal:
        sid = journal.start_session(WALL, 1.0)
        journal.end_session(sid, 300.0, "completed", 38.0, 400.0, WALL + 400, 401.0)
    return directory


def _history(state, **kwargs):
    return _as_nobody("history", "--state-dir", str(state), "--json", "--days", "100000", **kwargs)


def test_history_without_access_says_how_to_get_it(state):
    """Old code: a PermissionError traceback."""
    proc = _history(state)
    assert proc.returncode == 4
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert str(journal_path(state)) in line and "permission denied" in line
    assert "sudo usermod -aG irlamp nobody" in line and "sudo irlamp history" in line


def test_a_caregiver_in_the_group_reads_while_the_daemon_runs_and_when_it_is_stopped(state):
    with Journal(state, "boot") as live:  # the daemon, with its log open
        live.start_session(WALL + 5000, 5000.0)
        files = sorted(p.name for p in state.iterdir())
        assert "journal.sqlite3-wal" in files
        running = _history(state, groups=(CAREGIVERS_GID,))
        assert running.returncode == 0, running.stderr + why_nobody_was_denied(state.parent)
        assert len(json.loads(running.stdout)["sessions"]) == 2
        assert sorted(p.name for p in state.iterdir()) == files
    stopped_files = sorted(p.name for p in state.iterdir())
    assert stopped_files == ["journal.sqlite3", "journal.sqlite3.created"]
    stopped = _history(state, groups=(CAREGIVERS_GID,))
    assert stopped.returncode == 0, stopped.stderr + why_nobody_was_denied(state.parent)
    assert [s["end_reason"] for s in json.loads(stopped.stdout)["sessions"]] == [
        None,
        "completed",
    ]  # the live session is still open
    assert sorted(p.name for p in state.iterdir()) == stopped_files  # the reader made nothing


def test_status_without_access_to_the_state_dir_is_clean(state, nobody_tmp):
    runtime = nobody_tmp / "run"
    runtime.mkdir(mode=0o755)
    proc = _as_nobody("status", "--state-dir", str(state), "--runtime-dir", str(runtime))
    assert proc.returncode == 3 and "Traceback" not in proc.stderr
    assert "not running" in proc.stdout
