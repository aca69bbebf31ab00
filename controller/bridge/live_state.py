"""What the bridge publishes as the lamp's live state, from the daemon's status file.

A daemon that is stopped, gone, or whose status is older than `stale_after_s` (frozen) is
"not running": no stale "running" is ever published, and its readings are withheld (null).
"""

from __future__ import annotations

import datetime as dt
import math
import time
from pathlib import Path

from controller.service.clock import BOOT_ID_PATH, current_boot_id
from controller.service.status_reader import find_status_file, heartbeat_age_s, pid_alive, read_status

NOT_RUNNING = "not running"
STATES = ("starting", "idle", "running", "paused", "cooling", "fault", NOT_RUNNING)
LIVE_STATES = frozenset(STATES) - {NOT_RUNNING}


def iso_utc(wall: float | None) -> str | None:
    if wall is None or not isinstance(wall, (int, float)) or not math.isfinite(wall):
        return None
    try:
        return dt.datetime.fromtimestamp(wall, dt.timezone.utc).isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):
        return None


def _number(value) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return round(float(value), 2)
    return None


def state_payload(
    status: dict | None,
    *,
    stale_after_s: float,
    now_wall: float,
    now_mono: float | None = None,
    boot_id: str | None = None,
) -> dict:
    """The state JSON (without `seen`) for a status dict, or for None (no or unreadable file)."""
    state = NOT_RUNNING
    if status is not None and status.get("state") in LIVE_STATES and pid_alive(status.get("pid")):
        age_s = heartbeat_age_s(status, now_wall, now_mono, boot_id)
        if abs(age_s) <= stale_after_s:
            state = status["state"]
    if state == NOT_RUNNING or status is None:
        status = {
            "last_fault": (status or {}).get("last_fault"),
            "sessions_today": (status or {}).get("sessions_today"),
        }
    fault = status.get("last_fault")
    return {
        "state": state,
        "daemon_ok": state != NOT_RUNNING,
        "lamp_on": bool(status.get("lamp_on")) and state != NOT_RUNNING,
        "time_left_s": None if _number(status.get("time_left_s")) is None else round(status["time_left_s"]),
        "distance_mm": None if _number(status.get("distance_mm")) is None else round(status["distance_mm"]),
        "skin_c": _number(status.get("skin_c")),
        "sessions_today": status.get("sessions_today") if isinstance(status.get("sessions_today"), int) else None,
        "sessions_per_day": status.get("sessions_per_day"),
        "next_start_allowed": iso_utc(_number(status.get("next_start_allowed_wall"))),
        "start_blocked_reason": status.get("start_blocked_reason"),
        "fault_latched": bool(status.get("fault_latched")),
        "last_fault": fault.get("code") if isinstance(fault, dict) else None,
    }


class StatusWatcher:
    """Reads the daemon's status file (the newer of runtime_dir/ and state_dir/status.json)."""

    def __init__(self, runtime_dir: str, state_dir: str, stale_after_s: float, boot_id_path: Path = BOOT_ID_PATH):
        self.runtime_dir, self.state_dir = runtime_dir, state_dir
        self.stale_after_s = stale_after_s
        self.boot_id = current_boot_id(boot_id_path)

    def read(self) -> dict | None:
        try:
            return read_status(find_status_file(self.runtime_dir, self.state_dir))
        except (FileNotFoundError, ValueError):
            return None

    def payload(self) -> dict:
        return state_payload(
            self.read(),
            stale_after_s=self.stale_after_s,
            now_wall=time.time(),
            now_mono=time.monotonic(),
            boot_id=self.boot_id,
        )
