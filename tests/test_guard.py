"""RelayGuard (SR-6 second mechanism, SR-9 liveness) on gpiozero mock pins.

Time is passed in explicitly (`command(on, now)`, `check(now)`), except in the one
real-thread test. The relay pin's mock level is the truth in every assertion.
"""

from __future__ import annotations

import math
import threading
import time

import pytest
from gpiozero.pins.mock import MockFactory

from drivers.guard import STALL_LEAD_S, RelayGuard, _ThreadSleep
from drivers.relay import LampOutput
from helpers_core import default_config

DEADLINE_S = 0.5
CHECK_PERIOD_S = DEADLINE_S / 5  # what the daemon uses (guard_deadline_s / 5)
LOOP_PERIOD_S = 0.05  # the control loop at 20 Hz


class Rig:
    def __init__(
        self,
        *,
        max_on_s: float = 60.0,
        rest_s: float = 600.0,
        relay_pin: int = 17,
        active_high: bool = True,
        start_s: float = 0.0,
    ):
        self.factory = MockFactory()
        self.output = LampOutput(relay_pin, active_high, pin_factory=self.factory)
        self.guard = RelayGuard(self.output, deadline_s=DEADLINE_S, max_on_s=max_on_s, rest_s=rest_s, start_s=start_s)
        self.pin = self.factory.pin(relay_pin)
        self.active_high = active_high
        self.now = start_s
        self._next_check = start_s + CHECK_PERIOD_S
        self.last_command_s = start_s
        self.on_since: float | None = None  # when the relay was first seen on

    def relay_on(self) -> bool:
        """What the relay coil sees."""
        return self.pin.state == self.active_high

    def advance(self, seconds: float, *, command: bool | None) -> float | None:
        """Run the loop (commanding `command`, or silent when None) and the guard's checks for
        `seconds`; return the first time the relay pin was seen off, or None."""
        end = self.now + seconds
        next_cmd = self.now + LOOP_PERIOD_S
        off_at = None
        while True:
            t = min(next_cmd, self._next_check)
            if t > end + 1e-9:
                break
            self.now = t
            if abs(t - next_cmd) < 1e-9:
                next_cmd += LOOP_PERIOD_S
                if command is not None:
                    self.guard.command(command, t, "test")
                    self.last_command_s = t
                    if self.on_since is None and self.relay_on():
                        self.on_since = t
            if abs(t - self._next_check) < 1e-9:
                self._next_check += CHECK_PERIOD_S
                self.guard.check(t)
            if off_at is None and not self.relay_on():
                off_at = t
        self.now = end
        return off_at


@pytest.mark.parametrize("relay_pin, active_high", [(17, True), (5, False)])
def test_stalled_loop_is_cut_within_the_deadline(relay_pin, active_high):
    rig = Rig(relay_pin=relay_pin, active_high=active_high)
    assert rig.advance(5.0, command=True) is None and rig.relay_on()
    last_confirm = rig.last_command_s
    off_at = rig.advance(2.0, command=None)
    assert off_at is not None and not rig.relay_on()
    assert DEADLINE_S - 1e-9 <= off_at - last_confirm <= DEADLINE_S + CHECK_PERIOD_S + 1e-9
    assert rig.guard.tripped == "guard_loop_stall"
    # the loop comes back asking for on: the trip stays latched
    rig.advance(1.0, command=True)
    assert not rig.relay_on() and rig.guard.tripped == "guard_loop_stall"


def test_a_loop_that_keeps_confirming_is_never_cut():
    rig = Rig(max_on_s=1e6)
    assert rig.advance(60.0, command=True) is None
    assert rig.guard.tripped is None and rig.relay_on()


def test_a_silent_loop_with_the_lamp_off_trips_nothing():
    rig = Rig()
    rig.advance(1.0, command=False)
    rig.advance(10.0, command=None)
    assert rig.guard.tripped is None and not rig.relay_on()


