"""A guard that fails closed (SR-9, SR-1): an exception inside the guard's own check latches
`guard_failed` and holds the relay off until a long press acknowledges it.

Before, the guard thread's error handler switched the relay off but latched nothing, so the
loop's next `command(True)` lit the lamp again: a broken guard made the lamp flicker instead
of staying off. The relay pin's mock level is the truth in every assertion.
"""

from __future__ import annotations

import time

from gpiozero.pins.mock import MockFactory
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.guard import RelayGuard
from drivers.relay import LampOutput

PERIOD_S = 0.1
LOOP_PERIOD_S = 0.05


class GuardBug(Exception):
    """What a bug inside the guard's check raises."""


def _guard(factory: MockFactory, relay_pin: int = 17, active_high: bool = True) -> RelayGuard:
    output = LampOutput(relay_pin, active_high, pin_factory=factory)
    return RelayGuard(output, deadline_s=0.5, max_on_s=60.0, rest_s=600.0, start_s=0.0)


def _broken_check(guard: RelayGuard, *, after_real_check: bool):
    real_check = guard.check

    def check(now_s: float):
        if after_real_check:
            real_check(now_s)
        raise GuardBug("injected")

    return check


def test_an_exception_in_the_guard_check_latches_guard_failed_and_holds_the_relay_off(monkeypatch):
    factory = MockFactory()
    guard = _guard(factory)
    guard.command(True, 0.0, "test")
    assert factory.pin(17).state is True
    monkeypatch.setattr(guard, "check", _broken_check(guard, after_real_check=False))
    guard.tick(0.1, PERIOD_S)
    assert guard.tripped == "guard_failed" and factory.pin(17).state is False
    monkeypatch.undo()  # whatever broke may have passed ...
    assert guard.command(True, 0.15, "test") is False  # ... the latch still holds the relay off
    assert factory.pin(17).state is False
    guard.tick(0.2, PERIOD_S)
    assert guard.tripped == "guard_failed" and factory.pin(17).state is False
    guard.acknowledge()
    assert guard.command(True, 0.25, "test") is True and factory.pin(17).state is True


def test_the_real_guard_thread_latches_guard_failed_when_its_check_raises(monkeypatch):
    factory = MockFactory()
    guard = RelayGuard(
        LampOutput(5, False, pin_factory=factory), deadline_s=0.5, max_on_s=60.0, rest_s=600.0, start_s=time.monotonic()
    )
    guard.command(True, time.monotonic(), "test")
    assert factory.pin(5).state is False  # active-low: on
    monkeypatch.setattr(guard, "check", _broken_check(guard, after_real_check=False))
    guard.start_thread(time.monotonic, 0.01)
    try:
        give_up = time.monotonic() + 3.0
        while guard.tripped is None and time.monotonic() < give_up:
            guard.command(True, time.monotonic(), "test")  # a live loop asking for heat
            time.sleep(0.005)
        assert guard.tripped == "guard_failed", "the guard thread's check raised but nothing latched"
        guard.command(True, time.monotonic(), "test")
        assert factory.pin(5).state is True, "the relay came back on after the guard failed"
    finally:
        guard.stop_thread()


loop_actions = st.lists(st.sampled_from(["on", "off", "silent"]), min_size=1, max_size=60)


@settings(max_examples=200, deadline=None)
@given(
    before=loop_actions,
    after=loop_actions,
    fail_tick=st.integers(0, 30),
    after_real_check=st.booleans(),
    keeps_failing=st.booleans(),
)
def test_a_guard_whose_check_raises_at_a_random_step_never_lets_the_relay_on_again_before_acknowledgement(
    before, after, fail_tick, after_real_check, keeps_failing
):
    factory = MockFactory()
    guard = _guard(factory)
    real_check = guard.check
    broken = _broken_check(guard, after_real_check=after_real_check)
    now, ticks, failed = 0.0, 0, False
    for action in before + after:
        now += LOOP_PERIOD_S
        if action != "silent":
            guard.command(action == "on", now, "loop")
        if failed:
            assert factory.pin(17).state is False, f"relay on again at {now:.2f} s after the guard failed"
            assert guard.tripped is not None
        if now >= ticks * PERIOD_S:  # the guard's own schedule
            ticks += 1
            failing_now = ticks == fail_tick or (failed and keeps_failing)
            guard.check = broken if failing_now else real_check
            guard.tick(now, PERIOD_S)
            failed |= failing_now
            if failed:
                assert factory.pin(17).state is False and guard.tripped is not None
    if failed:
        guard.check = real_check
        guard.acknowledge()
        guard.command(True, now + LOOP_PERIOD_S, "loop")
        assert factory.pin(17).state is True, "acknowledgement must release the latch"
