"""THE BASELINES - not irlamp. The straightforward programs irlamp is measured against.

Two styles of the same loop, measured side by side:
  - busy  (the Adafruit example style): read, check, read again at once. In continuous mode
    `VL53L0X.range` busy-waits for data-ready, so on the in-process emulated chip the loop
    burns a core (on a Pi the driver's wait is I2C polling, which also never sleeps);
  - sleeping (a careful hobbyist): the same loop with `time.sleep(one distance period)` after
    each round - the fair comparison for CPU.

What a first version of a lamp controller usually looks like: one `while True` loop that
calls the Adafruit drivers' blocking reads and checks the limits inline:

    while True:
        distance_mm = tof.range                  # VL53L0X, continuous mode: busy-waits for data-ready
        skin_c = mlx.object_temperature          # MLX90614
        if button pressed and not heating: start heating
        if skin_c >= 43: stop heating            # overheat ends the session
        relay.value = heating and distance_mm >= 304.8 and on-time < 20 min

No threads, no watchdog, no journal, no status file: nothing can switch the relay off
while the loop is stuck in a read or frozen. It runs on the same emulated chips
(tests/emulated_i2c.py) and gpiozero MockFactory pins as the benchmark's irlamp.

  python -m bench.baseline [--sleeping]    run it (stdin lines: 'space' = button, 'q' = quit),
                                           READY=1 to $NOTIFY_SOCKET once the sensors are up
  python -m bench.baseline trials [--sleeping] distance=200 overheat=200 stall=3 hang=3
                                           latency trials in this process, JSON on stdout
"""

from __future__ import annotations

import json
import os
import random
import socket
import sys
import threading
import time
from typing import Callable

import adafruit_mlx90614
import adafruit_vl53l0x
from gpiozero import Button, OutputDevice
from gpiozero.pins.mock import MockFactory

RELAY_PIN, BUTTON_PIN = 17, 27
MIN_DISTANCE_MM = 304.8
SKIN_LIMIT_C = 43.0
MAX_ON_S = 20 * 60.0
TIMING_BUDGET_US = 33000
SLEEP_S = TIMING_BUDGET_US / 1e6  # the sleeping baseline: one distance period per round

Observe = Callable[[str, float], None]


class NaiveLamp:
    """The baseline controller. `observe(name, value)` is a bench probe called after each read."""

    def __init__(self, i2c, pin_factory, observe: Observe | None = None, sleep_s: float = 0.0):
        self.tof = adafruit_vl53l0x.VL53L0X(i2c)
        self.tof.measurement_timing_budget = TIMING_BUDGET_US
        self.tof.start_continuous()
        self.mlx = adafruit_mlx90614.MLX90614(i2c)
        self.relay = OutputDevice(RELAY_PIN, initial_value=False, pin_factory=pin_factory)
        self.button = Button(BUTTON_PIN, pull_up=True, pin_factory=pin_factory)
        self.observe = observe
        self.sleep_s = sleep_s  # 0: busy (Adafruit example); SLEEP_S: the sleeping baseline
        self.heating = False
        self.heating_since = 0.0

    def run(self, stop: threading.Event) -> None:
        """The loop. (`stop` only lets the bench end it; the program it stands for never ends.)"""
        while not stop.is_set():
            distance_mm = self.tof.range
            if self.observe:
                self.observe("distance", distance_mm)
            skin_c = self.mlx.object_temperature
            if self.observe:
                self.observe("skin", skin_c)
            if self.button.is_pressed and not self.heating:
                self.heating, self.heating_since = True, time.monotonic()
            if skin_c >= SKIN_LIMIT_C or time.monotonic() - self.heating_since >= MAX_ON_S:
                self.heating = False
            self.relay.value = self.heating and distance_mm >= MIN_DISTANCE_MM
            if self.sleep_s:
                time.sleep(self.sleep_s)
        self.relay.off()


# -- as a program (CPU, memory and start-up are measured on this) -------------------------
def _notify(message: str) -> None:
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(message.encode(), address)


def _keyboard(factory, lamp: NaiveLamp, stop: threading.Event) -> None:
    """Bench scaffolding, not part of the baseline: stdin lines press the mock button."""
    from bench.instruments import press_on_stdin_lines

    def report() -> None:
        time.sleep(0.2)
        _notify(f"STATUS=lamp {'ON' if lamp.relay.value else 'off'}")

    press_on_stdin_lines(factory.pin(BUTTON_PIN), 0.3, report)
    stop.set()


def program(sleep_s: float = 0.0) -> int:
    from emulated_i2c import emulated_bus

    bus, _, _ = emulated_bus(distance_mm=400.0, object_c=33.0)
    factory = MockFactory()
    lamp = NaiveLamp(bus, factory, sleep_s=sleep_s)
    stop = threading.Event()
    threading.Thread(target=_keyboard, args=(factory, lamp, stop), daemon=True).start()
    _notify(f"READY=1\nMAINPID={os.getpid()}")
    lamp.run(stop)
    return 0


