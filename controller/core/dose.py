"""Thermal dose of a session as CEM43: cumulative equivalent minutes at 43 °C. Pure.

Sapareto & Dewey (1984): CEM43 = Σ Δt · R^(43 − T), Δt in minutes, T the skin temperature in
°C over that interval, R = 0.5 at T ≥ 43 °C and 0.25 below. One minute at 43 °C is 1; each
degree below divides by 4 (a minute at 41 °C is 1/16), each degree above doubles.

Here T is each good skin sample of a session and Δt the time since the previous good sample,
both from the samples' own timestamps (never the loop's clock), capped at `MAX_STEP_S`: a gap
in the readings is not counted as heat it may or may not have been.

What the number means, honestly: CEM43 was built to compare hyperthermia treatments of
tissue at 40-50 °C; it is least accurate near body temperature (the rate R below 43 °C comes
from fewer data, and below ~39-40 °C the dose is negligible by construction). It is measured
on the skin surface by an infrared thermometer, not in tissue. There is no published limit for
repeated therapeutic exposure of healthy skin; it is shown so a caregiver can compare sessions
and days, and an optional daily cap (`session.max_daily_dose_cem43`) is a choice, not a norm.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_STEP_S = 1.0  # longest interval one sample stands for (the skin's stale bound)
R_AT_OR_ABOVE_43 = 0.5
R_BELOW_43 = 0.25


def cem43_minutes(skin_c: float, duration_s: float) -> float:
    """Equivalent minutes at 43 °C of `duration_s` seconds at `skin_c`."""
    rate = R_AT_OR_ABOVE_43 if skin_c >= 43.0 else R_BELOW_43
    return float(duration_s / 60.0 * rate ** (43.0 - skin_c))


@dataclass
class DoseMeter:
    """Accumulates CEM43 from timestamped good skin samples, each sample counted once."""

    cem43: float = 0.0
    last_t_s: float | None = None

    def add(self, t_s: float, skin_c: float) -> None:
        if self.last_t_s is not None and t_s <= self.last_t_s:
            return  # the same sample again (or one out of order)
        if self.last_t_s is not None:
            self.cem43 += cem43_minutes(skin_c, min(t_s - self.last_t_s, MAX_STEP_S))
        self.last_t_s = t_s
