"""The independent guard: the only path by which the control loop switches the lamp relay on
(off also comes straight from the daemon's exception and shutdown paths, and from the failsafe).

It shares nothing with the session logic. It obeys `command(on)` from the control loop
only while both of its own rules hold, and otherwise cuts the relay and latches:

  - liveness (SR-9): the loop must confirm the output at least every `deadline_s`;
    `check()` runs on the guard's own thread (or the simulator's schedule) and cuts
    the relay when the last confirmation is older than that: 'guard_loop_stall'.
  - exposure (SR-6): it sums relay-on time itself and cuts at `max_on_s`:
    'guard_on_time'. The sum restarts only after the relay has been off for
    `rest_s` without a break (the minimum gap between sessions), so no sequence of
    short sessions or pauses can add up to more than the cap.
  - its own failure (SR-1): an exception inside its check latches 'guard_failed' and
    cuts the relay. A guard that cannot check must not let the loop switch the lamp on.
A sampler that reads a hazardous value calls `cut()`: the relay goes off at once, nothing
latches (the loop records why at its next step), and no step that began before the cut
can switch it on again. `cut()` only ever switches off; `command()` is the only way on.
A trip stays latched until `acknowledge()` (a long button press, via the daemon, which
sees `tripped` at its next step and latches and journals the same code).

The liveness deadline is measured from the loop's last confirmation, and a check at that
instant cuts. The thread wakes STALL_LEAD_S before it, because a sleeping thread wakes late
(bench: p99 0.2 ms, worst 10 ms on a loaded 2-core machine); the rule counts as broken from
that moment, so the cut lands at or before `last confirmation + deadline_s`.

The thread sleeps until a rule falls due (`seconds_until_due`), re-checking then: while the
loop confirms, that is about once per `deadline_s`. While the relay is off nothing can trip,
and only `command` can switch it on: the thread looks every OFF_RECHECK_S, and `command`
wakes it the moment the relay goes on, so the deadline runs from that instant as before.
"""

from __future__ import annotations

import logging
import threading

from drivers.relay import LampOutput

log = logging.getLogger("irlamp.guard")

STALL_LEAD_S = 0.010  # the liveness rule trips this long before deadline_s (thread wake-up lateness)
HAZARD_HOLD = "hazard_cut"  # the relay reason while a step older than a sampler's cut asks for on
MIN_WAIT_S = 0.001  # the thread never spins: at least this between two rounds (well inside the lead)
OFF_RECHECK_S = 1.0  # relay off: the thread's sleep between looks (switching on wakes it at once)


