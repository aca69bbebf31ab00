"""The guard's own thread wakes exactly when a rule is due, not up to a check period later.

`make bench` measured a frozen loop cut 50-100 ms past the 0.5 s deadline while the guard
only polled every 0.1 s. The thread now also sleeps until `seconds_until_due()`; these
tests pin down that schedule without timing anything. The deadline holds from the loop's
last confirmation (SR-9), not from the moment it froze: a check at exactly that instant cuts.
"""

from __future__ import annotations

import pytest
from gpiozero.pins.mock import MockFactory

from drivers.guard import MIN_WAIT_S, STALL_LEAD_S, RelayGuard
from drivers.relay import LampOutput


def _guard(max_on_s: float = 60.0) -> RelayGuard:
    output = LampOutput(17, True, pin_factory=MockFactory())
    return RelayGuard(output, deadline_s=0.5, max_on_s=max_on_s, rest_s=600.0, start_s=0.0)


def test_nothing_is_due_while_the_lamp_is_off():
    guard = _guard()
    guard.command(False, 0.0, "test")
    assert guard.seconds_until_due(0.2) is None


def test_the_liveness_deadline_is_due_half_a_second_after_the_last_confirmation_less_the_wake_lead():
    guard = _guard()
    guard.command(True, 1.0, "test")
    assert guard.seconds_until_due(1.2) == pytest.approx(0.3 - STALL_LEAD_S)
    guard.command(True, 1.4, "test")                 # a confirmation moves the deadline
    assert guard.seconds_until_due(1.5) == pytest.approx(0.4 - STALL_LEAD_S)


def test_the_on_time_cap_is_due_when_it_comes_first():
    guard = _guard(max_on_s=2.0)
    for step in range(36):                           # 1.75 s of confirmed on-time
        guard.command(True, step * 0.05, "test")
    assert guard.seconds_until_due(1.75) == pytest.approx(0.25)


def test_a_check_at_the_due_instant_cuts_the_relay():
    guard = _guard()
    guard.command(True, 0.0, "test")
    due = guard.seconds_until_due(0.0)
    assert guard.check(due + 0.0005) == "guard_loop_stall"
    assert not guard.output.is_on()


def test_a_check_exactly_at_the_deadline_after_the_last_confirmation_cuts():
    guard = _guard()
    guard.command(True, 1.0, "test")
    assert guard.check(1.5) == "guard_loop_stall"      # 0.5 s of silence is the deadline, not past it
    assert not guard.output.is_on()


@pytest.mark.parametrize("last_confirm_s", [0.0, 0.05, 1.234, 100.0, 86_400.0 + 0.033])
@pytest.mark.parametrize("period_s", [0.1, 0.03, 0.5])
def test_the_guard_thread_cuts_a_frozen_loop_no_later_than_the_deadline_after_its_last_confirmation(
        last_confirm_s, period_s):
    """Runs the guard thread's own schedule (`tick` returns how long the thread sleeps) on an
    injected clock: the loop confirms at `last_confirm_s`, then freezes."""
    guard = _guard()
    guard.command(True, last_confirm_s, "test")
    now = last_confirm_s + period_s / 3                # the thread's phase relative to the loop
    for _ in range(1000):
        if not guard.output.is_on():
            break
        wait_s = guard.tick(now, period_s)
        assert wait_s > 0.0
        cut_at = now
        now += wait_s
    assert guard.tripped == "guard_loop_stall" and not guard.output.is_on()
    assert cut_at <= last_confirm_s + guard.deadline_s, (
        f"cut {cut_at - last_confirm_s:.6f} s after the last confirmation (deadline {guard.deadline_s} s)")


def test_the_guard_thread_never_spins_just_before_a_due_time():
    guard = _guard()
    guard.command(True, 1.0, "test")
    almost_due = 1.0 + guard.deadline_s - STALL_LEAD_S - 1e-7
    assert guard.tick(almost_due, 0.1) == MIN_WAIT_S
    assert MIN_WAIT_S < STALL_LEAD_S                  # the floor cannot push a cut past the deadline
