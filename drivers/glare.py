"""One model of what glare does to a VL53L0X measurement, shared by the simulated sensor
(drivers/sim_sensors.py, `irlamp simulate`) and the register-level emulated chip
(tests/emulated_i2c.py, the real reader's tests and the selftest's tests).

What the datasheet and ST's application notes describe, in the simplest form that keeps
the shape:
  - the laser's return (signal rate) falls with the square of the distance: a skin-like
    target gives about SIGNAL_AT_400MM_MCPS at 400 mm;
  - ambient light at the laser's 940 nm (the sun, or a tungsten heat lamp, which radiates
    strongly there) adds photon shot noise: the ranging noise grows, and the chip's own
    checks (sigma, SNR, range-ignore threshold) reject more measurements;
  - what matters is ambient against signal: `ratio = glare / signal`. The ranging noise is
    sigma = DISTANCE_NOISE_MM * (1 + NOISE_GROWTH * ratio), and a measurement is rejected
    with probability min(1, ratio**2 / 2) (half of them when the glare equals the signal).
A dark room (glare 0) gives exactly the old behaviour: sigma 2 mm, nothing rejected, and
the same random draws (so existing seeded scenarios do not change).

Rejected measurements carry one of the device statuses glare causes (SNR 5, sigma 7,
range-ignore threshold 14), never a hardware status: glare does not break the chip.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

DISTANCE_NOISE_MM = 2.0  # the VL53L0X's repeatability at 30-50 cm in a dark room
SIGNAL_AT_400MM_MCPS = 4.0  # skin-like target, 400 mm, default 33 ms budget
DARK_AMBIENT_MCPS = 0.05  # what the chip reports in a room without sun or lamp
NOISE_GROWTH = 3.0  # sigma grows by this much per unit of glare / signal
GLARE_STATUSES = (7, 7, 5, 14)  # sigma (most often), SNR, range-ignore threshold
STATUS_RANGE_COMPLETE = 11
MIN_SIGNAL_DISTANCE_MM = 50.0  # below this the return saturates; the formula would explode


@dataclass(frozen=True)
class GlaredMeasurement:
    device_status: int  # the chip's range status (bits 6:3 of RESULT_RANGE_STATUS)
    range_mm: float  # what the range register holds (meaningless when rejected)
    signal_rate_mcps: float
    ambient_rate_mcps: float


def signal_rate_mcps(distance_mm: float) -> float:
    """The laser's return from a skin-like target at `distance_mm`."""
    return SIGNAL_AT_400MM_MCPS * (400.0 / max(distance_mm, MIN_SIGNAL_DISTANCE_MM)) ** 2


def rejection_probability(glare_mcps: float, signal_mcps: float) -> float:
    """Chance that the chip rejects one measurement at this glare and signal."""
    if glare_mcps <= 0.0:
        return 0.0
    ratio = glare_mcps / max(signal_mcps, 1e-6)
    return min(1.0, ratio * ratio / 2.0)


def measure(true_mm: float, glare_mcps: float, rng: random.Random) -> GlaredMeasurement:
    """One measurement of a target at `true_mm` under `glare_mcps` of ambient light.

    Draw order: one Gaussian for the range noise, then (only under glare) one uniform
    for the rejection and one choice of status - so a dark run draws what it always did."""
    glare_mcps = max(0.0, glare_mcps)
    signal = signal_rate_mcps(true_mm)
    ratio = glare_mcps / signal
    sigma_mm = DISTANCE_NOISE_MM * (1.0 + NOISE_GROWTH * ratio)
    range_mm = float(max(0, round(true_mm + rng.gauss(0.0, sigma_mm))))
    status = STATUS_RANGE_COMPLETE
    probability = rejection_probability(glare_mcps, signal)
    if probability > 0.0 and rng.random() < probability:
        status = rng.choice(GLARE_STATUSES)
    return GlaredMeasurement(status, range_mm, signal, DARK_AMBIENT_MCPS + glare_mcps)


def glare_for_rejection_share(share: float, distance_mm: float = 400.0) -> float:
    """The glare (Mcps) at which a target at `distance_mm` sees `share` of measurements
    rejected: the inverse of `rejection_probability` (for scenarios and tests)."""
    return signal_rate_mcps(distance_mm) * (2.0 * min(max(share, 0.0), 1.0)) ** 0.5
