"""Measuring instruments for the benchmark: timestamped pins, sources and emulated chips.

Nothing here changes what the daemon does; each piece only records *when* something
happened, on `time.perf_counter()` (CLOCK_MONOTONIC on Linux, the same clock as the
daemon's `time.monotonic()`, so the two can be compared directly):

  - `TimedPin`: a gpiozero `MockPin` that records every level change at the instant the
    pin changes, in the thread that changed it (no polling delay).
  - `TimedDistance` / `TimedSkin`: wrap a sensor source and record each value at the
    instant the reader returns it, i.e. when the sample becomes available to the sampler.
  - `NoisyVL53L0X` / `NoisyMLX90614`: the register-level emulated chips with the noise real
    chips show (without it the daemon rightly latches a 'frozen' fault after 3 s / 15 s),
    and, for the VL53L0X, a record of the instant each measurement's data-ready rose.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque

from gpiozero.pins.mock import MockFactory, MockPin

from emulated_i2c import EmulatedI2C, EmulatedMLX90614, EmulatedVL53L0X

now = time.perf_counter

DISTANCE_NOISE_MM = 2.0  # VL53L0X repeatability at 30-50 cm (as drivers/sim_sensors.py)
SKIN_NOISE_C = 0.03  # MLX90614 noise (as drivers/sim_sensors.py)
HISTORY = 4096  # records kept per instrument (a few minutes at 33 ms)

if time.get_clock_info("perf_counter").implementation != time.get_clock_info("monotonic").implementation:
    raise RuntimeError("the benchmark needs perf_counter and monotonic to be the same clock")


class Timeline:
    """Thread-safe ring of (t_s, value) with a 'first record after t matching x' query."""

    def __init__(self) -> None:
        self._items: deque[tuple[float, object]] = deque(maxlen=HISTORY)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)

    def add(self, value: object, t_s: float | None = None) -> None:
        with self._lock:
            self._items.append((now() if t_s is None else t_s, value))
            self._changed.notify_all()

    def first_after(self, t0: float, match) -> tuple[float, object] | None:
        with self._lock:
            for t_s, value in self._items:
                if t_s >= t0 and match(value):
                    return t_s, value
        return None

    def wait_for(self, t0: float, match, timeout_s: float) -> tuple[float, object] | None:
        """Block until a record at or after t0 matches (or the timeout passes)."""
        deadline = now() + timeout_s
        with self._lock:
            while True:
                for t_s, value in reversed(self._items):
                    if t_s < t0:
                        break
                    if match(value):
                        return self._first_locked(t0, match)
                left = deadline - now()
                if left <= 0:
                    return None
                self._changed.wait(left)

    def _first_locked(self, t0, match):
        for t_s, value in self._items:
            if t_s >= t0 and match(value):
                return t_s, value
        return None


class TimedPin(MockPin):
    """A MockPin whose level changes are recorded in `pin.changes` (t_s, level)."""

    def __init__(self, factory, info, **kwargs):
        self.changes = Timeline()
        super().__init__(factory, info, **kwargs)

    def _change_state(self, value):
        changed = super()._change_state(value)
        if changed:
            self.changes.add(bool(value))
        return changed


def press_on_stdin_lines(pin, held_s: float, after_press=None) -> None:
    """Bench scaffolding for the measured programs: each stdin line with 'space' (or a blank)
    holds the mock button `pin` down for `held_s`; 'q' ends. `after_press()` runs after each."""
    import sys

    for line in sys.stdin:
        if "q" in line:
            break
        if "space" in line or " " in line:
            pin.drive_low()
            time.sleep(held_s)
            pin.drive_high()
            if after_press is not None:
                after_press()


def timed_factory() -> MockFactory:
    return MockFactory(pin_class=TimedPin)


class _TimedSource:
    """Passes every call through; records each returned value with its time."""

    def __init__(self, inner):
        self.inner = inner
        self.name = getattr(inner, "name", type(inner).__name__)
        self.values = Timeline()
        if hasattr(inner, "may_block"):
            self.may_block = inner.may_block

    def close(self) -> None:
        self.inner.close()


class TimedDistance(_TimedSource):
    def read_distance_mm(self) -> float:
        value = self.inner.read_distance_mm()
        self.values.add(value)
        return value


class TimedSkin(_TimedSource):
    def read_skin(self):
        reading = self.inner.read_skin()
        self.values.add(reading.skin_c)
        return reading


class NoisyVL53L0X(EmulatedVL53L0X):
    """The emulated VL53L0X seeing `true_mm` with Gaussian noise; records data-ready times.

    `ready` holds (t_s, range_mm) for every completed continuous measurement, where t_s
    is the instant the real chip would raise data-ready (the end of its measurement
    period), not the later instant the reader happened to poll it.
    """

    def __init__(self, *, seed: int = 0, distance_mm: float = 400.0, **kwargs):
        self._rng = random.Random(seed)
        self.true_mm = distance_mm
        self.ready = Timeline()
        super().__init__(distance_mm=distance_mm, **kwargs)

    @property
    def distance_mm(self) -> float:
        if self.true_mm >= self.NO_TARGET_RANGE_MM:
            return self.true_mm
        return self.true_mm + self._rng.gauss(0.0, DISTANCE_NOISE_MM)

    @distance_mm.setter
    def distance_mm(self, value: float) -> None:
        self.true_mm = float(value)

    def _complete_measurement(self) -> None:
        super()._complete_measurement()
        if self._continuous_period_s is not None:
            due_s = self._next_sample_due - self._continuous_period_s
            self.ready.add(self._u16(self.RESULT_RANGE_MM), due_s)


class NoisyMLX90614(EmulatedMLX90614):
    """The emulated MLX90614 seeing `true_c` with Gaussian noise (then 0.02 K quantisation)."""

    def __init__(self, *, seed: int = 0, object_c: float = 33.0, **kwargs):
        self._rng = random.Random(seed + 1)
        self.true_c = object_c
        super().__init__(object_c=object_c, **kwargs)

    @property
    def object_c(self) -> float:
        return self.true_c + self._rng.gauss(0.0, SKIN_NOISE_C)

    @object_c.setter
    def object_c(self, value: float) -> None:
        self.true_c = float(value)


def noisy_bus(
    *, seed: int = 0, distance_mm: float = 400.0, skin_c: float = 33.0, ambient_c: float = 24.0
) -> tuple[EmulatedI2C, NoisyVL53L0X, NoisyMLX90614]:
    """Both sensors on one emulated bus, in real time (time.monotonic)."""
    vl53 = NoisyVL53L0X(seed=seed, distance_mm=distance_mm, monotonic=time.monotonic)
    mlx = NoisyMLX90614(seed=seed, object_c=skin_c, ambient_c=ambient_c)
    return EmulatedI2C(vl53, mlx), vl53, mlx
