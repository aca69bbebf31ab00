"""`irlamp simulate`: runs a scenario through the real daemon in accelerated simulated time.

Only the clock and the drivers differ from a Pi: a `SimClock`, simulated sensor sources
and gpiozero's `MockFactory` pins. The daemon, the safety controller, the guard, the
samplers (with their worker threads, so a hung read really blocks) and the journal are
the production ones. A discrete-event schedule decides what runs when:
  distance read every timing budget, skin read every skin period, guard check every
  50 ms, control step at every new sample and at least at the loop rate, scenario events
  at their `at`, journal commits when the simulated disk completes them (a control step
  follows each). The disk commits at once unless a scenario's `journal_commit_s` slows it.
"""

from __future__ import annotations

import heapq
import json
import logging
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TextIO

from gpiozero.pins.mock import MockFactory

from controller.service.clock import SimClock
from controller.service.config import load_config
from controller.core.events import EventKind
from controller.service.daemon import Daemon, DaemonEvent
from controller.service.dirlock import DirectoryBusy, lock_state_dir
from controller.core.indicators import pattern_name
from controller.service.journal import Journal, JournalError
from controller.service.journal_writer import SimulatedDisk
from controller.service.preflight import check_startup
from controller.sim.scenario import Scenario, ScenarioError
from controller.service.status_writer import status_path
from controller.service.storage import StorageError
from controller.sim.timeline import SimEvent, format_event
from drivers.hardware import build_hardware
from drivers.sim_sensors import SimDistanceSource, SimSkinSource, SimWorld

GUARD_PERIOD_S = 0.05
SETTLE_WAIT_S = 5.0  # real seconds to wait for a released read to return (it returns at once)
RESTART_DOWNTIME_S = 1.0
PROGRESS_EVERY_S = 300.0  # a `progress` line every 5 simulated minutes while a session runs

log = logging.getLogger("irlamp.simulate")


@dataclass
class Summary:
    lamp_on_s: float = 0.0
    sessions: int = 0
    faults: list[str] = field(default_factory=list)


