"""Simulated VL53L0X and MLX90614: scripted values, realistic noise, and real failure modes.

A `SimWorld` holds what the scenario says is true (distance, skin, sensor body temperature)
and, with `thermal_model`, lets the skin warm under the lamp and cool without it. The two
sources read it the way the real chips would:
  - distance: integer millimetres, Gaussian noise sigma 2 mm (the VL53L0X's typical
    repeatability at 30-50 cm), 8190 for "no target"; under `glare_mcps` (ambient light
    at 940 nm, set by a scenario's `glare`) the noise grows and some measurements are
    flagged untrustworthy (DistanceDoubtError), by the model in drivers/glare.py that the
    emulated chip shares; every reading carries the signal and ambient rates;
  - skin: noise sigma 0.03 C, quantised to the MLX90614's 0.02 K step.
The noise is seeded, so a scenario always gives the same run.

Injected faults take the real failure path: `io_error` raises OSError(121), `timeout`
raises RuntimeError, `out_of_range` returns what a confused chip returns (65535 mm;
1037.55 C = raw 0xFFFF), `nan` returns NaN, `frozen` returns the last value exactly,
forever, and `hang` blocks the reading thread until the fault is cleared (or replaced).
A hang survives closing the source: a restarted daemon finds the bus still locked.
"""

from __future__ import annotations

import errno
import math
import random
import threading
from typing import Callable

from drivers import glare
from drivers.sensor_source import NO_TARGET_MM, DistanceDoubtError, DistanceReading, LightRates, SkinReading

FAULT_KINDS = ("io_error", "timeout", "out_of_range", "nan", "frozen", "hang", "clear")
SKIN_NOISE_C = 0.03
SKIN_STEP_C = 0.02

# Thermal model: skin approaches base + rise(d) with time constant TAU when the lamp is on,
# and cools back towards base with the same constant. rise(400 mm) = 6.5 C, falling with 1/d^2.
THERMAL_RISE_AT_400MM_C = 6.5
THERMAL_TAU_S = 150.0


class SimWorld:
    def __init__(
        self,
        distance_mm: float,
        skin_c: float,
        *,
        thermal_model: bool = False,
        ambient_c: float = 25.0,
        seed: int = 0,
        lamp_on: Callable[[], bool] = lambda: False,
        monotonic: Callable[[], float] = lambda: 0.0,
    ):
        self.distance_mm = float(distance_mm)
        self.skin_c = float(skin_c)
        self.skin_base_c = float(skin_c)
        self.ambient_c = ambient_c
        self.glare_mcps = 0.0
        self.thermal_model = thermal_model
        self.rng = random.Random(seed)
        self.lamp_on = lamp_on
        self.monotonic = monotonic
        self._model_t = monotonic()
        self.faults: dict[str, str | None] = {"distance": None, "skin": None}
        self.releases: dict[str, threading.Event] = {"distance": threading.Event(), "skin": threading.Event()}
        self._lock = threading.Lock()

    def set_fault(self, sensor: str, kind: str) -> None:
        """Inject a fault kind (or 'clear'); it replaces the previous one. A hang lasts until
        another kind or 'clear' releases the bus: the blocked read then returns what the
        sensor does now. A hang injected twice is still one hang (one release ends it)."""
        if kind == "hang":
            if self.releases[sensor].is_set():
                self.releases[sensor] = threading.Event()
            self.faults[sensor] = "hang"
        else:
            self.faults[sensor] = None if kind == "clear" else kind
            self.releases[sensor].set()

    def set_skin(self, skin_c: float) -> None:
        with self._lock:
            self.update()
            self.skin_c = float(skin_c)
            if not self.thermal_model:
                self.skin_base_c = self.skin_c

    def update(self) -> None:
        """Advance the thermal model to now (called before every skin read)."""
        now = self.monotonic()
        dt = now - self._model_t
        self._model_t = now
        if not self.thermal_model or dt <= 0:
            return
        target = self.skin_base_c
        if self.lamp_on() and 0 < self.distance_mm < NO_TARGET_MM:
            target += THERMAL_RISE_AT_400MM_C * (400.0 / max(self.distance_mm, 100.0)) ** 2
        self.skin_c = target + (self.skin_c - target) * math.exp(-dt / THERMAL_TAU_S)


