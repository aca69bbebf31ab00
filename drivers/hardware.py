"""Assembles the physical (or simulated) parts from the config: relay, guard, panel, samplers.

Simulation and the Pi differ only in what is passed in here: sensor sources (simulated or
Adafruit), the gpiozero pin factory (MockFactory or the Pi's default) and the clock.
"""

from __future__ import annotations

import logging

from dataclasses import dataclass, field
from typing import Callable

from controller.core.safety import POSITION_HAZARDS, hazard_checks
from controller.core.sampling import idle_periods_s
from drivers.guard import RelayGuard
from drivers.panel import Panel
from drivers.relay import LampOutput, check_boot_safe
from drivers.sampler import Sampler
from drivers.sensor_source import DistanceDoubtError, DistanceSource, SensorMissingError, SkinSource

log = logging.getLogger("irlamp.hardware")


@dataclass
class Hardware:
    output: LampOutput
    guard: RelayGuard
    panel: Panel
    distance: Sampler
    skin: Sampler
    sources: tuple
    closed: bool = field(default=False, init=False)

    def close(self) -> None:
        """Lamp off first, then everything else; a second call does nothing."""
        if self.closed:
            return
        self.output.set(False, "shutdown")
        self.guard.stop_thread()
        for sampler in (self.distance, self.skin):
            sampler.stop()
        for source in self.sources:
            try:
                source.close()
            except Exception as exc:  # noqa: BLE001 - a sensor that fails to close must not stop shutdown
                log.warning("could not close the %s sensor: %s", getattr(source, "name", "?"), exc)
        self.panel.close()
        self.output.close()
        self.closed = True  # only now: a close that failed half-way is tried again in full


def check_wiring(gpio) -> None:
    """SR-2: refuse relay wirings that an undriven pin would switch on (raises WiringError)."""
    check_boot_safe(gpio.relay_pin, gpio.relay_active_high, "lamp relay", ("gpio.relay_pin", "gpio.relay_active_high"))
    if gpio.enable_relay_pin is not None:
        check_boot_safe(
            gpio.enable_relay_pin,
            gpio.enable_relay_active_high,
            "enable relay",
            ("gpio.enable_relay_pin", "gpio.enable_relay_active_high"),
        )


def guard_rest_s(cfg) -> float:
    """Relay-off time after which the guard forgets past on-time: one minute less than the
    minimum gap between sessions, so it has always reset before the next session may start."""
    return max(60.0, cfg.session.min_gap_minutes * 60.0 - 60.0)


def distance_reader(source) -> Callable[[], tuple]:
    """The sampler's read of a distance source: with the light rates when the source
    reports them (`read_distance`), the bare distance otherwise (e.g. a test wrapper)."""
    read_distance = getattr(source, "read_distance", None)
    if read_distance is None:
        return lambda: (source.read_distance_mm(), None, None)

    def read():
        reading = read_distance()
        return reading.distance_mm, None, reading.rates

    return read


