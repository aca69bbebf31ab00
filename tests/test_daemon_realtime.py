"""`irlamp run --simulate` in real time: systemd notify protocol, the keyboard button, and a
clean stop on SIGTERM / SIGINT (SR-2, SR-9, SR-12).

Every wait is a bounded poll; nothing asserts on how fast the machine is.
"""

from __future__ import annotations

import signal

import pytest
from scenario_helpers import DEFAULT_CONFIG, RunningDaemon, default_config, history_json

CFG = default_config()
START_TIMEOUT_S = 10.0
WATCHDOG_PINGS = 2


@pytest.fixture
def daemon(tmp_path):
    running = RunningDaemon(tmp_path)
    yield running
    running.close()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_notify_button_and_clean_stop_on_signal(daemon, signum):
    daemon.wait_message("READY=1", timeout_s=START_TIMEOUT_S)
    assert any(line.startswith("STATUS=") for line in daemon.lines())
    ready = next(m for m in daemon.poll_messages() if "READY=1" in m)
    assert f"MAINPID={daemon.proc.pid}" in ready.splitlines()
    daemon.wait_message("WATCHDOG=1", timeout_s=START_TIMEOUT_S, count=WATCHDOG_PINGS)

    idle = daemon.wait_status(lambda s: s["state"] == "idle", what="status 'idle'")
    assert idle["lamp_on"] is False, "the lamp must be off until the button is pressed"

    daemon.keys("space")
    running = daemon.wait_status(lambda s: s["lamp_on"] is True, what="lamp on after the button")
    assert running["state"] == "running"
    daemon.wait_message("STATUS=running, lamp ON, 20.0 min left", timeout_s=START_TIMEOUT_S)
    pings = daemon.lines().count("WATCHDOG=1")  # the loop keeps pinging while the lamp is on
    daemon.wait_message("WATCHDOG=1", timeout_s=START_TIMEOUT_S, count=pings + 2)

    assert daemon.stop(signum) == 0, daemon.stderr()
    assert "STOPPING=1" in daemon.lines()
    final = daemon.status()
    assert final["pid"] == daemon.proc.pid
    assert final["state"] == "stopped" and final["lamp_on"] is False
    assert f"relay OFF (signal_{signal.Signals(signum).name})" in daemon.stderr()
    assert "Traceback" not in daemon.stderr()

    (session,) = history_json(daemon.state_dir)["sessions"]
    assert session["end_reason"] == "daemon_stopped"
    assert session["on_s"] > 0


def test_keyboard_fault_turns_the_lamp_off_and_latches(daemon):
    """'f' injects a distance I/O error: lamp off, fault latched in status, journal and STATUS=."""
    daemon.wait_message("READY=1", timeout_s=START_TIMEOUT_S)
    daemon.keys("space")
    daemon.wait_status(lambda s: s["lamp_on"] is True, what="lamp on")
    daemon.keys("f")
    status = daemon.wait_status(lambda s: s["fault_latched"], what="fault latched")
    assert status["lamp_on"] is False and status["state"] == "fault"
    assert status["latched_faults"][0] == "distance_io_error"
    daemon.wait_message("STATUS=fault, lamp off, fault distance_io_error", timeout_s=START_TIMEOUT_S)
    assert daemon.stop(signal.SIGTERM) == 0
    history = history_json(daemon.state_dir)
    assert history["sessions"][0]["end_reason"] == "fault"
    assert "distance_io_error" in [f["code"] for f in history["faults"]]


def run_daemon_expecting_refusal(tmp_path, *args: str):
    """`irlamp run --simulate ARGS`: must exit by itself (bounded), never reach READY=1."""
    daemon = RunningDaemon(tmp_path, extra_args=args)
    try:
        code = daemon.proc.wait(timeout=START_TIMEOUT_S)
        return code, daemon.stderr(), daemon.lines()
    finally:
        daemon.close()


def test_bad_config_never_starts(tmp_path):
    config = tmp_path / "lamp.yaml"
    config.write_text(DEFAULT_CONFIG.read_text().replace("max_on_minutes: 20.0", "max_on_minutes: 45.0"))
    code, stderr, notify = run_daemon_expecting_refusal(tmp_path, "--config", str(config))
    assert code == 2
    assert "READY=1" not in notify
    assert len(stderr.strip().splitlines()) == 1 and str(config) in stderr and "max_on_minutes" in stderr


def test_unusable_state_dir_is_one_clear_line(tmp_path):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("x")
    code, stderr, notify = run_daemon_expecting_refusal(tmp_path, "--state-dir", str(blocker / "state"))
    assert code != 0 and "READY=1" not in notify
    assert "Traceback" not in stderr
    assert str(blocker / "state") in stderr.strip().splitlines()[-1]
