"""Turns raw button levels sampled by the control loop into press events. Pure: no I/O.

Promises:
  - 'press'        once per debounced press, as soon as it is confirmed (stop is immediate).
  - 'short'        on release of a press shorter than long_press_s (a start request).
  - 'long'         once while a press has been held long_press_s (acknowledges a fault).
  - 'stuck'        once when the button is held for stuck_s, or is already held when the
                   daemon starts (a stuck or shorted button must never look like a press).
A level change counts only after it has been seen stable for bounce_s, in both directions,
so contact chatter never produces two presses.
"""

from __future__ import annotations

from dataclasses import dataclass

EPSILON_S = 1e-9   # float tolerance, so a deadline computed as t0 + x is met at exactly that time


@dataclass
class ButtonTracker:
    long_press_s: float
    stuck_s: float
    bounce_s: float
    pressed: bool = False            # debounced level
    pressed_since_s: float = 0.0
    candidate: bool | None = None    # raw level that differs from `pressed`, awaiting confirmation
    candidate_since_s: float = 0.0
    long_sent: bool = False
    stuck_sent: bool = False
    first_sample: bool = True

    def update(self, now_s: float, raw_pressed: bool) -> list[str]:
        """Feed one raw sample; return the events it completes (usually none)."""
        events: list[str] = []
        if self.first_sample:
            self.first_sample = False
            if raw_pressed:  # held while the daemon started: never a press
                self.pressed, self.pressed_since_s = True, now_s
                self.long_sent = self.stuck_sent = True
                return ["stuck"]
        if raw_pressed != self.pressed:
            if self.candidate is None:
                self.candidate, self.candidate_since_s = raw_pressed, now_s
            if now_s - self.candidate_since_s >= self.bounce_s - EPSILON_S:
                events += self._accept(raw_pressed, now_s)
        else:
            self.candidate = None
        if self.pressed:
            held_s = now_s - self.pressed_since_s
            if held_s >= self.long_press_s - EPSILON_S and not self.long_sent:
                self.long_sent = True
                events.append("long")
            if held_s >= self.stuck_s - EPSILON_S and not self.stuck_sent:
                self.stuck_sent = True
                events.append("stuck")
        return events

    def _accept(self, level: bool, now_s: float) -> list[str]:
        self.candidate = None
        self.pressed = level
        if level:
            self.pressed_since_s = self.candidate_since_s
            self.long_sent = self.stuck_sent = False
            return ["press"]
        return [] if self.long_sent else ["short"]

    def next_deadline_s(self) -> float | None:
        """When the next event could complete without a level change (for the loop's wake-up)."""
        if self.candidate is not None:
            return self.candidate_since_s + self.bounce_s
        if self.pressed and not self.long_sent:
            return self.pressed_since_s + self.long_press_s
        if self.pressed and not self.stuck_sent:
            return self.pressed_since_s + self.stuck_s
        return None
