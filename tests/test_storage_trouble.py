"""Storage trouble a caregiver can act on (issue 9, finding 5; SR-1, SR-12): a full disk, a
read-only or foreign-owned state directory, a permission problem. Each gives one line that
names the directory and a fix, and the status shows the fault that latched.

How the full disk is made, honestly:
- `test_a_full_disk_mid_session_*`: the journal's SQLite connection is wrapped so that every
  write raises SQLite's own `sqlite3.OperationalError('database or disk is full')` (what SQLite
  raises on ENOSPC), from inside `Journal`, so its error handling is the production one.
- `test_a_restart_on_a_really_full_disk_*`: a real 1 MiB tmpfs, filled to the last byte, in a
  private mount namespace (`unshare -m`); needs root, skipped otherwise.
- Permission tests run a subprocess as an unprivileged user (`setpriv`); need root.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import textwrap

import pytest
from nobody_helpers import directory_for_nobody, why_nobody_was_denied
from scenario_helpers import DEFAULT_CONFIG, PYTHON, REPO, cli_env, run_cli, run_cli_as_nobody

from controller.service.journal import Journal, journal_path
from controller.service.status_reader import format_status
from controller.service.storage import DISK_FULL, PERMISSION, README_RECOVERY, explain_storage_error

ROOT = os.geteuid() == 0
NOBODY = "nobody"


class _FullDisk:
    """Stands in for the journal's sqlite3 connection: reads pass, every write fails as
    SQLite fails on a full disk."""

    def __init__(self, conn: sqlite3.Connection):
        self._conn = conn
        self.in_transaction = False

    def execute(self, sql: str, *args):
        if sql.lstrip().upper().startswith(("BEGIN", "INSERT", "UPDATE", "COMMIT")):
            raise sqlite3.OperationalError("database or disk is full")
        return self._conn.execute(sql, *args)

    def close(self):
        self._conn.close()


def test_a_full_disk_mid_session_shows_the_fault_in_the_status(rig):  # noqa: F811
    """Old code: lamp off and state 'fault', but 'Last fault: none' (the fault was never
    recorded, and the status only showed recorded faults). The write fails on the journal
    writer's thread (issue 10), which ends the session with journal_stalled (red 6: storage)."""
    rig.start_session()
    rig.journal._conn = _FullDisk(rig.journal._conn)
    rig.run(rig.cfg.loop.checkpoint_s + 1.0)
    assert not rig.relay_pin_on()
    status = rig.daemon.status_snapshot()
    assert status["state"] == "fault" and status["fault_latched"]
    fault = status["last_fault"]
    assert fault is not None and fault["code"] == "journal_stalled"
    assert "disk is full" in fault["detail"] and str(rig.tmp_path) in fault["detail"]
    assert fault["detail"].startswith("records cannot be written: journal ")
    assert "not in the journal" in fault["detail"]
    text = "\n".join(format_status(status, status["heartbeat_wall"]))
    assert "Last fault:     none" not in text and "LATCHED — journal_stalled" in text
    assert "disk is full" in text


def test_full_disk_message_names_the_directory_and_the_fix(tmp_path):
    message = explain_storage_error(
        journal_path(tmp_path), sqlite3.OperationalError("database or disk is full"), "write", "journal"
    )
    assert "disk is full" in message and str(tmp_path) in message and README_RECOVERY in message
    assert f"df -h {tmp_path}" in message and "\n" not in message


def _in_full_tmpfs(script: str) -> subprocess.CompletedProcess:
    """Run `script` (sh) in a private mount namespace with a (fresh, empty) 1 MiB tmpfs at
    $MNT; the script fills it, or remounts it read-only, itself."""
    if not ROOT or shutil.which("unshare") is None:
        pytest.skip("a real full file system needs root (unshare -m, mount -t tmpfs)")
    wrapper = textwrap.dedent(f"""\
        set -e
        MNT=$(mktemp -d)
        mount -t tmpfs -o size=1m tmpfs "$MNT"
        export MNT
        {script}
        """)
    proc = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", wrapper],
        cwd=REPO,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if "mount:" in proc.stderr and "permission denied" in proc.stderr.lower():
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    return proc


def test_a_restart_on_a_really_full_disk_names_the_disk_and_the_fix(tmp_path):
    """Old code: 'disk I/O error (is it an irlamp journal?)', naming neither disk nor fix."""
    proc = _in_full_tmpfs(f"""
        {PYTHON} -c "import sys; from controller.service.journal import Journal; \\
Journal(sys.argv[1], 'b').close()" "$MNT/state"
        dd if=/dev/zero of="$MNT/filler" bs=4k 2>/dev/null || true
        df -k "$MNT" | tail -1 >&2
        {PYTHON} -m controller.cli run --simulate --state-dir "$MNT/state" --runtime-dir {tmp_path} \\
            --config {DEFAULT_CONFIG} </dev/null && echo "EXIT=0" || echo "EXIT=$?"
        """)
    assert "EXIT=1" in proc.stdout, proc.stdout + proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "Traceback" not in proc.stderr
    assert "/state" in last and "disk is full" in last and "df -h" in last and README_RECOVERY in last


def _as_nobody(*args: str) -> subprocess.CompletedProcess:
    return run_cli_as_nobody(*args)


