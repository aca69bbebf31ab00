"""The journal's session record as the daily limits read it (a value type: the journal in
controller/service/journal.py stores and loads it; controller/core/limits.py decides from it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SessionRecord:
    id: int
    boot_id: str
    start_wall: float
    start_mono: float
    end_wall: float | None  # None while the session is open
    end_mono: float | None
    on_s: float  # lamp-on seconds (as of the last checkpoint while open)
    end_reason: str | None
    max_skin_c: float | None
    min_distance_mm: float | None
    # wall - mono of this session's boot while its clock was synchronised; None if never known.
    boot_clock_offset_s: float | None = None
    # The distance sensor's light over the session (None: not measured, e.g. before v4).
    min_signal_mcps: float | None = None
    max_signal_mcps: float | None = None
    min_ambient_mcps: float | None = None
    max_ambient_mcps: float | None = None
    distance_samples: int | None = None
    distance_doubts: int | None = None
    # Heat dose and lamp switch-ons (None: recorded before v5).
    dose_cem43: float | None = None
    switches: int | None = None
    doubt_switches: int | None = None
