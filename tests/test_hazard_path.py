"""The hazard fast path: a sampler that reads a hazardous value cuts the relay itself.

- The rule is ONE definition (controller/core/safety.py: distance_hazard, skin_hazard, built on
  too_close / skin_at_limit / sensor_body_hot and sensor_health.sample_problem), used by the
  decision and by the sampler: for every sample, the sampler's verdict equals the decision's
  (hypothesis).
- `RelayGuard.cut` only ever switches off (hypothesis over interleavings of loop commands,
  guard checks and cuts), and a loop step that began before a cut cannot switch the relay
  back on (it may not have seen the hazardous sample).
- The sampler cuts before it wakes the loop, so the relay is already off when the loop runs.
"""

from __future__ import annotations

import copy
import math

from gpiozero.pins.mock import MockFactory
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.core.readings import Sample
from controller.core.safety import hazard_checks
from drivers.guard import HAZARD_HOLD, RelayGuard
from drivers.relay import LampOutput
from drivers.sampler import Sampler
from drivers.sensor_source import NO_TARGET_MM
from helpers_core import Bench, default_config

ERRORS = [None] * 6 + ["io_error", "timeout", "out_of_range", "unreliable", "missing"]


def _running_bench() -> Bench:
    bench = Bench(default_config())
    bench.start_session()
    bench.run(0.2)
    assert bench.lamp_on()
    return bench


_RUNNING = _running_bench()  # built once; each example steps a deep copy


