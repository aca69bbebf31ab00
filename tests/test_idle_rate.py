"""Idle-rate sampling (controller/core/sampling.py): slow while nothing happens, full rate for a start.

- the sampler starts at its idle rate, stamps each sample with the period its read began
  at, and the press edge switches it to the full rate with a read due at once;
- the judge's bounds scale with the rate (sensor_health rule 7): an idle sample is not stale
  at the full-rate bound, and a sensor that fails while idle is caught at the scaled bound;
- a start is never decided on an idle-rate sample: it waits up to START_FRESH_WAIT_S for
  full-rate samples of both sensors, and is refused as sensor_unhealthy without them;
- in the simulator (the daemon's real wiring): idle reads at the idle rate, the press edge
  reads at once, the session runs at the full rate, and idle comes back after it.
"""

from __future__ import annotations

import pytest
from scenario_helpers import press, run_sim, scenario

from controller.core.readings import Sample, SensorFeed
from controller.core.safety import START_FRESH_WAIT_S
from controller.core.sampling import FULL_RATE_HOLD_S, IDLE_DISTANCE_PERIOD_S, IDLE_SKIN_PERIOD_S, idle_periods_s
from controller.core.sensor_health import SensorJudge
from drivers.sampler import Sampler
from helpers_core import Bench, default_config

CFG = default_config()
FULL_D_S = CFG.distance.timing_budget_ms / 1000.0
FULL_S_S = CFG.skin.period_ms / 1000.0
IDLE_D_S, IDLE_S_S = idle_periods_s(CFG)