def test_acknowledge_releases_the_latch():
    rig = Rig()
    rig.advance(1.0, command=True)
    rig.advance(1.0, command=None)
    assert rig.guard.tripped == "guard_loop_stall"
    rig.guard.acknowledge()
    rig.advance(1.0, command=True)
    assert rig.relay_on() and rig.guard.tripped is None


def test_guard_cuts_a_session_logic_that_never_stops():
    cfg = default_config()
    max_on_s = cfg.session.max_on_minutes * 60.0 + cfg.loop.guard_on_margin_s
    rig = Rig(max_on_s=max_on_s, rest_s=cfg.session.min_gap_minutes * 60.0)
    assert rig.advance(max_on_s - 1.0, command=True) is None
    off_at = rig.advance(5.0, command=True)
    lit_s = off_at - rig.on_since
    assert max_on_s - 1e-6 <= lit_s <= max_on_s + LOOP_PERIOD_S + 1e-6
    assert rig.guard.tripped == "guard_on_time" and not rig.relay_on()
    rig.advance(3600.0, command=True)
    assert not rig.relay_on(), "a tripped guard must not obey 'on' again without acknowledgement"


def test_the_loop_asking_for_on_past_the_cap_is_refused_by_the_command_itself():
    """Each of the guard's two on-time checks holds on its own. Here the guard's periodic check
    never runs: command() alone must refuse 'on' once the cap is reached."""
    rig = Rig(max_on_s=2.0)
    states = []
    for k in range(0, 61):  # 0 .. 3 s at 20 Hz, no check()
        states.append((k * LOOP_PERIOD_S, rig.guard.command(True, k * LOOP_PERIOD_S, "test")))
    first_refused = next(t for t, on in states if not on)
    assert first_refused == pytest.approx(2.0)
    assert rig.guard.tripped == "guard_on_time" and not rig.relay_on()


def test_the_periodic_check_cuts_at_the_cap_between_two_confirmations():
    """...and check() alone cuts at the cap, before the loop's next command could."""
    rig = Rig(max_on_s=1.0)
    for t in (0.0, 0.4, 0.8):  # a slow but live loop
        assert rig.guard.command(True, t, "test")
    assert rig.guard.check(0.9) is None and rig.relay_on()
    assert rig.guard.check(1.0) == "guard_on_time" and not rig.relay_on()
    assert rig.guard.trip_detail, "the trip says what the guard saw"


def test_short_sessions_and_pauses_cannot_add_up_past_the_cap():
    rig = Rig(max_on_s=20.0, rest_s=600.0)
    on_total = 0.0
    for _ in range(30):
        rig.advance(2.0, command=True)
        if rig.guard.tripped:
            break
        on_total += 2.0
        rig.advance(30.0, command=False)  # off, but much shorter than rest_s
    assert rig.guard.tripped == "guard_on_time" and not rig.relay_on()
    assert on_total <= 20.0


def test_the_cap_restarts_only_after_rest_s_off():
    rest_s = 300.0
    rig = Rig(max_on_s=10.0, rest_s=rest_s)
    rig.advance(8.0, command=True)
    rig.advance(rest_s - 1.0, command=False)
    off_at = rig.advance(5.0, command=True)
    assert off_at is not None and rig.guard.tripped == "guard_on_time", "rest too short: the cap keeps counting"

    rig = Rig(max_on_s=10.0, rest_s=rest_s)
    rig.advance(8.0, command=True)
    rig.advance(rest_s + 1.0, command=False)
    assert rig.advance(9.0, command=True) is None and rig.guard.tripped is None


