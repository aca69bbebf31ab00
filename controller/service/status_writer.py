"""The status file the daemon replaces about once a second (read by `irlamp status`,
controller/service/status_reader.py, and by the MQTT bridge).

Promises:
- `write_status_atomic` replaces the file in one step (temp file in the same directory,
  flush + fsync, `os.replace`): a reader sees the old file or the new one, never a mix.
  The file is mode 0644, so a caregiver needs no root to read it. Non-finite numbers are
  written as null, so the file is always valid JSON.
- `StatusWriter` writes off the control loop: a slow or failing disk never delays a step.

Keys written by the daemon (`STATUS_KEYS`, exactly these; Daemon.status_snapshot builds them):
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
  heartbeat_mono           time.monotonic() of this write, and boot_id the boot it ran in: a
  boot_id                  reader in the same boot ignores wall-clock jumps (both optional)
  pid                      int, the daemon's process id
  simulated                bool, true in `irlamp simulate`
  journal_backlog          int, records handed to the journal writer and not yet committed
  journal_stalled_s        float, seconds the writer has had records and committed none
  journal_error            str | null, the writer's last failure while it persists
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import threading
from pathlib import Path

STATUS_FILENAME = "status.json"

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
    "latched_faults",
    "last_fault",
    "leds",
    "heartbeat_wall",
    "heartbeat_mono",
    "boot_id",
    "pid",
    "simulated",
    "journal_backlog",
    "journal_stalled_s",
    "journal_error",
)


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
