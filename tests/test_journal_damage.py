"""Lost records count against the user (issue 9, finding 4; SR-7, SR-12).

An existing journal that is empty, truncated or not a database is refused at start with a
message naming `irlamp journal recover`; recovery keeps the damaged file and starts a journal
in which the rest of the day is used up. A journal that never existed is a fresh install.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import pwd
import shutil
import subprocess

import pytest
from scenario_helpers import DEFAULT_CONFIG, PYTHON, REPO, cli_env, history_json, run_cli

from controller.service.dirlock import lock_for_writing
from controller.service.journal import Journal, JournalError, JournalReader, journal_path
from controller.core.limits import start_allowance
from controller.service.recovery import LOST_DAY_PLACEHOLDERS, recover_journal
from controller.service.storage import DAMAGED

UTC = dt.timezone.utc
NOW_WALL = dt.datetime(2026, 3, 10, 9, 0, tzinfo=UTC).timestamp()
NOW_MONO = 5000.0
MIDNIGHT = dt.datetime(2026, 3, 11, 0, 0, tzinfo=UTC).timestamp()
GAP_S = 3600.0


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _real_journal(directory, sessions: int = 40):
    with Journal(directory, "boot-old") as journal:
        for i in range(sessions):
            sid = journal.start_session(NOW_WALL - 86400 * 30 + i * 7200, 10.0 + i * 7200)
            journal.end_session(
                sid, 600.0, "completed", 38.0, 400.0, NOW_WALL - 86400 * 30 + i * 7200 + 900, 910.0 + i * 7200
            )
            journal.record_fault("skin_overheat", "detail " * 20, NOW_WALL, 1.0)
    return journal_path(directory)


def _damage(directory, kind: str):
    path = journal_path(directory)
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "not_sqlite":
        path.write_bytes(b"this is not a database, just text\n" * 200)
    elif kind == "truncated":
        _real_journal(directory)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "header_only":
        _real_journal(directory)
        path.write_bytes(path.read_bytes()[:100])
    return path


DAMAGE = ["empty", "not_sqlite", "truncated", "header_only"]


def test_zero_byte_journal_is_refused_not_taken_as_a_new_one(tmp_path):
    """Old code opened a 0-byte journal as an empty new one: the day's count and cool-down reset."""
    path = journal_path(tmp_path)
    path.write_bytes(b"")
    with pytest.raises(JournalError) as info:
        Journal(tmp_path, "b")
    assert info.value.kind == DAMAGED
    message = str(info.value)
    assert str(path) in message and "empty" in message and "irlamp journal recover" in message
    assert "\n" not in message
    assert path.read_bytes() == b"" and sorted(p.name for p in tmp_path.iterdir()) == [path.name]


@pytest.mark.parametrize("kind", DAMAGE)
def test_a_damaged_journal_is_refused_untouched_with_the_recovery_command(tmp_path, kind):
    path = _damage(tmp_path, kind)
    before = _digest(path)
    with pytest.raises(JournalError) as info:
        Journal(tmp_path, "b")
    assert info.value.kind == DAMAGED, str(info.value)
    assert "irlamp journal recover" in str(info.value) and str(path) in str(info.value)
    assert _digest(path) == before


@pytest.mark.parametrize("kind", DAMAGE)
def test_history_of_a_damaged_journal_points_to_the_recovery(tmp_path, kind):
    """Old code called an empty journal 'schema version 0 ... start the daemon to upgrade it'."""
    _damage(tmp_path, kind)
    proc = run_cli("history", "--state-dir", str(tmp_path))
    assert proc.returncode == 4 and "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert "irlamp journal recover" in line and str(journal_path(tmp_path)) in line


def test_a_journal_missing_beside_its_write_ahead_log_is_refused(tmp_path):
    path = _real_journal(tmp_path)
    shutil.copy(path, tmp_path / "x")
    with Journal(tmp_path, "b") as journal:  # leave a live log behind, as a crash would
        journal.start_session(NOW_WALL, 1.0)
        wal = path.with_name(path.name + "-wal")
        shutil.copy(wal, tmp_path / "saved-wal")
    path.unlink()
    shutil.copy(tmp_path / "saved-wal", wal)
    with pytest.raises(JournalError, match="missing but its write-ahead log") as info:
        Journal(tmp_path, "b")
    assert info.value.kind == DAMAGED