def test_rest_is_counted_from_when_the_relay_went_off():
    """The rest period starts when the relay opened, not at the loop's last 'on' before that."""
    rest_s = 60.0
    rig = Rig(max_on_s=10.0, rest_s=rest_s)
    rig.advance(5.0, command=True)
    cut_at = rig.advance(1.0, command=None)  # the loop stalls: the guard cuts the relay
    assert rig.guard.tripped == "guard_loop_stall"
    lit_s = cut_at - rig.on_since
    assert rig.guard.on_s == pytest.approx(lit_s, abs=1e-6)
    rig.guard.acknowledge()
    rig.advance(cut_at + rest_s - CHECK_PERIOD_S / 2 - rig.now, command=False)  # includes the last check before
    assert rig.guard.on_s == pytest.approx(lit_s, abs=1e-6), "the cap was reset before the relay rested rest_s"
    rig.advance(CHECK_PERIOD_S, command=False)
    assert rig.guard.on_s == 0.0


def test_rest_after_a_normal_stop_is_counted_from_the_stop():
    rest_s = 60.0
    rig = Rig(max_on_s=10.0, rest_s=rest_s)
    for k in range(1, 101):  # on from 0.05 s to 5.0 s, confirmed at 20 Hz
        rig.guard.command(True, k * LOOP_PERIOD_S, "on")
    stopped_at = 5.049  # the next step, a little late, says off
    rig.guard.command(False, stopped_at, "stop")
    assert not rig.relay_on()
    on_s = rig.guard.on_s
    assert on_s == pytest.approx(stopped_at - LOOP_PERIOD_S, abs=1e-6)
    rig.guard.check(stopped_at + rest_s - 0.02)
    assert rig.guard.on_s == on_s, "the cap was reset before the relay rested rest_s"
    rig.guard.check(stopped_at + rest_s + 0.001)
    assert rig.guard.on_s == 0.0


def test_guard_thread_cuts_a_frozen_loop_in_real_time():
    factory = MockFactory()
    output = LampOutput(17, True, pin_factory=factory)
    guard = RelayGuard(output, deadline_s=0.2, max_on_s=60.0, rest_s=60.0, start_s=time.monotonic())
    pin = factory.pin(17)
    guard.start_thread(time.monotonic, 0.05)
    try:
        guard.command(True, time.monotonic(), "test")
        assert pin.state is True
        deadline = time.monotonic() + 3.0
        poll = threading.Event()
        while pin.state and time.monotonic() < deadline:
            poll.wait(0.01)
        assert pin.state is False, "the guard thread did not cut the relay within 3 s"
        assert guard.tripped == "guard_loop_stall"
    finally:
        guard.stop_thread()
        output.close()


def test_every_relay_change_reaches_the_journal_with_its_reason():
    """LampOutput's observer (the journal's relay records) hears why the relay changed: the
    loop's reason when the guard obeys, the trip code when the guard cuts."""
    changes: list[tuple[bool, str]] = []
    factory = MockFactory()
    output = LampOutput(17, True, pin_factory=factory, observer=lambda on, why: changes.append((on, why)))
    guard = RelayGuard(output, deadline_s=DEADLINE_S, max_on_s=60.0, rest_s=600.0, start_s=0.0)
    guard.command(True, 0.1, "session_started")
    guard.command(False, 0.2, "too_close")
    guard.command(True, 0.3, "resumed")
    guard.check(0.3 + DEADLINE_S + 0.01)
    assert changes == [(True, "session_started"), (False, "too_close"), (True, "resumed"), (False, "guard_loop_stall")]
    assert guard.tripped == "guard_loop_stall"


def test_every_trip_records_a_detail():
    rig = Rig(max_on_s=1.0)
    rig.advance(0.5, command=True)
    rig.advance(1.0, command=None)
    assert rig.guard.tripped == "guard_loop_stall" and rig.guard.trip_detail
    rig.guard.acknowledge()
    assert rig.guard.tripped is None and rig.guard.trip_detail == ""
    for t in (2.0, 2.4, 2.8):
        rig.guard.command(True, t, "test")
    rig.guard.check(3.0)
    assert rig.guard.tripped == "guard_on_time" and rig.guard.trip_detail
    rig = Rig(max_on_s=1.0)
    for k in range(30):
        rig.guard.command(True, k * LOOP_PERIOD_S, "test")
    assert rig.guard.tripped == "guard_on_time" and rig.guard.trip_detail