class Simulation:
    def __init__(
        self,
        scenario: Scenario,
        *,
        state_dir: Path,
        config_path=None,
        write: Callable[[dict], None] = lambda record: None,
    ):
        self.scenario = scenario
        self.cfg = load_config(config_path, overrides=scenario.config_node, overrides_source=scenario.path)
        check_startup(self.cfg)
        self.state_dir = state_dir
        self.write = write
        self.clock = SimClock(scenario.wall_clock)
        self.factory = MockFactory()
        self.world = SimWorld(
            scenario.distance_mm,
            scenario.skin_c,
            thermal_model=scenario.thermal_model,
            ambient_c=scenario.ambient_c,
            seed=scenario.seed,
            lamp_on=self._lamp_on,
            monotonic=self.clock.monotonic,
        )
        self.world.glare_mcps = scenario.glare
        self.boot_id = f"sim-{uuid.uuid4()}"
        self.disk = SimulatedDisk()  # kept across restarts, like the SD card
        self.summary = Summary()
        self.daemon: Daemon | None = None
        self._relay_on_since: float | None = None
        self._next_progress_s = PROGRESS_EVERY_S
        self._new_sample = False

    # -- output --------------------------------------------------------------------------
    def emit(self, event: str, **fields) -> None:  # an EventKind, DaemonEvent or SimEvent
        t = self.clock.monotonic()
        if event == DaemonEvent.RELAY:
            if fields["on"]:
                self._relay_on_since = t
            elif self._relay_on_since is not None:
                self.summary.lamp_on_s += t - self._relay_on_since
                self._relay_on_since = None
        elif event == EventKind.SESSION_STARTED:
            self.summary.sessions += 1
        elif event == EventKind.FAULT:
            self.summary.faults.append(fields["code"])
        self.write({"t": round(t, 3), "event": event, **fields})

    def _progress(self, daemon: Daemon) -> None:
        """A `progress` record every few simulated minutes of a session, for people following along."""
        ctl, seen = daemon.controller, daemon.readout
        if ctl.session is None:
            return
        self.emit(
            SimEvent.PROGRESS,
            state=ctl.state,
            on_s=round(ctl.session.on_s, 1),
            time_left_s=round(ctl.time_left_s() or 0.0, 1),
            distance_mm=seen.distance_mm,
            skin_c=seen.skin_c,
            ambient_mcps=seen.ambient_mcps,
            leds=pattern_name(ctl.state, ctl.warning, pause_reason=ctl.session.pause_reason),
        )

    def _lamp_on(self) -> bool:
        return self.daemon is not None and self.daemon.hw.output.is_on()

    # -- daemon lifecycle ------------------------------------------------------------------
    def boot(self) -> Daemon:
        try:
            journal = Journal(self.state_dir, self.boot_id)
        except JournalError as exc:  # an unusable --state-dir: one line, before anything runs
            raise ScenarioError(str(exc)) from exc
        hw = build_hardware(
            self.cfg,
            distance_source=SimDistanceSource(self.world),
            skin_source=SimSkinSource(self.world),
            monotonic=self.clock.monotonic,
            pin_factory=self.factory,
            on_sample=self._on_sample,
            edges_on_clock=True,
        )
        self.daemon = Daemon(
            self.cfg,
            hw,
            self.clock,
            journal,
            status_path=simulation_status_path(self.state_dir),
            boot_id=self.boot_id,
            emit=self.emit,
            status_interval_s=10.0,
            disk=self.disk,
        )
        return self.daemon

    def halt(self, reason: str) -> None:
        if self.daemon is None:
            return
        self.daemon.shutdown(reason)
        hw = self.daemon.hw
        for source in hw.sources:  # abandon reads blocked on a hung bus, and wait for them,
            source.close()  # so stopping the samplers neither waits nor races
        for sampler in (hw.distance, hw.skin):
            sampler.wait_idle(SETTLE_WAIT_S)
        hw.close()  # the journal was closed by shutdown, after its backlog
        self.daemon = None

    def _on_sample(self) -> None:
        self._new_sample = True

    # -- the schedule ----------------------------------------------------------------------
    def run(self) -> Summary:
        until = self.scenario.until_s
        events = list(self.scenario.events)
        releases: list[float] = []
        counters = {"guard": 0}
        next_step = 0.0
        boot_at: float | None = 0.0
        base = 0.0  # time the current daemon instance booted; periodic reads count from it
        t = 0.0
        while True:
            candidates = [next_step, base + counters["guard"] * GUARD_PERIOD_S]
            if self.daemon is not None:  # each sampler's own schedule (idle or full rate)
                candidates += [self.daemon.hw.distance.next_read_s(), self.daemon.hw.skin.next_read_s()]
            if events:
                candidates.append(events[0].at_s)
            if releases:
                candidates.append(releases[0])
            commit_due = self.daemon.writer.next_due_s() if self.daemon is not None else None
            if commit_due is not None:
                candidates.append(commit_due)
            if boot_at is not None:
                candidates.append(boot_at)
            t = min(candidates)
            if t > until:
                break
            self.clock.advance_to(max(t, self.clock.monotonic()))
            step_now = t >= next_step
            if boot_at is not None and t >= boot_at:
                boot_at = None
                booted = self.boot()
                if releases:  # a press held through the restart: new gpiozero devices reset the
                    self.factory.pin(self.cfg.gpio.button_pin).drive_low()  # mock pin to its pull-up
                # The daemon is up just before anything scripted for this instant happens, so a
                # press at the boot instant is a press, not a button held during start-up.
                booted.step()
                base, counters = t, {"guard": 0}
                step_now = True
            while events and events[0].at_s <= t:
                event = events.pop(0)
                if self._apply(event, releases) and self.daemon is not None:
                    self.halt("restart")
                    boot_at = t + RESTART_DOWNTIME_S
                    base, next_step = boot_at, boot_at
                    counters = {"guard": 0}
                step_now = True
            while releases and releases[0] <= t:
                heapq.heappop(releases)
                self.factory.pin(self.cfg.gpio.button_pin).drive_high()
                step_now = True
            daemon = self.daemon
            if daemon is None:
                continue
            if daemon.writer.pump():
                step_now = True
            if t >= daemon.hw.distance.next_read_s():
                daemon.hw.distance.step()
            if t >= daemon.hw.skin.next_read_s():
                daemon.hw.skin.step()
            if t >= base + counters["guard"] * GUARD_PERIOD_S:
                counters["guard"] += 1
                daemon.hw.guard.tick(t, GUARD_PERIOD_S)  # as its thread: fails closed if the check raises
            if step_now or self._new_sample:
                self._new_sample = False
                daemon.step()
                next_step = daemon.next_wake_s()
            if t >= self._next_progress_s:
                self._next_progress_s = (t // PROGRESS_EVERY_S + 1) * PROGRESS_EVERY_S
                self._progress(daemon)
        self.clock.advance_to(max(until, self.clock.monotonic()))
        self.halt("end of scenario")
        return self.summary

    def _apply(self, event, releases: list[float]) -> bool:
        """Apply one scenario event; True when it asks for a daemon restart."""
        fields = {k: (list(v) if isinstance(v, tuple) else v) for k, v in event.actions.items()}
        if "fault" in fields:
            fields["fault"] = {"sensor": fields["fault"][0], "kind": fields["fault"][1]}
        self.emit(SimEvent.SCENARIO, **fields)
        acts = event.actions
        if "wall_clock_jump_s" in acts:
            self.clock.jump_wall(acts["wall_clock_jump_s"])
        if "distance_mm" in acts:
            self.world.distance_mm = acts["distance_mm"]
        if "skin_c" in acts:
            self.world.set_skin(acts["skin_c"])
        if "ambient_c" in acts:
            self.world.ambient_c = acts["ambient_c"]
        if "glare" in acts:
            self.world.glare_mcps = acts["glare"]
        if "fault" in acts:
            sensor, kind = acts["fault"]
            self.world.set_fault(sensor, kind)
            if kind != "hang" and self.daemon is not None:
                # a released hung read completes now, at this simulated instant (deterministic)
                sampler = self.daemon.hw.distance if sensor == "distance" else self.daemon.hw.skin
                sampler.wait_idle(SETTLE_WAIT_S)
        if "journal_commit_s" in acts:
            self.disk.set_commit_s(acts["journal_commit_s"])
        if "press" in acts:
            self.factory.pin(self.cfg.gpio.button_pin).drive_low()
            heapq.heappush(releases, event.at_s + acts["press"])
        return bool(acts.get("restart"))


def run_scenario(
    scenario: Scenario, *, as_json: bool, out: TextIO, state_dir: str | None = None, config_path: str | None = None
) -> Summary:
    """Run and print (JSON lines or a timeline). The state dir is temporary unless given."""

    def write(record: dict) -> None:
        if as_json:
            out.write(json.dumps(record, default=str) + "\n")
        else:
            line = format_event(record)
            if line:
                out.write(line + "\n")

    with tempfile.TemporaryDirectory(prefix="irlamp-sim-") as tmp:
        directory = Path(state_dir) if state_dir else Path(tmp)
        try:  # never a second writer beside a live daemon (or another simulation)
            lock = lock_state_dir(directory, simulation_status_path(directory))
        except (DirectoryBusy, StorageError) as exc:
            raise ScenarioError(str(exc)) from exc
        with lock:
            sim = Simulation(scenario, state_dir=directory, config_path=config_path, write=write)
            if not as_json:
                out.write(
                    f"irlamp simulation of {scenario.path}: times are simulated minutes:seconds; "
                    f"'>' lines are the script, the others are what the daemon did.\n"
                )
            summary = sim.run()
        record = {
            "t": round(sim.clock.monotonic(), 3),
            "event": SimEvent.SUMMARY,
            "lamp_on_s": round(summary.lamp_on_s, 3),
            "sessions": summary.sessions,
            "faults": summary.faults,
        }
        write(record)
    return summary


def simulation_status_path(state_dir: Path) -> Path:
    """A simulation never writes a real runtime directory: its status file is in its state dir."""
    return status_path(Path("/nonexistent-irlamp-runtime"), state_dir)
