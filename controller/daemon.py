"""The control loop: one `step()` per tick or new sample, identical on a Pi and in simulation.

A step reads the sensor feeds and the button level (never blocking), asks the safety
controller for a decision, hands it to the independent guard (which owns the relay),
then journals, shows LEDs, writes the status file and pings systemd. Relay first,
records after: a hazard turns the lamp off before anything slow happens.

Any exception in a step turns the lamp off, latches `control_exception` and is logged;
a loop that keeps failing exits non-zero so systemd restarts it (no automatic start
follows a restart: only the button starts a session).
"""

from __future__ import annotations

import logging
import os
import traceback
from typing import Callable

from controller.faults import fault_info
from controller.indicators import leds_for
from controller.journal import LIGHT_FIELDS, Journal
from controller.limits import Allowance, start_allowance
from controller.safety import SafetyController, StepInputs
from controller.status import write_status_atomic
from controller.storage import StorageError
from drivers.hardware import Hardware

log = logging.getLogger("irlamp")

MAX_EXCEPTION_STREAK = 20      # consecutive failing steps before the daemon gives up (exit 1)
ALLOWANCE_REFRESH_S = 1.0
FAULT_BUZZ_S = 1.0
END_BUZZ_S = 0.3

Emit = Callable[..., None]      # emit(event_name, **fields)


class FatalLoopError(Exception):
    """The control loop failed too many times in a row."""


