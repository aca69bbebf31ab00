"""`irlamp status`: read the daemon's status file and say whether the daemon runs and what
it reports. Only reads: it cannot command the lamp. The MQTT bridge judges the daemon with
the same public helpers (`read_status`, `heartbeat_age_s`, `pid_alive`, `find_status_file`).
The file's keys are listed in controller/service/status_writer.py (`STATUS_KEYS`).

Exit codes of `irlamp status`: 0 daemon running, 3 not running, 4 stale (heartbeat older
than 5 s: the daemon may be frozen) or the file is unreadable.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import TextIO

from controller.core.faults import fault_info
from controller.service.clock import current_boot_id
from controller.service.status_writer import STATUS_FILENAME

STALE_AFTER_S = 5.0
EXIT_RUNNING, EXIT_NOT_RUNNING, EXIT_STALE_OR_UNREADABLE = 0, 3, 4
MM_PER_INCH = 25.4
_BLOCK_WORDS = {
    "daily_limit": "daily session limit reached",
    "daily_dose": "today's heat-dose cap reached",
    "cooldown": "skin cool-down between sessions",
    "journal_busy": "the journal (SD card) is behind",
}


def find_status_file(runtime_dir: str | Path | None, state_dir: str | Path, filename: str = STATUS_FILENAME) -> Path:
    """Where a reader should look for `filename` (the status file, or another file the daemon
    keeps beside it): the more recently written of the two possible files; if neither exists,
    the runtime one (or the state one without a runtime dir)."""
    candidates = [Path(d) / filename for d in (runtime_dir, state_dir) if d is not None]
    existing = []
    for candidate in candidates:
        try:
            existing.append((candidate.stat().st_mtime, candidate))
        except OSError:
            continue
    if existing:
        return max(existing, key=lambda pair: pair[0])[1]
    return candidates[0]


def pid_alive(pid: object) -> bool:
    """False only when no process `pid` exists; an unknown pid or another user's process: True."""
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return True  # unknown: do not claim the daemon is gone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user (the daemon's)
    return True


def _number(value: object) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def heartbeat_age_s(status: dict, now_wall: float, now_mono: float | None, boot_id: str | None) -> float:
    """Seconds since the status was written: on the monotonic clock when the reader runs in the
    boot that wrote it (`boot_id`), else on the wall clock (may be negative after a clock step)."""
    beat_mono = _number(status.get("heartbeat_mono"))
    if beat_mono is not None and status.get("boot_id") and status.get("boot_id") == boot_id:
        return (time.monotonic() if now_mono is None else now_mono) - beat_mono
    beat_wall = _number(status["heartbeat_wall"])
    if beat_wall is None:
        raise TypeError(f"heartbeat_wall is not a number: {status['heartbeat_wall']!r}")
    return now_wall - beat_wall


def local_time(wall: float | None, tz: dt.tzinfo | None, fmt: str = "%Y-%m-%d %H:%M", missing: str = "?") -> str:
    """Epoch seconds as local (or `tz`) time; `missing` for None, '?' for an impossible time."""
    if wall is None:
        return missing
    try:
        return dt.datetime.fromtimestamp(wall, tz).strftime(fmt)
    except (OverflowError, OSError, ValueError):
        return "?"


def _fault_words(code: str) -> str:
    info = fault_info(code)
    return f"{info.meaning} — {info.advice}"


def _fmt(value: object, unit: str, digits: int = 1) -> str:
    number = _number(value)
    return "no reading" if number is None else f"{number:.{digits}f} {unit}"


def _distance(value: object) -> str:
    mm = _number(value)
    return "no reading" if mm is None else f"{mm:.0f} mm ({mm / MM_PER_INCH:.1f} in)"


def _clock(seconds: object) -> str:
    s = _number(seconds)
    if s is None:
        return "—"
    whole = max(0, int(round(s)))
    return f"{whole // 60:02d}:{whole % 60:02d}"


def _light_line(status: dict) -> list[str]:
    """The distance sensor's light, when the daemon reported it."""
    ambient = _number(status.get("ambient_rate_mcps"))
    if ambient is None:
        return []
    share = _number(status.get("distance_doubt_share"))
    doubted = "" if share is None else f", {100 * share:.1f} % of readings doubted"
    return [
        f"Sensor light:   ambient {ambient:.2f} Mcps, signal {_fmt(status.get('signal_rate_mcps'), 'Mcps', 2)}{doubted}"
    ]


def _dose_line(status: dict) -> list[str]:
    dose = _number(status.get("dose_cem43"))
    if dose is None:
        return []
    switches = status.get("switches")
    return [
        f"Heat dose:      {dose:.2f} CEM43 min this session"
        + (f", lamp switched on {switches} times" if isinstance(switches, int) else "")
    ]


