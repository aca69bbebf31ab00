"""Turns raw button levels and timestamped edges into press events. Pure: no I/O.

Promises:
  - 'press'        once per debounced press, as soon as it is confirmed (stop is immediate).
  - 'short'        on release of a press shorter than long_press_s (a start request).
  - 'long'         once while a press has been held long_press_s (acknowledges a fault).
  - 'stuck'        once when the button is held for stuck_s, or is already held when the
                   daemon starts (a stuck or shorted button must never look like a press).
A level change counts only after it has been seen stable for bounce_s, in both directions,
so contact chatter never produces two presses.

`update(now, level)` takes one level sample. `update_edges(edges, now, level)` takes the
edges the button driver timestamped since the last step, then the level now: between two
edges the level is known, so a press that began and ended while the loop was late is
debounced on the edges' own times and still seen (SR-10).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

EPSILON_S = 1e-9  # float tolerance, so a deadline computed as t0 + x is met at exactly that time


@dataclass
class ButtonTracker:
    long_press_s: float
    stuck_s: float
    bounce_s: float
    pressed: bool = False  # debounced level
    pressed_since_s: float = 0.0
    candidate: bool | None = None  # raw level that differs from `pressed`, awaiting confirmation
    candidate_since_s: float = 0.0
    long_sent: bool = False
    stuck_sent: bool = False
    first_sample: bool = True
    last_level: bool = False  # the raw level as of `last_s`
    last_s: float = float("-inf")

    def update(self, now_s: float, raw_pressed: bool) -> list[str]:
        """Feed one raw sample; return the events it completes (usually none)."""
        events: list[str] = []
        self.last_level, self.last_s = raw_pressed, max(self.last_s, now_s)
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

    def update_edges(self, edges: Iterable[tuple[float, bool]], now_s: float, raw_pressed: bool) -> list[str]:
        """Feed the edges `(time_s, pressed)` seen since the last call (oldest first), then the
        level at `now_s`. Every deadline that fell between two edges completes at its own time
        with the level that held then. Edge times outside [last time, now] are clamped."""
        events: list[str] = []
        for t_s, level in (*edges, (now_s, raw_pressed)):
            t_s = min(max(t_s, self.last_s), now_s)
            if not self.first_sample:
                while (due := self.next_deadline_s()) is not None and due < t_s - EPSILON_S:
                    events += self.update(max(due, self.last_s), self.last_level)
            events += self.update(t_s, level)
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
