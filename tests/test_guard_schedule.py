"""The guard's own thread wakes exactly when a rule is due, not up to a check period later.

`make bench` measured a frozen loop cut 50-100 ms past the 0.5 s deadline while the guard
only polled every 0.1 s. The thread now also sleeps until `seconds_until_due()`; these
tests pin down that schedule without timing anything. The deadline holds from the loop's
last confirmation (SR-9), not from the moment it froze: a check at exactly that instant cuts.
"""

from __future__ import annotations

import threading
import time

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
    guard.command(True, 1.4, "test")  # a confirmation moves the deadline
    assert guard.seconds_until_due(1.5) == pytest.approx(0.4 - STALL_LEAD_S)


def test_the_on_time_cap_is_due_when_it_comes_first():
    guard = _guard(max_on_s=2.0)
    for step in range(36):  # 1.75 s of confirmed on-time
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
    assert guard.check(1.5) == "guard_loop_stall"  # 0.5 s of silence is the deadline, not past it
    assert not guard.output.is_on()


@pytest.mark.parametrize("last_confirm_s", [0.0, 0.05, 1.234, 100.0, 86_400.0 + 0.033])
@pytest.mark.parametrize("period_s", [0.1, 0.03, 0.5])
def test_the_guard_thread_cuts_a_frozen_loop_no_later_than_the_deadline_after_its_last_confirmation(
    last_confirm_s, period_s
):
    """Runs the guard thread's own schedule (`tick` returns how long the thread sleeps) on an
    injected clock: the loop confirms at `last_confirm_s`, then freezes."""
    guard = _guard()
    guard.command(True, last_confirm_s, "test")
    now = last_confirm_s + period_s / 3  # the thread's phase relative to the loop
    for _ in range(1000):
        if not guard.output.is_on():
            break
        wait_s = guard.tick(now, period_s)
        assert wait_s > 0.0
        cut_at = now
        now += wait_s
    assert guard.tripped == "guard_loop_stall" and not guard.output.is_on()
    assert cut_at <= last_confirm_s + guard.deadline_s, (
        f"cut {cut_at - last_confirm_s:.6f} s after the last confirmation (deadline {guard.deadline_s} s)"
    )


def test_the_guard_thread_never_spins_just_before_a_due_time():
    guard = _guard()
    guard.command(True, 1.0, "test")
    almost_due = 1.0 + guard.deadline_s - STALL_LEAD_S - 1e-7
    assert guard.tick(almost_due, 0.1) == MIN_WAIT_S
    assert MIN_WAIT_S < STALL_LEAD_S  # the floor cannot push a cut past the deadline


# -- the thread itself, on a simulated clock ----------------------------------------------------
class SimulatedSleep:
    """Stands in for the guard thread's stop event: `wait(s)` advances a simulated clock by `s`
    instead of sleeping, and notes when the relay pin was first seen off. Optionally a control
    loop confirms 'on' every `loop_period_s` during the sleep, until it freezes at `freeze_at_s`.
    It reports 'stop' once the clock passes `until_s`, which ends the thread."""

    def __init__(
        self,
        pin,
        until_s: float,
        guard: RelayGuard | None = None,
        loop_period_s: float = 0.05,
        freeze_at_s: float = 0.0,
    ):
        self.pin, self.until_s = pin, until_s
        self.guard, self.loop_period_s, self.freeze_at_s = guard, loop_period_s, freeze_at_s
        self.now_s = 0.0
        self.off_at_s: float | None = None
        self._loop_steps = 0
        self.waits = 0  # how often the thread went to sleep (each is a wake-up on a real machine)

    def monotonic(self) -> float:
        return self.now_s

    def wait(self, timeout_s: float) -> bool:
        self.waits += 1
        if self.off_at_s is None and not self.pin.state:
            self.off_at_s = self.now_s  # the previous round (at now_s) cut the relay
        end_s = self.now_s + timeout_s
        while self.guard is not None:
            step_s = (self._loop_steps + 1) * self.loop_period_s
            if step_s > min(end_s, self.freeze_at_s) + 1e-9:
                break
            self._loop_steps += 1
            self.guard.command(True, step_s, "loop")
        self.now_s = end_s
        return self.now_s > self.until_s

    def set(self) -> None:
        self.until_s = -1.0

    def wake(self) -> None:
        """`command` switching the relay on: the simulated thread re-checks after its wait anyway."""


def run_thread_on_simulated_clock(
    guard: RelayGuard, pin, period_s: float, until_s: float, freeze_at_s: float | None = None
) -> SimulatedSleep:
    """Run the guard's real thread function until the simulated clock passes `until_s` (with a
    loop confirming 'on' at 20 Hz until `freeze_at_s`, when given)."""
    sleep = SimulatedSleep(pin, until_s, guard=None if freeze_at_s is None else guard, freeze_at_s=freeze_at_s or 0.0)
    guard._stop = sleep
    guard.start_thread(sleep.monotonic, period_s)
    guard._thread.join(timeout=10.0)
    assert not guard._thread.is_alive()
    return sleep


@pytest.mark.parametrize("period_s", [0.15, 0.1, 0.07])
@pytest.mark.parametrize("freeze_at_s", [0.0, 0.2, 0.55, 1.0])
def test_the_guard_thread_cuts_a_frozen_loop_at_its_deadline_not_a_period_later(period_s, freeze_at_s):
    """The thread sleeps at most until the deadline is due, so a loop that confirms at 20 Hz and
    freezes at `freeze_at_s` (its last confirmation) is cut 0.5 s after that, not at the next
    periodic check, wherever the freeze falls between the guard's rounds."""
    factory = MockFactory()
    output = LampOutput(17, True, pin_factory=factory)
    guard = RelayGuard(output, deadline_s=0.5, max_on_s=60.0, rest_s=600.0, start_s=0.0)
    guard.command(True, 0.0, "test")
    sleep = run_thread_on_simulated_clock(guard, factory.pin(17), period_s, until_s=3.0, freeze_at_s=freeze_at_s)
    assert guard.tripped == "guard_loop_stall" and sleep.off_at_s is not None
    assert freeze_at_s + 0.5 - 0.05 <= sleep.off_at_s <= freeze_at_s + 0.5 + 0.001