def test_a_fresh_install_gets_a_journal_and_an_interrupted_creation_leaves_none(tmp_path, monkeypatch):
    def power_cut(_self):
        raise KeyboardInterrupt("power cut while creating the journal")

    monkeypatch.setattr(Journal, "_migrate", power_cut)
    with pytest.raises(KeyboardInterrupt):
        Journal(tmp_path, "b")
    assert not journal_path(tmp_path).exists(), "a half-made journal must never carry the name"
    monkeypatch.undo()
    with Journal(tmp_path, "b") as journal:  # the next start is a fresh install, as it was
        assert journal.sessions_for_limits() == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["journal.sqlite3", "journal.sqlite3.created"]


def test_a_deleted_journal_is_lost_records_not_a_fresh_install(tmp_path):
    """'I deleted the broken file' must not reset the day's count either."""
    path = _real_journal(tmp_path)
    path.unlink()
    with pytest.raises(JournalError, match="is missing, but a journal existed here") as info:
        Journal(tmp_path, "b")
    assert info.value.kind == DAMAGED and not path.exists()
    shown = run_cli("history", "--state-dir", str(tmp_path))
    assert shown.returncode == 4 and "irlamp journal recover" in shown.stderr
    code, out, err = _recover(tmp_path)
    assert code == 0, err
    assert not _allowance(tmp_path).allowed


def test_the_daemon_refuses_an_empty_journal_touching_nothing(tmp_path):
    state, runtime = tmp_path / "state", tmp_path / "run"
    state.mkdir()
    runtime.mkdir()
    journal_path(state).write_bytes(b"")
    proc = run_cli(
        "run",
        "--simulate",
        "--state-dir",
        str(state),
        "--runtime-dir",
        str(runtime),
        "--config",
        str(DEFAULT_CONFIG),
        timeout_s=30.0,
    )
    assert proc.returncode == 2, proc.stderr  # 2: systemd does not retry a refusal
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "irlamp journal recover" in lines[0] and str(state) in lines[0]
    assert journal_path(state).read_bytes() == b""
    assert not (runtime / "status.json").exists() and not (state / "status.json").exists()
    assert not journal_path(state).with_name("journal.sqlite3-wal").exists()


# --- recovery ----------------------------------------------------------------------------


def _allowance(
    directory, *, boot_id="boot-now", now_wall=NOW_WALL + 60, now_mono=NOW_MONO + 60, synced=True, per_day=3
):
    with JournalReader(directory) as reader:
        return start_allowance(
            reader.sessions_for_limits(),
            now_wall=now_wall,
            now_mono=now_mono,
            boot_id=boot_id,
            clock_synced=synced,
            newest_record_wall=reader.newest_record_wall(),
            sessions_per_day=per_day,
            min_gap_s=GAP_S,
            tz=UTC,
        )


def _recover(directory, **kwargs) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = recover_journal(
        directory,
        boot_id="boot-now",
        clock_synced=True,
        now_wall=NOW_WALL,
        now_mono=NOW_MONO,
        out=out,
        err=err,
        **kwargs,
    )
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("kind", DAMAGE)
def test_recover_keeps_the_damaged_file_and_uses_up_the_rest_of_the_day(tmp_path, kind):
    path = _damage(tmp_path, kind)
    before = _digest(path)
    code, out, err = _recover(tmp_path)
    assert code == 0, err
    (aside,) = tmp_path.glob("journal-damaged-*.sqlite3")
    assert _digest(aside) == before and aside.name in out  # never lost, never changed
    with Journal(tmp_path, "boot-now"):  # the daemon accepts the new one
        pass

    for per_day in (1, 2, 3):  # whatever the config allows
        blocked = _allowance(tmp_path, per_day=per_day)
        assert not blocked.allowed and blocked.reason == "daily_limit"
        assert blocked.next_start_wall >= MIDNIGHT
    # after the gap, still the rest of the day; with no synchronised clock, still blocked
    assert (
        _allowance(tmp_path, now_wall=MIDNIGHT - 60, now_mono=NOW_MONO + MIDNIGHT - 60 - NOW_WALL).reason
        == "daily_limit"
    )
    assert not _allowance(tmp_path, synced=False).allowed
    # a reboot with the clock unsynchronised (or set back) does not free the day either
    assert not _allowance(tmp_path, boot_id="boot-next", now_mono=120.0, synced=False).allowed
    assert not _allowance(tmp_path, boot_id="boot-next", now_wall=NOW_WALL - 86400, now_mono=120.0).allowed
    # the cool-down runs from the recovery by the monotonic clock, whatever the wall clock says
    next_day = _allowance(tmp_path, now_wall=MIDNIGHT + 60, now_mono=NOW_MONO + 600)
    assert not next_day.allowed and next_day.next_start_mono >= NOW_MONO + GAP_S
    # the next day, with the gap passed, sessions are allowed again
    assert _allowance(tmp_path, now_wall=MIDNIGHT + 60, now_mono=NOW_MONO + MIDNIGHT + 60 - NOW_WALL).allowed


