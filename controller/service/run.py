"""`irlamp run`, `irlamp selftest`: the daemon in real time.

`run_daemon` wires real (or, with --simulate, simulated) hardware to the same `Daemon`
the scenario simulator drives, then loops: step, wait for the next sample or tick.
Sensor samplers, the guard, the journal writer and the status writer run on their own
threads: the loop never waits for the disk. SIGTERM/SIGINT/SIGHUP switch the
relay off in the handler itself, then stop the loop; `finally` switches it off again.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from pathlib import Path

from controller.service.clock import ClockSync, RealClock, boot_id
from controller.service.daemon import Daemon, FatalLoopError
from controller.service.dirlock import lock_state_dir
from controller.service.failsafe import write_output_record
from controller.service.journal import Journal
from controller.service.notify import SystemdNotifier
from controller.service.preflight import check_startup
from controller.service.remote_stop import open_remote_stop
from controller.service.status_writer import status_path
from controller.service.storage import storage_error
from drivers.hardware import build_hardware, reopening_readers

log = logging.getLogger("irlamp")


def _real_sources(cfg):
    """The Adafruit-driver sources on the Pi's bus 1, shared politely by both sampler threads."""
    from drivers.i2c_bus import pi_i2c_bus
    from drivers.vl53l0x import data_ready_input

    ready_pin = data_ready_input(cfg.gpio.distance_ready_pin)
    distance, skin = reopening_readers(pi_i2c_bus, cfg.distance.timing_budget_ms, ready_pin)
    return distance, skin, None


def _sim_sources(cfg, clock):
    from gpiozero.pins.mock import MockFactory

    from drivers.sim_sensors import SimDistanceSource, SimSkinSource, SimWorld

    world = SimWorld(400.0, 32.0, thermal_model=True, seed=int(time.time()), monotonic=clock.monotonic)
    return SimDistanceSource(world), SimSkinSource(world), MockFactory(), world


def start_threads(hw, cfg, clock) -> None:
    """Start the sensor samplers and the guard's own thread (everything but the loop)."""
    hw.distance.start()
    hw.skin.start()
    hw.guard.start_thread(clock.monotonic, cfg.loop.guard_deadline_s / 5.0)


def serve(daemon: Daemon, clock, wake: threading.Event, stop: threading.Event, step=None) -> None:
    """The control loop: step, then sleep until the next sample (`wake`) or tick, until `stop`.
    `step` replaces `daemon.step` (the benchmark wraps it to time or freeze the loop)."""
    step = step or daemon.step
    while not stop.is_set():
        step()
        wake.wait(max(0.0, daemon.next_wake_s() - clock.monotonic()))
        wake.clear()


def run_daemon(cfg, args) -> int:
    check_startup(cfg)
    state_dir = Path(args.state_dir or cfg.paths.state_dir)
    runtime_dir = Path(args.runtime_dir or cfg.paths.runtime_dir)
    status_file = status_path(runtime_dir, state_dir)
    # One daemon per lamp: locked before any pin, record, journal or status file is touched;
    # held until this process ends (the kernel drops it however the process dies).
    writer_lock = lock_state_dir(state_dir, status_file)
    try:
        # Before any pin is driven: `irlamp failsafe` drives these pins off after a crash,
        # whatever the config file says by then. Beside the status file (tmpfs when there is one).
        record_dir = status_file.parent
        try:
            write_output_record(record_dir, cfg.gpio)
        except OSError as exc:
            raise storage_error(record_dir, exc, "record the relay pins for the fail-safe") from exc
        this_boot = boot_id()
        journal = Journal(state_dir, this_boot)  # refuses a damaged journal before any pin
        handed_over: list[bool] = []
        try:
            return _run_locked(cfg, args, journal, this_boot, runtime_dir, status_file, handed_over)
        finally:
            if not handed_over:  # a daemon's journal writer closes it on its own thread, after
                journal.close()  # its backlog; a writer stuck on the disk must not be waited on
    finally:
        writer_lock.release()


def _run_locked(
    cfg, args, journal: Journal, this_boot: str, runtime_dir: Path, status_file: Path, handed_over: list[bool]
) -> int:
    clock = RealClock()
    wake = threading.Event()
    stop = threading.Event()
    world = None
    if args.simulate:
        distance_src, skin_src, factory, world = _sim_sources(cfg, clock)
    else:
        distance_src, skin_src, factory = _real_sources(cfg)
    hw = build_hardware(
        cfg,
        distance_source=distance_src,
        skin_source=skin_src,
        monotonic=clock.monotonic,
        pin_factory=factory,
        on_sample=wake.set,
    )
    if world is not None:
        world.lamp_on = hw.output.is_on
    notifier = SystemdNotifier()
    daemon = None
    remote_stop = None
    reason = "exit"
    try:
        remote_stop = open_remote_stop(runtime_dir)
        daemon = Daemon(
            cfg,
            hw,
            clock,
            journal,
            status_path=status_file,
            boot_id=this_boot,
            clock_synced=ClockSync(),
            notifier=notifier,
            simulated=bool(args.simulate),
            remote_stop=remote_stop,
            on_journal_commit=wake.set,
        )
        handed_over.append(True)

        def on_signal(signum, _frame):
            nonlocal reason
            hw.output.set(False, f"signal_{signal.Signals(signum).name}")
            reason = signal.Signals(signum).name
            stop.set()
            wake.set()

        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, on_signal)
        start_threads(hw, cfg, clock)
        daemon.step()
        notifier.ready(daemon.status_line())
        log.info(
            "irlamp running (%s); lamp off until the button starts a session",
            "SIMULATED hardware" if args.simulate else "real hardware",
        )
        keyboard = None
        if world is not None:
            from drivers.sim_keyboard import KeyboardDriver

            keyboard = KeyboardDriver(world, factory, cfg, daemon, stop, wake)
            keyboard.start()
        serve(daemon, clock, wake, stop)
        if keyboard is not None:
            keyboard.stop()
        daemon.shutdown(reason)
        return 0
    except FatalLoopError as exc:
        log.critical("%s; exiting so systemd restarts the daemon (lamp off)", exc)
        return 1
    finally:
        hw.output.set(False, "exit")
        try:
            if daemon is not None:
                daemon.shutdown(reason)  # a no-op after a clean stop; drains the writer otherwise
        finally:
            hw.close()
            if remote_stop is not None:
                remote_stop.close()
            notifier.close()


def selftest(cfg, seconds: float, pin_factory=None) -> int:
    from gpiozero import LED, Buzzer

    from controller.service.selftest import run_selftest_on_pi
    from drivers.relay import open_relay_line, switch_pair

    check_startup(cfg)
    g = cfg.gpio
    # The relays through the relay driver, like the daemon's: claimed at their off level.
    outputs = {
        "relay": open_relay_line(g.relay_pin, g.relay_active_high, pin_factory),
        "green": LED(g.led_green_pin, pin_factory=pin_factory),
        "amber": LED(g.led_amber_pin, pin_factory=pin_factory),
        "red": LED(g.led_red_pin, pin_factory=pin_factory),
    }
    if g.enable_relay_pin is not None:
        outputs["enable_relay"] = open_relay_line(g.enable_relay_pin, g.enable_relay_active_high, pin_factory)
    if g.buzzer_pin is not None:
        outputs["buzzer"] = Buzzer(g.buzzer_pin, pin_factory=pin_factory)
    try:
        return run_selftest_on_pi(outputs, readings_s=seconds, cfg=cfg)
    finally:
        switch_pair(outputs["relay"], outputs.get("enable_relay"), False)
