"""Turns simulation/daemon events into lines a person can follow (`irlamp simulate` without --json)."""

from __future__ import annotations

from enum import StrEnum

from controller.core.events import EventKind
from controller.core.faults import fault_info
from controller.core.indicators import REFUSAL_BLINKS
from controller.service.daemon import DaemonEvent


class SimEvent(StrEnum):
    """What the simulator itself adds to the decision's and the daemon's events."""

    SCENARIO = "scenario"  # the scenario's actions at this instant
    PROGRESS = "progress"  # every few simulated minutes of a session
    SUMMARY = "summary"  # the last line


PAUSE_WORDS = {
    "too_close": "person is closer than the minimum distance",
    "nobody_there": "nobody in front of the lamp",
    "distance_doubt": "the distance sensor says its measurement is not trustworthy",
}
END_WORDS = {
    "completed": "time limit reached",
    "stopped_by_button": "stopped with the button",
    "too_close_too_long": "too close for too long",
    "nobody_there": "nobody there for too long",
    "overheat": "skin reached the limit",
    "fault": "a fault",
    "wall_time_cap": "session wall-time cap",
    "daemon_stopped": "daemon stopped",
    "interrupted": "interrupted by a crash",
    "distance_doubt_too_long": "distance untrustworthy for too long",
    "comfort_cycling": "the comfort set point needed too many lamp switches",
    "switching_limit": "too many lamp switches",
}


def _clock(t: float) -> str:
    minutes, seconds = divmod(t, 60.0)
    return f"{int(minutes):3d}:{seconds:06.3f}"


def _fmt(value, unit: str, digits: int = 1) -> str:
    return "?" if value is None else f"{value:.{digits}f} {unit}"


def _scenario(r: dict) -> str:
    parts = []
    if "press" in r:
        parts.append(f"button held {r['press']:g} s")
    if "distance_mm" in r:
        d = r["distance_mm"]
        parts.append("person leaves (no target)" if d >= 8190 else f"person at {d:g} mm ({d / 25.4:.1f} in)")
    if "skin_c" in r:
        parts.append(f"skin set to {r['skin_c']:g} C")
    if "ambient_c" in r:
        parts.append(f"sensor body at {r['ambient_c']:g} C")
    if "glare" in r:
        parts.append(f"glare on the distance sensor: {r['glare']:g} Mcps")
    if "fault" in r:
        parts.append(f"inject {r['fault']['sensor']} sensor fault: {r['fault']['kind']}")
    if "restart" in r:
        parts.append("daemon restarts")
    if "wall_clock_jump_s" in r:
        parts.append(f"wall clock jumps {r['wall_clock_jump_s']:+g} s")
    if "journal_commit_s" in r:
        commit_s = r["journal_commit_s"]
        parts.append(
            "journal commits never return from now on"
            if commit_s is None
            else f"each journal commit takes {commit_s:g} s from now on"
        )
    return "> " + "; ".join(parts)


def format_event(r: dict) -> str | None:
    """One readable line for an event record, or None for records not worth a line."""
    e = r["event"]
    if e == SimEvent.SCENARIO:
        text = _scenario(r)
    elif e == DaemonEvent.RELAY:
        text = f"LAMP {'ON ' if r['on'] else 'OFF'}  ({r['reason'].replace('_', ' ')})"
    elif e == EventKind.SESSION_STARTED:
        text = f"session started: distance {_fmt(r.get('distance_mm'), 'mm', 0)}, skin {_fmt(r.get('skin_c'), 'C', 2)}"
    elif e == EventKind.SESSION_ENDED:
        text = (
            f"session ended: {END_WORDS.get(r['reason'], r['reason'])} after {r['on_s'] / 60:.2f} min of heat "
            f"(peak skin {_fmt(r.get('max_skin_c'), 'C', 2)}, closest {_fmt(r.get('min_distance_mm'), 'mm', 0)}, "
            f"heat dose {_fmt(r.get('dose_cem43'), 'CEM43 min', 2)}, {r.get('switches', '?')} lamp switch-ons)"
        )
    elif e == EventKind.PAUSED:
        text = f"paused: {PAUSE_WORDS.get(r['reason'], r['reason'])} (lamp off)"
    elif e == EventKind.COOLING:
        text = f"cooling: skin {r['skin_c']:.2f} C reached the comfort set point {r['comfort_c']:g} C (lamp off)"
    elif e == EventKind.COOLED:
        text = f"cooled to {r['skin_c']:.2f} C after {r['off_s']:.0f} s: the lamp may go on again"
    elif e == EventKind.RESUMED:
        text = f"resumed after {r['paused_s']:.1f} s paused (back in the band long enough)"
    elif e == EventKind.START_REFUSED:
        blinks = REFUSAL_BLINKS.get(r["reason"], 7)
        text = f"start refused: {r['reason'].replace('_', ' ')} (amber blinks {blinks}x)"
    elif e == EventKind.FAULT:
        info = fault_info(r["code"])
        text = f"FAULT {r['code']}: {r.get('detail', '')} -- LEDs red {info.red} / amber {info.amber}; {info.advice}"
    elif e == EventKind.FAULT_ACKNOWLEDGED:
        text = f"fault acknowledged by long press: {', '.join(r['codes'])}"
    elif e == EventKind.AMBIENT_HIGH:
        text = (
            f"warning: ambient light on the distance sensor {r['ambient_mcps']:g} Mcps "
            f"(warns at {r['warn_mcps']:g}, doubts at {r['doubt_mcps']:g}); "
            f"{100 * r['doubt_share']:.1f} % of recent readings doubted"
        )
    elif e == EventKind.SKIN_WARNING:
        text = "skin in the warning band (amber on)" if r["on"] else "skin below the warning band"
    elif e == DaemonEvent.FAULTS_RESTORED:
        text = f"still latched from before the restart: {', '.join(r['codes'])} (long press to acknowledge)"
    elif e == DaemonEvent.SESSION_INTERRUPTED:
        text = f"session {r['session']} had been cut off by a crash; recorded as interrupted"
    elif e == SimEvent.PROGRESS:
        text = (
            f"  ... {r['state']}: {r['on_s'] / 60:.1f} min of heat, {r['time_left_s'] / 60:.1f} min left, "
            f"distance {_fmt(r.get('distance_mm'), 'mm', 0)}, skin {_fmt(r.get('skin_c'), 'C', 2)}, "
            f"LEDs {r['leds']}"
        )
    elif e == SimEvent.SUMMARY:
        faults = ", ".join(r["faults"]) or "none"
        text = (
            f"summary: lamp on {r['lamp_on_s'] / 60:.2f} min in total, {r['sessions']} session(s) started, "
            f"faults: {faults}"
        )
    else:
        return None
    return f"{_clock(r['t'])}  {text}"
