"""irlamp under measurement: the production daemon, in real time, on emulated chips and mock pins.

`IrlampRig` assembles exactly what `irlamp run` assembles (controller/service/run.py: run_daemon):
the sources of `_real_sources` (`ReopeningSource` around each reader, both sharing one
`PoliteI2C` bus), `build_hardware` with the sampler threads waking the loop through
`on_sample=wake.set`, the guard's own thread, a `Daemon` whose SQLite journal is written by
its journal-writer thread (waking the loop on each commit), and the same loop
(`controller.service.run.serve`). The
differences are only what a Pi would have and a build machine has not: the sensors are the
real readers (`VL53L0XSource`, `MLX90614Source`) on the unmodified Adafruit drivers over
the register-level emulated chips (the VL53L0X ranges every 33.6 ms in real time), the pins
are gpiozero MockFactory pins, and the loop has a gate the bench can close to freeze it.
The trials that drive it are in bench/trials.py and bench/slow_disk.py.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from pathlib import Path

from controller.service.clock import RealClock
from controller.service.config import load_config
from controller.service.daemon import Daemon
from controller.service.journal import Journal
from controller.service.notify import SystemdNotifier
from controller.service.clock import ClockSync, boot_id
from controller.service.run import serve, start_threads
from drivers.hardware import build_hardware, reopening_readers
from drivers.i2c_bus import PoliteI2C
from drivers.sim_sensors import SimDistanceSource, SimSkinSource, SimWorld

from bench.instruments import TimedDistance, TimedSkin, noisy_bus, now, timed_factory

REPO = Path(__file__).resolve().parent.parent
IN_BAND_MM = 400.0  # in the start band (330..460 mm with the defaults)
TOO_CLOSE_MM = 250.0  # below min_mm 304.8
SKIN_START_C = 33.0
OVERHEAT_C = 44.0  # at/above limit_c 43
OFF_TIMEOUT_S = 2.0  # a relay not off this long after a hazard is reported as a miss
START_TIMEOUT_S = 3.0

# Only what makes the trials fit one session and the time budget; every limit that turns the
# lamp off on a hazard, a fault or a stall stays at its default.
BENCH_OVERRIDES = {
    "distance": {"resume_after_s": 1.0},  # the bound's minimum (default 3 s)
    # Each too-close trial ends with a switch-on (the resume); SR-14's default of 20 switch-ons
    # would end the session after 19 trials (`switching_limit`). 100 is the key's upper bound.
    "session": {"max_switches": 100},
}


class BenchError(Exception):
    """The rig could not reach the state a trial needs (reported, never hidden)."""


def bench_config(extra: dict | None = None):
    overrides = {**BENCH_OVERRIDES, **(extra or {})}
    return load_config(REPO / "config" / "lamp.yaml", overrides=overrides)


class IrlampRig:
    """One complete daemon. `sources`: 'emulated' (real readers on emulated chips) or 'sim'."""

    def __init__(
        self,
        cfg,
        state_dir: str | Path,
        *,
        seed: int = 0,
        sources: str = "emulated",
        journal_wrap=None,
        drain_timeout_s: float | None = None,
    ):
        """`journal_wrap(journal)`: what the daemon gets instead of the journal (bench/slow_disk.py
        slows or blocks its writes); `drain_timeout_s`: how long close() lets the daemon's
        shutdown wait for the journal backlog (None: the daemon's default)."""
        self.cfg = cfg
        self.journal_wrap = journal_wrap
        self.drain_timeout_s = drain_timeout_s
        self.factory = timed_factory()
        self.clock = RealClock()
        self.wake = threading.Event()
        self.stop = threading.Event()
        self.gate = threading.Event()  # cleared: the loop freezes before its next step
        self.gate.set()
        self.last_step_s = 0.0  # perf_counter at the start of the latest step
        self.steps: deque[tuple[float, float]] = deque(maxlen=20000)  # (start, end) of each step
        self.bus = self.vl53 = self.mlx = self.world = None
        if sources == "emulated":  # as run.py's _real_sources, on the emulated bus
            self.bus, self.vl53, self.mlx = noisy_bus(seed=seed, distance_mm=IN_BAND_MM, skin_c=SKIN_START_C)
            shared = PoliteI2C(self.bus)
            distance, skin = reopening_readers(lambda: shared, cfg.distance.timing_budget_ms)
        elif sources == "sim":
            self.world = SimWorld(IN_BAND_MM, SKIN_START_C, seed=seed, monotonic=self.clock.monotonic)
            distance, skin = SimDistanceSource(self.world), SimSkinSource(self.world)
        else:
            raise ValueError(f"sources must be 'emulated' or 'sim', not {sources!r}")
        self.distance, self.skin = TimedDistance(distance), TimedSkin(skin)
        self.hw = build_hardware(
            cfg,
            distance_source=self.distance,
            skin_source=self.skin,
            monotonic=self.clock.monotonic,
            pin_factory=self.factory,
            on_sample=self.wake.set,
        )
        self.relay = self.factory.pin(cfg.gpio.relay_pin)
        self.button = self.factory.pin(cfg.gpio.button_pin)
        self.state_dir = Path(state_dir)
        self.daemon: Daemon | None = None
        self.error: BaseException | None = None
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Start the daemon on its own thread, which then plays run_daemon's main thread."""
        self._thread = threading.Thread(target=self._run_daemon, name="irlamp-loop", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S) or self.daemon is None:
            raise BenchError(f"the daemon did not start: {self.error!r}")

    def _run_daemon(self) -> None:
        """run_daemon's body: journal and Daemon are made here; the journal writer and the status
        writer run on threads of their own, as in `irlamp run`."""
        cfg, hw, clock, wake = self.cfg, self.hw, self.clock, self.wake
        journal = daemon = None
        try:
            this_boot = boot_id()
            journal = Journal(self.state_dir, this_boot)
            used = self.journal_wrap(journal) if self.journal_wrap is not None else journal
            daemon = Daemon(
                cfg,
                hw,
                clock,
                used,
                status_path=self.state_dir / "status.json",
                boot_id=this_boot,
                clock_synced=ClockSync(),
                notifier=SystemdNotifier(""),
                on_journal_commit=wake.set,
            )
            start_threads(hw, cfg, clock)
            daemon.step()
            self.daemon = daemon
            self._ready.set()

            def gated_step() -> None:
                if not self.gate.is_set():  # bench only: the loop is frozen here (stall trials)
                    self.gate.wait()
                    return
                self.last_step_s = started = now()
                daemon.step()
                self.steps.append((started, now()))

            serve(daemon, clock, wake, self.stop, step=gated_step)
        except BaseException as exc:  # noqa: BLE001 - reported by start()/close()
            self.error = exc
        finally:
            hw.output.set(False, "exit")
            try:
                if daemon is not None:  # drains and closes the journal on the writer's thread
                    daemon.shutdown("bench", *(() if self.drain_timeout_s is None else (self.drain_timeout_s,)))
                elif journal is not None:
                    journal.close()
            finally:
                hw.close()
                self._ready.set()

    def close(self) -> None:
        self.release_hang()
        self.stop.set()
        self.gate.set()
        self.wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0 + (self.drain_timeout_s or 0.0))
        if self.error is not None:
            raise BenchError(f"the daemon failed: {self.error!r}")

    # -- the world -----------------------------------------------------------------------
    def set_distance(self, mm: float) -> None:
        if self.vl53 is not None:
            self.vl53.distance_mm = mm
        else:
            self.world.distance_mm = mm

    def set_skin(self, skin_c: float) -> None:
        if self.mlx is not None:
            self.mlx.object_c = skin_c
        else:
            self.world.set_skin(skin_c)

    def hang(self) -> None:
        """Emulated chips: the whole I2C bus locks up. Sim: the distance read blocks."""
        if self.bus is not None:
            self.bus.stuck = True
        else:
            self.world.set_fault("distance", "hang")

    def release_hang(self) -> None:
        if self.bus is not None:
            self.bus.stuck = False
        else:
            self.world.set_fault("distance", "clear")

    # -- the person at the panel -----------------------------------------------------------
    def start_session(self) -> None:
        """Wait for both sensors, press the button briefly, wait until the relay is on."""
        t0 = now()
        for timeline in (self.distance.values, self.skin.values):
            if timeline.wait_for(t0 - 10.0, lambda v: True, START_TIMEOUT_S) is None:
                raise BenchError("a sensor delivered no sample within 3 s of start")
        time.sleep(0.05)  # let the controller judge the first samples
        t_press = now()
        self.button.drive_low()
        time.sleep(0.1)  # > bounce_ms
        self.button.drive_high()
        if self.relay.changes.wait_for(t_press, lambda on: on, START_TIMEOUT_S) is None:
            ctl, refused = self.daemon.controller, self.daemon.readout.refused
            raise BenchError(f"the session did not start (state {ctl.state}, refused {refused}, faults {ctl.latched})")

    def step_around(self, t: float) -> tuple[float, float] | None:
        """The loop step (start, end) that was running at instant `t`, if any."""
        for start, end in reversed(self.steps):
            if start <= t < end:
                return start, end
            if end <= t:
                return None
        return None

    def relay_off_after(self, t0: float, timeout_s: float = OFF_TIMEOUT_S) -> float | None:
        hit = self.relay.changes.wait_for(t0, lambda on: not on, timeout_s)
        return None if hit is None else hit[0]
