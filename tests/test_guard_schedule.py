"""The guard's own thread wakes exactly when a rule is due, not up to a check period later.

`make bench` measured a frozen loop cut 50-100 ms past the 0.5 s deadline while the guard
only polled every 0.1 s. The thread now also sleeps until `seconds_until_due()`; these
tests pin down that schedule without timing anything.
"""

from __future__ import annotations

import pytest
from gpiozero.pins.mock import MockFactory

from drivers.guard import RelayGuard
from drivers.relay import LampOutput


def _guard(max_on_s: float = 60.0) -> RelayGuard:
    output = LampOutput(17, True, pin_factory=MockFactory())
    return RelayGuard(output, deadline_s=0.5, max_on_s=max_on_s, rest_s=600.0, start_s=0.0)


def test_nothing_is_due_while_the_lamp_is_off():
    guard = _guard()
    guard.command(False, 0.0, "test")
    assert guard.seconds_until_due(0.2) is None


def test_the_liveness_deadline_is_due_half_a_second_after_the_last_confirmation():
    guard = _guard()
    guard.command(True, 1.0, "test")
    assert guard.seconds_until_due(1.2) == pytest.approx(0.3)
    guard.command(True, 1.4, "test")                 # a confirmation moves the deadline
    assert guard.seconds_until_due(1.5) == pytest.approx(0.4)


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
