"""Shared test rig for the safety core: configs and a bench that drives `SafetyController`.

`Bench` plays the part of the daemon and the samplers without threads or clocks: it
publishes samples with explicit timestamps, sets the raw button level and the allowance,
and steps the controller, recording every decision and event. Nothing here sleeps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from controller.service.config import load_config
from controller.core.limits import Allowance
from controller.core.readings import Sample, SensorFeed
from controller.core.safety import Decision, JournalHealth, SafetyController, StepInputs
from controller.service.readout import Readout

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_PATH = REPO / "config" / "lamp.yaml"

ALLOWED = Allowance(True, None, 0, None, None)
DAILY_LIMIT = Allowance(False, "daily_limit", 3, 1e9, 1e9)
COOLDOWN = Allowance(False, "cooldown", 1, 1e9, 1e9)

# Tightened but valid configurations: shorter caps and pauses so runs reach them quickly.
TIGHT_OVERRIDES = {
    "distance": {
        "min_mm": 350.0,
        "hysteresis_mm": 10.0,
        "max_mm": 450.0,
        "absent_mm": 700.0,
        "offset_mm": 30.0,
        "resume_after_s": 1.0,
        "max_pause_s": 10.0,
        "absent_end_s": 10.0,
        "timing_budget_ms": 100,
    },
    "skin": {
        "limit_c": 40.0,
        "warning_margin_c": 1.0,
        "heating_check_s": 30.0,
        "heating_min_rise_c": 0.5,
        "sensor_body_max_c": 50.0,
        "period_ms": 200,
        "comfort_c": 38.5,
    },
    "session": {
        "max_on_minutes": 1.0,
        "max_wall_minutes": 1.0,
        "sessions_per_day": 2,
        "min_gap_minutes": 30.0,
        "min_off_s": 10.0,
        "max_switches": 5,
    },
    "faults": {
        "distance_stale_s": 0.5,
        "skin_stale_s": 0.8,
        "distance_frozen_s": 2.0,
        "skin_frozen_s": 6.0,
        "retry_errors": 0,
    },
    "button": {"long_press_s": 2.0, "stuck_s": 10.0, "bounce_ms": 50.0},
}
RETRY2_OVERRIDES = {
    "session": {"max_on_minutes": 2.0, "max_wall_minutes": 3.0},
    "skin": {"heating_check_s": 60.0},
    "faults": {"retry_errors": 2},
    "distance": {"timing_budget_ms": 60, "resume_after_s": 2.0, "max_pause_s": 20.0, "absent_end_s": 15.0},
}


def default_config():
    """The shipped defaults (config/lamp.yaml), independent of /etc or $IRLAMP_CONFIG."""
    return load_config(DEFAULT_CONFIG_PATH)


def config_with(overrides: dict):
    return load_config(DEFAULT_CONFIG_PATH, overrides=overrides)


def distance_period_s(cfg) -> float:
    return cfg.distance.timing_budget_ms / 1000.0


def skin_period_s(cfg) -> float:
    return cfg.skin.period_ms / 1000.0


Value = float | Callable[[float], float] | None


@dataclass
class Bench:
    """A SafetyController with hand-driven sensor feeds, button and allowance."""

    cfg: object
    now: float = 1000.0
    allowance: Allowance = ALLOWED
    guard_fault: str | None = None
    journal: JournalHealth = JournalHealth()
    button: bool = False
    remote_stop: bool = False
    distance_busy_since: float | None = None
    skin_busy_since: float | None = None
    ctl: SafetyController = field(init=False)
    readout: Readout = field(default_factory=Readout)  # what the displays keep of the decisions
    decisions: list[tuple[float, Decision]] = field(default_factory=list)
    events: list[tuple[float, str, dict]] = field(default_factory=list)

    def __post_init__(self):
        self.ctl = SafetyController(self.cfg, self.now)
        self._seq = {"distance": 0, "skin": 0}
        self._latest: dict[str, Sample | None] = {"distance": None, "skin": None}
        self._noise = {"distance": 0, "skin": 0}
        self.last_decision: Decision | None = None

    # -- feeds -------------------------------------------------------------------------
    def publish(
        self,
        sensor: str,
        value: float | None,
        *,
        ambient_c: float | None = None,
        error: str | None = None,
        t_s: float | None = None,
        signal_rate_mcps: float | None = None,
        ambient_rate_mcps: float | None = None,
    ) -> Sample:
        self._seq[sensor] += 1
        if sensor == "skin" and ambient_c is None and error is None:
            ambient_c = 25.0
        sample = Sample(
            self._seq[sensor],
            self.now if t_s is None else t_s,
            value,
            ambient_c,
            error,
            f"injected {error}" if error else "",
            signal_rate_mcps,
            ambient_rate_mcps,
        )
        self._latest[sensor] = sample
        return sample

    def feed(self, sensor: str) -> SensorFeed:
        busy = self.distance_busy_since if sensor == "distance" else self.skin_busy_since
        return SensorFeed(self._latest[sensor], busy)

    # -- stepping ----------------------------------------------------------------------
    def _inputs(self) -> StepInputs:
        return StepInputs(
            self.now,
            self.feed("distance"),
            self.feed("skin"),
            self.button,
            self.allowance,
            self.guard_fault,
            self.remote_stop,
            journal=self.journal,
        )

    def step(self, now: float | None = None) -> Decision:
        if now is not None:
            self.now = now
        decision = self.ctl.step(self._inputs())
        self.readout.observe(decision, self.now)
        self.decisions.append((self.now, decision))
        self.events.extend((self.now, name, fields) for name, fields in decision.events)
        self.last_decision = decision
        return decision

    def run(
        self,
        seconds: float,
        *,
        distance_mm: Value = 400.0,
        skin_c: Value = 33.0,
        ambient_c: float = 25.0,
        noise: bool = True,
        distance_error: str | None = None,
        skin_error: str | None = None,
    ) -> list[Decision]:
        """Advance `seconds`: a distance sample every distance period, a skin sample every skin
        period, a control step after each sample (as the daemon does). Values may be functions of
        the time since this call began; None publishes nothing for that sensor. With `noise`,
        values wobble by a hair so the frozen-reading rule is not tripped."""
        d_period, s_period = distance_period_s(self.cfg), skin_period_s(self.cfg)
        t0, end = self.now, self.now + seconds
        next_d, next_s = t0 + d_period, t0 + s_period
        out: list[Decision] = []
        while True:
            t = min(next_d, next_s)
            if t > end + 1e-9:
                break
            self.now = t
            if abs(t - next_d) < 1e-9:
                next_d += d_period
                if distance_mm is not None or distance_error:
                    value = self._value("distance", distance_mm, t - t0, noise, 0.5)
                    self.publish("distance", None if distance_error else value, error=distance_error)
            if abs(t - next_s) < 1e-9:
                next_s += s_period
                if skin_c is not None or skin_error:
                    value = self._value("skin", skin_c, t - t0, noise, 0.01)
                    self.publish(
                        "skin",
                        None if skin_error else value,
                        error=skin_error,
                        ambient_c=None if skin_error else ambient_c,
                    )
            out.append(self.step())
        self.now = end
        return out

    def _value(self, sensor: str, value: Value, elapsed_s: float, noise: bool, wobble: float) -> float | None:
        if value is None:
            return None
        base = value(elapsed_s) if callable(value) else value
        if not noise:
            return base
        self._noise[sensor] += 1
        return base + (wobble if self._noise[sensor] % 2 else 0.0)

    def press(self, hold_s: float, **run_kwargs) -> list[Decision]:
        """Hold the button for `hold_s` while sensors keep sampling, then release and sample on
        for the debounce time and two more samples (so the release is confirmed)."""
        self.button = True
        out = self.run(hold_s, **run_kwargs)
        self.button = False
        out += self.run(self.cfg.button.bounce_ms / 1000.0 + 2 * distance_period_s(self.cfg), **run_kwargs)
        return out

    def settle(self, **run_kwargs) -> None:
        """Let both sensors deliver a few good samples (the start-up state)."""
        self.run(1.0, **run_kwargs)

    def start_session(self, **run_kwargs) -> None:
        self.settle(**run_kwargs)
        self.press(0.2, **run_kwargs)
        assert self.ctl.state == "running", (self.ctl.state, self.ctl.latched, self.names())

    # -- inspection --------------------------------------------------------------------
    def names(self, since: float = float("-inf")) -> list[str]:
        return [name for t, name, _ in self.events if t >= since]

    def fields_of(self, name: str) -> list[dict]:
        return [fields for _, n, fields in self.events if n == name]

    def fault_codes(self) -> list[str]:
        return [f["code"] for f in self.fields_of("fault")]

    def lamp_on(self) -> bool:
        return bool(self.last_decision and self.last_decision.lamp_on)

    def first_time(self, name: str, since: float = float("-inf")) -> float | None:
        for t, n, _ in self.events:
            if n == name and t >= since:
                return t
        return None

    def on_times(self) -> list[float]:
        return [t for t, d in self.decisions if d.lamp_on]
