"""SR-8 fault matrix through the simulator: every fault kind x both sensors x idle/running/paused.

For each case: the relay is off within a bound derived from the config, the first fault that
latches is `<sensor>_<kind>`, a start is refused while it is latched (fault_latched), a long
press acknowledges it, and afterwards the refusal reason changes (cooldown after a session)
or a start works (no session before). Runs in-process: one scenario per case.

While idle the samplers read at their idle rate (controller/core/sampling.py), and every time
bound scales with it (sensor_health rule 7): the idle cases are held to the scaled bounds
(docs/safety.md, fault-bounds table).
"""

from __future__ import annotations

import math

import pytest
from scenario_helpers import ROUNDING_S, SimRun, default_config, press, run_sim, scenario

from controller.core.sampling import IDLE_LOOP_PERIOD_S, idle_periods_s, lamp_on_loop_period_s

CFG = default_config()
SENSORS = ("distance", "skin")
KINDS = ("io_error", "timeout", "out_of_range", "nan", "frozen", "hang")
STATES = ("idle", "running", "paused")

PERIOD_S = {"distance": CFG.distance.timing_budget_ms / 1000.0, "skin": CFG.skin.period_ms / 1000.0}
STALE_S = {"distance": CFG.faults.distance_stale_s, "skin": CFG.faults.skin_stale_s}
FROZEN_S = {"distance": CFG.faults.distance_frozen_s, "skin": CFG.faults.skin_frozen_s}
DOUBT_S = {s: min(2.5 * PERIOD_S[s], STALE_S[s]) for s in SENSORS}
IDLE_PERIOD_S = dict(zip(SENSORS, idle_periods_s(CFG), strict=True))
# idle rate: the same number of sample periods (rule 7)
IDLE_FACTOR = {s: IDLE_PERIOD_S[s] / PERIOD_S[s] for s in SENSORS}
# The loop steps at rate_hz (judging every sample since its last step) and at once after a
# hazard cut: a condition that becomes true between samples is acted on within one loop period.
# While the lamp is on and steady it steps at lamp_on_rate_hz; quiet idle, at least every second.
STEP_S = 1.0 / CFG.loop.rate_hz
LAMP_ON_STEP_S = lamp_on_loop_period_s(CFG)
LOOP_PERIOD_S = {"idle": IDLE_LOOP_PERIOD_S, "running": LAMP_ON_STEP_S, "paused": STEP_S}
EPS_S = ROUNDING_S + 1e-6


def bounds_s(sensor: str, kind: str, state: str = "running") -> tuple[float, float]:
    """(relay off, fault latched) at most this long after the fault is injected; while idle
    every figure is scaled to the idle rate."""
    factor = IDLE_FACTOR[sensor] if state == "idle" else 1.0
    period = PERIOD_S[sensor] * factor
    if kind in ("io_error", "timeout", "out_of_range", "nan"):
        # the first bad sample is doubt (off at once); retry_errors more bad samples latch
        return period + EPS_S, (CFG.faults.retry_errors + 1) * period + EPS_S
    step_s = LOOP_PERIOD_S[state]  # how often the loop steps at least
    if kind == "frozen":  # the identical run may have begun just before the injection
        latch = FROZEN_S[sensor] * factor + period + step_s + EPS_S  # found by the next step
        return latch, latch
    if kind == "hang":  # the last good sample ages: doubt, then the stale deadline latches
        return (DOUBT_S[sensor] * factor + step_s + EPS_S, STALE_S[sensor] * factor + step_s + EPS_S)
    raise AssertionError(kind)


FAULT_AT_S = 10.0
START_PRESS_S = 1.0
TOO_CLOSE_AT_S = 5.0
REFUSED_PRESS_S = FAULT_AT_S + max(FROZEN_S[s] * IDLE_FACTOR[s] for s in SENSORS) + 5.0  # every kind latched
CLEAR_AT_S = REFUSED_PRESS_S + 2.0
ACK_PRESS_S = CLEAR_AT_S + 1.0
LONG_PRESS_HELD_S = CFG.button.long_press_s + 0.5
RETRY_PRESS_S = ACK_PRESS_S + LONG_PRESS_HELD_S + 3.0
UNTIL_S = RETRY_PRESS_S + 3.0
START_LATENCY_S = CFG.button.bounce_ms / 1000.0 + PERIOD_S["distance"] + EPS_S


def full_rate_read_s(sensor: str, t: float, *, before: bool = False) -> float:
    """The first full-rate read at or after `t` (the last one before it with `before`) of a
    session started by a press at START_PRESS_S: the press edge restarts the schedule."""
    period = PERIOD_S[sensor]
    n = (math.ceil if not before else lambda x: math.ceil(x) - 1)((t - START_PRESS_S) / period - 1e-9)
    return START_PRESS_S + n * period