class Daemon:
    def __init__(self, cfg, hw: Hardware, clock, journal: Journal, *, status_path, boot_id: str,
                 clock_synced: Callable[[], bool] = lambda: True, notifier=None,
                 emit: Emit | None = None, status_interval_s: float | None = None,
                 simulated: bool | None = None, remote_stop=None):
        self.cfg, self.hw, self.clock, self.journal = cfg, hw, clock, journal
        self.status_path = status_path
        self.boot_id = boot_id
        self.clock_synced = clock_synced
        self.notifier = notifier
        self.emit: Emit = emit or (lambda event, **fields: None)
        self.status_interval_s = status_interval_s or cfg.loop.status_interval_s
        self.simulated = clock.simulated if simulated is None else simulated
        self.remote_stop = remote_stop      # controller.remote_stop.RemoteStopChannel or None
        now = clock.monotonic()
        self.controller = SafetyController(cfg, now)
        self.session_id: int | None = None
        self.last_checkpoint_s = now
        self.last_status_s = float("-inf")
        self.last_ping_s = float("-inf")
        self.allowance: Allowance | None = None
        self.allowance_at_s = float("-inf")
        self.last_button = False
        self.buzz_until_s = 0.0
        self.exception_streak = 0
        self.last_fault: dict | None = None
        self.healthy = False
        self.status_error: str | None = None
        hw.output.observer = self._on_relay
        interrupted = journal.close_interrupted(cfg.loop.checkpoint_s)
        for sid in interrupted:
            log.warning("session %s was cut off by a crash or power loss; recorded as interrupted", sid)
            self.emit("session_interrupted", session=sid)
        unacknowledged = journal.unacknowledged_faults()
        if unacknowledged:
            codes = list(dict.fromkeys(f.code for f in unacknowledged))
            self.controller.restore_faults(codes)
            last = unacknowledged[-1]
            self.last_fault = {"code": last.code, "detail": last.detail, "wall": last.wall}
            log.warning("faults still latched from before the restart: %s (hold the button 3 s)", ", ".join(codes))
            self.emit("faults_restored", codes=codes)

    # -- the loop body ---------------------------------------------------------------------
    def step(self) -> None:
        now = self.clock.monotonic()
        try:
            self._step(now)
            self.exception_streak = 0
            self.healthy = True
        except Exception as exc:  # SR-1: any exception in the control path -> lamp off, recorded
            self._on_exception(exc, now)

    def _step(self, now: float) -> None:
        hw, ctl = self.hw, self.controller
        button = hw.panel.button_pressed()
        allowance = self._allowance(now, refresh=button != self.last_button)
        self.last_button = button
        remote_stop = self.remote_stop is not None and self.remote_stop.take()
        decision = ctl.step(StepInputs(now, hw.distance.feed(), hw.skin.feed(), button, allowance,
                                       hw.guard.tripped, remote_stop))
        # A session is journaled before its lamp goes on (a crash in between must not lose it);
        # everything else is recorded after the relay has been switched.
        early = [e for e in decision.events if e[0] == "session_started"]
        for name, fields in early:
            self._record(name, fields, now)
        hw.guard.command(decision.lamp_on, now, decision.reason)
        for name, fields in decision.events:
            if name != "session_started":
                self._record(name, fields, now)
        self._checkpoint(now)
        first_fault = ctl.latched[0] if ctl.latched else None
        pause_reason = ctl.session.pause_reason if ctl.session is not None else None
        hw.panel.show(leds_for(now, ctl.state, first_fault, decision.warning, ctl.refused, self.buzz_until_s,
                               pause_reason))
        if now - self.last_status_s >= self.status_interval_s:
            self.last_status_s = now
            self._write_status(now)
        self._ping(now)

    def next_wake_s(self) -> float:
        """The latest time the next step may run (it also runs at every new sample)."""
        now = self.clock.monotonic()
        wake = now + 1.0 / self.cfg.loop.rate_hz
        button_due = self.controller.button.next_deadline_s()
        if button_due is not None:
            wake = min(wake, max(now + 1e-6, button_due))
        return wake

    # -- helpers ---------------------------------------------------------------------------
    def _allowance(self, now: float, refresh: bool) -> Allowance:
        if refresh or self.allowance is None or now - self.allowance_at_s >= ALLOWANCE_REFRESH_S:
            wall = self.clock.wall()
            synced = self.clock_synced()
            if synced:
                self.journal.note_clock_synced(wall, now)
            self.allowance = start_allowance(
                self.journal.sessions_for_limits(), now_wall=wall, now_mono=now,
                boot_id=self.boot_id, clock_synced=synced,
                newest_record_wall=self.journal.newest_record_wall(),
                sessions_per_day=self.cfg.session.sessions_per_day,
                min_gap_s=self.cfg.session.min_gap_minutes * 60.0)
            self.allowance_at_s = now
        return self.allowance

    def _record(self, name: str, fields: dict, now: float) -> None:
        wall = self.clock.wall()
        if name == "session_started":
            self.session_id = self.journal.start_session(wall, now)
            self.last_checkpoint_s = now
            self.allowance = None
            log.info("session %s started (distance %.0f mm, skin %.2f C)", self.session_id,
                     fields["distance_mm"], fields["skin_c"])
        elif name == "session_ended":
            if self.session_id is not None:
                self.journal.end_session(self.session_id, fields["on_s"], fields["reason"], fields["max_skin_c"],
                                         fields["min_distance_mm"], wall, now,
                                         light={k: fields[k] for k in LIGHT_FIELDS})
            log.info("session %s ended: %s after %.1f s of heat", self.session_id, fields["reason"], fields["on_s"])
            self.session_id = None
            self.allowance = None
            self.buzz_until_s = now + END_BUZZ_S
        elif name == "fault":
            info = fault_info(fields["code"])
            self.journal.record_fault(fields["code"], fields["detail"], wall, now)
            self.last_fault = {"code": fields["code"], "detail": fields["detail"], "wall": wall}
            self.buzz_until_s = now + FAULT_BUZZ_S
            log.error("FAULT %s (%s): %s; blink code red %d / amber %d", fields["code"], info.meaning,
                      fields["detail"], info.red, info.amber)
        elif name == "ambient_high":
            log.warning("ambient light on the distance sensor is %.2f Mcps (warns at %g, doubts at %g); "
                        "%.1f %% of recent readings doubted: shade the sensor from the bulb",
                        fields["ambient_mcps"], fields["warn_mcps"], fields["doubt_mcps"],
                        100 * fields["doubt_share"])
        elif name == "fault_acknowledged":
            self.journal.acknowledge_faults(wall)
            self.hw.guard.acknowledge()
            log.warning("fault(s) acknowledged by long press: %s", ", ".join(fields["codes"]))
        else:
            log.info("%s %s", name, " ".join(f"{k}={v}" for k, v in fields.items()))
        self.emit(name, **fields)

    def _checkpoint(self, now: float) -> None:
        ses = self.controller.session
        if ses is None or self.session_id is None:
            return
        if now - self.last_checkpoint_s >= self.cfg.loop.checkpoint_s:
            self.last_checkpoint_s = now
            self.journal.checkpoint(self.session_id, ses.on_s, _finite(ses.max_skin_c),
                                    _finite(ses.min_distance_mm), self.clock.wall(), now,
                                    light=self.controller.session_light(ses))

    def _on_relay(self, on: bool, reason: str) -> None:
        log.info("relay %s (%s)", "ON" if on else "OFF", reason)
        self.emit("relay", on=on, reason=reason)

    def _on_exception(self, exc: Exception, now: float) -> None:
        self.healthy = False
        self.hw.output.set(False, "control_exception")
        self.exception_streak += 1
        detail = (f"records cannot be written: {exc}" if isinstance(exc, StorageError)
                  else f"{type(exc).__name__}: {exc}")
        # A storage failure's message says what and where; other exceptions need the stack.
        stack = "" if isinstance(exc, StorageError) else "\n" + traceback.format_exc()
        log.error("exception in the control loop (lamp off): %s%s", detail, stack)
        events = self.controller.external_fault("control_exception", detail, now)
        for name, fields in events:
            try:
                self._record(name, fields, now)
            except Exception as record_exc:  # the journal itself may be what failed
                log.error("could not record %s: %s", name, record_exc)
                if name == "fault":   # the caregiver still sees what latched, and that it is unrecorded
                    self.last_fault = {"code": fields["code"], "wall": self.clock.wall(),
                                       "detail": f"{fields['detail']} (not in the journal: it "
                                                 f"cannot be written)"}
                self.emit(name, **fields)
        if self.exception_streak >= MAX_EXCEPTION_STREAK:
            raise FatalLoopError(f"control loop failed {self.exception_streak} times in a row: {detail}")

    def _ping(self, now: float) -> None:
        if self.notifier is None or not self.healthy:
            return
        if now - self.last_ping_s >= 1.0:
            self.last_ping_s = now
            self.notifier.watchdog()
            self.notifier.status(self.status_line())

    def status_line(self) -> str:
        ctl = self.controller
        left = ctl.time_left_s()
        parts = [ctl.state, "lamp ON" if self.hw.output.is_on() else "lamp off"]
        if left is not None:
            parts.append(f"{left / 60:.1f} min left")
        if ctl.latched:
            parts.append("fault " + ctl.latched[0])
        return ", ".join(parts)

    def status_snapshot(self) -> dict:
        ctl, now = self.controller, self.clock.monotonic()
        allowance = self._allowance(now, refresh=False)
        ses = ctl.session
        return {
            "state": ctl.state, "lamp_on": self.hw.output.is_on(), "time_left_s": ctl.time_left_s(),
            "on_s": None if ses is None else round(ses.on_s, 1),
            "distance_mm": ctl.last_distance_mm, "skin_c": ctl.last_skin_c, "ambient_c": ctl.last_ambient_c,
            "signal_rate_mcps": ctl.last_signal_mcps, "ambient_rate_mcps": ctl.last_ambient_mcps,
            "distance_doubt_share": round(ctl.distance.doubt_share(), 4),
            "sessions_today": allowance.sessions_today, "sessions_per_day": self.cfg.session.sessions_per_day,
            "next_start_allowed_wall": allowance.next_start_wall,
            "start_blocked_reason": allowance.reason,
            "pause_reason": None if ses is None else ses.pause_reason,
            "fault_latched": bool(ctl.latched), "latched_faults": list(ctl.latched),
            "last_fault": self.last_fault,
            "leds": self.hw.panel.shown.describe() if self.hw.panel.shown else "...",
            "heartbeat_wall": self.clock.wall(), "heartbeat_mono": now, "boot_id": self.boot_id,
            "pid": os.getpid(), "simulated": bool(self.simulated),
        }

    def _write_status(self, now: float) -> None:
        """The caregiver's status file. Failing to write it is logged, not a lamp fault."""
        if self.status_path is None:
            return
        try:
            write_status_atomic(self.status_path, self.status_snapshot())
            self.status_error = None
        except OSError as exc:
            if self.status_error != str(exc):
                log.error("cannot write status file %s: %s", self.status_path, exc)
            self.status_error = str(exc)

    # -- shutdown --------------------------------------------------------------------------
    def shutdown(self, reason: str) -> None:
        """Lamp off, session closed in the journal, status 'stopped'. Safe to call twice."""
        self.hw.output.set(False, reason)
        now = self.clock.monotonic()
        for name, fields in self.controller.stop_session("daemon_stopped", now):
            self._record(name, fields, now)
        if self.notifier is not None:
            self.notifier.stopping(f"stopping: {reason}")
        if self.status_path is not None:
            snapshot = self.status_snapshot()
            snapshot.update(state="stopped", lamp_on=False)
            try:
                write_status_atomic(self.status_path, snapshot)
            except OSError as exc:
                log.error("cannot write status file %s: %s", self.status_path, exc)


def _finite(value: float) -> float | None:
    return None if value in (float("inf"), float("-inf")) else value
