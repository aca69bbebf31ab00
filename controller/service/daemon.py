"""The control loop: one `step()` per tick, identical on a Pi and in simulation.

A step reads the sensor feeds, the button's timestamped edges and level (never blocking),
judges every sample published since the previous step in a sub-step of its own (the loop
wakes on its own tick, not per sample; a hazard was already cut by its sampler), asks the
safety controller for a decision, hands it to the independent guard (which owns the relay),
then hands the records to the journal writer, shows LEDs, offers the status snapshot to the
status writer and pings systemd. Relay first, records after.

The loop never touches the disk: journal records go to `JournalWriter` (its own thread;
`SimulatedDisk` in simulation), the status file to `StatusWriter`, and the daily-limit
allowance is computed from the sessions the writer read back after its latest commit. The
writer's health goes into the decision (`JournalHealth`): a session's lamp stays off
('starting') until its start record is durable, a stuck writer ends the session with
`journal_stalled`, and a busy one refuses starts (`journal_busy`).

Any exception in a step turns the lamp off, latches `control_exception` and is logged;
a loop that keeps failing exits non-zero so systemd restarts it (no automatic start
follows a restart: only the button starts a session).
"""

from __future__ import annotations

import logging
import os
import traceback
from enum import StrEnum
from typing import Callable

from controller.service import journal_writer as records
from controller.core.events import EventKind
from controller.core.faults import fault_info
from controller.core.indicators import leds_for, next_heartbeat_change_s
from controller.service.journal import COUNTER_FIELDS, LIGHT_FIELDS, Journal, TracePoint
from controller.service.journal_writer import JournalWriter, SimulatedDisk
from controller.service.readout import Readout
from controller.core.limits import Allowance, start_allowance
from controller.core.readings import Sample, SensorFeed
from controller.core.safety import (
    JOURNAL_STALL_S,
    Decision,
    JournalHealth,
    SafetyController,
    StepInputs,
    journal_refusal,
    wall_time_cap_s,
)
from controller.core.sampling import IDLE_LOOP_PERIOD_S, lamp_on_loop_period_s, wants_full_rate
from controller.service.status_writer import StatusWriter
from controller.service.storage import StorageError
from drivers.hardware import Hardware

log = logging.getLogger("irlamp")

MAX_EXCEPTION_STREAK = 20  # consecutive failing steps before the daemon gives up (exit 1)
ALLOWANCE_REFRESH_S = 1.0
FAULT_BUZZ_S = 1.0
END_BUZZ_S = 0.3
DRAIN_TIMEOUT_S = 15.0  # a clean stop waits this long for the journal backlog
STATUS_CLOSE_TIMEOUT_S = 2.0
CAP_WAKE_MIN_S = 0.001  # a wake at a session's cap is never sooner than this after a step
# The remote stop channel is looked at this often, not at every step: a look is a system call
# (a non-blocking receive), the bridge's own MQTT round trip is longer than this anyway.
REMOTE_STOP_LOOK_S = 0.2
TRACE_INTERVAL_S = 1.0  # a session's trace: one row about this often (and at each relay change)

Emit = Callable[..., None]  # emit(kind, **fields): an EventKind or a DaemonEvent


def _edges_until(edges: tuple[tuple[float, bool], ...], t_s: float) -> tuple[tuple[float, bool], ...]:
    """The leading edges (oldest first) stamped at or before `t_s`."""
    count = 0
    while count < len(edges) and edges[count][0] <= t_s:
        count += 1
    return edges[:count]


def _seq_of(sample: Sample | None) -> int:
    """The sample's number; 0 before the first (samplers count from 1)."""
    return 0 if sample is None else sample.seq