def matrix_events(sensor: str, kind: str, state: str) -> list[dict]:
    events = [
        {"at": FAULT_AT_S, "fault": {"sensor": sensor, "kind": kind}},
        press(REFUSED_PRESS_S),
        {"at": CLEAR_AT_S, "fault": {"sensor": sensor, "kind": "clear"}},
        press(ACK_PRESS_S, LONG_PRESS_HELD_S),
        press(RETRY_PRESS_S),
    ]
    if state in ("running", "paused"):
        events.append(press(START_PRESS_S))
    if state == "paused":
        events.append({"at": TOO_CLOSE_AT_S, "distance_mm": 250})
        events.append({"at": CLEAR_AT_S, "distance_mm": 400})
    return events


def assert_state_before_fault(run: SimRun, state: str) -> None:
    if state == "idle":
        assert run.relay() == [] or run.relay()[0]["t"] > FAULT_AT_S
        assert run.first("session_started") is None or run.first("session_started")["t"] > FAULT_AT_S
    elif state == "running":
        assert run.relay_on_at(FAULT_AT_S - 0.01), "the lamp should be on before the fault"
    else:
        paused = run.first("paused")
        assert paused is not None and paused["t"] < FAULT_AT_S and paused["reason"] == "too_close"
        assert not run.relay_on_at(FAULT_AT_S - 0.01)


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("sensor", SENSORS)
def test_fault_matrix(tmp_path, sensor, kind, state):
    run = run_sim(tmp_path, scenario(matrix_events(sensor, kind, state), UNTIL_S))
    off_bound_s, latch_bound_s = bounds_s(sensor, kind, state)
    assert_state_before_fault(run, state)

    # relay off within the bound, and it stays off until the fault is acknowledged
    assert not run.relay_on_at(FAULT_AT_S + off_bound_s)
    assert all(not r["on"] for r in run.relay() if FAULT_AT_S <= r["t"] <= ACK_PRESS_S + LONG_PRESS_HELD_S)
    if state == "running":
        off = run.first("relay", after=FAULT_AT_S)
        assert off["on"] is False and off["t"] <= FAULT_AT_S + off_bound_s

    # the right code first, within its bound
    first_fault = run.first("fault")
    assert first_fault is not None, "no fault latched"
    assert first_fault["code"] == f"{sensor}_{kind}", run.fault_codes()
    assert FAULT_AT_S <= first_fault["t"] <= FAULT_AT_S + latch_bound_s
    assert all(code.startswith(sensor + "_") for code in run.fault_codes()), run.fault_codes()
    if state != "idle":
        (ended,) = run.events("session_ended")
        assert ended["reason"] == "fault" and ended["t"] <= FAULT_AT_S + latch_bound_s

    # refused while latched; acknowledged by the long press; then the reason changes
    refused = run.first("start_refused", after=REFUSED_PRESS_S)
    assert refused is not None and refused["reason"] == "fault_latched"
    ack = run.first("fault_acknowledged", after=ACK_PRESS_S)
    assert ack is not None and ack["codes"][0] == f"{sensor}_{kind}"
    assert ack["t"] == pytest.approx(ACK_PRESS_S + CFG.button.long_press_s, abs=START_LATENCY_S)
    assert all(f["t"] < ACK_PRESS_S for f in run.events("fault")), "a fault latched again after the clear"
    if state == "idle":
        started = run.first("session_started", after=RETRY_PRESS_S)
        assert started is not None and started["t"] <= RETRY_PRESS_S + 0.2 + START_LATENCY_S
        assert run.relay_on_at(started["t"])
    else:
        retry = run.first("start_refused", after=RETRY_PRESS_S)
        assert retry is not None and retry["reason"] == "cooldown"
        assert run.first("session_started", after=FAULT_AT_S) is None


def test_after_acknowledgement_a_start_works_once_the_gap_has_passed(tmp_path):
    gap_s = 30 * 60.0
    events = matrix_events("distance", "io_error", "running") + [press(START_PRESS_S + gap_s + 60)]
    run = run_sim(tmp_path, scenario(events, START_PRESS_S + gap_s + 65, config={"session": {"min_gap_minutes": 30}}))
    assert run.first("start_refused", after=RETRY_PRESS_S)["reason"] == "cooldown"
    started = run.first("session_started", after=RETRY_PRESS_S)
    assert started is not None and started["t"] > FAULT_AT_S + gap_s
    assert run.relay()[-1]["on"] is False and run.relay()[-2]["on"] is True


