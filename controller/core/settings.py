"""The settings the safety decision reads, each number with its bounds at its field.

These frozen dataclasses are what `controller.service.config.load_config` builds from
lamp.yaml after checking every key, type and bound (and the cross-field rules); the core only
reads them. A bound that is a safety limit is `Hard`: configuration may only tighten it.
"""

# No `from __future__ import annotations`: the config loader and its tests read the
# fields' types as classes (dataclasses.fields(...).type).
import dataclasses
from dataclasses import dataclass
from collections.abc import Mapping
from typing import Any

from controller.core.readings import TIMING_BUDGET_MS_MAX, TIMING_BUDGET_MS_MIN


class Hard(float):
    """A bound that is a safety limit (SR-4..SR-7, SR-12): configuration may only tighten it."""


USABLE_PINS = (4, 27)  # BCM 0/1 are the HAT EEPROM, 2/3 are I2C


def bounded(default: Any, lowest: float, highest: float) -> Any:
    """A number's default with its inclusive (lowest, highest) bounds, declared at the field."""
    return dataclasses.field(default=default, metadata={"bounds": (lowest, highest)})


def field_bounds(sections: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """{"section.key": (lowest, highest)} of every `bounded` field of the sections' dataclasses."""
    return {
        f"{name}.{f.name}": f.metadata["bounds"]
        for name, cls in sections.items()
        for f in dataclasses.fields(cls)
        if "bounds" in f.metadata
    }


@dataclass(frozen=True)
class GpioConfig:
    """BCM pins (4..27, all distinct) and relay polarities."""

    relay_pin: int = bounded(17, *USABLE_PINS)
    relay_active_high: bool = True
    enable_relay_pin: int | None = bounded(None, *USABLE_PINS)
    enable_relay_active_high: bool = True
    button_pin: int = bounded(27, *USABLE_PINS)
    led_green_pin: int = bounded(22, *USABLE_PINS)
    led_amber_pin: int = bounded(23, *USABLE_PINS)
    led_red_pin: int = bounded(24, *USABLE_PINS)
    buzzer_pin: int | None = bounded(None, *USABLE_PINS)
    distance_ready_pin: int | None = bounded(None, *USABLE_PINS)  # VL53L0X GPIO1 (data ready); None: poll I2C


@dataclass(frozen=True)
class DistanceConfig:
    """VL53L0X distance band, pause/absence timing (SR-4); min_mm has a hard floor of 12 in."""

    min_mm: float = bounded(304.8, Hard(304.8), 600)
    hysteresis_mm: float = bounded(25.0, 5, 100)
    max_mm: float = bounded(460.0, 329.8, 1000)
    absent_mm: float = bounded(900.0, 329.8, 2000)
    offset_mm: float = bounded(0.0, 0, 150)
    resume_after_s: float = bounded(3.0, 1, 30)
    max_pause_s: float = bounded(120.0, 10, 600)
    absent_end_s: float = bounded(60.0, 10, 600)
    timing_budget_ms: int = bounded(33, TIMING_BUDGET_MS_MIN, TIMING_BUDGET_MS_MAX)
    ambient_warn_mcps: float = bounded(1.0, 0.2, 20)
    ambient_doubt_mcps: float = bounded(8.0, 1, 40)


@dataclass(frozen=True)
class SkinConfig:
    """MLX90614 skin limit, warning band and plausibility checks (SR-5); limit_c hard ceiling 45."""

    limit_c: float = bounded(43.0, 38, Hard(45))
    warning_margin_c: float = bounded(2.0, 0.5, 5)
    plausible_min_c: float = bounded(15.0, 0, 30)
    plausible_max_c: float = bounded(60.0, 46, 100)
    heating_check_s: float = bounded(120.0, 30, 300)
    heating_min_rise_c: float = bounded(1.0, 0.3, 5)
    sensor_body_max_c: float = bounded(60.0, 35, 85)
    period_ms: int = bounded(250, 100, 250)
    comfort_c: float | None = bounded(41.0, 36, 45)  # SR-14 servo set point; None: no servo (trip only)
    comfort_hysteresis_c: float = bounded(0.7, 0.3, 2)


@dataclass(frozen=True)
class SessionConfig:
    """Exposure and daily limits (SR-6, SR-7): at most 20 min of heat a session, at most 3
    sessions a day, at least 30 min apart (60 by default)."""

    max_on_minutes: float = bounded(20.0, 1, Hard(20))
    max_wall_minutes: float = bounded(30.0, 1, 40)
    sessions_per_day: int = bounded(3, 1, Hard(3))
    min_gap_minutes: float = bounded(60.0, Hard(30), 1440)
    min_off_s: float = bounded(30.0, 10, 300)  # SR-14: a comfort pause lasts at least this long
    max_switches: int = bounded(20, 2, 100)  # SR-14: lamp switch-ons per session (doubt switches aside)
    max_daily_dose_cem43: float | None = bounded(None, 0.1, 1000)

    @property
    def max_on_s(self) -> float:
        """The session's lamp-on cap in seconds."""
        return self.max_on_minutes * 60.0


@dataclass(frozen=True)
class FaultConfig:
    """Deadlines for stale and frozen readings, the bounded retry (SR-8), and when doubted
    distance measurements stop being doubt and become a fault (SR-15)."""

    distance_stale_s: float = bounded(0.25, 0.1, 1.0)
    skin_stale_s: float = bounded(1.0, 0.5, 3.0)
    distance_frozen_s: float = bounded(3.0, 1, 10)
    skin_frozen_s: float = bounded(15.0, 5, 60)
    retry_errors: int = bounded(1, 0, 2)
    distance_unreliable_after_s: float = bounded(2.0, 0.5, 5)
    distance_unreliable_window_s: float = bounded(10.0, 5, 60)
    distance_unreliable_share: float = bounded(0.1, 0.02, 0.5)


@dataclass(frozen=True)
class ButtonConfig:
    """Long press (acknowledge), stuck-button time and debounce (SR-10)."""

    long_press_s: float = bounded(3.0, 2, 5)
    stuck_s: float = bounded(20.0, 10, 120)
    bounce_ms: float = bounded(30.0, 5, 100)


@dataclass(frozen=True)
class LoopConfig:
    """Control loop, independent guard, journal checkpoint (at most 5 s) and status timing."""

    rate_hz: float = bounded(20.0, 20, 100)
    lamp_on_rate_hz: float = bounded(10.0, 10, 100)
    guard_deadline_s: float = bounded(0.5, 0.1, 3.0)
    guard_on_margin_s: float = bounded(5.0, 1, 30)
    checkpoint_s: float = bounded(5.0, 1, Hard(5))
    status_interval_s: float = bounded(1.0, 0.5, 5)


@dataclass(frozen=True)
class PathsConfig:
    """Where the journal (state_dir) and status.json (runtime_dir) live; absolute paths."""

    state_dir: str = "/var/lib/irlamp"
    runtime_dir: str = "/run/irlamp"


@dataclass(frozen=True)
class RecordsConfig:
    """What the journal keeps beyond sessions and faults: each session's trace, for its picture."""

    trace_retention_days: float = bounded(90.0, 1, 3650)


@dataclass(frozen=True)
class Config:
    """The validated configuration; `source` is the file it came from, `origins` where each
    dotted key was set (the loader's file:line records, read by `service.config.refusal`)."""

    gpio: GpioConfig
    distance: DistanceConfig
    skin: SkinConfig
    session: SessionConfig
    faults: FaultConfig
    button: ButtonConfig
    loop: LoopConfig
    paths: PathsConfig
    records: RecordsConfig
    source: str
    origins: Mapping[str, object] = dataclasses.field(default_factory=dict, compare=False, repr=False)
