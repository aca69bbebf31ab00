"""Quiet idle wakes the control loop only for the heartbeat LED, the status file and its floor;
a session's steady lamp-on state at 10 Hz, the heartbeat's edges and its time caps.

Every wake-up of the loop thread costs CPU (issue 15: idle almost free on a small Pi). Samples
do not wake it (each step judges every sample since the previous one). The status file is due
once a second and gets a step of its own when no heartbeat edge comes first; the watchdog ping
rides on that step. The status must not be late: the MQTT bridge calls a daemon whose status is
older than its `daemon.stale_after_s` (1.5 s at the least) not running.
"""

from __future__ import annotations

import pytest
from test_daemon_exceptions import Rig

from controller.bridge.config import BRIDGE_SCHEMA
from controller.core.indicators import next_heartbeat_change_s
from controller.core.sampling import GUARD_DEADLINE_STEPS, IDLE_LOOP_PERIOD_S, lamp_on_loop_period_s
from controller.service.config import load_config
from controller.service.status_reader import STALE_AFTER_S

BRIDGE_STALE_MIN_S = BRIDGE_SCHEMA.bounds["daemon.stale_after_s"][0]


def _quiet_idle_rig(tmp_path) -> Rig:
    rig = Rig(tmp_path)
    rig.run(3.0)  # past the press-free start: samplers at their idle rate
    assert rig.daemon._quiet_idle(rig.clock.monotonic())
    return rig


def test_in_quiet_idle_the_loop_wakes_for_the_heartbeat_the_status_file_and_its_floor_only(tmp_path):
    rig = _quiet_idle_rig(tmp_path)
    try:
        daemon, now = rig.daemon, rig.clock.monotonic()
        floor = min(next_heartbeat_change_s(now), now + IDLE_LOOP_PERIOD_S)
        daemon.last_status_s = now  # just written: only the heartbeat or the floor wakes it
        daemon.last_ping_s = now - 1.0 + 0.01  # the ping alone does not wake it
        assert daemon.next_wake_s() >= floor - 1e-9
        daemon.last_status_s = now - daemon.status_interval_s + 0.01  # due in 10 ms
        assert daemon.next_wake_s() == min(floor, now + 0.01)
    finally:
        rig.hw.close()
        rig.journal.close()


def test_in_quiet_idle_the_status_file_is_written_once_a_second_and_never_late(tmp_path):
    """The loop stepped only when it asks to be (`next_wake_s`), as `serve` does while nothing
    wakes it, and the samplers read on their own schedules."""
    rig = Rig(tmp_path)
    try:
        daemon, hw, clock = rig.daemon, rig.hw, rig.clock
        written: list[float] = []
        steps = 0
        start = clock.monotonic()
        while clock.monotonic() < start + 25.0:
            wake = daemon.next_wake_s()
            for sampler in (hw.distance, hw.skin):
                while sampler.next_read_s() <= wake:
                    clock.advance_to(max(clock.monotonic(), sampler.next_read_s()))
                    sampler.step()
            clock.advance_to(max(clock.monotonic(), wake))
            hw.guard.tick(clock.monotonic(), 0.1)
            before = daemon.last_status_s
            daemon.step()
            if clock.monotonic() < start + 5.0:
                continue  # the first seconds: start-up
            steps += 1
            if daemon.last_status_s != before:
                written.append(daemon.last_status_s)
        assert daemon._quiet_idle(clock.monotonic())
        gaps = [b - a for a, b in zip(written, written[1:], strict=False)]
        assert max(gaps) <= daemon.status_interval_s + 1e-6
        assert max(gaps) < min(BRIDGE_STALE_MIN_S, STALE_AFTER_S)
        assert steps <= 20.0 * 1.6  # heartbeat edges (1/s) and the status (1/s) share steps
    finally:
        rig.hw.close()
        rig.journal.close()


def test_the_step_at_the_status_due_instant_writes_it_and_the_loop_moves_on(tmp_path):
    """The due instant is last + interval; a step exactly then must write the status, even when
    (last + interval) - last rounds below the interval. It did not once: the simulator then
    stepped at the same instant forever (the fault-matrix test hung)."""
    rig = _quiet_idle_rig(tmp_path)
    try:
        daemon, clock = rig.daemon, rig.clock
        rig.run(0.2)
        last = 3.001  # (3.001 + 1.0) - 3.001 < 1.0 in binary floating point
        assert (last + daemon.status_interval_s) - last < daemon.status_interval_s
        assert last <= clock.monotonic() < last + daemon.status_interval_s
        daemon.last_status_s = last
        due = daemon.next_wake_s()
        assert due <= last + daemon.status_interval_s
        clock.advance_to(last + daemon.status_interval_s)
        daemon.step()
        assert daemon.last_status_s == clock.monotonic()  # written
        assert daemon.next_wake_s() > clock.monotonic()
    finally:
        rig.hw.close()
        rig.journal.close()


# -- a session's lamp on and steady: 10 Hz, the heartbeat's edges and the time caps ------------------


def test_with_the_lamp_on_and_steady_the_loop_steps_at_the_lamp_on_rate_and_the_heartbeat(rig):
    rig.start_session()
    daemon, now = rig.daemon, rig.clock.monotonic()
    assert daemon.controller.state == "running"
    period_s = lamp_on_loop_period_s(rig.cfg)
    assert period_s == 1.0 / rig.cfg.loop.lamp_on_rate_hz > 1.0 / rig.cfg.loop.rate_hz
    assert daemon.next_wake_s() == min(now + period_s, next_heartbeat_change_s(now))
    daemon.buzz_until_s = now + 0.03  # a buzzer sounding: the full rate, to end it on time
    assert daemon.next_wake_s() == now + 1.0 / rig.cfg.loop.rate_hz


def test_with_the_lamp_on_the_loop_wakes_when_the_on_time_cap_runs_out(rig):
    rig.start_session()
    daemon, ctl = rig.daemon, rig.daemon.controller
    ctl.session.on_s = ctl.cfg.session.max_on_s - 0.042  # 42 ms of lamp-on time left
    assert daemon.next_wake_s() == pytest.approx(ctl.last_step_s + 0.042, abs=1e-9)


def test_the_lamp_on_loop_confirms_the_relay_at_least_five_times_per_guard_deadline():
    cfg = load_config(overrides={"loop": {"guard_deadline_s": 0.2, "lamp_on_rate_hz": 10}})
    assert lamp_on_loop_period_s(cfg) == 0.2 / GUARD_DEADLINE_STEPS == 0.04
    cfg = load_config(overrides={"loop": {"lamp_on_rate_hz": 40}})
    assert lamp_on_loop_period_s(cfg) == 1 / 40
