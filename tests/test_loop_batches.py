"""The loop steps on its own tick and judges every sample published since its last step.

Issue 15: each wake-up of the loop costs CPU, so a sample the hazard rule passes no longer
wakes it (a hazardous one still cuts the relay on the sampler's thread and wakes the loop at
once). The loop then finds several samples waiting. Each one is judged in its own sub-step at
its own instant, in the order they were read, exactly as a loop woken by every sample would
have judged them: an error streak, a too-close reading or a doubt between two steps is never
skipped because a newer sample came after it.
"""

from __future__ import annotations

import pytest
from test_daemon_exceptions import Rig

from controller.core.events import EventKind
from drivers.sampler import HISTORY_SAMPLES, Sampler

PERIOD_S = 1 / 30


def _samples_between_steps(rig: Rig, reads: list) -> None:
    """Publish one distance sample per entry of `reads` (a value in mm or an exception to
    raise), a distance period apart, without a loop step in between; then one step."""
    script = iter(reads)
    real_read = rig.hw.distance._read

    def scripted():
        item = next(script, None)
        if item is None:
            return real_read()
        if isinstance(item, Exception):
            raise item
        return item, None, None

    rig.hw.distance._read = scripted
    for _ in reads:
        rig.clock.advance_to(rig.clock.monotonic() + PERIOD_S)
        rig.hw.distance.step()
        rig.hw.guard.tick(rig.clock.monotonic(), PERIOD_S)
    rig.hw.distance._read = real_read
    rig.daemon.step()


def _faults(rig: Rig) -> list[str]:
    return [f["code"] for name, f in rig.events if name == EventKind.FAULT]


def test_an_error_streak_between_two_steps_latches_although_a_good_sample_came_last(rig):
    rig.start_session()
    retry = rig.cfg.faults.retry_errors
    errors = [OSError(121, "Remote I/O error")] * (retry + 1)
    _samples_between_steps(rig, [*errors, 400.0])
    assert _faults(rig) == ["distance_io_error"]
    assert not rig.relay_pin_on()


def test_a_single_error_between_two_steps_is_retried_not_latched(rig):
    rig.start_session()
    _samples_between_steps(rig, [OSError(121, "Remote I/O error"), 400.0, 401.0])
    assert _faults(rig) == []
    rig.run(0.2)
    assert rig.relay_pin_on()


def test_a_too_close_sample_between_two_steps_pauses_the_session(rig):
    rig.start_session()
    _samples_between_steps(rig, [250.0, 400.0, 401.0])
    assert rig.daemon.controller.session.pause_reason == "too_close"
    assert not rig.relay_pin_on()  # cut by the sampler, and the step keeps it off
    rig.run(0.5)
    assert not rig.relay_pin_on()  # paused: back in the band for resume_after_s first


def test_each_missed_sample_is_judged_at_its_own_instant_in_order(rig):
    rig.start_session()
    seen: list[tuple[float, float | None]] = []
    step = rig.daemon.controller.step

    def spy(inp):
        latest = inp.distance.latest
        seen.append((inp.now_s, None if latest is None else latest.t_s))
        return step(inp)

    rig.daemon.controller.step = spy
    t0 = rig.clock.monotonic()
    _samples_between_steps(rig, [400.0, 402.0, 404.0])
    # two sub-steps at the two older samples' instants, then the step itself at 'now'
    expected = [t0 + PERIOD_S, t0 + 2 * PERIOD_S, t0 + 3 * PERIOD_S]
    assert [now for now, _ in seen] == pytest.approx(expected)
    assert [t for _, t in seen] == pytest.approx(expected)


def test_a_loop_that_did_not_step_for_long_judges_the_newest_history_and_the_newest_sample(rig):
    rig.start_session()
    calls: list[float] = []
    step = rig.daemon.controller.step
    rig.daemon.controller.step = lambda inp: (calls.append(inp.now_s), step(inp))[1]
    _samples_between_steps(rig, [400.0 + i % 3 for i in range(HISTORY_SAMPLES + 20)])
    assert len(calls) == HISTORY_SAMPLES  # the history's older samples, then the newest one


def test_a_good_distance_sample_does_not_wake_the_loop_a_hazardous_one_does():
    woken: list[str] = []
    readings = iter([400.0, 250.0])
    from controller.core.safety import hazard_checks
    from controller.service.config import load_config

    distance_hazard, _ = hazard_checks(load_config())
    sampler = Sampler(
        "distance",
        lambda: (next(readings), None, None),
        PERIOD_S,
        lambda: 0.0,
        on_sample=lambda: woken.append("woken"),
        hazard=distance_hazard,
        on_hazard=lambda reason, now: True,  # as the guard's cut of a lit relay
        wake_only_on_hazard=True,
    )
    sampler.read_once()
    assert woken == []
    sampler.read_once()
    assert woken == ["woken"]


def test_feed_since_returns_what_the_loop_has_not_seen_and_the_feed_in_one_look():
    clock = [0.0]
    values = iter(range(400, 500))
    sampler = Sampler("distance", lambda: (float(next(values)), None, None), PERIOD_S, lambda: clock[0])
    for _ in range(4):
        clock[0] += PERIOD_S
        sampler.read_once()
    missed, feed = sampler.feed_since(1)
    assert [s.seq for s in missed] == [2, 3] and feed.latest.seq == 4
    missed, feed = sampler.feed_since(4)
    assert missed == () and feed.latest.seq == 4


def test_a_sub_step_sees_a_read_that_was_already_blocked_at_its_instant(rig):
    """A hung skin read while distance samples keep coming: whichever judges first after the
    skin's stale bound runs out, a sub-step or the step, the fault is the hung read's."""
    rig.start_session()
    rig.world.set_fault("skin", "hang")
    rig.hw.skin.step()  # the read that blocks: busy from now on
    assert rig.hw.skin.feed().busy_since_s is not None
    bound_s = rig.hw.skin.feed().busy_since_s + rig.cfg.faults.skin_stale_s
    try:
        while rig.clock.monotonic() < bound_s - 0.25:  # steps often enough for the guard
            _samples_between_steps(rig, [400.0] * 5)
        assert _faults(rig) == []
        _samples_between_steps(rig, [400.0] * 12)  # the bound runs out at one of these
        assert _faults(rig)[:1] == ["skin_hang"]
        assert not rig.relay_pin_on()
    finally:
        rig.world.set_fault("skin", "clear")
        rig.hw.skin.wait_idle(1.0)
