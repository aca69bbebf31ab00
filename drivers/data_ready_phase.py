"""When the VL53L0X's next sample becomes ready, learned from what the reader's looks saw.

Pure: no I/O and no clock; the reader (drivers/vl53l0x.py) passes the instants in.

Why: every look at data-ready is an I2C transfer, and because the reader sleeps before it, a
thread wake-up - on the VM ~50-70 us of CPU each, more on a cold cache, and what dominates the
daemon's CPU in a session. One look per sample is the floor; the earlier reader (aim a little
before the sample, double the aim after a look that found it, poll after a miss) made ~1.4.

The model: in continuous ranging the chip finishes sample k at R_k = R_0 + k * T, where T is its
real period - the programmed timing budget off by its oscillator's error, a few % on a real
chip, so the programmed period alone drifts a sample away within a few dozen samples.
  - A look that finds nothing at instant t proves R > t; one that finds the sample, R <= t. A
    look that missed followed by one that found brackets R: a *lock* (centre, half-width).
  - The period is learned from a *chain* of locks with every sample between them read (so the
    count is exact): T = (newest lock - an earlier lock) / samples, uncertain by the two
    half-widths / samples, from whichever earlier lock within CHAIN_SPAN_MAX samples gives the
    surest figure - it sharpens as the chain grows, and still follows an oscillator that
    drifts. Before any chain: the programmed period, uncertain by PERIOD_TOLERANCE.
  - The next sample is predicted from the last lock: lock + n * T, within +-(half-width + n *
    sigma_T). Predictions are anchored on the lock, never on when the thread happened to
    wake, so wake-up lateness does not accumulate.
  - A normal look goes just AFTER that window: it finds the sample at once (one wake-up), at
    most 2 * uncertainty + AIM_SLACK_S + the wake-up's own lateness after data-ready.
  - A *re-lock* looks just BEFORE the window and polls through it every FINE_POLL_S: when the
    window would grow past UNCERTAINTY_MAX_S, and at least every RELOCK_EVERY_MAX samples, so
    an error in the learned period cannot let the normal looks drift late until a sample is
    overwritten unseen (at 2 % error, 30 samples drift 0.6 of a period).
  - A lock outside its predicted window (the period grew: a normal look missed and polled;
    or it shrank: below) learns the period from the last span alone, trusted no closer than
    the error just seen.
  - A re-lock whose early look already finds the sample (the period shrank) re-locks at the
    next sample twice as early (the counted sample is still the right one unless the error
    reached a period), up to EARLY_EXTRA_MAX_S early.
  - A learned period more than PERIOD_LIMIT off the programmed one is no oscillator error (a
    miscounted span would give a multiple, and looks a whole period apart would skip every
    other sample): the programmed period, trusted to PERIOD_TOLERANCE, is taken instead.
  - What the model did not expect beyond that loses the phase, and the reader polls as before
    until it sees a sample appear: a re-lock still too late at EARLY_EXTRA_MAX_S (the period is
    then trusted no more than PERIOD_TOLERANCE again), a look so late that the next sample may
    have come and overwritten this one (a caller that came back late), a read that timed out.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

POLL_INTERVAL_S = 0.001  # poll cadence while the phase is unknown or the sample is overdue
FINE_POLL_S = 0.00025  # poll cadence through a prediction's window (a lock's precision)
FINE_POLL_AFTER_S = 0.001  # fine polls go on this long past the window, then POLL_INTERVAL_S
AIM_SLACK_S = 0.00005  # a look's margin beyond the predicted window
UNCERTAINTY_MAX_S = 0.0004  # a prediction less sure than this re-locks
RELOCK_EVERY_MAX = 30  # samples: re-lock at least this often
EARLY_EXTRA_MAX_S = 0.004  # a re-lock that keeps finding the sample looks earlier, up to this
CHAIN_SPAN_MAX = 150  # samples: the period is learned over no more (~5 s), to follow a drift
LATE_MARGIN_S = 0.001  # a look this close to the next sample's window may have found it
PERIOD_TOLERANCE = 0.03  # the real period vs the programmed one, before anything is learned
PERIOD_LIMIT = 0.1  # a learned period further than this from the programmed one is refused
PERIOD_SIGMA_FLOOR = 5e-5  # the learned period is never trusted closer than this fraction
START_HALF_WIDTH_S = 0.001  # ranging started -> first sample, taken as the first lock


@dataclass(frozen=True)
class Look:
    """When to look for the next sample and what is expected."""

    at_s: float  # the first look
    predicted_s: float  # the predicted data-ready instant
    uncertainty_s: float  # the instant is within +- this
    relock: bool  # aimed before the window on purpose, to see the sample appear

    def poll_interval_s(self, now_s: float) -> float:
        """Fine polls through the window (and a little past it), then the ordinary ones."""
        in_window = now_s < self.predicted_s + self.uncertainty_s + FINE_POLL_AFTER_S
        return FINE_POLL_S if in_window else POLL_INTERVAL_S


@dataclass(frozen=True)
class _Lock:
    centre_s: float
    half_width_s: float


class _Chain:
    """Locks with every sample between them read, each with its sample number in the chain."""

    def __init__(self, first: _Lock) -> None:
        self._locks: deque[tuple[_Lock, int]] = deque([(first, 0)])

    def add(self, lock: _Lock, samples: int) -> tuple[float, float]:
        """Add `lock`, `samples` after the newest; returns the period and its uncertainty from
        the earlier lock that gives the surest estimate, at most CHAIN_SPAN_MAX samples back."""
        number = self._locks[-1][1] + samples
        while len(self._locks) > 1 and number - self._locks[0][1] > CHAIN_SPAN_MAX:
            self._locks.popleft()
        estimates = [
            (
                (lock.centre_s - first.centre_s) / (number - first_number),
                (lock.half_width_s + first.half_width_s) / (number - first_number),
            )
            for first, first_number in self._locks
        ]
        self._locks.append((lock, number))
        return min(estimates, key=lambda estimate: estimate[1])


class DataReadyPhase:
    """The chip's phase and period; `plan()` says when to look for the next sample."""

    def __init__(self, programmed_period_s: float, started_s: float) -> None:
        self._programmed_period_s = programmed_period_s
        self.period_s = programmed_period_s
        self.period_sigma_s = PERIOD_TOLERANCE * programmed_period_s
        self._lock: _Lock | None = _Lock(started_s, START_HALF_WIDTH_S)
        self._read_since_lock = 0
        self._chain: _Chain | None = None  # the start of ranging is no lock to learn from
        self._relock_earlier_s = 0.0  # > 0: the last re-lock found the sample already there

    def plan(self) -> Look | None:
        """The next look; None while the phase is unknown (look at once, then poll)."""
        lock = self._lock
        if lock is None:
            return None
        samples = self._read_since_lock + 1
        predicted_s = lock.centre_s + samples * self.period_s
        uncertainty_s = lock.half_width_s + samples * self.period_sigma_s
        if uncertainty_s > UNCERTAINTY_MAX_S or samples >= RELOCK_EVERY_MAX or self._relock_earlier_s:
            at_s = predicted_s - uncertainty_s - AIM_SLACK_S - self._relock_earlier_s
            return Look(at_s, predicted_s, uncertainty_s, relock=True)
        return Look(predicted_s + uncertainty_s + AIM_SLACK_S, predicted_s, uncertainty_s, relock=False)

    def found_at_first_look(self, look: Look | None, looked_s: float, seen_s: float) -> None:
        """The first look (started at `looked_s`, done at `seen_s`) found a sample waiting."""
        if look is None:
            return  # it may have waited for long: when it came is unknown, so is the phase
        if look.relock and looked_s < look.predicted_s - look.uncertainty_s:
            # Ready before its window opened: the period is shorter than learned. Re-lock at
            # the next sample, twice as early (it is still this sample unless the error
            # reached a period), and at worst poll from scratch.
            earlier_s = max(2 * self._relock_earlier_s, 2 * (look.uncertainty_s + AIM_SLACK_S))
            if earlier_s > EARLY_EXTRA_MAX_S:
                self.lose_phase(period_doubtful=True)
                return
            self._relock_earlier_s = earlier_s
        next_window_s = look.predicted_s + self.period_s - look.uncertainty_s - self.period_sigma_s
        if seen_s >= next_window_s - LATE_MARGIN_S:
            self.lose_phase()  # the next sample may have come: which one this is, is unknown
            return
        self._read_since_lock += 1

    def found_by_polling(self, look: Look | None, missed_s: float, seen_s: float) -> None:
        """A look at `missed_s` found nothing, the next one (done at `seen_s`) the sample."""
        lock = _Lock((missed_s + seen_s) / 2, (seen_s - missed_s) / 2)
        previous = self._lock
        if look is None or previous is None:
            self._chain = _Chain(lock)  # how many samples since the last lock is unknown
        else:
            samples = self._read_since_lock + 1
            error_s = lock.centre_s - look.predicted_s
            if abs(error_s) > look.uncertainty_s + lock.half_width_s:
                # Outside the predicted window: the period is not what was learned (or the
                # start-up guess was off). Learn it from this span alone, and trust it no
                # closer than the error just seen.
                self._chain = _Chain(previous)
                period_s, sigma_s = self._chain.add(lock, samples)
                self._adopt(period_s, max(sigma_s, abs(error_s) / samples))
            elif self._chain is None:
                self._chain = _Chain(lock)  # the first lock since ranging started
            else:
                period_s, sigma_s = self._chain.add(lock, samples)
                if sigma_s <= self.period_sigma_s:
                    self._adopt(period_s, sigma_s)
        self._lock = lock
        self._read_since_lock = 0
        self._relock_earlier_s = 0.0

    def lose_phase(self, *, period_doubtful: bool = False) -> None:
        """Forget the phase (the reader polls until it sees a sample appear); the period is kept,
        unless `period_doubtful`: then it is trusted no more than before anything was learned."""
        self._lock = None
        self._chain = None
        self._read_since_lock = 0
        self._relock_earlier_s = 0.0
        if period_doubtful:
            self.period_sigma_s = max(self.period_sigma_s, PERIOD_TOLERANCE * self._programmed_period_s)

    def _adopt(self, period_s: float, sigma_s: float) -> None:
        if abs(period_s - self._programmed_period_s) > PERIOD_LIMIT * self._programmed_period_s:
            # Not a chip's oscillator error: a miscount (a sample lost unseen) would learn a
            # multiple. Back to the programmed period, trusted only to PERIOD_TOLERANCE.
            self.period_s = self._programmed_period_s
            self.period_sigma_s = PERIOD_TOLERANCE * self._programmed_period_s
            return
        self.period_s = period_s
        self.period_sigma_s = max(sigma_s, PERIOD_SIGMA_FLOOR * self._programmed_period_s)