def test_recover_keeps_the_write_ahead_log_with_the_damaged_file(tmp_path):
    path = journal_path(tmp_path)
    path.write_bytes(b"")
    wal = path.with_name(path.name + "-wal")
    wal.write_bytes(b"some log frames")
    code, _, err = _recover(tmp_path)
    assert code == 0, err
    (aside,) = tmp_path.glob("journal-damaged-*.sqlite3")
    assert aside.with_name(aside.name + "-wal").read_bytes() == b"some log frames"
    assert not wal.exists() or wal.read_bytes() != b"some log frames"


def test_history_names_the_placeholder_sessions(tmp_path):
    _damage(tmp_path, "empty")
    assert recover_journal(tmp_path, boot_id="b", clock_synced=False, out=io.StringIO()) == 0
    sessions = history_json(tmp_path)["sessions"]
    assert len(sessions) == LOST_DAY_PLACEHOLDERS
    assert {s["end_reason"] for s in sessions} == {"journal_recovered"}
    assert all(s["on_s"] == 0 and "used up" in s["ended_by"] for s in sessions)


def test_recover_leaves_a_healthy_or_missing_journal_alone(tmp_path):
    assert _recover(tmp_path)[0] == 0 and not journal_path(tmp_path).exists()
    _real_journal(tmp_path)
    with JournalReader(tmp_path) as reader:
        before = reader.recent_sessions(100), reader.unacknowledged_faults()
    code, out, _ = _recover(tmp_path)
    assert code == 0 and "healthy" in out
    with JournalReader(tmp_path) as reader:
        assert (reader.recent_sessions(100), reader.unacknowledged_faults()) == before
    assert not list(tmp_path.glob("journal-damaged-*"))


def test_recover_refuses_while_a_daemon_holds_the_directory(tmp_path):
    path = _damage(tmp_path, "empty")
    with lock_for_writing(tmp_path):
        code, _, err = _recover(tmp_path)
    assert code == 2 and "in use by another irlamp" in err and str(tmp_path) in err
    assert path.read_bytes() == b"" and not list(tmp_path.glob("journal-damaged-*"))


def test_journal_recover_command_end_to_end(tmp_path):
    _damage(tmp_path, "not_sqlite")
    proc = subprocess.run(
        [PYTHON, "-m", "controller.cli", "journal", "recover", "--state-dir", str(tmp_path)],
        cwd=REPO,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "journal-damaged-" in proc.stdout and "used up" in proc.stdout
    with Journal(tmp_path, "any"):
        pass


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: recovery run with sudo")
def test_recover_with_sudo_leaves_files_the_daemon_user_can_open(tmp_path):
    """`sudo irlamp journal recover` must not leave a root-owned journal or lock file in the
    irlamp user's directory: the daemon could not open them and would refuse to start."""
    nobody = pwd.getpwnam("nobody")
    os.chown(tmp_path, nobody.pw_uid, nobody.pw_gid)
    _damage(tmp_path, "empty")
    assert _recover(tmp_path)[0] == 0
    for name in ("journal.sqlite3", "irlamp.lock"):
        assert (tmp_path / name).stat().st_uid == nobody.pw_uid, name