def format_status(status: dict, now_wall: float, tz: dt.tzinfo | None = None) -> list[str]:
    """The human view of a status dict, one line per item."""
    state = str(status.get("state", "?"))
    pause = status.get("pause_reason")
    if state == "cooling" and not pause:
        pause = "lamp off at the comfort set point until the skin has cooled"
    lines = [
        f"State:          {state}" + (f" ({str(pause).replace('_', ' ')})" if pause else ""),
        f"Lamp:           {'ON' if status.get('lamp_on') else 'OFF'}",
        f"Time left:      {_clock(status.get('time_left_s'))}",
        *_dose_line(status),
        f"Distance:       {_distance(status.get('distance_mm'))}",
        f"Skin:           {_fmt(status.get('skin_c'), '°C')}"
        + (
            f"   (sensor body {_fmt(status.get('ambient_c'), '°C')})"
            if _number(status.get("ambient_c")) is not None
            else ""
        ),
        *_light_line(status),
        f"Sessions today: {status.get('sessions_today', '?')} of {status.get('sessions_per_day', '?')}",
    ]
    next_wall = _number(status.get("next_start_allowed_wall"))
    blocked = status.get("start_blocked_reason")
    if next_wall is None and not blocked:
        lines.append("Next start:     allowed now")
    else:
        when = (
            "?"
            if next_wall is None
            else (
                local_time(next_wall, tz, "%H:%M")
                if local_time(next_wall, tz, "%Y-%m-%d") == local_time(now_wall, tz, "%Y-%m-%d")
                else local_time(next_wall, tz)
            )
        )
        why = _BLOCK_WORDS.get(str(blocked), str(blocked).replace("_", " ")) if blocked else ""
        lines.append(f"Next start:     not before {when}" + (f" ({why})" if why else ""))
    fault = status.get("last_fault")
    if isinstance(fault, dict) and fault.get("code"):
        code = str(fault["code"])
        latched = "LATCHED — " if status.get("fault_latched") else ""
        lines.append(
            f"Last fault:     {latched}{code} at {local_time(_number(fault.get('wall')), tz)}"
            + (f": {fault['detail']}" if fault.get("detail") else "")
        )
        lines.append(f"  what it means: {_fault_words(code)}")
        if status.get("fault_latched"):
            lines.append("  no session can start until someone holds the button for about 3 s")
    else:
        lines.append("Last fault:     none")
    if status.get("leds"):
        lines.append(f"LEDs:           {status['leds']}")
    if status.get("simulated"):
        lines.append("(simulated lamp and sensors)")
    return lines


def read_status(path: Path) -> dict:
    """The status dict; raises FileNotFoundError, or ValueError with a one-line reason."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from exc
    try:
        status = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"status file {path} is garbled (not JSON: {exc})") from exc
    if not isinstance(status, dict) or _number(status.get("heartbeat_wall")) is None:
        raise ValueError(f"status file {path} is garbled (no heartbeat_wall)")
    return status


def status_command(
    path: Path,
    as_json: bool,
    now_wall: float | None = None,
    *,
    now_mono: float | None = None,
    boot_id: str | None = None,
    tz: dt.tzinfo | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """`irlamp status [--json]`. Returns the exit code (see module docstring)."""
    out, err = out or sys.stdout, err or sys.stderr
    path = Path(path)
    now_wall = time.time() if now_wall is None else now_wall
    try:
        status = read_status(path)
    except FileNotFoundError:
        if as_json:
            print(json.dumps({"daemon": "not running", "age_s": None, "status_file": str(path)}), file=out)
        else:
            print(f"irlamp daemon is not running (no status file at {path})", file=out)
        return EXIT_NOT_RUNNING
    except ValueError as exc:
        print(f"irlamp status: {exc}", file=err)
        return EXIT_STALE_OR_UNREADABLE

    age_s = heartbeat_age_s(status, now_wall, now_mono, current_boot_id() if boot_id is None else boot_id)
    if status.get("state") == "stopped" or not pid_alive(status.get("pid")):
        daemon, code = "not running", EXIT_NOT_RUNNING
    elif abs(age_s) <= STALE_AFTER_S:
        daemon, code = "running", EXIT_RUNNING
    else:
        daemon, code = "stale", EXIT_STALE_OR_UNREADABLE

    if as_json:
        print(json.dumps({**status, "daemon": daemon, "age_s": round(age_s, 3)}, sort_keys=True), file=out)
        return code
    if daemon == "not running":
        print(
            f"irlamp daemon is not running (its last status is {age_s:.0f} s old, "
            f"state was '{status.get('state', '?')}')",
            file=out,
        )
        return code
    if daemon == "stale":
        when = (
            f"for {age_s:.0f} s" if age_s > 0 else f"(its heartbeat is {-age_s:.0f} s in the future: clock set back?)"
        )
        print(
            f"STALE: the daemon has not updated its status {when} — it may be frozen "
            f"(pid {status.get('pid', '?')} still exists). Values below are old.",
            file=out,
        )
    else:
        print(f"irlamp daemon running (updated {max(age_s, 0.0):.1f} s ago)", file=out)
    for line in format_status(status, now_wall, tz):
        print(line, file=out)
    return code
