"""SR-12 / SR-3 / SR-7: SIGKILL the real-time daemon during a session, restart it on the same
state directory.

The journal must show the cut-off session as 'interrupted' with the on-time of its last
checkpoint (checkpoints come at least every loop.checkpoint_s while the lamp is on), and
the restarted daemon must not switch the lamp on by itself.

The kill instants are seeded random draws, one from each stretch of a session's first
seconds, so both "before the first checkpoint" and "after one" are always covered.
"""

from __future__ import annotations

import random
import signal
import time

import pytest
from scenario_helpers import RunningDaemon, default_config, history_json

CFG = default_config()
CHECKPOINT_S = CFG.loop.checkpoint_s
SEED = 20260105
KILL_WINDOWS_S = [
    (0.2, 1.5),
    (1.5, 3.5),
    (3.5, CHECKPOINT_S),
    (CHECKPOINT_S, CHECKPOINT_S + 1.5),
    (CHECKPOINT_S + 1.5, 2 * CHECKPOINT_S - 1.0),
]
KILL_AFTER_S = [round(random.Random(SEED + i).uniform(low, high), 3) for i, (low, high) in enumerate(KILL_WINDOWS_S)]
# Slack for the loop step that takes a checkpoint after it falls due, and for scheduling.
TOLERANCE_S = 0.25
START_TIMEOUT_S = 10.0


@pytest.mark.parametrize("kill_after_s", KILL_AFTER_S)
def test_sigkill_mid_session_is_recorded_as_interrupted_and_never_restarts_the_lamp(tmp_path, kill_after_s):
    first = RunningDaemon(tmp_path)
    second = None
    try:
        first.wait_message("READY=1", timeout_s=START_TIMEOUT_S)
        first.wait_status(lambda s: s["state"] == "idle", what="idle")
        pressed_at = time.monotonic()
        first.keys("space")
        first.wait_status(lambda s: s["lamp_on"] is True, what="lamp on")
        seen_on_at = time.monotonic()  # the lamp was on at the latest by now
        time.sleep(kill_after_s)  # schedules the kill; nothing is asserted on it
        first.proc.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        assert first.proc.wait(timeout=10) == -signal.SIGKILL
        on_at_least_s = killed_at - seen_on_at  # true lamp-on time at the kill, lower bound
        on_at_most_s = killed_at - pressed_at  # and upper bound

        second = RunningDaemon(tmp_path)
        second.wait_message("READY=1", timeout_s=START_TIMEOUT_S)
        status = second.wait_status(lambda s: s["state"] != "starting", what="status of the new daemon")
        assert status["lamp_on"] is False and status["state"] == "idle"
        assert "interrupted" in second.stderr()

        (session,) = history_json(second.state_dir)["sessions"]
        assert session["end_reason"] == "interrupted"
        assert session["on_s"] >= on_at_least_s - CHECKPOINT_S - TOLERANCE_S, (session, on_at_least_s)
        assert session["on_s"] <= on_at_most_s + TOLERANCE_S, (session, on_at_most_s)

        # it still counts: a press now is refused (cool-down), and the lamp stays off
        assert status["start_blocked_reason"] == "cooldown" and status["sessions_today"] == 1
        second.keys("space")
        released_at = time.monotonic() + 0.3 + CFG.button.bounce_ms / 1000.0  # 'space' holds 0.3 s
        after = second.wait_status(
            lambda s: s["heartbeat_mono"] > released_at + 0.1, what="a status written after the press"
        )
        assert after["lamp_on"] is False and after["state"] == "idle"
        assert second.stop(signal.SIGTERM) == 0
        sessions = history_json(second.state_dir)["sessions"]
        assert len(sessions) == 1, "a session started after the restart"
        assert "session 2 started" not in second.stderr()
    finally:
        first.close()
        if second is not None:
            second.close()