def build_hardware(
    cfg,
    *,
    distance_source: DistanceSource,
    skin_source: SkinSource,
    monotonic: Callable[[], float],
    pin_factory=None,
    on_sample: Callable[[], None] | None = None,
    edges_on_clock: bool = False,
) -> Hardware:
    """`edges_on_clock`: stamp button edges with `monotonic()` when their callback runs (a
    simulator that drives mock pins at simulated instants); otherwise with the pin's ticks."""
    check_wiring(cfg.gpio)
    g = cfg.gpio
    output = LampOutput(
        g.relay_pin, g.relay_active_high, g.enable_relay_pin, g.enable_relay_active_high, pin_factory=pin_factory
    )
    guard = RelayGuard(
        output,
        deadline_s=cfg.loop.guard_deadline_s,
        max_on_s=cfg.session.max_on_s + cfg.loop.guard_on_margin_s,
        rest_s=guard_rest_s(cfg),
        start_s=monotonic(),
    )
    panel = Panel(g, pin_factory=pin_factory, monotonic=monotonic, edges_on_clock=edges_on_clock)
    distance_hazard, skin_hazard = hazard_checks(cfg)
    idle_distance_s, idle_skin_s = idle_periods_s(cfg)
    distance = Sampler(
        "distance",
        distance_reader(distance_source),
        cfg.distance.timing_budget_ms / 1000.0,
        monotonic,
        on_sample,
        may_block=getattr(distance_source, "may_block", lambda: True),
        hazard=distance_hazard,
        on_hazard=guard.cut,
        idle_period_s=idle_distance_s,
        wake_only_on_hazard=True,  # the loop judges every sample at its next tick (Daemon._judge_missed)
        quiet_hazards=POSITION_HAZARDS,
    )

    def read_skin():
        reading = skin_source.read_skin()
        return reading.skin_c, reading.ambient_c, None

    skin = Sampler(
        "skin",
        read_skin,
        cfg.skin.period_ms / 1000.0,
        monotonic,
        on_sample,
        may_block=getattr(skin_source, "may_block", lambda: True),
        hazard=skin_hazard,
        on_hazard=guard.cut,
        idle_period_s=idle_skin_s,
        wake_only_on_hazard=True,
    )

    def full_rate_now() -> None:  # the press edge: a start is decided on full-rate samples
        distance.set_full_rate(True)
        skin.set_full_rate(True)
        if on_sample is not None:  # and the loop, which may be sleeping its idle wait, steps
            on_sample()

    panel.on_press = full_rate_now
    return Hardware(output, guard, panel, distance, skin, (distance_source, skin_source))


class ReopeningSource:
    """Wraps a real sensor that may be absent or may lose its settings (brown-out).

    While the chip cannot be opened each read raises SensorMissingError, which latches the
    'missing' fault. After `reopen_after` failed reads in a row the chip is closed and opened
    afresh on the next read (a VL53L0X that browned out comes back with default settings and
    never ranges again otherwise). By then a fault has latched and the lamp is off. A doubted
    measurement (DistanceDoubtError, e.g. glare) is not a failed read: the chip is working.
    """

    def __init__(self, name: str, opener: Callable[[], object], reopen_after: int = 3):
        self.name = name
        self._opener = opener
        self._device = None
        self._failures = 0
        self.reopen_after = reopen_after
        self.opened = 0

    def _get(self):
        if self._device is None:
            try:
                self._device = self._opener()
                self.opened += 1
            except (OSError, ValueError, RuntimeError, ImportError, NotImplementedError) as exc:
                raise SensorMissingError(f"{self.name} sensor not available ({type(exc).__name__}: {exc})") from exc
        return self._device

    def _read(self, method: str):
        device = self._get()
        try:
            value = getattr(device, method)()
        except DistanceDoubtError:
            self._failures = 0  # the chip works: it measured and judged its own result
            raise
        except Exception:
            self._failures += 1
            if self._failures >= self.reopen_after:
                self._failures = 0
                self._device = None
                try:
                    device.close()
                except Exception as exc:  # noqa: BLE001 - the chip is being given up on anyway
                    log.warning("%s sensor: closing it before reopening failed: %s", self.name, exc)
            raise
        self._failures = 0
        return value

    def read_distance_mm(self) -> float:
        return self._read("read_distance_mm")

    def read_distance(self):
        return self._read("read_distance")

    def read_skin(self):
        return self._read("read_skin")

    def close(self) -> None:
        if self._device is not None:
            self._device.close()


def reopening_readers(i2c: Callable[[], object], timing_budget_ms: int, data_ready_pin=None):
    """The production sensor sources, each in a `ReopeningSource`: a `VL53L0XSource` (I/O
    timeout three timing budgets, at least 0.1 s) and an `MLX90614Source`, each opened on the
    bus `i2c()` returns (the Pi's bus 1; the bench's emulated one). Returns (distance, skin)."""
    from drivers.mlx90614 import MLX90614Source
    from drivers.vl53l0x import VL53L0XSource

    io_timeout_s = max(0.1, 3 * timing_budget_ms / 1000.0)
    distance = ReopeningSource(
        "distance",
        lambda: VL53L0XSource(
            i2c(), timing_budget_ms=timing_budget_ms, io_timeout_s=io_timeout_s, data_ready_pin=data_ready_pin
        ),
    )
    skin = ReopeningSource("skin", lambda: MLX90614Source(i2c()))
    return distance, skin