def test_the_cap_restarts_after_exactly_rest_s_off():
    rig = Rig(max_on_s=10.0, rest_s=60.0)
    for t in (1.0, 1.25, 1.5, 1.75, 2.0):
        rig.guard.command(True, t, "test")
    rig.guard.command(False, 10.0, "stop")
    rig.guard.check(69.5)
    assert rig.guard.on_s > 0.0
    rig.guard.check(70.0)
    assert rig.guard.on_s == 0.0


def test_stopping_a_guard_whose_thread_never_started_is_harmless():
    rig = Rig()
    assert rig.guard.tripped is None and rig.guard.trip_detail == ""
    rig.guard.stop_thread()
    assert rig.guard.command(True, 0.1, "test") and rig.relay_on()


# -- a sampler's hazard cut (drivers/sampler.py) --------------------------------------------------
def test_a_sampler_cut_switches_off_at_once_latches_nothing_and_counts_the_on_time_to_it():
    rig = Rig()
    changes: list[tuple[bool, str]] = []
    rig.output.observer = lambda on, reason: changes.append((on, reason))
    rig.guard.command(True, 1.0, "session_started")
    rig.guard.cut("too_close", 1.5)
    assert not rig.relay_on() and changes == [(True, "session_started"), (False, "too_close")]
    assert rig.guard.tripped is None
    assert rig.guard.on_s == pytest.approx(0.5)
    rig.guard.cut("skin_overheat", 1.6)  # already off: nothing changes
    assert changes[-1] == (False, "too_close") and rig.guard.on_s == pytest.approx(0.5)


def test_a_cut_says_whether_it_switched_the_relay_off():
    """The sampler wakes the loop only for a cut that switched the relay off (drivers/sampler.py,
    quiet hazards): True then, False when the relay was already off."""
    rig = Rig()
    assert rig.guard.cut("nobody_there", 0.5) is False, "the relay was never on"
    rig.guard.command(True, 1.0, "session_started")
    assert rig.guard.cut("too_close", 1.5) is True and not rig.relay_on()
    assert rig.guard.cut("too_close", 1.6) is False, "already off"


def test_a_cut_holds_off_every_step_that_began_before_the_latest_cut():
    rig = Rig()
    rig.guard.cut("too_close", 2.0)
    rig.guard.cut("too_close", 1.0)  # an older sample's cut, handled late, does not shorten the hold
    assert not rig.guard.command(True, 1.99, "resumed") and not rig.relay_on()
    assert rig.guard.command(True, 2.0, "resumed") and rig.relay_on()


def test_a_cut_for_a_sample_older_than_the_guards_last_check_keeps_the_rest_from_the_check():
    """The relay was on until the cut happened, not until the sample's own time: the rest that
    restarts the guard's on-time counts from the later of the two."""
    rig = Rig(rest_s=1.0)
    rig.guard.command(True, 1.0, "session_started")
    rig.guard.check(1.5)
    rig.guard.cut("too_close", 1.2)
    assert rig.guard.on_s == pytest.approx(0.5)
    rig.guard.check(2.3)  # 1.1 s after the sample, 0.8 s after the relay was last seen on
    assert rig.guard.on_s == pytest.approx(0.5), "the rest counted from the sample's time"
    rig.guard.check(2.6)
    assert rig.guard.on_s == 0.0


def test_the_stall_rule_cuts_at_exactly_its_due_instant_and_names_the_silence():
    rig = Rig()
    rig.guard.command(True, 1.0, "session_started")
    due_s = 1.0 + DEADLINE_S - STALL_LEAD_S  # the deadline less the thread's wake-up lead
    assert rig.guard.check(math.nextafter(due_s, 0.0)) is None and rig.relay_on()
    assert rig.guard.check(due_s) == "guard_loop_stall" and not rig.relay_on()
    assert rig.guard.trip_detail == f"no confirmation from the control loop for {due_s - 1.0:.2f} s"


