"""Injected clocks. The controller never reads time itself; the daemon hands it `now`.

`monotonic()` is the only time used for durations (on-time, pauses, deadlines);
`wall()` (epoch seconds) is used only for calendar days and records, and is allowed
to jump. `SimClock` is advanced by the scenario simulator, so a 20-minute session
runs in seconds with exactly the same code.

Also what the daemon asks about the real clock and boot: `boot_id()` (the kernel's id of
this boot, which the journal's monotonic times belong to) and `ClockSync` (is the wall clock
synchronised?).
"""

from __future__ import annotations

import ctypes
import time
from pathlib import Path


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


BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")


def current_boot_id(path: Path = BOOT_ID_PATH) -> str | None:
    """This boot's id from the kernel, None when it cannot be read."""
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


TIME_ERROR = 5  # adjtimex() return value: clock not synchronised


def boot_id() -> str:
    """This boot's id; a made-up one (from the boot time) when the kernel's cannot be read."""
    return current_boot_id() or f"unknown-boot-{int(time.time() - time.monotonic())}"


class ClockSync:
    """Is the wall clock synchronised (NTP)? Cached for a minute."""

    def __init__(self):
        self._checked_at = float("-inf")
        self._synced = False

    def __call__(self) -> bool:
        now = time.monotonic()
        if now - self._checked_at > 60.0:
            self._checked_at = now
            self._synced = self._probe()
        return self._synced

    @staticmethod
    def _probe() -> bool:
        if Path("/run/systemd/timesync/synchronized").exists():
            return True
        try:
            buf = ctypes.create_string_buffer(512)  # struct timex, zeroed: modes = 0 (read only)
            state = ctypes.CDLL(None, use_errno=True).adjtimex(buf)
            return state not in (-1, TIME_ERROR)
        except (OSError, AttributeError):
            return False
