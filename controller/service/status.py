"""The status file the daemon replaces about once a second, and `irlamp status` that reads it.

Promises:
- `write_status_atomic` replaces the file in one step (temp file in the same directory,
  flush + fsync, `os.replace`): a reader sees the old file or the new one, never a mix.
  The file is mode 0644, so a caregiver needs no root to read it. Non-finite numbers are
  written as null, so the file is always valid JSON.
- `status_command` only reads. It cannot command the lamp.

Keys written by the daemon (`STATUS_KEYS`):
  state                    'starting' (a session's start is being journaled, lamp off) |
                           'idle' | 'running' | 'paused' | 'cooling' (lamp off at the comfort
                           set point, SR-14) | 'fault' | 'stopped'
  lamp_on                  bool, relay commanded on
  time_left_s              float | null, lamp-on seconds left in the running/paused session
  on_s                     float | null, lamp-on seconds of the current session (null when none)
  dose_cem43               float | null, this session's heat dose so far, CEM43 minutes
                           (equivalent minutes at 43 °C; controller/core/dose.py says what it means)
  switches                 int | null, this session's lamp switch-ons so far (SR-14)
  distance_mm, skin_c, ambient_c   latest readings, float | null when there is none
  signal_rate_mcps, ambient_rate_mcps   the distance sensor's latest light rates, Mcps (the
                           laser's return; light it did not send, e.g. the lamp's own), or null
  distance_doubt_share     share of the last 10 s of distance samples the sensor itself
                           flagged untrustworthy (0..1; SR-15)
  sessions_today, sessions_per_day int, from limits.start_allowance
  next_start_allowed_wall  epoch s | null (null: a start is allowed now)
  start_blocked_reason     null | 'daily_limit' | 'cooldown' | another reason the daemon names
  pause_reason             null | e.g. 'too_close', 'nobody_there', 'distance_doubt'
  fault_latched            bool
  latched_faults           [code, ...], every latched fault, oldest first
  last_fault               {code, detail, wall} | null
  leds                     str, what the LEDs show, in words
  heartbeat_wall           epoch s of this write
  heartbeat_mono           time.monotonic() of this write (optional; lets the reader ignore
  boot_id                  wall-clock jumps when it runs in the same boot, optional)
  pid                      int, the daemon's process id
  simulated                bool, true in `irlamp simulate`
  journal_backlog          int, records handed to the journal writer and not yet committed
  journal_stalled_s        float, seconds the writer has had records and committed none
  journal_error            str | null, the writer's last failure while it persists

Exit codes of `irlamp status`: 0 daemon running, 3 not running, 4 stale (heartbeat older
than 5 s: the daemon may be frozen) or the file is unreadable.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TextIO

from controller.core.faults import fault_info
from controller.service.clock import current_boot_id

STATUS_FILENAME = "status.json"
STALE_AFTER_S = 5.0
EXIT_RUNNING, EXIT_NOT_RUNNING, EXIT_STALE_OR_UNREADABLE = 0, 3, 4
MM_PER_INCH = 25.4

STATUS_KEYS = (
    "state",
    "lamp_on",
    "time_left_s",
    "on_s",
    "dose_cem43",
    "switches",
    "distance_mm",
    "skin_c",
    "ambient_c",
    "signal_rate_mcps",
    "ambient_rate_mcps",
    "distance_doubt_share",
    "sessions_today",
    "sessions_per_day",
    "next_start_allowed_wall",
    "start_blocked_reason",
    "pause_reason",
    "fault_latched",
    "last_fault",
    "leds",
    "heartbeat_wall",
    "heartbeat_mono",
    "boot_id",
    "pid",
    "simulated",
)
STATES = ("starting", "idle", "running", "paused", "cooling", "fault", "stopped")
_BLOCK_WORDS = {
    "daily_limit": "daily session limit reached",
    "daily_dose": "today's heat-dose cap reached",
    "cooldown": "skin cool-down between sessions",
    "journal_busy": "the journal (SD card) is behind",
}


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_status_atomic(path: Path, data: dict) -> None:
    """Replace `path` with `data` as JSON, atomically and durably, mode 0644."""
    path = Path(path)
    text = json.dumps(_json_safe(data), sort_keys=True, default=str)
    fd, tmp_name = tempfile.mkstemp(prefix=".status.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as tmp:
            tmp.write(text + "\n")
            tmp.flush()
            os.fchmod(tmp.fileno(), 0o644)
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise


class StatusWriter:
    """Writes the daemon's status file off the control loop: `offer()` keeps only the newest
    snapshot and returns at once; a thread of its own writes it (`threaded=False`: written
    inside `offer()`, for the simulator). A failed write is logged once per distinct error,
    never a lamp fault."""

    def __init__(self, path: Path, *, threaded: bool):
        self.path = Path(path)
        self.error: str | None = None
        self._latest: dict | None = None
        self._closing = False
        self._lock = threading.Condition()
        self._thread: threading.Thread | None = None
        if threaded:
            self._thread = threading.Thread(target=self._run, name="irlamp-status", daemon=True)
            self._thread.start()

    def offer(self, snapshot: dict) -> None:
        if self._thread is None:
            self._write(snapshot)
            return
        with self._lock:
            self._latest = snapshot
            self._lock.notify_all()

    def close(self, final: dict | None, timeout_s: float) -> None:
        """Write `final` (if given) as the last status, waiting at most `timeout_s`."""
        if self._thread is None:
            if final is not None:
                self._write(final)
            return
        with self._lock:
            if final is not None:
                self._latest = final
            self._closing = True
            self._lock.notify_all()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            with self._lock:
                while self._latest is None and not self._closing:
                    self._lock.wait()
                snapshot, self._latest = self._latest, None
            if snapshot is None:
                return
            self._write(snapshot)

    def _write(self, snapshot: dict) -> None:
        try:
            write_status_atomic(self.path, snapshot)
            self.error = None
        except OSError as exc:
            if self.error != str(exc):
                logging.getLogger("irlamp").error("cannot write status file %s: %s", self.path, exc)
            self.error = str(exc)


def status_path(runtime_dir: str | Path | None, state_dir: str | Path) -> Path:
    """Where the daemon writes: `runtime_dir/status.json` when that directory exists and is
    writable (tmpfs: no SD-card wear), else `state_dir/status.json`."""
    if runtime_dir is not None:
        runtime = Path(runtime_dir)
        if runtime.is_dir() and os.access(runtime, os.W_OK | os.X_OK):
            return runtime / STATUS_FILENAME
    return Path(state_dir) / STATUS_FILENAME


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


def _pid_alive(pid: object) -> bool:
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


def _heartbeat_age_s(status: dict, now_wall: float, now_mono: float | None, boot_id: str | None) -> float:
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


def _read_status(path: Path) -> dict:
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
        status = _read_status(path)
    except FileNotFoundError:
        if as_json:
            print(json.dumps({"daemon": "not running", "age_s": None, "status_file": str(path)}), file=out)
        else:
            print(f"irlamp daemon is not running (no status file at {path})", file=out)
        return EXIT_NOT_RUNNING
    except ValueError as exc:
        print(f"irlamp status: {exc}", file=err)
        return EXIT_STALE_OR_UNREADABLE

    age_s = _heartbeat_age_s(status, now_wall, now_mono, current_boot_id() if boot_id is None else boot_id)
    if status.get("state") == "stopped" or not _pid_alive(status.get("pid")):
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