def _value(special: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(special, st.just(math.nan), st.just(None))


distance_values = _value(
    st.one_of(st.floats(-50.0, NO_TARGET_MM + 50.0), st.floats(280.0, 330.0))
)  # around the floor (304.8)
skin_values = _value(st.one_of(st.floats(0.0, 120.0), st.floats(41.0, 45.0)))  # around the limit (43)


def _decide_after(sensor: str, value, error, ambient_c, ambient_mcps) -> tuple[bool, str]:
    """The decision (lamp on?, reason) of a running session's next step with this sample newest."""
    bench = copy.deepcopy(_RUNNING, {id(_RUNNING.cfg): _RUNNING.cfg})  # the config is shared, not copied
    bench.now += 0.01
    sample = bench.publish(sensor, value, error=error, ambient_c=ambient_c)
    if ambient_mcps is not None:
        sample = Sample(
            sample.seq, sample.t_s, sample.value, sample.ambient_c, sample.error, sample.detail, 20.0, ambient_mcps
        )
        bench._latest[sensor] = sample
    decision = bench.step()
    return decision.lamp_on, decision.reason, sample


@settings(max_examples=400, deadline=None, derandomize=True)
@given(value=distance_values, error=st.sampled_from(ERRORS), ambient_mcps=st.one_of(st.none(), st.floats(0.0, 20.0)))
def test_distance_hazard_verdict_equals_the_decisions(value, error, ambient_mcps):
    lamp_on, reason, sample = _decide_after("distance", value, error, None, ambient_mcps)
    distance_hazard, _ = hazard_checks(_RUNNING.cfg)
    verdict = distance_hazard(sample)
    # every reason a distance sample alone gives for the lamp off is a hazard, "nobody there"
    # included: since the loop steps on its own tick, the sampler's cut is the fast path
    decision_says_hazard = not lamp_on
    assert (verdict is not None) == decision_says_hazard, (sample, verdict, lamp_on, reason)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(
    value=skin_values,
    error=st.sampled_from([e for e in ERRORS if e != "unreliable"]),
    ambient_c=st.one_of(st.none(), st.just(math.nan), st.floats(-50.0, 130.0)),
)
def test_skin_hazard_verdict_equals_the_decisions(value, error, ambient_c):
    lamp_on, reason, sample = _decide_after("skin", value, error, ambient_c, None)
    _, skin_hazard = hazard_checks(_RUNNING.cfg)
    verdict = skin_hazard(sample)
    # the comfort set point (cooling) switches the lamp off too, but it is comfort control,
    # not a hazard: the loop alone decides it
    decision_says_hazard = not lamp_on and reason != "comfort"
    assert (verdict is not None) == decision_says_hazard, (sample, verdict, lamp_on, reason)


def test_the_property_sees_both_verdicts():
    """The equality above would hold trivially if every sample were hazardous (or none)."""
    distance_hazard, skin_hazard = hazard_checks(_RUNNING.cfg)
    assert distance_hazard(Sample(1, 0.0, 400.0)) is None
    assert distance_hazard(Sample(1, 0.0, 300.0)) == "too_close"
    assert distance_hazard(Sample(1, 0.0, 8190.0)) == "nobody_there"
    assert distance_hazard(Sample(1, 0.0, 1200.0)) == "nobody_there"
    assert distance_hazard(Sample(1, 0.0, None, error="io_error")) == "distance_io_error"
    assert distance_hazard(Sample(1, 0.0, 400.0, signal_rate_mcps=5.0, ambient_rate_mcps=9.0)) == "distance_unreliable"
    assert skin_hazard(Sample(1, 0.0, 33.0, 25.0)) is None
    assert skin_hazard(Sample(1, 0.0, 43.0, 25.0)) == "skin_overheat"
    assert skin_hazard(Sample(1, 0.0, 33.0, 61.0)) == "skin_sensor_hot"
    assert _decide_after("distance", 400.5, None, None, None)[0] is True


# -- the guard's cut ------------------------------------------------------------------------
def _guard() -> tuple[RelayGuard, LampOutput, list[tuple[bool, str]]]:
    output = LampOutput(17, True, pin_factory=MockFactory())
    changes: list[tuple[bool, str]] = []
    output.observer = lambda on, reason: changes.append((on, reason))
    return RelayGuard(output, deadline_s=0.5, max_on_s=1200.0, rest_s=600.0, start_s=0.0), output, changes


OPS = st.lists(st.tuples(st.sampled_from(["on", "off", "cut", "check"]), st.floats(0.0, 0.2)), max_size=60)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(ops=OPS)
def test_a_cut_never_switches_the_lamp_on(ops):
    guard, output, changes = _guard()
    now = 0.0
    for op, dt in ops:
        now += dt
        before = output.is_on()
        seen = len(changes)
        if op == "on":
            guard.command(True, now, "test")
        elif op == "off":
            guard.command(False, now, "test")
        elif op == "cut":
            guard.cut("too_close", now)
            assert not output.is_on()
            assert all(not on for on, _ in changes[seen:])
            assert not (not before and output.is_on())
        else:
            guard.check(now)
            assert not (not before and output.is_on())


def test_a_step_that_began_before_the_cut_cannot_switch_back_on():
    guard, output, changes = _guard()
    guard.command(True, 1.00, "test")
    assert output.is_on()
    guard.cut("too_close", 1.02)
    assert not output.is_on() and changes[-1] == (False, "too_close")
    guard.command(True, 1.01, "test")  # a step that read its feeds before the cut
    assert not output.is_on() and guard.tripped is None
    guard.command(True, 1.02, "test")  # a step that began at the cut has seen the sample
    assert output.is_on()


def test_a_held_command_names_the_hold():
    guard, output, changes = _guard()
    guard.cut("too_close", 1.0)
    guard.command(True, 0.9, "resumed")
    assert not output.is_on()
    guard.command(True, 1.0, "resumed")
    assert changes == [(True, "resumed")]
    assert HAZARD_HOLD == "hazard_cut"


def test_the_sampler_cuts_before_it_wakes_the_loop():
    guard, output, _ = _guard()
    guard.command(True, 0.0, "test")
    readings = iter([400.0, 250.0])
    relay_when_woken: list[bool] = []
    distance_hazard, _ = hazard_checks(default_config())
    sampler = Sampler(
        "distance",
        lambda: (next(readings), None, None),
        0.033,
        lambda: 0.0,
        on_sample=lambda: relay_when_woken.append(output.is_on()),
        hazard=distance_hazard,
        on_hazard=guard.cut,
    )
    sampler.read_once()
    sampler.read_once()
    assert relay_when_woken == [True, False]


def test_a_hazard_rule_that_raises_cuts():
    guard, output, changes = _guard()
    guard.command(True, 0.0, "test")

    def broken(sample):
        raise ValueError("boom")

    sampler = Sampler("skin", lambda: (33.0, 25.0, None), 0.25, lambda: 0.0, hazard=broken, on_hazard=guard.cut)
    sampler.read_once()
    assert not output.is_on() and changes[-1] == (False, "skin_hazard_check_failed: ValueError")


def test_the_samplers_wake_the_loop_only_when_a_hazard_cut_the_relay():
    """Issue 15: every wake-up of the loop costs CPU. A sample the hazard rule passes is
    judged at the loop's next tick (with every other sample since its last step); one the
    rule flags cuts the relay and wakes the loop at once to record why. With the relay
    already off there is nothing to cut and nothing that cannot wait for the tick."""
    from drivers.hardware import build_hardware
    from drivers.sim_sensors import SimDistanceSource, SimSkinSource, SimWorld

    cfg = default_config()
    world = SimWorld(400.0, 33.0, monotonic=lambda: 0.0)
    woken: list[str] = []
    hw = build_hardware(
        cfg,
        distance_source=SimDistanceSource(world),
        skin_source=SimSkinSource(world),
        monotonic=lambda: 0.0,
        pin_factory=MockFactory(),
        on_sample=lambda: woken.append("woken"),
    )
    try:
        hw.guard.command(True, 0.0, "test")
        hw.skin.read_once()
        assert woken == [] and hw.skin.feed().latest.value is not None  # published, the loop not woken
        world.set_skin(44.0)
        hw.skin.read_once()
        assert woken == ["woken"] and not hw.output.is_on()
        hw.skin.read_once()
        assert woken == ["woken"] * 2  # still too hot, relay off: not a position, a fault may latch
        world.set_skin(33.0)
        hw.guard.command(True, 0.0, "test")
        hw.distance.read_once()
        assert woken == ["woken"] * 2 and hw.output.is_on()  # a good distance sample: the tick judges it
        world.distance_mm = 250.0
        hw.distance.read_once()
        assert woken == ["woken"] * 3 and not hw.output.is_on()
        hw.distance.read_once()
        assert woken == ["woken"] * 3  # still too close, relay already off: the tick judges it
        world.distance_mm = 8190.0
        hw.distance.read_once()
        assert woken == ["woken"] * 3  # nobody there with the relay off: the tick judges it
        world.set_fault("distance", "io_error")
        hw.distance.read_once()
        assert woken == ["woken"] * 4  # a failed read: a fault may latch, step now
    finally:
        hw.close()