@pytest.fixture
def nobody_tmp():
    """A fresh directory that `nobody` can enter (pytest's tmp_path is 0700 under root, and its
    base directory is not this test's to open up)."""
    with directory_for_nobody("irlamp-storage-") as directory:
        yield directory


def test_a_foreign_owned_state_directory_says_who_owns_it_and_how_to_fix_it(nobody_tmp):
    state = nobody_tmp / "state"
    state.mkdir(mode=0o755)  # root's, like a directory made by hand with sudo mkdir
    with Journal(state, "b"):
        pass
    proc = _as_nobody(
        "run",
        "--simulate",
        "--state-dir",
        str(state),
        "--runtime-dir",
        str(nobody_tmp / "none"),
        "--config",
        str(DEFAULT_CONFIG),
    )
    assert proc.returncode == 2, proc.stderr + why_nobody_was_denied(nobody_tmp)  # restarting cannot fix it
    (line,) = proc.stderr.strip().splitlines()
    assert str(state) in line and "permission denied" in line and "root:root" in line
    assert "sudo chown -R irlamp:irlamp" in line and README_RECOVERY in line


def test_a_restart_on_a_really_read_only_disk_says_so(tmp_path):
    """The SD card remounted read-only after errors: named as such, exit 2 (no retrying)."""
    proc = _in_full_tmpfs(f"""
        {PYTHON} -c "import sys; from controller.service.journal import Journal; \\
Journal(sys.argv[1], 'b').close()" "$MNT/state"
        mount -o remount,ro "$MNT"
        {PYTHON} -m controller.cli run --simulate --state-dir "$MNT/state" --runtime-dir {tmp_path} \
            --config {DEFAULT_CONFIG} </dev/null && echo "EXIT=0" || echo "EXIT=$?"
        """)
    assert "EXIT=2" in proc.stdout, proc.stdout + proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "/state" in last and "read-only" in last and "dmesg" in last and README_RECOVERY in last


def test_a_read_only_file_system_is_named_as_such(tmp_path):
    from errno import EROFS

    message = explain_storage_error(tmp_path, OSError(EROFS, "Read-only file system"), "write")
    assert "read-only" in message and "dmesg" in message and README_RECOVERY in message


def test_storage_problem_kinds_come_from_sqlite_codes_not_only_text(tmp_path):
    from controller.service.storage import storage_problem

    path = tmp_path / "db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.execute("PRAGMA max_page_count = 2")  # SQLite's own SQLITE_FULL, no real disk needed
    with pytest.raises(sqlite3.OperationalError) as info:
        conn.execute("INSERT INTO t VALUES (zeroblob(100000))")
    conn.close()
    assert storage_problem(info.value, path) == DISK_FULL
    assert storage_problem(PermissionError(13, "Permission denied"), path) == PERMISSION


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 2 MiB tmpfs mounted for this test only (root only; unmounted afterwards)."""
    if not ROOT:
        pytest.skip("mounting a real small file system needs root")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if (
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True).returncode
        != 0
    ):
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=True)


def _fill(directory) -> None:
    """Write until the file system says ENOSPC."""
    import errno

    with open(directory / "filler", "wb") as filler:
        try:
            while True:
                filler.write(b"\0" * 65536)
                filler.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc


def test_a_really_full_disk_under_the_running_daemon(tmp_path, tiny_disk):
    """The real daemon with its journal on a real small disk that fills mid-session: lamp off,
    the status names the fault and the disk, no traceback in the log; once space is freed, the
    daemon starts and the cut-off session still counts."""
    import signal

    from scenario_helpers import RunningDaemon, history_json

    state = tiny_disk / "state"
    daemon = RunningDaemon(tmp_path / "a", extra_args=("--state-dir", str(state)))
    try:
        daemon.wait_message("READY=1", timeout_s=10.0)
        daemon.keys("space")
        daemon.wait_status(lambda s: s["lamp_on"] is True, what="lamp on")
        _fill(tiny_disk)
        status = daemon.wait_status(
            lambda s: s["fault_latched"], timeout_s=20.0, what="a latched fault once the disk is full"
        )
        assert status["lamp_on"] is False and status["state"] == "fault"
        assert status["last_fault"]["code"] == "journal_stalled"  # written off the loop (issue 10)
        assert "disk is full" in status["last_fault"]["detail"]
        shown = run_cli("status", "--runtime-dir", str(daemon.runtime_dir), "--state-dir", str(state))
        assert "Last fault:     none" not in shown.stdout and "disk is full" in shown.stdout
        daemon.stop(signal.SIGTERM)
        assert "Traceback" not in daemon.stderr()
    finally:
        daemon.close()

    # (A restart before space is freed may refuse with "the disk is full" - see the tmpfs test
    # above - or, when SQLite's log and index files are still there, start and fault again at
    # its next write: the lamp stays off either way.)
    (tiny_disk / "filler").unlink()  # the README's fix: free space
    (session,) = history_json(state)["sessions"]
    assert session["end_reason"] is None  # cut off while the disk was full
    restarted = RunningDaemon(tmp_path / "b", extra_args=("--state-dir", str(state)))
    try:
        restarted.wait_message("READY=1", timeout_s=10.0)
        restarted.stop(signal.SIGTERM)
    finally:
        restarted.close()
    (session,) = history_json(state)["sessions"]
    assert session["end_reason"] == "interrupted" and session["on_s"] >= 0
