"""One daemon per lamp (issue 9, finding 3; SR-7, SR-12): a second writer on a live state
directory or status file is refused at once and touches nothing.

The first daemon is a real `irlamp run --simulate` subprocess with a session running; the
second is another real `irlamp` process. Every wait is a bounded poll.
"""

from __future__ import annotations

import os
import signal
import subprocess

import pytest
from scenario_helpers import PYTHON, REPO, RunningDaemon, cli_env, history_json, run_cli, write_scenario

from controller.service.dirlock import DirectoryBusy, lock_for_writing

START_TIMEOUT_S = 10.0


@pytest.fixture
def live(tmp_path):
    """Daemon A, running a session with the lamp on."""
    daemon = RunningDaemon(tmp_path / "a")
    daemon.wait_message("READY=1", timeout_s=START_TIMEOUT_S)
    daemon.keys("space")
    daemon.wait_status(lambda s: s["lamp_on"] is True, what="lamp on in daemon A")
    yield daemon
    daemon.close()


def _second(*args: str) -> subprocess.CompletedProcess:
    return run_cli(*args, timeout_s=30.0)


def _assert_refused_naming(proc: subprocess.CompletedProcess, what: str, pid: int) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert what in lines[0] and f"pid {pid}" in lines[0], lines[0]


def test_second_daemon_on_a_live_state_dir_is_refused_and_the_first_keeps_its_session(live, tmp_path):
    files_before = sorted(p.name for p in live.state_dir.iterdir())
    other_runtime = tmp_path / "b-run"
    other_runtime.mkdir()

    second = _second(
        "run",
        "--simulate",
        "--state-dir",
        str(live.state_dir),
        "--runtime-dir",
        str(other_runtime),
        "--config",
        str(REPO / "config" / "lamp.yaml"),
    )
    _assert_refused_naming(second, str(live.state_dir), live.proc.pid)
    assert list(other_runtime.iterdir()) == []  # no status written anywhere

    scenario = write_scenario(
        tmp_path, {"start": {"distance_mm": 400, "skin_c": 32.0}, "events": [{"at": 1.0, "press": 0.2}], "until": 5}
    )
    sim = _second("simulate", str(scenario), "--json", "--state-dir", str(live.state_dir))
    _assert_refused_naming(sim, str(live.state_dir), live.proc.pid)
    assert sim.stdout == ""

    # Daemon A: lamp still on, its status file its own, its session open and nothing latched.
    status = live.wait_status(
        lambda s: s["lamp_on"] is True and s["state"] == "running", what="daemon A still running its session"
    )
    assert status["fault_latched"] is False
    session = history_json(live.state_dir)["sessions"][0]
    assert session["end_reason"] is None, "the live session was closed by the second process"
    assert history_json(live.state_dir)["faults"] == []
    assert live.proc.poll() is None
    assert sorted(p.name for p in live.state_dir.iterdir()) == files_before

    assert live.stop(signal.SIGTERM) == 0
    final = history_json(live.state_dir)
    assert [s["end_reason"] for s in final["sessions"]] == ["daemon_stopped"]
    assert final["faults"] == [], "daemon A latched a fault because of the second process"
    assert "control_exception" not in live.stderr()


def test_second_daemon_writing_the_same_status_file_is_refused(live, tmp_path):
    second = _second(
        "run",
        "--simulate",
        "--state-dir",
        str(tmp_path / "b-state"),
        "--runtime-dir",
        str(live.runtime_dir),
        "--config",
        str(REPO / "config" / "lamp.yaml"),
    )
    _assert_refused_naming(second, str(live.status_file), live.proc.pid)
    assert not (tmp_path / "b-state" / "journal.sqlite3").exists()  # refused before its journal
    status = live.wait_status(lambda s: s["lamp_on"] is True, what="daemon A's own status")
    assert status["pid"] == live.proc.pid


def test_readers_never_take_the_lock(live):
    status = run_cli("status", "--json", "--state-dir", str(live.state_dir), "--runtime-dir", str(live.runtime_dir))
    assert status.returncode == 0, status.stderr
    assert history_json(live.state_dir)["sessions"]
    with pytest.raises(DirectoryBusy):  # and daemon A still holds it afterwards
        lock_for_writing(live.state_dir)


def test_a_sigkilled_daemon_leaves_no_stale_lock(tmp_path):
    """The kernel drops a flock when its process dies: no pid file to clean up by hand."""
    state = tmp_path / "state"
    state.mkdir()
    holder = subprocess.Popen(
        [
            PYTHON,
            "-c",
            "import sys, time; from controller.service.dirlock import lock_for_writing; "
            "lock_for_writing(sys.argv[1]); print('locked', flush=True); time.sleep(60)",
            str(state),
        ],
        cwd=REPO,
        env=cli_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(DirectoryBusy, match=f"pid {holder.pid}"):
            lock_for_writing(state)
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
        with lock_for_writing(state) as lock:
            assert lock.paths == [state / "irlamp.lock"]
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=10)