def _quantise(value_c: float) -> float:
    """The MLX90614's 0.02 K resolution (rounded to 2 decimals so no float dust shows)."""
    return round(round(value_c / SKIN_STEP_C) * SKIN_STEP_C, 2)


class _SimSource:
    sensor = ""

    def __init__(self, world: SimWorld):
        self.world = world
        self._last = None
        self._closed = False

    def _fault_or_value(self, make_value, bad_value):
        world = self.world
        if world.faults[self.sensor] == "hang":
            world.releases[self.sensor].wait()  # blocks like a locked I2C bus
            if self._closed:
                raise OSError(errno.EIO, "read abandoned: the sensor was closed while the bus was locked")
        kind = world.faults[self.sensor]  # what the sensor does now (after a release)
        if kind == "io_error":
            raise OSError(121, "Remote I/O error")
        if kind == "timeout":
            raise RuntimeError("timeout waiting for data ready")
        if kind == "frozen" and self._last is not None:
            return self._last
        if kind == "out_of_range":
            return bad_value
        value = make_value()
        if kind == "nan":
            value = self._nan_like(value)
        self._last = value
        return value

    def may_block(self) -> bool:
        """Only an injected `hang` can block a read (lets the simulator skip the thread hand-off)."""
        return self.world.faults[self.sensor] == "hang"

    def close(self) -> None:
        """Abandon a read blocked on a hung bus (it raises). The hang itself belongs to the
        world, not to this source: a source opened later (a restarted daemon) still hangs."""
        self._closed = True
        world = self.world
        blocked = world.releases[self.sensor]
        if world.faults[self.sensor] == "hang" and not blocked.is_set():
            world.releases[self.sensor] = threading.Event()
        blocked.set()


class SimDistanceSource(_SimSource):
    name = sensor = "distance"

    def read_distance_mm(self) -> float:
        return self.read_distance().distance_mm

    def read_distance(self) -> DistanceReading:
        return self._fault_or_value(self._measure, DistanceReading(65535.0))

    def _measure(self) -> DistanceReading:
        world = self.world
        true_mm = world.distance_mm
        if true_mm >= NO_TARGET_MM:
            return DistanceReading(NO_TARGET_MM, LightRates(0.0, glare.DARK_AMBIENT_MCPS + world.glare_mcps))
        measured = glare.measure(true_mm, world.glare_mcps, world.rng)
        rates = LightRates(measured.signal_rate_mcps, measured.ambient_rate_mcps)
        if measured.device_status != glare.STATUS_RANGE_COMPLETE:
            raise DistanceDoubtError(
                f"simulated range status {measured.device_status}: measurement not "
                f"trustworthy (ambient {rates.ambient_rate_mcps:.2f} Mcps)",
                rates,
                measured.device_status,
            )
        return DistanceReading(measured.range_mm, rates)

    @staticmethod
    def _nan_like(value):
        return DistanceReading(float("nan"), value.rates)


class SimSkinSource(_SimSource):
    name = sensor = "skin"

    def read_skin(self) -> SkinReading:
        return self._fault_or_value(self._measure, SkinReading(1037.55, 1037.55))

    def _measure(self) -> SkinReading:
        w = self.world
        with w._lock:
            w.update()
            skin = w.skin_c + w.rng.gauss(0.0, SKIN_NOISE_C)
            ambient = w.ambient_c + w.rng.gauss(0.0, SKIN_NOISE_C)
        return SkinReading(_quantise(skin), _quantise(ambient))

    @staticmethod
    def _nan_like(value):
        return SkinReading(float("nan"), value.ambient_c)
