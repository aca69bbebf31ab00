"""The independent guard: the only path from the control loop to the lamp relay.

It shares nothing with the session logic. It obeys `command(on)` from the control loop
only while both of its own rules hold, and otherwise cuts the relay and latches:

  - liveness (SR-9): the loop must confirm the output at least every `deadline_s`;
    `check()` runs on the guard's own thread (or the simulator's schedule) and cuts
    the relay when the last confirmation is older than that: 'guard_loop_stall'.
  - exposure (SR-6): it sums relay-on time itself and cuts at `max_on_s`:
    'guard_on_time'. The sum restarts only after the relay has been off for
    `rest_s` without a break (the minimum gap between sessions), so no sequence of
    short sessions or pauses can add up to more than the cap.
A trip stays latched until `acknowledge()` (a long button press, via the daemon).
"""

from __future__ import annotations

import logging
import threading

from drivers.relay import LampOutput

log = logging.getLogger("irlamp.guard")

DUE_MARGIN_S = 0.0005   # wake just after a deadline, so the check sees it passed


class RelayGuard:
    def __init__(self, output: LampOutput, *, deadline_s: float, max_on_s: float, rest_s: float,
                 start_s: float):
        self.output = output
        self.deadline_s = deadline_s
        self.max_on_s = max_on_s
        self.rest_s = rest_s
        self._lock = threading.RLock()
        self._last_confirm_s = start_s
        self._last_account_s = start_s
        self._off_since_s = start_s - rest_s
        self.on_s = 0.0
        self.tripped: str | None = None
        self.trip_detail = ""
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    # -- called by the control loop ----------------------------------------------------
    def command(self, on: bool, now_s: float, reason: str) -> bool:
        """Confirm the loop is alive and ask for the lamp on/off. Returns the actual state."""
        with self._lock:
            self._account(now_s)
            self._last_confirm_s = now_s
            if on and self.tripped is None and self.on_s >= self.max_on_s:
                self._trip("guard_on_time", f"asked for more than the guard's cap of {self.max_on_s:.0f} s on")
            allowed = on and self.tripped is None
            self.output.set(allowed, reason if allowed or not on else self.tripped)
            self._note_output(now_s)
            return self.output.commanded_on

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
                if silent_s > self.deadline_s:
                    self._trip("guard_loop_stall", f"no confirmation from the control loop for {silent_s:.2f} s")
                elif self.on_s >= self.max_on_s:
                    self._trip("guard_on_time", f"relay on for {self.on_s:.1f} s (guard cap {self.max_on_s:.0f} s)")
            self._note_output(now_s)
            return self.tripped

    def _trip(self, code: str, detail: str) -> None:
        if self.tripped is None:
            self.tripped, self.trip_detail = code, detail
        self.output.set(False, code)

    def _account(self, now_s: float) -> None:
        if self.output.commanded_on:
            self.on_s += max(0.0, now_s - self._last_account_s)
            self._off_since_s = now_s      # on until this instant: any rest starts after it
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
            return max(0.0, min(self._last_confirm_s + self.deadline_s, now_s + self.max_on_s - self.on_s) - now_s)

    def start_thread(self, monotonic, period_s: float) -> None:
        """Check every `period_s`, and also exactly when a rule would trip: a frozen loop is
        cut at its deadline, not up to one period later."""
        def run() -> None:
            wait_s = period_s
            while not self._stop.wait(wait_s):
                now = monotonic()
                try:
                    self.check(now)
                    due_s = self.seconds_until_due(now)
                except Exception:  # the guard must outlive its own bugs: cut, log, keep watching
                    log.exception("guard check failed; relay switched off")
                    self.output.set(False, "guard_error")
                    due_s = None
                wait_s = period_s if due_s is None else min(period_s, due_s + DUE_MARGIN_S)
        self._thread = threading.Thread(target=run, name="irlamp-guard", daemon=True)
        self._thread.start()

    def stop_thread(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