def test_the_guard_thread_cuts_at_the_on_time_cap_between_two_periodic_checks():
    factory = MockFactory()
    output = LampOutput(17, True, pin_factory=factory)
    guard = RelayGuard(output, deadline_s=60.0, max_on_s=0.33, rest_s=600.0, start_s=0.0)
    guard.command(True, 0.0, "test")
    sleep = run_thread_on_simulated_clock(guard, factory.pin(17), 0.1, until_s=2.0)
    assert guard.tripped == "guard_on_time" and sleep.off_at_s is not None
    assert 0.33 <= sleep.off_at_s <= 0.33 + 0.002


def test_the_guard_thread_switches_the_relay_off_when_its_own_check_raises(monkeypatch):
    factory = MockFactory()
    changes: list[tuple[bool, str]] = []
    output = LampOutput(17, True, pin_factory=factory, observer=lambda on, why: changes.append((on, why)))
    guard = RelayGuard(output, deadline_s=0.5, max_on_s=60.0, rest_s=600.0, start_s=0.0)
    guard.command(True, 0.0, "test")
    assert factory.pin(17).state

    def broken_check(now_s: float):
        raise RuntimeError("a bug in the guard")

    monkeypatch.setattr(guard, "check", broken_check)
    sleep = run_thread_on_simulated_clock(guard, factory.pin(17), 0.1, until_s=0.35)
    assert not factory.pin(17).state and not output.commanded_on
    assert sleep.off_at_s == pytest.approx(0.1), "the first failing round must cut the relay"
    off, reason = changes[-1]
    assert off is False and isinstance(reason, str) and reason.startswith("guard_"), (
        "the cut is journalled with the guard's reason"
    )


def test_the_guard_thread_is_a_named_daemon_thread_that_stop_thread_joins():
    """A daemon thread never keeps a dying process alive; the name shows in a thread dump."""
    output = LampOutput(17, True, pin_factory=MockFactory())
    guard = RelayGuard(output, deadline_s=0.5, max_on_s=60.0, rest_s=600.0, start_s=0.0)
    guard.start_thread(lambda: 0.0, 30.0)
    thread = guard._thread
    assert thread.name == "irlamp-guard" and thread.daemon is True and thread.is_alive()
    guard.stop_thread()
    assert not thread.is_alive(), "stop_thread() returned before the thread ended"


# -- how often the thread wakes (each wake-up costs CPU on a small Pi: issue 15) ---------------
def test_with_the_lamp_off_the_guard_thread_does_not_wake_at_its_check_period():
    """Nothing can trip while the relay is off (only `command` switches it on, and that wakes
    the thread): the thread looks about once a second, not every period."""
    factory = MockFactory()
    guard = RelayGuard(
        LampOutput(17, True, pin_factory=factory), deadline_s=0.5, max_on_s=60.0, rest_s=600.0, start_s=0.0
    )
    sleep = run_thread_on_simulated_clock(guard, factory.pin(17), 0.1, until_s=10.0)
    assert sleep.waits <= 12  # at the 0.1 s period: 100
    assert guard.tripped is None


def test_while_the_loop_confirms_the_guard_thread_wakes_when_the_deadline_is_due_not_every_period():
    factory = MockFactory()
    guard = RelayGuard(
        LampOutput(17, True, pin_factory=factory), deadline_s=0.5, max_on_s=60.0, rest_s=600.0, start_s=0.0
    )
    guard.command(True, 0.0, "test")
    sleep = run_thread_on_simulated_clock(guard, factory.pin(17), 0.1, until_s=3.0, freeze_at_s=100.0)
    assert guard.tripped is None and factory.pin(17).state
    assert sleep.waits <= 3.0 / (0.5 - 0.05) + 2  # at the 0.1 s period: 30


def test_the_relay_going_on_wakes_the_sleeping_guard_thread_so_a_frozen_loop_is_still_cut(monkeypatch):
    """Real time: the thread sleeps (lamp off) for far longer than the test; `command(on)` must
    wake it, or the loop that then stays silent would never be cut."""
    monkeypatch.setattr("drivers.guard.OFF_RECHECK_S", 600.0)
    factory = MockFactory()
    guard = RelayGuard(
        LampOutput(17, True, pin_factory=factory), deadline_s=0.2, max_on_s=60.0, rest_s=600.0, start_s=time.monotonic()
    )
    asleep = threading.Event()
    real_tick = guard.tick

    def tick(now_s: float, period_s: float) -> float:
        wait_s = real_tick(now_s, period_s)
        if wait_s >= 600.0:
            asleep.set()  # the thread is about to sleep with the lamp off
        return wait_s

    monkeypatch.setattr(guard, "tick", tick)
    guard.start_thread(time.monotonic, 0.01)
    try:
        assert asleep.wait(5.0)
        guard.command(True, time.monotonic(), "test")  # then the loop freezes
        assert factory.pin(17).state
        cut = threading.Event()
        for _ in range(300):  # at most 3 s
            if not factory.pin(17).state:
                break
            cut.wait(0.01)
        assert not factory.pin(17).state and guard.tripped == "guard_loop_stall"
    finally:
        guard.stop_thread()
