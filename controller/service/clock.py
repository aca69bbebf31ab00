"""Injected clocks. The controller never reads time itself; the daemon hands it `now`.

`monotonic()` is the only time used for durations (on-time, pauses, deadlines);
`wall()` (epoch seconds) is used only for calendar days and records, and is allowed
to jump. `SimClock` is advanced by the scenario simulator, so a 20-minute session
runs in seconds with exactly the same code.
"""

from __future__ import annotations

import time


class RealClock:
    simulated = False

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()


class SimClock:
    """Simulated time: starts at monotonic 0 and a given wall time; moves only when told."""

    simulated = True

    def __init__(self, start_wall: float, start_mono: float = 0.0):
        self._mono = start_mono
        self._wall_offset = start_wall - start_mono

    def monotonic(self) -> float:
        return self._mono

    def wall(self) -> float:
        return self._mono + self._wall_offset

    def advance_to(self, t_s: float) -> None:
        if t_s < self._mono:
            raise ValueError(f"simulated time cannot go back ({t_s} < {self._mono})")
        self._mono = t_s

    def jump_wall(self, delta_s: float) -> None:
        """The wall clock jumps (NTP sync, manual set); monotonic time does not."""
        self._wall_offset += delta_s
