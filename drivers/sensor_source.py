"""The sensor source interface: what every distance or skin sensor implementation promises.

A *source* is the thinnest layer over one physical (or simulated, or emulated) chip.
It performs one blocking read when asked and either returns a value or raises one of
the exceptions below. It never retries, never caches, never sleeps longer than its
own bounded I/O timeout (a hung I2C bus may still block it: the sampler that calls it
lives in its own thread precisely so a hung read cannot stop the control loop).

Implementations:
  - real:      drivers.vl53l0x.VL53L0XSource, drivers.mlx90614.MLX90614Source
               (Adafruit CircuitPython drivers over Blinka)
  - emulated:  the same real sources on top of tests/emulated_i2c.py (register-level chips, a test double)
  - simulated: drivers.sim_sensors (scenario-driven values with seeded noise)

Exception contract (the sampler maps each to a fault kind):
  OSError            -> "io_error"      (I2C NACK errno 121, bus errors, device gone)
  RuntimeError       -> "timeout"       (driver waited for data longer than its io timeout)
  SensorMissingError -> "missing"       (chip absent or failed to initialise)
  SensorValueError   -> "out_of_range"  (chip reported an invalid measurement: range
                                         status error, MLX90614 error flag, bad PEC,
                                         impossible raw value)
  DistanceDoubtError -> "unreliable"    (the chip measured, but flags this one measurement
                                         as untrustworthy: sigma/SNR/signal/min-range checks,
                                         typically glare; a doubt, not a broken part - SR-15)
Returned values may still be NaN or implausible; judging them is the controller's job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from controller.core.readings import NO_TARGET_MM  # noqa: F401 - the readers' no-target value, defined in the core


class SensorValueError(ValueError):
    """The chip answered, but its own status says the measurement is invalid."""


@dataclass(frozen=True)
class LightRates:
    """What a VL53L0X says about the light of one measurement, mega-counts per second.

    signal_rate_mcps   the laser's own return from the target (falls with distance squared)
    ambient_rate_mcps  light the chip did not send: sunlight, or the heat lamp's own 940 nm
    """

    signal_rate_mcps: float
    ambient_rate_mcps: float


@dataclass(frozen=True)
class DistanceReading:
    """One distance measurement and, when the chip reports them, its light rates."""

    distance_mm: float
    rates: LightRates | None = None


class DistanceDoubtError(SensorValueError):
    """The chip measured, but says this measurement is not trustworthy (SR-15: a doubt).

    Raised for the range statuses that mean "too little signal against the noise"
    (sigma, SNR, signal and min-range checks, algorithm under/overflow) - the ones glare
    causes - as opposed to the statuses that mean the chip itself failed.
    """

    def __init__(self, message: str, rates: LightRates | None = None, device_status: int | None = None):
        super().__init__(message)
        self.rates = rates
        self.device_status = device_status


class SensorMissingError(OSError):
    """The chip could not be found or initialised (maps to the 'missing' fault kind)."""


@dataclass(frozen=True)
class SkinReading:
    """One MLX90614 reading: object (skin) and sensor-body (ambient) temperature, deg C."""

    skin_c: float
    ambient_c: float


@runtime_checkable
class DistanceSource(Protocol):
    """Distance from the lamp head to the person, millimetres."""

    name: str

    def read_distance_mm(self) -> float:
        """One measurement in mm (>= NO_TARGET_MM means nothing in range). May raise."""
        ...

    def read_distance(self) -> DistanceReading:
        """The same measurement with the chip's light rates (None when it has none). May raise."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class SkinSource(Protocol):
    """Infrared thermometer aimed at the treated skin."""

    name: str

    def read_skin(self) -> SkinReading:
        """One object+ambient reading in deg C. May raise."""
        ...

    def close(self) -> None: ...
