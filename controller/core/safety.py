"""The safety decision: may the lamp be on right now, and if not, why not.

`SafetyController.step(inputs)` is deterministic and does no I/O: no clock reads, no
GPIO, no files. Everything it knows arrives in `StepInputs` (sensor feeds, the raw
button level, the daily-limit allowance, the independent guard's state, and `now_s`
on the monotonic clock). Everything it wants done leaves in `Decision` (lamp on/off
with a reason, events to log and journal, whether the skin is in the warning band, and the
samples it judged by). What the displays keep from those (the latest readings, a refusal's
blinks) is kept where they are shown (controller/service/readout.py), not here: this object
holds only what decides. The daemon, the scenario simulator and the property tests all drive
this same object.

Priority, checked every step: latched fault > skin limit > on-time cap > wall-time
cap > heating not observed > distance (too close / nobody there / not trustworthy) >
sensor doubt > session start not yet journaled ('starting'). Anything that is not an
explicit "yes" leaves the lamp off.

SR-15: a distance sample the chip flags as untrustworthy (sensor_health's 'unreliable')
pauses the session as `distance_doubt` in the same step. It resumes like any pause:
after the distance has been good and in the band for `resume_after_s`. A doubt says
nothing about where the person is, so a single doubted sample between good ones (a hole
no longer than the judge's `doubt_s`, 2.5 sample periods) does not break "continuously
in the band"; two in a row do. The lamp is never on while the newest distance sample is
in doubt.

SR-14 comfort control (the skin-temperature servo, `skin.comfort_c`): it is checked LAST,
after every rule above has said "on", and it can only say "off". At the set point the lamp
goes off ('cooling', reason `comfort`); it may come back on once the skin has fallen by
`comfort_hysteresis_c`, at least `session.min_off_s` later, and only if every other rule says
on. Reaching the set point proves the thermometer sees heated skin (the "heating must be
seen" check). Every relay switch-on of a session is counted (`Session.switches`); those that
end an off stretch made only of one-sample sensor doubts (SR-15; the filament is still hot,
and the doubt-share fault bounds how often) are counted apart (`doubt_switches`). A session
that would need more than `session.max_switches` of the others ends: `comfort_cycling` when
the switch-on would end a comfort pause, `switching_limit` otherwise.

The journal is written by a writer of its own (controller/service/journal_writer.py); its health
arrives in `StepInputs.journal` like the allowance: a session's lamp goes on only once its
start record is durable, a failed commit or a record left uncommitted for `JOURNAL_STALL_S`
while a session exists latches `journal_stalled`, and a busy writer refuses starts (`journal_busy`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from controller.core.button import ButtonTracker
from controller.core.dose import DoseMeter
from controller.core.events import Event, EventKind
from controller.core.limits import Allowance
from controller.core.readings import NO_TARGET_MM, Sample, SensorFeed, value_of
from controller.core.sensor_health import SensorJudge, SensorLimits, Verdict, sample_problem
from controller.core.settings import Config

JOURNAL_STALL_S = 10.0  # a record uncommitted this long: the session ends, the fault latches
JOURNAL_BUSY_S = 2.0  # a record uncommitted this long: no new start
WARNING_HYSTERESIS_C = 0.2  # the warning band ends only this far below where it began (no flicker)
AMBIENT_WARN_EVERY_S = 60.0  # the "ambient light high" event at most this often
DOUBT_PAUSE = "distance_doubt"
START_FRESH_WAIT_S = 0.1  # a start waits this long for full-rate samples of both sensors
COMFORT = "comfort"  # the lamp is off because the skin reached the comfort set point
# Off reasons that are a sensor's momentary doubt (SR-15), not a decision to stop heating.
DOUBT_OFF_REASONS = frozenset({DOUBT_PAUSE, "distance_unreliable", "skin_doubt", "skin_unreliable"})


@dataclass(frozen=True)
class JournalHealth:
    """The journal writer as the daemon sees it at the start of a step. The defaults describe a
    journal written synchronously (the controller's own tests); the daemon's writer is not."""

    start_needs_commit: bool = False  # a new session waits ('starting') until its start is durable
    start_recorded: bool = True  # the start record of the session open before this step is durable
    stalled_s: float = 0.0  # seconds the oldest record not yet committed has been waiting
    write_error: str | None = None  # why the writer's latest commit failed (None: no failure now)
    full: bool = False  # its backlog reached capacity
    limits_current: bool = True  # the allowance was read from a journal holding every session record


@dataclass(frozen=True)
class StepInputs:
    now_s: float
    distance: SensorFeed
    skin: SensorFeed
    button_pressed: bool
    allowance: Allowance
    guard_fault: str | None = None  # a code when the independent guard has cut the relay
    remote_stop: bool = False  # SR-13: "stop the running session" arrived from the bridge
    journal: JournalHealth = JournalHealth()
    button_edges: tuple[tuple[float, bool], ...] = ()  # (time_s, pressed) of each edge since the last step


@dataclass
class Session:
    start_s: float
    skin_baseline_c: float
    on_s: float = 0.0
    paused_since_s: float | None = None
    pause_reason: str | None = None
    in_band_since_s: float | None = None
    heating_seen: bool = False
    recorded: bool = False  # its start record is durable: the lamp may go on
    max_skin_c: float = float("-inf")
    min_distance_mm: float = float("inf")
    last_good_distance_s: float | None = None
    light: LightRange = field(default_factory=lambda: LightRange())
    distance_samples_at_start: int = 0
    distance_doubts_at_start: int = 0
    cooling_since_s: float | None = None  # SR-14: off at the comfort set point since then
    switches: int = 0  # relay switch-ons in this session, all of them
    doubt_switches: int = 0  # ... of which ended an off stretch of sensor doubt only
    off_reasons: set[str] = field(default_factory=set)  # why the lamp was off since it last went off
    dose: DoseMeter = field(default_factory=DoseMeter)  # CEM43 of its good skin samples

    @property
    def peak_skin_c(self) -> float | None:
        """The highest skin temperature so far, None before the first good reading."""
        return None if self.max_skin_c == float("-inf") else self.max_skin_c

    @property
    def closest_mm(self) -> float | None:
        """The closest distance so far, None before the first good reading."""
        return None if self.min_distance_mm == float("inf") else self.min_distance_mm


@dataclass
class LightRange:
    """The range of the VL53L0X's signal and ambient rates over a session, Mcps."""

    min_signal_mcps: float | None = None
    max_signal_mcps: float | None = None
    min_ambient_mcps: float | None = None
    max_ambient_mcps: float | None = None

    def add(self, signal_mcps: float | None, ambient_mcps: float | None) -> None:
        if signal_mcps is not None:
            self.min_signal_mcps = _lower(self.min_signal_mcps, signal_mcps)
            self.max_signal_mcps = _higher(self.max_signal_mcps, signal_mcps)
        if ambient_mcps is not None:
            self.min_ambient_mcps = _lower(self.min_ambient_mcps, ambient_mcps)
            self.max_ambient_mcps = _higher(self.max_ambient_mcps, ambient_mcps)

    def as_fields(self) -> dict[str, float | None]:
        return {
            "min_signal_mcps": self.min_signal_mcps,
            "max_signal_mcps": self.max_signal_mcps,
            "min_ambient_mcps": self.min_ambient_mcps,
            "max_ambient_mcps": self.max_ambient_mcps,
        }


def _lower(current: float | None, value: float) -> float:
    return value if current is None else min(current, value)


def _higher(current: float | None, value: float) -> float:
    return value if current is None else max(current, value)


@dataclass(frozen=True)
class StepReadings:
    """The samples a step judged by, for what displays them (status, trace, simulator): the
    good sample of each sensor's verdict (None while it is in doubt) and the distance sensor's
    newest sample, good or not (its light rates)."""

    distance: Sample | None = None
    skin: Sample | None = None
    light: Sample | None = None


@dataclass
class Decision:
    lamp_on: bool
    reason: str
    events: list[Event] = field(default_factory=list)
    warning: bool = False  # the skin is in the warning band (the skin_warning events say when it changed)
    readings: StepReadings = StepReadings()


def journal_refusal(journal: JournalHealth) -> str | None:
    """'journal_busy' while the writer cannot take a new session at once: its backlog is full,
    its latest commit failed, a record has waited JOURNAL_BUSY_S for its commit, or the daily
    limits were not yet read from a journal holding every session record handed over. None
    otherwise."""
    if journal.full or not journal.limits_current or journal.write_error or journal.stalled_s > JOURNAL_BUSY_S:
        return "journal_busy"
    return None


# -- the hazard rules: one definition each, called by the decision below and by the samplers'
# hazard check (drivers/sampler.py), which cuts the relay through the guard without waiting
# for the loop; the loop then records why. A cut can only switch the lamp off.
def too_close(cfg: Config, reading_mm: float) -> bool:
    """SR-4: a distance reading (before the offset) closer than the floor."""
    return reading_mm - cfg.distance.offset_mm < cfg.distance.min_mm


# Hazards that say where the person is, not that a sensor failed: with the relay already off
# there is nothing to cut and nothing to latch, so the sampler need not wake the loop for them
# (an idle lamp with nobody under it reads "nobody there" all day); its next tick judges them.
POSITION_HAZARDS = frozenset({"too_close", "nobody_there"})


def nobody_there(cfg: Config, reading_mm: float) -> bool:
    """SR-4: a distance reading (before the offset) that says nobody is under the lamp: no
    target, or at or beyond `absent_mm` from the lamp."""
    return reading_mm - cfg.distance.offset_mm >= cfg.distance.absent_mm or reading_mm >= NO_TARGET_MM


def skin_at_limit(cfg: Config, skin_c: float) -> bool:
    """SR-5: skin at or above the limit."""
    return skin_c >= cfg.skin.limit_c


def sensor_body_hot(cfg: Config, ambient_c: float | None) -> bool:
    """The thermometer's own body too hot to trust (skin_sensor_hot)."""
    return ambient_c is not None and ambient_c >= cfg.skin.sensor_body_max_c


def distance_hazard(cfg: Config, limits: SensorLimits, sample: Sample) -> str | None:
    """Why this distance sample alone means the lamp must be off now, or None: an invalid
    or doubted reading (sensor_health.sample_problem), too close, or nobody there."""
    kind, _ = sample_problem(limits, sample)
    if kind is not None:
        return f"distance_{kind}"
    if too_close(cfg, value_of(sample)):
        return "too_close"
    return "nobody_there" if nobody_there(cfg, value_of(sample)) else None


def skin_hazard(cfg: Config, limits: SensorLimits, sample: Sample) -> str | None:
    """Why this skin sample alone means the lamp must be off now, or None: an invalid
    reading, skin at the limit, or the sensor's body too hot."""
    kind, _ = sample_problem(limits, sample)
    if kind is not None:
        return f"skin_{kind}"
    if skin_at_limit(cfg, value_of(sample)):
        return "skin_overheat"
    return "skin_sensor_hot" if sensor_body_hot(cfg, sample.ambient_c) else None


def hazard_checks(cfg: Config) -> tuple[Callable[[Sample], str | None], Callable[[Sample], str | None]]:
    """(distance, skin) hazard checks for the samplers, with the judge's own limits."""
    dist_limits = distance_limits(cfg, SafetyController.STARTUP_GRACE_S)
    skin_lim = skin_limits(cfg, SafetyController.STARTUP_GRACE_S)
    return (lambda sample: distance_hazard(cfg, dist_limits, sample), lambda sample: skin_hazard(cfg, skin_lim, sample))


def _idle_rate(judge: SensorJudge, verdict: Verdict) -> bool:
    """Is what the decision would judge this sensor by (its good sample, else its newest)
    an idle-rate sample?"""
    sample = verdict.good or judge.latest
    return sample is not None and not judge.full_rate(sample)


def distance_limits(cfg: Config, start_s_grace: float) -> SensorLimits:
    """Distance sensor judging rules built from the `distance` and `faults` config."""
    period_s = cfg.distance.timing_budget_ms / 1000.0

    def plausible(sample: Sample) -> str | None:
        if not 0.0 <= value_of(sample) <= NO_TARGET_MM + 1:
            return "out_of_range"
        ambient_mcps = sample.ambient_rate_mcps
        if ambient_mcps is not None and ambient_mcps >= cfg.distance.ambient_doubt_mcps:
            return "unreliable"  # the chip calls it valid, but it is blinded (SR-15)
        return None

    f = cfg.faults
    return SensorLimits(
        "distance",
        stale_s=f.distance_stale_s,
        doubt_s=min(2.5 * period_s, f.distance_stale_s),
        frozen_s=f.distance_frozen_s,
        retry_errors=f.retry_errors,
        startup_grace_s=start_s_grace,
        plausible=plausible,
        frozen_exempt=lambda value: value >= NO_TARGET_MM,
        doubt_kinds=frozenset({"unreliable"}),
        unreliable_after_s=f.distance_unreliable_after_s,
        unreliable_window_s=f.distance_unreliable_window_s,
        unreliable_share=f.distance_unreliable_share,
        period_s=period_s,
    )


def skin_limits(cfg: Config, start_s_grace: float) -> SensorLimits:
    """Skin thermometer judging rules built from the `skin` and `faults` config."""
    period_s = cfg.skin.period_ms / 1000.0

    def plausible(sample: Sample) -> str | None:
        ok = cfg.skin.plausible_min_c <= value_of(sample) <= cfg.skin.plausible_max_c
        ambient_ok = sample.ambient_c is None or -40.0 <= sample.ambient_c <= 125.0
        return None if ok and ambient_ok else "out_of_range"

    return SensorLimits(
        "skin",
        stale_s=cfg.faults.skin_stale_s,
        doubt_s=min(2.5 * period_s, cfg.faults.skin_stale_s),
        frozen_s=cfg.faults.skin_frozen_s,
        retry_errors=cfg.faults.retry_errors,
        startup_grace_s=start_s_grace,
        plausible=plausible,
        period_s=period_s,
    )


def wall_time_cap_s(cfg: Config, session: Session) -> float:
    """The instant the session's wall-time cap ends it: session.max_wall_minutes after its start,
    paused or not. One sum, so the loop can wake at the very instant the step will find it."""
    return session.start_s + cfg.session.max_wall_minutes * 60.0


class SafetyController:
    STARTUP_GRACE_S = 2.0

    def __init__(self, cfg: Config, start_s: float):
        self.cfg = cfg
        self.distance = SensorJudge(distance_limits(cfg, self.STARTUP_GRACE_S), start_s)
        self.skin = SensorJudge(skin_limits(cfg, self.STARTUP_GRACE_S), start_s)
        b = cfg.button
        self.button = ButtonTracker(b.long_press_s, b.stuck_s, b.bounce_ms / 1000.0)
        self.latched: list[str] = []
        self.session: Session | None = None
        self.lamp_on = False
        self.last_step_s = start_s
        self.press_consumed = False
        self.last_session_end_s = float("-inf")
        self.last_end_reason: str | None = None  # why the newest session ended
        self.sessions_ended = 0
        # The warning band's hysteresis: it decides when a skin_warning event is emitted.
        self.warning = False
        self.ambient_warned_s = float("-inf")
        self.start_waiting_since_s: float | None = None  # a start request waiting for full-rate samples

    # -- public --------------------------------------------------------------------
    @property
    def state(self) -> str:
        if self.latched:
            return "fault"
        if self.session is None:
            return "idle"
        if not self.session.recorded:
            return "starting"
        if self.session.paused_since_s is not None:
            return "paused"
        return "cooling" if self.session.cooling_since_s is not None else "running"

    def time_left_s(self) -> float | None:
        if self.session is None:
            return None
        return max(0.0, self.cfg.session.max_on_s - self.session.on_s)

    def person_mm(self, sample: Sample) -> float:
        """The distance to the person: the sensor's reading less its mounting offset."""
        return value_of(sample) - self.cfg.distance.offset_mm

    def restore_faults(self, codes: list[str]) -> None:
        """Re-latch faults that were never acknowledged before a restart (SR-10: a fault
        never clears by itself, not even by restarting the daemon)."""
        for code in codes:
            if code not in self.latched:
                self.latched.append(code)

    def external_fault(self, code: str, detail: str, now_s: float) -> list[Event]:
        """Latch a fault found outside the decision (e.g. an exception); ends any session."""
        events: list[Event] = []
        self._account(now_s)
        self._latch(code, detail, events)
        self._end_session("fault", now_s, events)
        self.lamp_on = False
        return events

    def stop_session(self, reason: str, now_s: float) -> list[Event]:
        """End the session (daemon shutdown); the lamp is already off."""
        events: list[Event] = []
        self._account(now_s)
        self._end_session(reason, now_s, events)
        self.lamp_on = False
        return events

    def _account(self, now_s: float) -> None:
        """Add the lamp-on time since the previous step to the session's on-time."""
        if self.lamp_on and self.session is not None:
            self.session.on_s += max(0.0, now_s - self.last_step_s)
        self.last_step_s = max(self.last_step_s, now_s)

    def step(self, inp: StepInputs) -> Decision:
        now = inp.now_s
        events: list[Event] = []
        self._account(now)
        ended_before = self.sessions_ended
        dist = self._judge(self.distance, inp.distance, now, events)
        skin = self._judge(self.skin, inp.skin, now, events)
        readings = StepReadings(dist.good, skin.good, self.distance.latest)
        if inp.guard_fault:
            self._latch(inp.guard_fault, "independent guard cut the relay", events)
        if inp.remote_stop:  # like a stop press: ends a session, does nothing without one
            self._end_session("stopped_remotely", now, events)
        if self.session is not None:
            self.session.recorded = self.session.recorded or inp.journal.start_recorded
            if inp.journal.write_error:
                self._latch("journal_stalled", f"records cannot be written: {inp.journal.write_error}", events)
            elif inp.journal.stalled_s > JOURNAL_STALL_S:
                self._latch(
                    "journal_stalled",
                    f"a journal record has waited {inp.journal.stalled_s:.1f} s for its commit",
                    events,
                )
        self._button(inp, dist, skin, events)
        if self.start_waiting_since_s is not None:
            self._try_start(inp, dist, skin, events)
        if self.session is None:
            ended_reason = self.last_end_reason if self.sessions_ended > ended_before else None
            reason = self.latched[0] if self.latched else (ended_reason or "idle")
            return self._decide(False, reason, events, readings)
        return self._decide(*self._session_step(now, dist, skin, events), events, readings)

    # -- sensors -------------------------------------------------------------------
    def _judge(self, judge: SensorJudge, feed: SensorFeed, now: float, events: list[Event]) -> Verdict:
        verdict = judge.judge(feed, now)
        if verdict.fault:
            self._latch(f"{judge.limits.name}_{verdict.fault}", verdict.detail, events)
        if judge is self.distance:
            self._watch_light(judge.latest, now, events)
        if verdict.good is not None:
            ambient_c = verdict.good.ambient_c
            if sensor_body_hot(self.cfg, ambient_c):
                self._latch("skin_sensor_hot", f"sensor body {ambient_c:.1f} C", events)
        return verdict

    def _watch_light(self, sample: Sample | None, now: float, events: list[Event]) -> None:
        """Keep the VL53L0X's light rates over the session, and a rate-limited event when the
        ambient light nears the level where measurements fail."""
        if sample is None or sample.ambient_rate_mcps is None:
            return
        if self.session is not None:
            self.session.light.add(sample.signal_rate_mcps, sample.ambient_rate_mcps)
        d = self.cfg.distance
        if sample.ambient_rate_mcps >= d.ambient_warn_mcps and now - self.ambient_warned_s >= AMBIENT_WARN_EVERY_S:
            self.ambient_warned_s = now
            events.append(
                Event(
                    EventKind.AMBIENT_HIGH,
                    {
                        "ambient_mcps": round(sample.ambient_rate_mcps, 2),
                        "warn_mcps": d.ambient_warn_mcps,
                        "doubt_mcps": d.ambient_doubt_mcps,
                        "doubt_share": round(self.distance.doubt_share(), 3),
                    },
                )
            )

    def _latch(self, code: str, detail: str, events: list[Event]) -> None:
        if code not in self.latched:
            self.latched.append(code)
            events.append(Event(EventKind.FAULT, {"code": code, "detail": detail}))

    # -- button --------------------------------------------------------------------
    def _button(self, inp: StepInputs, dist: Verdict, skin: Verdict, events: list[Event]) -> None:
        for event in self.button.update_edges(inp.button_edges, inp.now_s, inp.button_pressed):
            if event == "stuck":
                self._latch("button_stuck", "button held at start-up or far too long", events)
                self._end_session("fault", inp.now_s, events)
            elif event == "press":
                self.start_waiting_since_s = None
                # A press that began while a session ran was meant to stop it, even when the
                # session ended by itself before the press was confirmed: it never starts one.
                self.press_consumed = self.session is not None or self.last_session_end_s >= self.button.pressed_since_s
                if self.session is not None:
                    self._end_session("stopped_by_button", inp.now_s, events)
            elif event == "long" and self.latched:
                events.append(Event(EventKind.FAULT_ACKNOWLEDGED, {"codes": list(self.latched)}))
                self.latched.clear()
                self.distance.reset(inp.now_s)
                self.skin.reset(inp.now_s)
                self.press_consumed = True
            elif event == "short" and not self.press_consumed and self.session is None:
                self._try_start(inp, dist, skin, events)

    def start_refusal(self, inp: StepInputs, dist: Verdict, skin: Verdict) -> str | None:
        """SR-3: the reason a start must be refused now, or None when it may start."""
        d, s = self.cfg.distance, self.cfg.skin
        if self.latched:
            return "fault_latched"
        if dist.unreliable:
            return "distance_doubt"
        if dist.good is None or skin.good is None or inp.guard_fault:
            return "sensor_unhealthy"
        if journal_refusal(inp.journal):
            return "journal_busy"
        distance_mm = self.person_mm(dist.good)
        if distance_mm < d.min_mm + d.hysteresis_mm:
            return "too_close"
        if distance_mm > d.max_mm:
            return "out_of_band"
        if skin_at_limit(self.cfg, value_of(skin.good)):
            return "skin_too_warm"
        if s.comfort_c is not None and value_of(skin.good) >= s.comfort_c:
            return "skin_above_comfort"
        if sensor_body_hot(self.cfg, skin.good.ambient_c):
            return "sensor_unhealthy"
        if not inp.allowance.allowed:
            return inp.allowance.reason or "daily_limit"
        return None

    def _try_start(self, inp: StepInputs, dist: Verdict, skin: Verdict, events: list[Event]) -> None:
        """Decide a start request, but only on full-rate samples of both sensors (the button's
        press switched the samplers from their idle rate): wait up to START_FRESH_WAIT_S for
        them, then refuse as sensor_unhealthy."""
        fresh = not (_idle_rate(self.distance, dist) or _idle_rate(self.skin, skin))
        if self.session is not None:
            self.start_waiting_since_s = None
            return
        if not fresh:
            if self.start_waiting_since_s is None:
                self.start_waiting_since_s = inp.now_s
            if inp.now_s - self.start_waiting_since_s < START_FRESH_WAIT_S:
                return
        self.start_waiting_since_s = None
        reason = self.start_refusal(inp, dist, skin) or (None if fresh else "sensor_unhealthy")
        if reason is not None:
            events.append(Event(EventKind.START_REFUSED, {"reason": reason}))
            return
        assert dist.good is not None and skin.good is not None  # start_refusal said so
        self.session = Session(
            start_s=inp.now_s,
            skin_baseline_c=value_of(skin.good),
            distance_samples_at_start=self.distance.samples_taken,
            distance_doubts_at_start=self.distance.doubts_taken,
            recorded=not inp.journal.start_needs_commit,
        )
        events.append(
            Event(EventKind.SESSION_STARTED, {"skin_c": value_of(skin.good), "distance_mm": self.person_mm(dist.good)})
        )

    def _end_session(self, reason: str, now: float, events: list[Event]) -> None:
        ses = self.session
        if ses is None:
            return
        self.session = None
        self.last_session_end_s = now
        self.last_end_reason = reason
        self.sessions_ended += 1
        events.append(
            Event(
                EventKind.SESSION_ENDED,
                {
                    "reason": reason,
                    "on_s": round(ses.on_s, 3),
                    "elapsed_s": round(now - ses.start_s, 3),
                    "max_skin_c": ses.peak_skin_c,
                    "min_distance_mm": ses.closest_mm,
                    **self.session_counters(ses),
                    **self.session_light(ses),
                },
            )
        )

    @staticmethod
    def session_counters(ses: Session) -> dict[str, float]:
        """What only grows during a session: its heat dose and lamp switch-ons."""
        return {"dose_cem43": round(ses.dose.cem43, 6), "switches": ses.switches, "doubt_switches": ses.doubt_switches}

    def session_light(self, ses: Session) -> dict[str, float | int | None]:
        """The session's light-rate range and how many of its distance samples were doubted."""
        return {
            **ses.light.as_fields(),
            "distance_samples": self.distance.samples_taken - ses.distance_samples_at_start,
            "distance_doubts": self.distance.doubts_taken - ses.distance_doubts_at_start,
        }

    # -- the session ---------------------------------------------------------------
    def _open_session(self) -> Session:
        """The open session: the steps below run only while there is one."""
        if self.session is None:
            raise RuntimeError("a session step ran without an open session")
        return self.session

    def _session_step(self, now: float, dist: Verdict, skin: Verdict, events: list[Event]) -> tuple[bool, str]:
        ses, cfg = self._open_session(), self.cfg
        if skin.good is not None:
            skin_c = value_of(skin.good)
            ses.max_skin_c = max(ses.max_skin_c, skin_c)
            ses.dose.add(skin.good.t_s, skin_c)
            if cfg.skin.comfort_c is not None and skin_c >= cfg.skin.comfort_c:
                ses.heating_seen = True  # a start is refused at comfort_c: the skin rose to it
            if skin_at_limit(cfg, skin_c):
                self._latch("skin_overheat", f"skin {skin_c:.2f} C >= limit {cfg.skin.limit_c} C", events)
        if self.latched:
            code = self.latched[-1]
            self._end_session("overheat" if code == "skin_overheat" else "fault", now, events)
            return False, code
        if ses.on_s >= cfg.session.max_on_s:
            self._end_session("completed", now, events)
            return False, "session_completed"
        if now >= wall_time_cap_s(cfg, ses):
            self._end_session("wall_time_cap", now, events)
            return False, "wall_time_cap"
        if not ses.heating_seen:
            ses.heating_seen = ses.max_skin_c - ses.skin_baseline_c >= cfg.skin.heating_min_rise_c
            if not ses.heating_seen and ses.on_s >= cfg.skin.heating_check_s:
                self._latch(
                    "skin_not_heating",
                    f"skin rose {ses.max_skin_c - ses.skin_baseline_c:.2f} C in {ses.on_s:.0f} s of heat",
                    events,
                )
                self._end_session("fault", now, events)
                return False, "skin_not_heating"
        distance_ok = self._distance_step(now, dist, events)
        if ses is not self.session:  # the pause lasted too long and ended the session
            return False, ses.pause_reason or "paused"
        if not distance_ok:
            return False, ses.pause_reason or dist.doubt or "distance_doubt"
        if skin.good is None:
            return False, skin.doubt or "skin_doubt"
        if not ses.recorded:
            return False, "starting"
        if self._comfort_holds_off(now, value_of(skin.good), events):
            return False, COMFORT
        if not self.lamp_on:
            ended = self._count_switch_on(now, events)
            if ended:
                return False, ended
        return True, "session_started" if ses.on_s == 0.0 else "resumed"

    # -- comfort control (SR-14): only ever says "off" ------------------------------
    def _comfort_holds_off(self, now: float, skin_c: float, events: list[Event]) -> bool:
        """True while the servo keeps the lamp off: from the step the skin reaches comfort_c
        until it has fallen to comfort_c - comfort_hysteresis_c and min_off_s has passed."""
        ses, s = self._open_session(), self.cfg.skin
        if s.comfort_c is None:
            return False
        if ses.cooling_since_s is None:
            if skin_c < s.comfort_c:
                return False
            ses.cooling_since_s = now
            events.append(Event(EventKind.COOLING, {"skin_c": skin_c, "comfort_c": s.comfort_c}))
            return True
        cooled = skin_c <= s.comfort_c - s.comfort_hysteresis_c
        if not cooled or now - ses.cooling_since_s < self.cfg.session.min_off_s:
            return True
        events.append(Event(EventKind.COOLED, {"skin_c": skin_c, "off_s": round(now - ses.cooling_since_s, 3)}))
        ses.cooling_since_s = None
        return False

    def _count_switch_on(self, now: float, events: list[Event]) -> str | None:
        """Count the switch-on this step would make. Returns the end reason when it would be
        one more than session.max_switches (the session is then ended), else None. A switch-on
        that ends an off stretch made only of sensor doubt is counted apart and not limited
        here: the filament is still hot, and the SR-15 doubt-share fault bounds how often."""
        ses = self._open_session()
        doubt_only = bool(ses.off_reasons) and ses.off_reasons <= DOUBT_OFF_REASONS
        if ses.switches > 0 and doubt_only:
            ses.switches += 1
            ses.doubt_switches += 1
            return None
        if ses.switches - ses.doubt_switches >= self.cfg.session.max_switches:
            reason = "comfort_cycling" if COMFORT in ses.off_reasons else "switching_limit"
            self._end_session(reason, now, events)
            return reason
        ses.switches += 1
        return None

    def _distance_step(self, now: float, dist: Verdict, events: list[Event]) -> bool:
        """Pause / resume / end by distance. True when distance allows the lamp on now."""
        ses, d = self._open_session(), self.cfg.distance
        self._track_band(now, dist)
        if dist.good is None:
            if dist.unreliable:
                self._pause(DOUBT_PAUSE, now, events)
            return self._pause_limits(now, events)
        distance_mm = self.person_mm(dist.good)
        ses.min_distance_mm = min(ses.min_distance_mm, distance_mm)
        if too_close(self.cfg, value_of(dist.good)):
            self._pause("too_close", now, events)
        elif nobody_there(self.cfg, value_of(dist.good)):
            self._pause("nobody_there", now, events)
        elif (
            ses.paused_since_s is not None
            and ses.in_band_since_s is not None
            and now - ses.in_band_since_s >= d.resume_after_s
        ):
            events.append(Event(EventKind.RESUMED, {"paused_s": round(now - ses.paused_since_s, 3)}))
            ses.paused_since_s = ses.pause_reason = None
        if ses.paused_since_s is None:
            return True
        return self._pause_limits(now, events)

    def _track_band(self, now: float, dist: Verdict) -> None:
        """Since when the distance has been good and in the band (min + hysteresis .. absent),
        continuously: a good sample outside the band ends it, so does any doubt other than the
        sensor's own "not trustworthy", and so does a gap between good samples longer than the
        judge's doubt_s (two doubted samples in a row)."""
        ses, d = self._open_session(), self.cfg.distance
        good = dist.good
        last_good_s = ses.last_good_distance_s
        # the gap ends at the newest sample, not at this step: a loop that steps on its own tick
        # judges a sample a little after it arrived, and that must not look like a gap
        newest = good or self.distance.latest
        newest_s = now if newest is None else newest.t_s
        gap = last_good_s is None or newest_s - last_good_s > self.distance.limits.doubt_s
        if good is None:
            if gap or not dist.unreliable:
                ses.in_band_since_s = None
            return
        distance_mm = self.person_mm(good)
        in_band = d.min_mm + d.hysteresis_mm <= distance_mm and not nobody_there(self.cfg, value_of(good))
        if not in_band:
            ses.in_band_since_s = None
        elif ses.in_band_since_s is None or (good.t_s != last_good_s and gap):
            ses.in_band_since_s = now
        ses.last_good_distance_s = good.t_s

    def _pause_limits(self, now: float, events: list[Event]) -> bool:
        """End a pause that has lasted too long. Always False (the lamp stays off)."""
        ses, d = self._open_session(), self.cfg.distance
        if ses.paused_since_s is None:
            return False
        ends = {
            "too_close": (d.max_pause_s, "too_close_too_long"),
            "nobody_there": (d.absent_end_s, "nobody_there"),
            DOUBT_PAUSE: (d.max_pause_s, "distance_doubt_too_long"),
        }
        limit_s, end_reason = ends.get(ses.pause_reason or "", (d.max_pause_s, "paused_too_long"))
        if now - ses.paused_since_s >= limit_s:
            self._end_session(end_reason, now, events)
        return False

    def _pause(self, reason: str, now: float, events: list[Event]) -> None:
        ses = self._open_session()
        if ses.paused_since_s is None:
            ses.paused_since_s = now
        if ses.pause_reason != reason:
            ses.pause_reason = reason
            events.append(Event(EventKind.PAUSED, {"reason": reason}))

    def _decide(self, lamp_on: bool, reason: str, events: list[Event], readings: StepReadings) -> Decision:
        lamp_on = lamp_on and not self.latched and self.session is not None
        if self.session is not None:  # what the next switch-on ends (see _count_switch_on)
            if lamp_on:
                self.session.off_reasons.clear()
            else:
                self.session.off_reasons.add(reason)
        s = self.cfg.skin
        threshold_c = s.limit_c - s.warning_margin_c - (WARNING_HYSTERESIS_C if self.warning else 0.0)
        warning = readings.skin is not None and value_of(readings.skin) >= threshold_c
        if warning != self.warning:
            self.warning = warning
            events.append(Event(EventKind.SKIN_WARNING, {"on": warning}))
        self.lamp_on = lamp_on
        return Decision(lamp_on, reason, events, warning, readings)