def test_a_guard_whose_check_raises_says_what_raised():
    rig = Rig()
    rig.guard.command(True, 1.0, "session_started")

    def broken(now_s):
        raise ZeroDivisionError("a broken rule")

    rig.guard.check = broken
    assert rig.guard.tick(1.1, CHECK_PERIOD_S) == CHECK_PERIOD_S
    assert rig.guard.tripped == "guard_failed" and not rig.relay_on()
    assert rig.guard.trip_detail == "the guard's own check raised ZeroDivisionError: a broken rule"


def test_the_guard_thread_keeps_checking_after_a_round_that_raised():
    """Even a round whose cut failed must not end the thread's checking (it retries each period)."""
    rig = Rig()
    rounds: list[float] = []
    done = threading.Event()

    def tick(now_s, period_s):
        rounds.append(now_s)
        if len(rounds) == 1:
            raise OSError("the relay pin could not be driven")
        done.set()
        return period_s

    rig.guard.tick = tick
    rig.guard.start_thread(time.monotonic, 0.01)
    try:
        assert done.wait(5.0), f"the thread stopped after {len(rounds)} round(s)"
    finally:
        rig.guard.stop_thread()


# -- the guard thread's sleep and wake-ups, without real time (found by mutation testing) ---------
class _RecordingCondition(threading.Condition):
    """A condition whose wait returns at once and records its timeout: a sleep that was slept."""

    def __init__(self) -> None:
        super().__init__(threading.Lock())
        self.waits: list[float] = []

    def wait(self, timeout=None) -> bool:
        self.waits.append(timeout)
        return False


def test_the_thread_sleep_waits_unless_woken_or_stopped_and_a_wake_is_used_once():
    sleep = _ThreadSleep()
    cond = sleep._cond = _RecordingCondition()
    assert sleep.wait(0.5) is False and cond.waits == [0.5]  # nothing pending: it sleeps
    sleep.wake()
    assert sleep.wait(0.5) is False and cond.waits == [0.5]  # woken: returns at once
    assert sleep.wait(0.25) is False and cond.waits == [0.5, 0.25]  # the wake was used up
    sleep.wake()  # a wake before the wait is not lost ...
    sleep.set()
    assert sleep.wait(0.5) is True and cond.waits == [0.5, 0.25]  # ... and stopped ends the thread
    assert sleep.wait(0.5) is True and cond.waits == [0.5, 0.25] and sleep.is_set()


class _CountingSleep:
    def __init__(self, rounds: int) -> None:
        self.rounds, self.waits, self.wakes = rounds, [], 0

    def wait(self, timeout_s):
        self.waits.append(timeout_s)
        return len(self.waits) > self.rounds

    def wake(self) -> None:
        self.wakes += 1

    def set(self) -> None:
        self.rounds = 0


def test_command_wakes_the_thread_only_when_the_relay_goes_on():
    rig = Rig()
    sleep = rig.guard._stop = _CountingSleep(0)
    rig.guard.command(False, 0.1, "idle")
    assert sleep.wakes == 0
    rig.guard.command(True, 0.2, "session_started")
    assert sleep.wakes == 1
    rig.guard.command(True, 0.3, "running")  # already on: the thread's deadline is running
    assert sleep.wakes == 1


def test_after_a_failed_round_the_guard_thread_sleeps_its_period(monkeypatch):
    rig = Rig()
    sleep = rig.guard._stop = _CountingSleep(3)

    def broken_check(now_s):
        raise OSError("bus gone")

    monkeypatch.setattr(rig.guard, "check", broken_check)
    rig.guard.start_thread(lambda: 1.0, CHECK_PERIOD_S)
    rig.guard._thread.join(timeout=5.0)
    assert not rig.guard._thread.is_alive()
    assert sleep.waits == [CHECK_PERIOD_S] * 4
    assert rig.guard.tripped == "guard_failed" and not rig.relay_on()