# -- latency trials (in process, same instruments as irlamp's) ----------------------------
class BaselineRig:
    """The baseline loop on a thread, on the noisy emulated chips, with timed pins and probes."""

    def __init__(self, seed: int = 0, sleep_s: float = 0.0):
        from bench.instruments import Timeline, noisy_bus, timed_factory

        self.bus, self.vl53, self.mlx = noisy_bus(seed=seed, distance_mm=400.0, skin_c=33.0)
        self.factory = timed_factory()
        self.values = {"distance": Timeline(), "skin": Timeline()}
        self.gate = threading.Event()  # cleared: the loop freezes at its next probe
        self.gate.set()
        self.lamp = NaiveLamp(self.bus, self.factory, observe=self._observe, sleep_s=sleep_s)
        self.relay = self.factory.pin(RELAY_PIN)
        self.button = self.factory.pin(BUTTON_PIN)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.lamp.run, args=(self.stop,), name="baseline-loop", daemon=True)

    def _observe(self, name: str, value: float) -> None:
        self.values[name].add(value)
        self.gate.wait()

    def press(self) -> None:
        self.button.drive_low()
        time.sleep(0.08)  # seen by at least two 33 ms loop turns
        self.button.drive_high()

    def close(self) -> None:
        self.bus.stuck = False
        self.stop.set()
        self.gate.set()
        self.thread.join(timeout=2.0)


def baseline_trials(plan: list[tuple[str, int]], *, seed: int = 0, never_s: float = 2.0, sleep_s: float = 0.0) -> dict:
    """Same trial kinds and definitions as bench.trials; stall/hang wait `never_s` for an off."""
    from bench.harness import BenchError
    from bench.trials import _latencies
    from bench.instruments import now

    rng = random.Random(seed)
    period_s = TIMING_BUDGET_US / 1e6
    trials: list[dict] = []
    errors: list[str] = []
    for kind, n in plan:
        rig = BaselineRig(seed, sleep_s)
        rig.thread.start()
        try:
            t_press = now()
            rig.press()
            if rig.relay.changes.wait_for(t_press, lambda on: on, 2.0) is None:
                raise BenchError("the baseline did not switch the lamp on")
            for _ in range(n):
                time.sleep(0.03 + rng.uniform(0.0, period_s))
                t_onset = now()
                if kind == "distance":
                    rig.vl53.distance_mm = 250.0
                elif kind == "overheat":
                    rig.mlx.object_c = 44.0
                elif kind == "stall":
                    rig.gate.clear()
                elif kind == "hang":
                    rig.bus.stuck = True
                else:
                    raise BenchError(f"unknown trial kind {kind!r}")
                timeout_s = never_s if kind in ("stall", "hang") else 1.0
                hit = rig.relay.changes.wait_for(t_onset, lambda on: not on, timeout_s)
                t_off = None if hit is None else hit[0]
                if kind in ("stall", "hang"):
                    trials.append(
                        {
                            "kind": kind,
                            "off": t_off is not None,
                            "onset_to_off_ms": None if t_off is None else round((t_off - t_onset) * 1000, 4),
                            "waited_s": never_s,
                        }
                    )
                    rig.gate.set()
                    rig.bus.stuck = False
                else:
                    name, hazard = (
                        ("distance", lambda mm: mm < MIN_DISTANCE_MM)
                        if kind == "distance"
                        else ("skin", lambda c: c >= SKIN_LIMIT_C)
                    )
                    sample = rig.values[name].first_after(t_onset, hazard)
                    ready = rig.vl53.ready.first_after(t_onset - period_s, hazard) if kind == "distance" else None
                    t_ready = None if ready is None else max(ready[0], t_onset)
                    trials.append(_latencies(kind, t_onset, None if sample is None else sample[0], t_ready, t_off))
                rig.vl53.distance_mm, rig.mlx.object_c = 400.0, 33.0
                t_back = now()
                if kind != "distance":
                    rig.press()  # overheat (and a possible off) ended the session
                if rig.relay.changes.wait_for(t_back, lambda on: on, 2.0) is None and not rig.relay.state:
                    raise BenchError(f"the baseline did not come back on after a {kind} trial")
        except BenchError as exc:
            errors.append(f"baseline {kind}: {exc}")
        finally:
            rig.close()
    return {"trials": trials, "errors": errors}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv == ["--sleeping"]:
        return program(SLEEP_S if argv else 0.0)
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.baseline")
    parser.add_argument("mode", choices=["trials"])
    parser.add_argument("plan", nargs="+", help="KIND=N, KIND in distance, overheat, stall, hang")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sleeping", action="store_true", help="the sleeping baseline (default: busy)")
    parser.add_argument("--label", default="", help="appended to each trial's kind (e.g. '_loaded')")
    parser.add_argument(
        "--never-s", type=float, default=2.0, help="how long a stall/hang trial waits for an off that never comes"
    )
    args = parser.parse_args(argv)
    plan = []
    for item in args.plan:
        kind, _, count = item.partition("=")
        if kind not in ("distance", "overheat", "stall", "hang") or not count.isdigit():
            print(f"bench.baseline: bad trial plan {item!r}", file=sys.stderr)
            return 2
        plan.append((kind, int(count)))
    wall0 = time.monotonic()
    results = baseline_trials(plan, seed=args.seed, never_s=args.never_s, sleep_s=SLEEP_S if args.sleeping else 0.0)
    for trial in results["trials"]:
        trial["kind"] += args.label
    results["wall_s"] = time.monotonic() - wall0
    json.dump(results, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
