"""Idle-rate sampling: with no session, the sensors are read slowly. Pure: no I/O, no clock.

A daemon spends most of its life waiting for a button press. While no session exists and
the button is not in use, the samplers read at their idle rate (distance 2 Hz, skin 1 Hz);
the judge's time bounds scale with the rate (controller/core/sensor_health.py, rule 7), so a
sensor that fails while idle is still caught, within the scaled bound. The button's
press edge switches both samplers to the full rate at once (drivers/hardware.py wires the
panel's edge to them); a start is decided only on full-rate samples (controller/core/safety.py,
START_FRESH_WAIT_S). The full rate holds while a session exists and for FULL_RATE_HOLD_S
after the last button edge.
"""

from __future__ import annotations

from controller.core.settings import Config

IDLE_DISTANCE_PERIOD_S = 0.5  # 2 Hz (full rate: the VL53L0X's timing budget, 33 ms)
IDLE_SKIN_PERIOD_S = 1.0  # 1 Hz (full rate: skin.period_ms, 250 ms)
FULL_RATE_HOLD_S = 2.0  # after the last button edge (a press is being decided)
# Quiet idle: the loop steps at least this often (and at the heartbeat LED's edges), judging
# every sample since its last step; a bound that runs out (a hung read, a sensor gone silent)
# is acted on within this of running out. A hazard the samplers cut wakes it at once.
IDLE_LOOP_PERIOD_S = 1.0
GUARD_DEADLINE_STEPS = 5  # a lamp-on loop confirms the relay at least this often per guard deadline


def idle_periods_s(cfg: Config) -> tuple[float, float]:
    """(distance, skin) idle-rate periods: never faster than the full rate."""
    return (
        max(IDLE_DISTANCE_PERIOD_S, cfg.distance.timing_budget_ms / 1000.0),
        max(IDLE_SKIN_PERIOD_S, cfg.skin.period_ms / 1000.0),
    )


def lamp_on_loop_period_s(cfg: Config) -> float:
    """How often the loop steps while a session's lamp is on and steady: `loop.lamp_on_rate_hz`,
    but never fewer than GUARD_DEADLINE_STEPS steps per guard deadline (the guard cuts the relay
    when the loop has not confirmed it for `loop.guard_deadline_s`)."""
    return min(1.0 / cfg.loop.lamp_on_rate_hz, cfg.loop.guard_deadline_s / GUARD_DEADLINE_STEPS)


def wants_full_rate(
    *, session_open: bool, button_pressed: bool, start_waiting: bool, last_button_edge_s: float, now_s: float
) -> bool:
    """Should the samplers read at the full rate now?"""
    return session_open or button_pressed or start_waiting or now_s - last_button_edge_s < FULL_RATE_HOLD_S