class _ThreadSleep:
    """The guard thread's sleep. `wait(s)` returns True once stopped (`set()`), False when `s`
    has passed or `wake()` was called (also a wake before the wait: none is lost)."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._stopped = False
        self._woken = False

    def wait(self, timeout_s: float) -> bool:
        with self._cond:
            if not (self._woken or self._stopped):
                self._cond.wait(timeout_s)
            self._woken = False
            return self._stopped

    def wake(self) -> None:
        with self._cond:
            self._woken = True
            self._cond.notify()

    def set(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def is_set(self) -> bool:
        return self._stopped


class RelayGuard:
    def __init__(self, output: LampOutput, *, deadline_s: float, max_on_s: float, rest_s: float, start_s: float):
        self.output = output
        self.deadline_s = deadline_s
        self.max_on_s = max_on_s
        self.rest_s = rest_s
        self._lock = threading.RLock()
        self._last_confirm_s = start_s
        self._last_account_s = start_s
        self._off_since_s = start_s - rest_s
        self._held_off_until_s = float("-inf")  # the latest sampler cut (see cut())
        self.on_s = 0.0
        self.tripped: str | None = None
        self.trip_detail = ""
        self._thread: threading.Thread | None = None
        self._stop = _ThreadSleep()  # the thread's sleep, ended by stop, a timeout or the relay going on

    # -- called by the control loop ----------------------------------------------------
    def command(self, on: bool, now_s: float, reason: str) -> bool:
        """Confirm the loop is alive and ask for the lamp on/off. Returns the actual state."""
        with self._lock:
            self._account(now_s)
            self._last_confirm_s = now_s
            if on and self.tripped is None and self.on_s >= self.max_on_s:
                self._trip("guard_on_time", f"asked for more than the guard's cap of {self.max_on_s:.0f} s on")
            held = now_s < self._held_off_until_s  # this step's inputs predate a sampler's cut
            allowed = on and self.tripped is None and not held
            was_on = self.output.commanded_on
            self.output.set(allowed, reason if allowed or not on else (self.tripped or HAZARD_HOLD))
            self._note_output(now_s)
            if self.output.commanded_on and not was_on:
                self._stop.wake()  # the thread sleeps while the relay is off: the deadline runs now
            return self.output.commanded_on

    # -- called by a sampler's thread ----------------------------------------------------
    def cut(self, reason: str, now_s: float) -> bool:
        """A sampler read a hazardous value at `now_s` (after publishing it): relay off now.
        Only ever switches off and latches nothing. A loop step that began before `now_s` may
        not have seen that sample, so `command(on)` from such a step keeps the relay off; a
        step that began at or after it has seen it (the loop reads `now` before the feeds).
        True when the relay was on and this switched it off (the sampler then wakes the loop
        to record why; with the relay already off the loop's next tick judges the sample)."""
        with self._lock:
            self._held_off_until_s = max(self._held_off_until_s, now_s)
            if not self.output.commanded_on:
                return False
            self._account(max(now_s, self._last_account_s))
            self.output.set(False, reason)
            return True

    @property
    def last_confirm_s(self) -> float:
        """When the loop last confirmed (the liveness deadline counts from here)."""
        return self._last_confirm_s

    def acknowledge(self) -> None:
        with self._lock:
            self.tripped, self.trip_detail = None, ""

    # -- called on the guard's own schedule -----------------------------------------------
    def check(self, now_s: float) -> str | None:
        """Enforce both rules; returns the trip code if the guard is (now) tripped."""
        with self._lock:
            self._account(now_s)
            if self.output.is_on():
                silent_s = now_s - self._last_confirm_s
                if now_s >= self._stall_due_s():
                    self._trip("guard_loop_stall", f"no confirmation from the control loop for {silent_s:.2f} s")
                elif self.on_s >= self.max_on_s:
                    self._trip("guard_on_time", f"relay on for {self.on_s:.1f} s (guard cap {self.max_on_s:.0f} s)")
            self._note_output(now_s)
            return self.tripped

    def _stall_due_s(self) -> float:
        return self._last_confirm_s + self.deadline_s - STALL_LEAD_S

    def _trip(self, code: str, detail: str) -> None:
        if self.tripped is None:
            self.tripped, self.trip_detail = code, detail
        self.output.set(False, code)

    def _account(self, now_s: float) -> None:
        if self.output.commanded_on:
            self.on_s += max(0.0, now_s - self._last_account_s)
            self._off_since_s = now_s  # on until this instant: any rest starts after it
        elif now_s - self._off_since_s >= self.rest_s:
            self.on_s = 0.0
        self._last_account_s = now_s

    def _note_output(self, now_s: float) -> None:
        if self.output.commanded_on:
            self._off_since_s = now_s

    # -- real-time thread -----------------------------------------------------------------
    def seconds_until_due(self, now_s: float) -> float | None:
        """Time until one of the guard's rules would trip if nothing changed (None: lamp off)."""
        with self._lock:
            if not self.output.commanded_on:
                return None
            return max(0.0, min(self._stall_due_s(), now_s + self.max_on_s - self.on_s) - now_s)

    def tick(self, now_s: float, period_s: float) -> float:
        """One round of the guard's thread: enforce both rules, failing closed when that raises.
        Returns how long to sleep: until a rule falls due (at least MIN_WAIT_S); OFF_RECHECK_S
        while the relay is off (`command` wakes the thread when it goes on); `period_s` after a
        round that failed."""
        try:
            self.check(now_s)
            due_s = self.seconds_until_due(now_s)
        except Exception as exc:  # noqa: BLE001 - a guard that cannot check holds the lamp off
            log.exception("guard check failed; relay switched off, guard_failed latched")
            self.fail_closed(f"the guard's own check raised {type(exc).__name__}: {exc}")
            return period_s
        return OFF_RECHECK_S if due_s is None else max(MIN_WAIT_S, due_s)

    def fail_closed(self, detail: str) -> None:
        """Latch 'guard_failed' (unless already tripped) and cut the relay."""
        with self._lock:
            self._trip("guard_failed", detail)

    def start_thread(self, monotonic, period_s: float) -> None:
        """Check exactly when a rule would trip (a frozen loop is cut at its deadline), first
        after `period_s`, and `period_s` after a round that failed (see `tick`)."""

        def run() -> None:
            wait_s = period_s
            while not self._stop.wait(wait_s):
                try:
                    wait_s = self.tick(monotonic(), period_s)
                except Exception:  # noqa: BLE001 - even cutting failed: keep the thread, try again
                    log.exception("guard could not cut the relay; retrying")
                    wait_s = period_s

        self._thread = threading.Thread(target=run, name="irlamp-guard", daemon=True)
        self._thread.start()

    def stop_thread(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