@pytest.mark.parametrize("sensor", SENSORS)
@pytest.mark.parametrize("kind", ["hang", "io_error", "timeout", "nan", "out_of_range"])
def test_sensor_bad_from_start_is_a_fault_within_two_seconds(tmp_path, sensor, kind):
    """'missing': a sensor that never delivers a good reading after start-up."""
    grace_s = 2.0
    run = run_sim(tmp_path, scenario([{"at": 0, "fault": {"sensor": sensor, "kind": kind}}, press(3)], 5))
    first = run.first("fault")
    assert first is not None and first["code"] in (f"{sensor}_missing", f"{sensor}_{kind}")
    assert first["t"] <= grace_s + IDLE_LOOP_PERIOD_S + EPS_S  # idle: the loop steps at least this often
    assert run.first("start_refused")["reason"] == "fault_latched"
    assert run.relay() == []


@pytest.mark.parametrize("sensor", SENSORS)
def test_one_bad_sample_is_doubt_lamp_off_then_on_without_a_fault(tmp_path, sensor):
    """SR-8: a single glitch is retried, with the lamp off while the reading is in doubt."""
    period = PERIOD_S[sensor]
    first_bad = full_rate_read_s(sensor, FAULT_AT_S)  # the first sample at or after the injection
    events = [
        press(START_PRESS_S),
        {"at": FAULT_AT_S, "fault": {"sensor": sensor, "kind": "io_error"}},
        {"at": first_bad + period / 2, "fault": {"sensor": sensor, "kind": "clear"}},
    ]
    run = run_sim(tmp_path, scenario(events, 20))
    assert run.fault_codes() == []
    off = run.first("relay", after=FAULT_AT_S)
    assert off["on"] is False and off["t"] <= FAULT_AT_S + period + EPS_S
    back = run.first("relay", after=off["t"] + 1e-9)
    assert back["on"] is True and back["t"] <= first_bad + 2 * period + LAMP_ON_STEP_S
    assert run.events("session_ended")[0]["reason"] == "daemon_stopped"


@pytest.mark.parametrize("sensor", SENSORS)
def test_a_hang_shorter_than_the_stale_deadline_is_doubt_only(tmp_path, sensor):
    """A read blocked for less than stale_s and then released: lamp off meanwhile, no fault,
    the released read lands when the bus is released (not later), and the session goes on."""
    period = PERIOD_S[sensor]
    last_good_s = full_rate_read_s(sensor, FAULT_AT_S, before=True)  # reads at the injection instant hang
    off_by_s = last_good_s + DOUBT_S[sensor] + LAMP_ON_STEP_S  # the lamp is off by then
    clear_at_s = (off_by_s + last_good_s + STALE_S[sensor]) / 2
    assert off_by_s < clear_at_s < last_good_s + STALE_S[sensor] - 0.01  # the read lands at the release
    events = [
        press(START_PRESS_S),
        {"at": FAULT_AT_S, "fault": {"sensor": sensor, "kind": "hang"}},
        {"at": round(clear_at_s, 6), "fault": {"sensor": sensor, "kind": "clear"}},
    ]
    run = run_sim(tmp_path, scenario(events, 20))
    assert run.fault_codes() == []
    off = run.first("relay", after=FAULT_AT_S)
    assert off["on"] is False and off["t"] <= FAULT_AT_S + DOUBT_S[sensor] + LAMP_ON_STEP_S + EPS_S
    assert run.relay_on_at(clear_at_s + 2 * period + LAMP_ON_STEP_S)
    assert run.events("session_ended")[0]["reason"] == "daemon_stopped"


@pytest.mark.parametrize("sensor", SENSORS)
def test_a_hang_survives_a_restart_until_cleared(tmp_path, sensor):
    """The scripted hang is a property of the bus, not of the daemon: after a restart the
    sensor is still hung, so acknowledging the fault does not make it healthy."""
    events = [
        {"at": FAULT_AT_S, "fault": {"sensor": sensor, "kind": "hang"}},
        {"at": 15, "restart": True},
        press(20, LONG_PRESS_HELD_S),
        press(30),
    ]
    run = run_sim(tmp_path, scenario(events, 35))
    assert run.first("faults_restored")["codes"] == [f"{sensor}_hang"]
    assert run.first("fault_acknowledged", after=20) is not None
    relatched = run.first("fault", after=20)
    assert relatched is not None and relatched["code"] in (f"{sensor}_hang", f"{sensor}_missing")
    assert run.first("session_started") is None and run.relay() == []
    assert run.first("start_refused", after=30)["reason"] == "fault_latched"