class Clock:
    def __init__(self, t: float = 100.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


# -- the sampler ----------------------------------------------------------------------------
def test_idle_periods_are_the_documented_rates():
    assert (IDLE_D_S, IDLE_S_S) == (IDLE_DISTANCE_PERIOD_S, IDLE_SKIN_PERIOD_S) == (0.5, 1.0)


def test_sampler_starts_idle_and_the_switch_makes_a_read_due_at_once():
    clock = Clock()
    sampler = Sampler("distance", lambda: (400.0, None, None), FULL_D_S, clock, idle_period_s=IDLE_D_S)
    assert not sampler.full_rate and sampler.period_s == IDLE_D_S
    sampler.read_once()
    assert sampler.feed().latest.period_s == IDLE_D_S and sampler.feed().period_s == IDLE_D_S
    sampler.step()  # the simulator's read at t: next one an idle period on
    assert sampler.next_read_s() == pytest.approx(clock.t + IDLE_D_S)
    clock.t += 0.05
    sampler.set_full_rate(True)
    assert sampler.next_read_s() == clock.t  # due now, not at the next idle tick
    sampler.step()
    assert sampler.feed().latest.period_s is None and sampler.feed().period_s == FULL_D_S
    assert sampler.next_read_s() == pytest.approx(clock.t + FULL_D_S)
    sampler.set_full_rate(False)
    assert sampler.next_read_s() == pytest.approx(clock.t + IDLE_D_S)


def test_sampler_without_an_idle_rate_is_always_full_rate():
    sampler = Sampler("skin", lambda: (33.0, 25.0, None), FULL_S_S, Clock())
    assert sampler.full_rate
    sampler.read_once()
    assert sampler.feed().latest.period_s is None


# -- the judge --------------------------------------------------------------------------------
def _judge() -> SensorJudge:
    ctl = Bench(CFG).ctl
    return SensorJudge(ctl.distance.limits, 0.0)


def test_bounds_scale_with_the_idle_rate():
    lim = _judge().limits
    idle = lim.at_period(IDLE_D_S)
    factor = IDLE_D_S / FULL_D_S
    assert idle.stale_s == pytest.approx(lim.stale_s * factor)
    assert idle.doubt_s == pytest.approx(lim.doubt_s * factor)
    assert idle.frozen_s == pytest.approx(lim.frozen_s * factor)
    assert idle.unreliable_window_s == pytest.approx(lim.unreliable_window_s * factor)
    assert lim.at_period(FULL_D_S) is lim and lim.at_period(None) is lim


def _idle_doubts(judge: SensorJudge, doubted_at: set[int], count: int) -> list[str | None]:
    """`count` idle-rate distance samples, those numbered in `doubted_at` flagged unreliable."""
    faults = []
    for i in range(count):
        t_s = 3.0 + i * IDLE_D_S
        doubted = i in doubted_at
        sample = Sample(i + 1, t_s, None if doubted else 400.0 + i % 3, error="unreliable" if doubted else None)
        faults.append(judge.judge(SensorFeed(sample, None, IDLE_D_S), t_s).fault)
    return faults


def test_the_doubt_share_window_holds_as_many_samples_at_the_idle_rate():
    """A share of a few samples is noise: at the idle rate a 10 s window would hold 20 readings
    (50 at 5 Hz, where a burst of 6 doubts in 3 % glare already crossed 10 %). The window
    scales with the rate like the other bounds, so the same number of readings is judged (the
    glare scenario latched distance_unreliable while idle before this)."""
    share = CFG.faults.distance_unreliable_share
    window_samples = round(CFG.faults.distance_unreliable_window_s / FULL_D_S)  # ~300
    unscaled = round(CFG.faults.distance_unreliable_window_s / IDLE_D_S)  # readings in 10 s idle
    burst = set(range(400, 400 + int(share * unscaled) + 2))  # > share of those, < share of 300
    assert _idle_doubts(_judge(), burst, 450).count("unreliable") == 0
    # a real share over a whole (scaled) window still latches
    steady = {i for i in range(0, 2 * window_samples) if i % 5 == 0}  # 20 % of the readings
    assert "unreliable" in _idle_doubts(_judge(), steady, 2 * window_samples)


def test_an_idle_sample_is_judged_by_the_idle_bounds_and_a_full_rate_one_by_the_full():
    stale_s = CFG.faults.distance_stale_s
    age_s = stale_s + 0.1  # stale at the full rate, fresh at the idle rate
    for period_s, expect_fault in ((IDLE_D_S, None), (None, "stale")):
        judge = _judge()
        judge.judge(SensorFeed(Sample(1, 3.0, 400.0, period_s=period_s), None, period_s), 3.0)
        verdict = judge.judge(SensorFeed(Sample(1, 3.0, 400.0, period_s=period_s), None, period_s), 3.0 + age_s)
        assert verdict.fault == expect_fault


def test_the_switch_to_full_rate_does_not_make_the_last_idle_sample_stale():
    """The feed's period is full already, the newest sample is still an idle one: the slower counts."""
    judge = _judge()
    idle_sample = Sample(1, 3.0, 400.0, period_s=IDLE_D_S)
    judge.judge(SensorFeed(idle_sample, None, IDLE_D_S), 3.0)
    verdict = judge.judge(SensorFeed(idle_sample, None, FULL_D_S), 3.0 + IDLE_D_S + 0.05)
    assert verdict.fault is None


def test_an_idle_sensor_that_stops_is_caught_at_the_scaled_stale_bound():
    judge = _judge()
    stale_idle_s = judge.limits.at_period(IDLE_D_S).stale_s
    feed = SensorFeed(Sample(1, 3.0, 400.0, period_s=IDLE_D_S), None, IDLE_D_S)
    judge.judge(feed, 3.0)
    assert judge.judge(feed, 3.0 + stale_idle_s - 0.01).fault is None
    assert judge.judge(feed, 3.0 + stale_idle_s + 0.01).fault == "stale"


# -- the start decision -----------------------------------------------------------------------
def _publish(bench: Bench, sensor: str, value: float, period_s: float | None) -> None:
    sample = bench.publish(sensor, value)
    bench._latest[sensor] = Sample(sample.seq, sample.t_s, sample.value, sample.ambient_c, period_s=period_s)


def _idle_then_short_press(bench: Bench) -> None:
    """2 s of idle-rate samples (the controller is healthy), then a short press decided at the
    release; the newest samples are idle-rate ones."""
    _idle(bench)
    _hold(bench)
    _release(bench)


def _hold(bench: Bench) -> None:
    bench.button = True
    for _ in range(4):
        bench.now += 0.05
        bench.step()


def _release(bench: Bench) -> None:
    bench.button = False
    for _ in range(2):
        bench.now += CFG.button.bounce_ms / 1000.0
        bench.step()


def _idle(bench: Bench) -> None:
    """2 s of idle-rate samples: the controller is healthy."""
    t_end = bench.now + 2.0
    i = 0
    while bench.now < t_end:
        bench.now += 0.1
        i += 1
        if i % 2 == 0:
            _publish(bench, "distance", 400.0 + (i % 4), IDLE_D_S)
        if i % 5 == 0:
            _publish(bench, "skin", 33.0 + 0.01 * (i % 10), IDLE_S_S)
        bench.step()


def test_a_start_waits_for_full_rate_samples_and_then_starts():
    bench = Bench(CFG)
    _idle_then_short_press(bench)
    assert bench.ctl.session is None and "start_refused" not in bench.names()
    assert bench.ctl.start_waiting_since_s is not None
    bench.now += 0.02
    _publish(bench, "distance", 401.5, None)
    _publish(bench, "skin", 33.2, None)
    bench.step()
    assert bench.ctl.state == "running" and "session_started" in bench.names()
    started = bench.fields_of("session_started")[0]
    assert started["distance_mm"] == 401.5 and started["skin_c"] == 33.2


def test_a_start_without_full_rate_samples_is_refused_after_the_wait():
    bench = Bench(CFG)
    _idle_then_short_press(bench)
    waiting_since = bench.ctl.start_waiting_since_s
    bench.now = waiting_since + START_FRESH_WAIT_S / 2
    _publish(bench, "distance", 402.5, None)  # distance at full rate, skin still idle
    bench.step()
    assert bench.ctl.session is None and "start_refused" not in bench.names()
    bench.now = waiting_since + START_FRESH_WAIT_S
    bench.step()
    assert bench.fields_of("start_refused") == [{"reason": "sensor_unhealthy"}]
    assert bench.ctl.session is None and not bench.lamp_on()
    assert bench.ctl.start_waiting_since_s is None


def test_the_wait_for_full_rate_samples_ends_exactly_at_start_fresh_wait_s():
    bench = Bench(CFG, now=-2.5)  # exact binary times near 0: waiting_since + 0.1 is exactly 0.1 later
    _idle(bench)
    bench.now, bench.button = -0.5, True
    for _ in range(4):
        bench.now += 0.0625
        bench.step()
    bench.button = False
    for _ in range(2):
        bench.now += 0.03125  # the debounce time
        bench.step()
    waiting_since = bench.ctl.start_waiting_since_s
    assert (waiting_since + START_FRESH_WAIT_S) - waiting_since == START_FRESH_WAIT_S
    bench.now = waiting_since + START_FRESH_WAIT_S - 0.001
    bench.step()
    assert "start_refused" not in bench.names()
    bench.now = waiting_since + START_FRESH_WAIT_S
    bench.step()
    assert bench.fields_of("start_refused") == [{"reason": "sensor_unhealthy"}]


def test_a_start_waits_for_a_full_rate_skin_sample_when_the_idle_one_failed():
    """The newest skin sample is an idle-rate read that failed (no good one to judge by): the
    start still waits for a full-rate one instead of refusing at once."""
    bench = Bench(CFG)
    _idle(bench)
    _hold(bench)
    failed = bench.publish("skin", None, error="io_error")
    bench._latest["skin"] = Sample(failed.seq, failed.t_s, None, error="io_error", period_s=IDLE_S_S)
    _publish(bench, "distance", 401.0, None)
    _release(bench)
    assert "start_refused" not in bench.names() and bench.ctl.start_waiting_since_s is not None
    bench.now += 0.02
    _publish(bench, "distance", 401.5, None)
    _publish(bench, "skin", 33.2, None)
    bench.step()
    assert bench.ctl.state == "running" and "start_refused" not in bench.names()


def test_an_idle_rate_skin_sample_is_good_for_longer_than_a_full_rate_one():
    """The skin judge scales its bounds with the skin sampler's idle period (rule 7): a skin
    sample read at the idle rate is not in doubt while younger than the scaled doubt_s."""
    bench = Bench(CFG)
    full_doubt_s = bench.ctl.skin.limits.doubt_s
    assert bench.ctl.skin.limits.at_period(IDLE_S_S).doubt_s > full_doubt_s + 0.1
    _idle(bench)
    last_skin = bench.ctl.skin.latest
    for _ in range(16):  # distance only, until the skin sample is older than the full-rate doubt_s
        bench.now += 0.05
        _publish(bench, "distance", 400.0 + bench.now % 1, IDLE_D_S)
        decision = bench.step()
    assert bench.now - last_skin.t_s > full_doubt_s
    assert decision.readings.skin == last_skin


def test_a_refusal_for_a_latched_fault_does_not_wait():
    bench = Bench(CFG)
    bench.ctl.restore_faults(["distance_io_error"])
    _idle_then_short_press(bench)
    bench.now += START_FRESH_WAIT_S
    bench.step()
    assert bench.fields_of("start_refused") == [{"reason": "fault_latched"}]


# -- the daemon in the simulator ----------------------------------------------------------------
@pytest.fixture
def read_times(monkeypatch) -> dict[str, list[float]]:
    """The simulated instant of every read of each simulated sensor."""
    from drivers import sim_sensors

    times: dict[str, list[float]] = {"distance": [], "skin": []}
    for cls, method in ((sim_sensors.SimDistanceSource, "read_distance"), (sim_sensors.SimSkinSource, "read_skin")):
        original = getattr(cls, method)

        def timed(self, _original=original):
            times[self.sensor].append(self.world.monotonic())
            return _original(self)

        monkeypatch.setattr(cls, method, timed)
    return times


def test_idle_rate_in_the_daemon_full_rate_from_the_press_and_idle_again_after(tmp_path, read_times):
    run = run_sim(tmp_path, scenario([press(10), press(20)], 30))

    def count(sensor: str, start: float, end: float) -> int:
        return sum(1 for t in read_times[sensor] if start <= t < end)

    # the press edge reads both sensors at once, and the start is decided on those samples
    assert 10.0 in read_times["distance"] and 10.0 in read_times["skin"]
    started = run.first("session_started")
    assert started is not None and started["t"] <= 10 + 0.2 + 2 * CFG.button.bounce_ms / 1000.0
    # idle before the press: 2 Hz / 1 Hz; the session: full rate; idle again after the hold
    assert count("distance", 2, 9.9) == pytest.approx(7.9 / IDLE_D_S, abs=2)
    assert count("skin", 2, 9.9) == pytest.approx(7.9 / IDLE_S_S, abs=2)
    assert count("distance", 11, 19) == pytest.approx(8 / FULL_D_S, abs=2)
    assert count("skin", 11, 19) == pytest.approx(8 / FULL_S_S, abs=2)
    after = 20.5 + FULL_RATE_HOLD_S + 0.5
    assert count("distance", after, 30) == pytest.approx((30 - after) / IDLE_D_S, abs=2)
    assert count("skin", after, 30) == pytest.approx((30 - after) / IDLE_S_S, abs=2)
    assert run.fault_codes() == []