def _feed_of(sample: Sample | None, now_feed: SensorFeed, at_s: float) -> SensorFeed:
    """A sub-step's view of a sensor at `at_s`: that sample as the newest; the read in
    progress now if it had begun by `at_s` (it is still blocked, so it was then: a sub-step
    that reaches the stale bound first names a hung read 'hang', as the step would), none
    otherwise; and the sampler's period as it is now (only the loop and a press edge change
    it: the same as at the sub-step's instant, or the full rate since, the stricter bound)."""
    busy_since_s = now_feed.busy_since_s
    blocked = busy_since_s is not None and busy_since_s <= at_s
    return SensorFeed(sample, busy_since_s if blocked else None, now_feed.period_s)


class DaemonEvent(StrEnum):
    """What the daemon reports besides the decision's events (core/events.py)."""

    RELAY = "relay"  # on, reason: the lamp's actual state changed
    SESSION_INTERRUPTED = "session_interrupted"  # session: a crash-cut session closed at start-up
    FAULTS_RESTORED = "faults_restored"  # codes: faults still latched from before a restart


class FatalLoopError(Exception):
    """The control loop failed too many times in a row."""


class Daemon:
    def __init__(
        self,
        cfg,
        hw: Hardware,
        clock,
        journal: Journal,
        *,
        status_path,
        boot_id: str,
        clock_synced: Callable[[], bool] = lambda: True,
        notifier=None,
        emit: Emit | None = None,
        status_interval_s: float | None = None,
        simulated: bool | None = None,
        remote_stop=None,
        disk: SimulatedDisk | None = None,
        on_journal_commit: Callable[[], None] | None = None,
    ):
        """`disk`: the simulated disk's commit timing; with a simulated clock the journal writer
        always runs on it (default: commits take no time). With a real clock the writer and the
        status writer get threads of their own; `on_journal_commit` is called on the writer's
        thread after each commit (the real loop wakes on it)."""
        self.cfg, self.hw, self.clock, self.journal = cfg, hw, clock, journal
        self.status_path = status_path
        self.boot_id = boot_id
        self.clock_synced = clock_synced
        self.notifier = notifier
        self.emit: Emit = emit or (lambda event, **fields: None)
        self.status_interval_s = status_interval_s or cfg.loop.status_interval_s
        self.simulated = clock.simulated if simulated is None else simulated
        self.remote_stop = remote_stop  # controller.service.remote_stop.RemoteStopChannel or None
        now = clock.monotonic()
        self.controller = SafetyController(cfg, now)
        self.readout = Readout()  # what the status, trace and LEDs show of the decisions
        self.start_ticket: int | None = None  # the open session's start record
        self.session_ticket = 0  # the newest session start/end record
        self.last_checkpoint_s = now
        self.trace: list[TracePoint] = []  # rows not yet handed to the writer
        self.last_trace_s = float("-inf")
        self.last_status_s = float("-inf")
        self.last_ping_s = float("-inf")
        self.next_remote_look_s = float("-inf")
        self.allowance: Allowance | None = None
        self.allowance_at_s = float("-inf")
        self.allowance_ticket = -1  # the journal commit (LimitsView.as_of_ticket) it was read from
        self.last_button = False
        self.seen_distance: Sample | None = None  # the newest samples the last step judged
        self.seen_skin: Sample | None = None
        self.last_button_edge_s = float("-inf")
        self.buzz_until_s = 0.0
        self.exception_streak = 0
        self.last_fault: dict | None = None
        self.healthy = False
        self.stopped = False
        hw.output.observer = self._on_relay
        # Start-up reads and repairs run here, before the writer takes the journal over.
        # A session's lamp can stay on for up to a checkpoint interval plus the stall bound
        # after its last durable checkpoint (then journal_stalled ends it): that is the latest
        # a crash-cut session may have ended, which the cool-down must count from.
        interrupted = journal.close_interrupted(cfg.loop.checkpoint_s + JOURNAL_STALL_S)
        for sid in interrupted:
            log.warning("session %s was cut off by a crash or power loss; recorded as interrupted", sid)
            self.emit(DaemonEvent.SESSION_INTERRUPTED, session=sid)
        unacknowledged = journal.unacknowledged_faults()
        if unacknowledged:
            codes = list(dict.fromkeys(f.code for f in unacknowledged))
            self.controller.restore_faults(codes)
            last = unacknowledged[-1]
            self.last_fault = {"code": last.code, "detail": last.detail, "wall": last.wall}
            log.warning("faults still latched from before the restart: %s (hold the button 3 s)", ", ".join(codes))
            self.emit(DaemonEvent.FAULTS_RESTORED, codes=codes)
        if clock_synced():  # only a wall clock known to be right may say what is 90 days old
            pruned = journal.prune_traces(clock.wall() - self._trace_retention_s())
            if pruned:
                log.info("pruned %d trace rows older than %g days", pruned, cfg.records.trace_retention_days)
        real_time = not clock.simulated
        self.writer = JournalWriter(
            journal, clock.monotonic, on_commit=on_journal_commit, disk=None if real_time else (disk or SimulatedDisk())
        )
        self.status_writer = StatusWriter(status_path, threaded=real_time) if status_path is not None else None

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
        edges = hw.panel.take_button_edges()  # edges first: a later edge is also in the level
        button = hw.panel.button_pressed()
        allowance = self._allowance(now, refresh=bool(edges) or button != self.last_button)
        missed_distance, distance_feed = hw.distance.feed_since(_seq_of(self.seen_distance))
        missed_skin, skin_feed = hw.skin.feed_since(_seq_of(self.seen_skin))
        edges_left = self._judge_missed(missed_distance, missed_skin, (distance_feed, skin_feed), edges, allowance, now)
        self.last_button = button
        self.seen_distance, self.seen_skin = distance_feed.latest, skin_feed.latest
        remote_stop = self._take_remote_stop(now)
        decision = self._decide(now, distance_feed, skin_feed, button, allowance, remote_stop, edges_left)
        # A new session's lamp stays off ('starting') until its start record is durable
        # (JournalHealth.start_recorded in a later step): a crash in between cannot lose it.
        hw.guard.command(decision.lamp_on, now, decision.reason)
        self.readout.observe(decision, now)
        self._trace(now, decision.lamp_on)
        for name, fields in decision.events:
            self._record(name, fields, now)
        self._checkpoint(now)
        self._set_sampling_rate(now, edges, button)
        first_fault = ctl.latched[0] if ctl.latched else None
        pause_reason = ctl.session.pause_reason if ctl.session is not None else None
        hw.panel.show(
            leds_for(
                now, ctl.state, first_fault, decision.warning, self.readout.refused, self.buzz_until_s, pause_reason
            )
        )
        if now >= self.last_status_s + self.status_interval_s:  # the same sum as next_wake_s: a due step writes
            self.last_status_s = now
            self._write_status(now)
        self._ping(now)

    def _judge_missed(
        self,
        missed_distance,
        missed_skin,
        feeds_now: tuple[SensorFeed, SensorFeed],
        edges: list[tuple[float, bool]],
        allowance: Allowance,
        now: float,
    ) -> tuple[tuple[float, bool], ...]:
        """Sub-steps: the samples published since the last step, other than each sensor's
        newest (the step itself judges those), one decision each at its own instant, oldest
        first, as a loop woken by every sample would have made them. Each sub-step takes the
        button edges up to its instant and the level they leave (the button's deadlines
        complete at their own times); no remote stop. The relay follows the step's own
        decision (a hazardous sample was cut by its sampler). Returns the edges left for the
        step itself."""
        edges_left = tuple(edges)
        if not missed_distance and not missed_skin:
            return edges_left
        missed = sorted(
            [(sample, True) for sample in missed_distance] + [(sample, False) for sample in missed_skin],
            key=lambda item: item[0].t_s,
        )
        distance, skin = self.seen_distance, self.seen_skin
        level = self.last_button
        for sample, is_distance in missed:
            if is_distance:
                distance = sample
            else:
                skin = sample
            at_s = min(max(sample.t_s, self.controller.last_step_s), now)
            taken = _edges_until(edges_left, at_s)
            edges_left = edges_left[len(taken) :]
            level = taken[-1][1] if taken else level
            decision = self._decide(
                at_s,
                _feed_of(distance, feeds_now[0], at_s),
                _feed_of(skin, feeds_now[1], at_s),
                level,
                allowance,
                False,
                taken,
            )
            self.readout.observe(decision, at_s)
            for name, fields in decision.events:
                self._record(name, fields, at_s)
        return edges_left

    def _decide(
        self,
        at_s: float,
        distance: SensorFeed,
        skin: SensorFeed,
        button: bool,
        allowance: Allowance,
        remote_stop: bool,
        edges: tuple[tuple[float, bool], ...],
    ) -> Decision:
        """One decision of the safety controller at `at_s` (a step's or a sub-step's)."""
        return self.controller.step(
            StepInputs(
                at_s,
                distance,
                skin,
                button,
                allowance,
                self.hw.guard.tripped,
                remote_stop,
                journal=self.journal_health(at_s),
                button_edges=edges,
            )
        )

    def _take_remote_stop(self, now: float) -> bool:
        """A stop request from the bridge, looked for at most every REMOTE_STOP_LOOK_S."""
        if self.remote_stop is None or now < self.next_remote_look_s:
            return False
        self.next_remote_look_s = now + REMOTE_STOP_LOOK_S
        return self.remote_stop.take()

    def _trace_retention_s(self) -> float:
        return self.cfg.records.trace_retention_days * 86400.0

    def _trace(self, now: float, lamp_on: bool) -> None:
        """Keep a trace row about once a second and at every lamp change while a session runs;
        rows go to the writer with the next checkpoint (a crash loses at most that interval)."""
        ctl, ses, seen = self.controller, self.controller.session, self.readout
        if ses is None or self.start_ticket is None:
            return
        changed = bool(self.trace) and self.trace[-1].lamp_on != lamp_on
        if changed or now - self.last_trace_s >= TRACE_INTERVAL_S:
            self.last_trace_s = now
            self.trace.append(
                TracePoint(round(now - ses.start_s, 3), lamp_on, seen.distance_mm, seen.skin_c, ctl.state)
            )

    def _take_trace(self) -> tuple[TracePoint, ...]:
        rows, self.trace = tuple(self.trace), []
        return rows

    def journal_health(self, now: float) -> JournalHealth:
        """The writer's state as the decision needs it (no disk access)."""
        writer = self.writer
        return JournalHealth(
            start_needs_commit=True,
            start_recorded=self.start_ticket is not None and writer.committed(self.start_ticket),
            stalled_s=writer.stalled_s(now),
            write_error=writer.last_error,
            full=writer.full,
            limits_current=writer.limits_view().as_of_ticket >= self.session_ticket,
        )

    def next_wake_s(self) -> float:
        """When the next step runs, unless something wakes the loop earlier: a hazard the
        samplers cut, a press edge, a journal commit. Samples do not wake it; each step judges
        every sample published since the previous one (`_judge_missed`).

        Quiet idle (no session, no fault, no refusal or buzz showing, samplers at their idle
        rate): at the heartbeat LED's edges, when the status file is due (the watchdog ping
        rides on that step) and at least every IDLE_LOOP_PERIOD_S. The status must not be late:
        the bridge calls a daemon whose status is older than its daemon.stale_after_s (1.5 s at
        the least) not running.

        Lamp on and steady (state 'running', no buzzer sounding): every lamp_on_loop_period_s
        (10 Hz), at the heartbeat LED's edges, and when the session's on-time or wall-time cap
        runs out (the lamp goes off at the cap, not up to a period after it).
        Otherwise at loop.rate_hz (20 Hz: the blink patterns need it). Always at the button's
        next deadline."""
        now = self.clock.monotonic()
        wake = now + 1.0 / self.cfg.loop.rate_hz
        if self._quiet_idle(now):
            status_due_s = max(now, self.last_status_s + self.status_interval_s)
            wake = min(next_heartbeat_change_s(now), status_due_s, now + IDLE_LOOP_PERIOD_S)
        elif self.controller.state == "running" and now >= self.buzz_until_s:
            wake = min(now + lamp_on_loop_period_s(self.cfg), next_heartbeat_change_s(now), self._session_cap_s(now))
        if (
            self.controller.state == "starting"
            and self.start_ticket is not None
            and self.writer.committed(self.start_ticket)
        ):
            return now  # the start is durable: light the lamp now
        button_due = self.controller.button.next_deadline_s()
        if button_due is not None:
            wake = min(wake, max(now + 1e-6, button_due))
        return wake

    # -- helpers ---------------------------------------------------------------------------
    def _session_cap_s(self, now: float) -> float:
        """When the open session's lamp-on time or elapsed time runs out if nothing else happens
        first (never sooner than CAP_WAKE_MIN_S from now: no storm of tiny steps on rounding)."""
        ctl = self.controller
        session, left_s = ctl.session, ctl.time_left_s()
        if session is None or left_s is None:
            return float("inf")
        return max(now + CAP_WAKE_MIN_S, min(ctl.last_step_s + left_s, wall_time_cap_s(self.cfg, session)))

    def _quiet_idle(self, now: float) -> bool:
        """Nothing to show but the heartbeat and nothing to watch but idle-rate samples."""
        return (
            self.controller.state == "idle"
            and not self.readout.refusal_showing(now)
            and now >= self.buzz_until_s
            and not self.hw.distance.full_rate
            and not self.hw.skin.full_rate
        )

    def _set_sampling_rate(self, now: float, edges, button: bool) -> None:
        """Idle rate while nothing is going on, full rate otherwise (controller/core/sampling.py)."""
        if edges:
            self.last_button_edge_s = max(t for t, _ in edges)
        ctl = self.controller
        full = wants_full_rate(
            session_open=ctl.session is not None,
            button_pressed=button,
            start_waiting=ctl.start_waiting_since_s is not None,
            last_button_edge_s=self.last_button_edge_s,
            now_s=now,
        )
        self.hw.distance.set_full_rate(full)
        self.hw.skin.set_full_rate(full)

    def _allowance(self, now: float, refresh: bool) -> Allowance:
        """The daily-limit allowance from the sessions the writer read back after its newest
        commit (JournalHealth.limits_current says whether that includes every session record).
        Recomputed at a button change, after each commit (a session start counts as soon as it is
        durable, not up to ALLOWANCE_REFRESH_S later), and at least every ALLOWANCE_REFRESH_S."""
        view = self.writer.limits_view()
        if (
            refresh
            or self.allowance is None
            or view.as_of_ticket != self.allowance_ticket
            or now - self.allowance_at_s >= ALLOWANCE_REFRESH_S
        ):
            wall = self.clock.wall()
            synced = self.clock_synced()
            if synced:
                self.writer.note_clock_synced(wall, now)
                view = self.writer.limits_view()  # a simulated disk commits inside the note
            self.allowance = start_allowance(
                view.sessions,
                now_wall=wall,
                now_mono=now,
                boot_id=self.boot_id,
                clock_synced=synced,
                newest_record_wall=view.newest_record_wall,
                sessions_per_day=self.cfg.session.sessions_per_day,
                min_gap_s=self.cfg.session.min_gap_minutes * 60.0,
                max_daily_dose_cem43=self.cfg.session.max_daily_dose_cem43,
            )
            self.allowance_at_s, self.allowance_ticket = now, view.as_of_ticket
        return self.allowance

    def _record(self, name: EventKind, fields: dict, now: float) -> None:
        """Hand an event's record to the journal writer (never waits), log it, emit it."""
        wall = self.clock.wall()
        if name == EventKind.SESSION_STARTED:
            self.start_ticket = self.session_ticket = self.writer.submit(
                records.StartSession(wall, now, fields["distance_mm"], fields["skin_c"])
            )
            self.last_checkpoint_s = now
            self.allowance = None
            log.info(
                "session starting: its lamp goes on once the journal has it (distance %.0f mm, skin %.2f C)",
                fields["distance_mm"],
                fields["skin_c"],
            )
        elif name == EventKind.SESSION_ENDED:
            if self.start_ticket is not None:  # the trace ends with what the sensors said last
                seen = self.readout
                self.trace.append(TracePoint(fields["elapsed_s"], False, seen.distance_mm, seen.skin_c, "ended"))
                self.session_ticket = self.writer.submit(
                    records.EndSession(
                        fields["on_s"],
                        fields["reason"],
                        fields["max_skin_c"],
                        fields["min_distance_mm"],
                        wall,
                        now,
                        light={k: fields[k] for k in LIGHT_FIELDS},
                        counters={k: fields[k] for k in COUNTER_FIELDS},
                        trace=self._take_trace(),
                        trace_retention_s=self._trace_retention_s() if self.clock_synced() else None,
                    )
                )
            self.trace = []
            log.info(
                "session ended: %s after %.1f s of heat, dose %.3f CEM43 min, %d lamp switch-ons "
                "(%d after a sensor doubt)",
                fields["reason"],
                fields["on_s"],
                fields["dose_cem43"],
                fields["switches"],
                fields["doubt_switches"],
            )
            self.start_ticket = None
            self.allowance = None
            self.buzz_until_s = now + END_BUZZ_S
        elif name == EventKind.FAULT:
            info = fault_info(fields["code"])
            self.writer.submit(records.Fault(fields["code"], fields["detail"], wall, now))
            unstored = " (not in the journal yet: it cannot be written now)" if self.writer.last_error else ""
            self.last_fault = {"code": fields["code"], "detail": fields["detail"] + unstored, "wall": wall}
            self.buzz_until_s = now + FAULT_BUZZ_S
            log.error(
                "FAULT %s (%s): %s; blink code red %d / amber %d",
                fields["code"],
                info.meaning,
                fields["detail"],
                info.red,
                info.amber,
            )
        elif name == EventKind.AMBIENT_HIGH:
            log.warning(
                "ambient light on the distance sensor is %.2f Mcps (warns at %g, doubts at %g); "
                "%.1f %% of recent readings doubted: shade the sensor from the bulb",
                fields["ambient_mcps"],
                fields["warn_mcps"],
                fields["doubt_mcps"],
                100 * fields["doubt_share"],
            )
        elif name == EventKind.FAULT_ACKNOWLEDGED:
            self.writer.submit(records.AcknowledgeFaults(wall))
            self.hw.guard.acknowledge()
            log.warning("fault(s) acknowledged by long press: %s", ", ".join(fields["codes"]))
        else:
            log.info("%s %s", name, " ".join(f"{k}={v}" for k, v in fields.items()))
        self.emit(name, **fields)

    def _checkpoint(self, now: float) -> None:
        ses = self.controller.session
        if ses is None or self.start_ticket is None:
            return
        if now - self.last_checkpoint_s >= self.cfg.loop.checkpoint_s:
            self.last_checkpoint_s = now
            self.writer.submit(
                records.Checkpoint(
                    ses.on_s,
                    ses.peak_skin_c,
                    ses.closest_mm,
                    self.clock.wall(),
                    now,
                    light=self.controller.session_light(ses),
                    counters=self.controller.session_counters(ses),
                    trace=self._take_trace(),
                )
            )

    def _on_relay(self, on: bool, reason: str) -> None:
        log.info("relay %s (%s)", "ON" if on else "OFF", reason)
        self.emit(DaemonEvent.RELAY, on=on, reason=reason)

    def _on_exception(self, exc: Exception, now: float) -> None:
        self.healthy = False
        self.hw.output.set(False, "control_exception")
        self.exception_streak += 1
        detail = (
            f"records cannot be written: {exc}" if isinstance(exc, StorageError) else f"{type(exc).__name__}: {exc}"
        )
        # A storage failure's message says what and where; other exceptions need the stack.
        stack = "" if isinstance(exc, StorageError) else "\n" + traceback.format_exc()
        log.error("exception in the control loop (lamp off): %s%s", detail, stack)
        events = self.controller.external_fault("control_exception", detail, now)
        for name, fields in events:
            try:
                self._record(name, fields, now)
            except Exception as record_exc:  # the journal itself may be what failed
                log.error("could not record %s: %s", name, record_exc)
                if name == EventKind.FAULT:  # the caregiver still sees what latched, and that it is unrecorded
                    self.last_fault = {
                        "code": fields["code"],
                        "wall": self.clock.wall(),
                        "detail": f"{fields['detail']} (not in the journal: it cannot be written)",
                    }
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
        if self.writer.backlog:
            parts.append(f"journal backlog {self.writer.backlog}")
        return ", ".join(parts)

    def status_snapshot(self) -> dict:
        ctl, now = self.controller, self.clock.monotonic()
        allowance = self._allowance(now, refresh=False)
        ses = ctl.session
        return {
            "state": ctl.state,
            "lamp_on": self.hw.output.is_on(),
            "time_left_s": ctl.time_left_s(),
            "on_s": None if ses is None else round(ses.on_s, 1),
            "dose_cem43": None if ses is None else round(ses.dose.cem43, 4),
            "switches": None if ses is None else ses.switches,
            "distance_mm": self.readout.distance_mm,
            "skin_c": self.readout.skin_c,
            "ambient_c": self.readout.ambient_c,
            "signal_rate_mcps": self.readout.signal_mcps,
            "ambient_rate_mcps": self.readout.ambient_mcps,
            "distance_doubt_share": round(ctl.distance.doubt_share(), 4),
            "sessions_today": allowance.sessions_today,
            "sessions_per_day": self.cfg.session.sessions_per_day,
            "next_start_allowed_wall": allowance.next_start_wall,
            "start_blocked_reason": allowance.reason or journal_refusal(self.journal_health(now)),
            "pause_reason": None if ses is None else ses.pause_reason,
            "fault_latched": bool(ctl.latched),
            "latched_faults": list(ctl.latched),
            "last_fault": self.last_fault,
            "leds": self.hw.panel.shown.describe() if self.hw.panel.shown else "...",
            "heartbeat_wall": self.clock.wall(),
            "heartbeat_mono": now,
            "boot_id": self.boot_id,
            "pid": os.getpid(),
            "simulated": bool(self.simulated),
            "journal_backlog": self.writer.backlog,
            "journal_stalled_s": round(self.writer.stalled_s(now), 1),
            "journal_error": self.writer.last_error,
        }

    def _write_status(self, now: float) -> None:
        """Offer the caregiver's status to its writer (written off the loop; failures are
        logged there, never a lamp fault)."""
        if self.status_writer is not None:
            self.status_writer.offer(self.status_snapshot())

    # -- shutdown --------------------------------------------------------------------------
    def shutdown(self, reason: str, drain_timeout_s: float = DRAIN_TIMEOUT_S) -> None:
        """Lamp off, session closed in the journal, the writer's backlog drained (at most
        `drain_timeout_s`) and the journal closed, status 'stopped'. Safe to call twice."""
        self.hw.output.set(False, reason)
        if self.stopped:
            return
        self.stopped = True
        now = self.clock.monotonic()
        for name, fields in self.controller.stop_session("daemon_stopped", now):
            self._record(name, fields, now)
        if self.notifier is not None:
            self.notifier.stopping(f"stopping: {reason}")
        if self.writer.backlog:
            log.info("writing %d journal record(s) before exit", self.writer.backlog)
        self.writer.close(drain_timeout_s)
        if self.status_writer is not None:
            snapshot = self.status_snapshot()
            snapshot.update(state="stopped", lamp_on=False)
            self.status_writer.close(snapshot, STATUS_CLOSE_TIMEOUT_S)
