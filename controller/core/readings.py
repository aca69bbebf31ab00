"""Timestamped sensor samples as the control loop sees them.

The samplers (drivers/sampler.py) publish one `Sample` per completed read; the
controller never reads a sensor itself. It judges each sample by its age on the
monotonic clock, so a sensor that stops delivering is noticed even though nothing
"happens".
"""

from __future__ import annotations

from dataclasses import dataclass

# VL53L0X reports 8190 or 8191 mm when it sees no target within range; the readers map
# its no-target statuses to this value too.
NO_TARGET_MM = 8190.0
# The VL53L0X timing budgets irlamp accepts (its sample period): the driver refuses others
# and the config bounds distance.timing_budget_ms by them.
TIMING_BUDGET_MS_MIN, TIMING_BUDGET_MS_MAX = 20, 200


@dataclass(frozen=True)
class Sample:
    """One completed read of one sensor.

    seq        increases by one per completed read (lets the controller see "new").
    t_s        monotonic seconds when the read completed.
    value      distance_mm or skin_c; None when the read failed.
    ambient_c  skin sensor only: the thermometer's own body temperature.
    error      None, or the failure kind: 'io_error' | 'timeout' | 'out_of_range' | 'missing',
               or 'unreliable' (the chip measured but flags the measurement untrustworthy:
               a doubt, SR-15).
    detail     the raw cause, for the log and the journal.
    signal_rate_mcps, ambient_rate_mcps
               distance sensor only, when the chip reports them (also with 'unreliable'):
               the laser's return and the ambient light at 940 nm, mega-counts per second.
    """

    seq: int
    t_s: float
    value: float | None
    ambient_c: float | None = None
    error: str | None = None
    detail: str = ""
    signal_rate_mcps: float | None = None
    ambient_rate_mcps: float | None = None


@dataclass(frozen=True)
class SensorFeed:
    """What a sampler can say about its sensor right now.

    latest          the newest completed sample, or None before the first one.
    busy_since_s    start time of a read that has not returned yet (None when idle):
                    a read that stays busy too long is a hung bus.
    """

    latest: Sample | None
    busy_since_s: float | None = None


def value_of(sample: Sample) -> float:
    """The value of a sample that has one (every sample past the "nan" check: judged good or
    about to be judged plausible). Raises ValueError for a failed read, which has none."""
    if sample.value is None:
        raise ValueError(f"sample {sample.seq} has no value ({sample.error})")
    return sample.value
