"""Caregiver interface: the atomic status file and `irlamp status`."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import stat
import subprocess
import sys
import threading

import pytest

from controller.service import status_reader, status_writer
from controller.service.status_reader import find_status_file, status_command
from controller.service.status_writer import STATUS_KEYS, status_path, write_status_atomic
from scenario_helpers import press, run_sim, scenario

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 1, 5, 10, 0, tzinfo=UTC).timestamp()


def sample(**changes) -> dict:
    data = {
        "state": "running",
        "lamp_on": True,
        "time_left_s": 754.0,
        "on_s": 446.0,
        "dose_cem43": 0.37,
        "switches": 3,
        "distance_mm": 412.0,
        "skin_c": 36.44,
        "ambient_c": 24.0,
        "signal_rate_mcps": 3.8,
        "ambient_rate_mcps": 0.42,
        "distance_doubt_share": 0.013,
        "sessions_today": 1,
        "sessions_per_day": 3,
        "next_start_allowed_wall": None,
        "start_blocked_reason": None,
        "pause_reason": None,
        "fault_latched": False,
        "last_fault": None,
        "leds": "green steady, heartbeat blink",
        "heartbeat_wall": NOW - 0.4,
        "heartbeat_mono": None,
        "boot_id": None,
        "pid": os.getpid(),
        "simulated": False,
        "latched_faults": [],
        "journal_backlog": 0,
        "journal_stalled_s": 0.0,
        "journal_error": None,
    }
    data.update(changes)
    return data


def run(path, as_json=False, **kwargs):
    out, err = io.StringIO(), io.StringIO()
    code = status_command(path, as_json, kwargs.pop("now_wall", NOW), tz=UTC, out=out, err=err, **kwargs)
    return code, out.getvalue(), err.getvalue()


def test_sample_uses_exactly_the_documented_keys():
    assert set(sample()) == set(STATUS_KEYS)
    for key in STATUS_KEYS:
        assert key in status_writer.__doc__


def test_the_daemon_writes_exactly_the_documented_keys_in_a_session_and_when_stopped(tmp_path, monkeypatch):
    """STATUS_KEYS is the file's documented contract: a key the daemon writes that is not listed
    (or a listed key it never writes) fails here."""
    from controller.service.daemon import Daemon

    written: list[dict] = []
    original = Daemon.status_snapshot
    monkeypatch.setattr(Daemon, "status_snapshot", lambda self: written.append(original(self)) or written[-1])
    state = tmp_path / "state"
    run_sim(tmp_path, scenario([press(2.0)], 20.0), state_dir=state)
    assert {"idle", "running"} <= {snapshot["state"] for snapshot in written}
    for snapshot in written:
        assert sorted(snapshot) == sorted(STATUS_KEYS)
    final = json.loads((state / "status.json").read_text())
    assert final["state"] == "stopped" and sorted(final) == sorted(STATUS_KEYS)


# --- writing -------------------------------------------------------------------------------


def test_write_replaces_the_file_with_readable_json_mode_0644(tmp_path):
    path = tmp_path / "status.json"
    path.write_text("old")
    old_umask = os.umask(0o077)
    try:
        write_status_atomic(path, sample())
    finally:
        os.umask(old_umask)
    assert json.loads(path.read_text()) == sample()
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["status.json"]


def test_non_finite_numbers_become_null(tmp_path):
    path = tmp_path / "status.json"
    write_status_atomic(
        path,
        sample(
            distance_mm=float("nan"), skin_c=float("inf"), last_fault={"code": "x", "detail": "", "wall": float("nan")}
        ),
    )
    data = json.loads(path.read_text())  # strict JSON: NaN would not even parse in many readers
    assert (data["distance_mm"], data["skin_c"], data["last_fault"]["wall"]) == (None, None, None)
    assert "NaN" not in path.read_text() and "Infinity" not in path.read_text()


def test_failed_replace_leaves_the_old_file_and_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "status.json"
    write_status_atomic(path, sample(state="idle"))

    def broken_replace(src, dst):
        raise OSError("disk gone")

    monkeypatch.setattr(status_writer.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk gone"):
        write_status_atomic(path, sample(state="running"))
    assert json.loads(path.read_text())["state"] == "idle"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["status.json"]


def test_a_reader_never_sees_a_partial_file(tmp_path):
    path = tmp_path / "status.json"
    big = "x" * 200_000  # far larger than one write() or page
    write_status_atomic(path, sample(leds=f"0 {big}"))
    stop = threading.Event()

    def writer():
        n = 0
        while not stop.is_set():
            n += 1
            write_status_atomic(path, sample(leds=f"{n} {big}"))

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        seen = set()
        for _ in range(400):
            data = json.loads(path.read_text())  # raises on a torn file
            assert data["leds"].endswith(big)
            seen.add(data["leds"].split()[0])
    finally:
        stop.set()
        thread.join()
    assert len(seen) > 1  # the writer really was replacing the file meanwhile


def test_status_path_prefers_a_writable_runtime_dir(tmp_path, monkeypatch):
    runtime, state = tmp_path / "run", tmp_path / "state"
    assert status_path(runtime, state) == state / "status.json"  # runtime dir missing
    runtime.mkdir()
    assert status_path(runtime, state) == runtime / "status.json"
    assert status_path(None, state) == state / "status.json"
    monkeypatch.setattr(status_writer.os, "access", lambda path, mode: False)
    assert status_path(runtime, state) == state / "status.json"  # not writable


def test_find_status_file_picks_the_newer(tmp_path):
    runtime, state = tmp_path / "run", tmp_path / "state"
    runtime.mkdir()
    state.mkdir()
    assert find_status_file(runtime, state) == runtime / "status.json"  # neither exists yet
    write_status_atomic(runtime / "status.json", sample())
    write_status_atomic(state / "status.json", sample())
    os.utime(runtime / "status.json", (NOW - 100, NOW - 100))
    os.utime(state / "status.json", (NOW, NOW))
    assert find_status_file(runtime, state) == state / "status.json"
    os.utime(runtime / "status.json", (NOW + 1, NOW + 1))
    assert find_status_file(runtime, state) == runtime / "status.json"


# --- reading -------------------------------------------------------------------------------


def test_absent_file_means_the_daemon_is_not_running(tmp_path):
    code, out, _ = run(tmp_path / "status.json")
    assert code == 3 and "not running" in out and str(tmp_path) in out
    code, out, _ = run(tmp_path / "status.json", as_json=True)
    assert code == 3 and json.loads(out)["daemon"] == "not running"


def test_human_view_of_a_running_session(tmp_path):
    path = tmp_path / "status.json"
    write_status_atomic(path, sample())
    code, out, err = run(path)
    assert code == 0 and err == ""
    assert "daemon running" in out
    assert "State:          running" in out
    assert "Lamp:           ON" in out
    assert "Time left:      12:34" in out
    assert "412 mm (16.2 in)" in out
    assert "36.4 °C" in out
    assert "Sensor light:   ambient 0.42 Mcps, signal 3.80 Mcps, 1.3 % of readings doubted" in out
    assert "Sessions today: 1 of 3" in out
    assert "Next start:     allowed now" in out
    assert "Last fault:     none" in out


def test_human_view_without_light_rates_leaves_the_line_out(tmp_path):
    path = tmp_path / "status.json"
    write_status_atomic(path, sample(signal_rate_mcps=None, ambient_rate_mcps=None))
    code, out, _ = run(path)
    assert code == 0 and "Sensor light" not in out


def test_human_view_of_a_blocked_start_and_a_latched_fault(tmp_path):
    path = tmp_path / "status.json"
    next_wall = dt.datetime(2026, 1, 5, 14, 5, tzinfo=UTC).timestamp()
    write_status_atomic(
        path,
        sample(
            state="fault",
            lamp_on=False,
            time_left_s=None,
            distance_mm=None,
            sessions_today=3,
            next_start_allowed_wall=next_wall,
            start_blocked_reason="cooldown",
            fault_latched=True,
            last_fault={"code": "skin_overheat", "detail": "skin 43.4 °C", "wall": NOW - 60},
        ),
    )
    code, out, _ = run(path)
    assert code == 0
    assert "Lamp:           OFF" in out and "Time left:      —" in out
    assert "Distance:       no reading" in out
    assert "not before 14:05 (skin cool-down between sessions)" in out
    assert "LATCHED — skin_overheat at 2026-01-05 09:59: skin 43.4 °C" in out
    assert "skin reached the temperature limit" in out  # what it means, from the fault table
    assert "hold" in out and "3 s" in out


def test_daily_limit_shows_the_date_when_it_is_not_today(tmp_path):
    path = tmp_path / "status.json"
    midnight = dt.datetime(2026, 1, 6, 0, 0, tzinfo=UTC).timestamp()
    write_status_atomic(path, sample(next_start_allowed_wall=midnight, start_blocked_reason="daily_limit"))
    _, out, _ = run(path)
    assert "not before 2026-01-06 00:00 (daily session limit reached)" in out


def test_json_view_adds_daemon_state_and_age(tmp_path):
    path = tmp_path / "status.json"
    write_status_atomic(path, sample())
    code, out, _ = run(path, as_json=True)
    data = json.loads(out)
    assert code == 0 and data["daemon"] == "running" and data["age_s"] == pytest.approx(0.4)
    assert {k: data[k] for k in STATUS_KEYS} == sample()


def test_old_heartbeat_of_a_live_process_is_stale(tmp_path):
    path = tmp_path / "status.json"
    write_status_atomic(path, sample(heartbeat_wall=NOW - 12))
    code, out, _ = run(path)
    assert code == 4 and out.startswith("STALE") and "12 s" in out and "frozen" in out
    code, out, _ = run(path, as_json=True)
    assert code == 4 and json.loads(out)["daemon"] == "stale"


def test_heartbeat_far_in_the_future_is_stale_too(tmp_path):
    path = tmp_path / "status.json"
    write_status_atomic(path, sample(heartbeat_wall=NOW + 3600))
    code, out, _ = run(path)
    assert code == 4 and "STALE" in out and "in the future" in out


def test_old_heartbeat_of_an_exited_process_means_not_running(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    path = tmp_path / "status.json"
    write_status_atomic(path, sample(heartbeat_wall=NOW - 60, pid=int(dead.stdout)))
    code, out, _ = run(path)
    assert code == 3 and "not running" in out


def test_stopped_state_with_old_heartbeat_means_not_running(tmp_path):
    path = tmp_path / "status.json"
    write_status_atomic(path, sample(state="stopped", heartbeat_wall=NOW - 60))
    code, out, _ = run(path)
    assert code == 3 and "not running" in out and "'stopped'" in out


def test_fresh_status_of_a_daemon_that_stopped_means_not_running(tmp_path):
    # the daemon's last act is writing state 'stopped'; a caregiver asking a second later
    # must not be told it is running
    path = tmp_path / "status.json"
    write_status_atomic(path, sample(state="stopped", lamp_on=False, heartbeat_wall=NOW - 0.5))
    code, out, _ = run(path)
    assert code == 3 and "not running" in out


def test_fresh_heartbeat_of_an_exited_process_means_not_running(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    path = tmp_path / "status.json"
    write_status_atomic(path, sample(heartbeat_wall=NOW - 0.5, pid=int(dead.stdout)))
    code, out, _ = run(path)
    assert code == 3 and "not running" in out


def test_monotonic_heartbeat_ignores_wall_clock_jumps_within_one_boot(tmp_path):
    path = tmp_path / "status.json"
    write_status_atomic(path, sample(heartbeat_wall=NOW - 7200, heartbeat_mono=500.0, boot_id="boot-x"))
    assert run(path, now_mono=501.0, boot_id="boot-x")[0] == 0  # wall clock jumped meanwhile
    assert run(path, now_mono=520.0, boot_id="boot-x")[0] == 4  # really 20 s old
    assert run(path, now_mono=501.0, boot_id="boot-y")[0] == 4  # other boot: wall decides


@pytest.mark.parametrize("content", ["", '{"state": "runn', "[1, 2]", '{"state": "idle"}', "\xff\xfe garbage"])
def test_garbled_file_is_a_clear_message_exit_4(tmp_path, content):
    path = tmp_path / "status.json"
    path.write_text(content, encoding="latin-1")
    code, out, err = run(path)
    assert code == 4 and out == ""
    assert "garbled" in err or "cannot read" in err
    assert str(path) in err and err.count("\n") == 1 and "Traceback" not in err


def test_unreadable_file_is_a_clear_message_exit_4(tmp_path, monkeypatch):
    path = tmp_path / "status.json"
    write_status_atomic(path, sample())

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(status_reader.Path, "read_text", refuse)
    code, out, err = run(path)
    assert code == 4 and "cannot read" in err and "Permission denied" in err


def test_reading_status_changes_nothing(tmp_path):
    path = tmp_path / "status.json"
    write_status_atomic(path, sample())
    before = (path.read_bytes(), path.stat().st_mtime_ns, sorted(os.listdir(tmp_path)))
    run(path)
    run(path, as_json=True)
    assert (path.read_bytes(), path.stat().st_mtime_ns, sorted(os.listdir(tmp_path))) == before


def test_cooling_says_why_the_lamp_is_off_and_shows_the_dose(tmp_path):
    from controller.service.status_reader import format_status

    lines = format_status(sample(state="cooling", lamp_on=False), NOW)
    assert lines[0] == "State:          cooling (lamp off at the comfort set point until the skin has cooled)"
    assert "Heat dose:      0.37 CEM43 min this session, lamp switched on 3 times" in lines
    assert not any(line.startswith("Heat dose") for line in format_status(sample(dose_cem43=None), NOW))
