"""Quiet idle wakes the control loop only for samples, the heartbeat LED and its own floor.

Every wake-up of the loop thread costs CPU (issue 15: idle almost free on a small Pi). The
status file and the watchdog ping are due once a second; while idle they ride on the next
step that runs anyway (a sample's, at least every IDLE_LOOP_PERIOD_S), at most that much
late: far inside the status reader's staleness bound (5 s) and systemd's WatchdogSec (5 s).
"""

from __future__ import annotations

from test_daemon_exceptions import Rig

from controller.core.indicators import next_heartbeat_change_s
from controller.core.sampling import IDLE_LOOP_PERIOD_S
from controller.service.status_reader import STALE_AFTER_S


def _quiet_idle_rig(tmp_path) -> Rig:
    rig = Rig(tmp_path)
    rig.run(3.0)  # past the press-free start: samplers at their idle rate
    assert rig.daemon._quiet_idle(rig.clock.monotonic())
    return rig


def test_in_quiet_idle_no_wake_is_scheduled_for_the_status_file_or_the_watchdog_ping(tmp_path):
    rig = _quiet_idle_rig(tmp_path)
    try:
        daemon, now = rig.daemon, rig.clock.monotonic()
        daemon.last_status_s = now - daemon.status_interval_s + 0.01  # both due 10 ms from now
        daemon.last_ping_s = now - 1.0 + 0.01
        floor = min(next_heartbeat_change_s(now), now + IDLE_LOOP_PERIOD_S)
        assert daemon.next_wake_s() >= floor - 1e-9
    finally:
        rig.hw.close()
        rig.journal.close()


def test_in_quiet_idle_the_status_file_is_still_written_about_once_a_second(tmp_path):
    rig = _quiet_idle_rig(tmp_path)
    try:
        written: list[float] = []
        for _ in range(300):  # 10 s in loop steps
            before = rig.daemon.last_status_s
            rig.run(1 / 30)
            if rig.daemon.last_status_s != before:
                written.append(rig.daemon.last_status_s)
        gaps = [b - a for a, b in zip(written, written[1:], strict=False)]
        assert len(written) >= 8
        assert max(gaps) <= rig.daemon.status_interval_s + IDLE_LOOP_PERIOD_S < STALE_AFTER_S
    finally:
        rig.hw.close()
        rig.journal.close()
