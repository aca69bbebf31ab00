"""The latency trials, run in-process on `bench.harness.IrlampRig` (one complete daemon each).

Each function returns a list of dicts, one per trial, times in ms (perf_counter):
  distance_trials     too close -> relay off, back -> resume, repeated in one session
  overheat_trials     skin >= limit -> relay off (latches: one fresh daemon per trial)
  stall_trials        loop frozen mid-session -> the guard thread cuts the relay
  hang_trials         a read that blocks (sim distance 'hang' fault, or the whole I2C bus stuck)
  thread_wake_trials  the platform's thread hand-off latency, without any daemon

Run some in their own process: `python -m bench.trials distance=70 overheat=10 --seed 1`
prints one JSON object (trials, errors, per-thread CPU of the distance session).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench.harness import IN_BAND_MM, OVERHEAT_C, TOO_CLOSE_MM, BenchError, IrlampRig, bench_config
from bench.instruments import now
from bench.report import summarize


def _ms(later: float | None, earlier: float | None) -> float | None:
    return None if later is None or earlier is None else round((later - earlier) * 1000.0, 4)


@dataclass
class _Dirs:
    """Fresh state directories (journal, status) under one temporary root."""

    root: str
    count: int = 0

    def new(self) -> Path:
        self.count += 1
        path = Path(self.root) / f"daemon{self.count}"
        path.mkdir()
        return path


def _fresh_sessions(cfg, n: int, seed: int, **rig_options):
    """n fresh daemons, one after another, each with a session running; closed after use.
    (Overheat, stall and hang trials latch a fault, so each needs a daemon of its own.)"""
    with tempfile.TemporaryDirectory(prefix="irlamp-bench-") as root:
        dirs = _Dirs(root)
        for i in range(n):
            rig = IrlampRig(cfg, dirs.new(), seed=seed * 1000 + i, **rig_options)
            rig.start()
            try:
                rig.start_session()
                yield rig
            finally:
                rig.close()


# -- trials -----------------------------------------------------------------------------
def distance_trials(n: int, *, seed: int = 0, cfg=None, usage: dict | None = None) -> list[dict]:
    """Too close -> off, then back in band -> resumed, `n` times in one session.

    `usage`, if given, receives the CPU share of each daemon thread over the session
    (the real VL53L0X/MLX90614 readers on the emulated chips included).
    """
    cfg = cfg or bench_config()
    if n + 1 > cfg.session.max_switches:  # the start and every resume are switch-ons (SR-14)
        raise BenchError(
            f"distance: {n} trials need {n + 1} switch-ons in one session; session.max_switches is "
            f"{cfg.session.max_switches}"
        )
    rng = random.Random(seed)
    min_mm = cfg.distance.min_mm
    period_s = cfg.distance.timing_budget_ms / 1000.0
    hazard = lambda mm: mm < min_mm  # noqa: E731
    trials = []
    with tempfile.TemporaryDirectory(prefix="irlamp-bench-") as root:
        rig = IrlampRig(cfg, _Dirs(root).new(), seed=seed)
        rig.start()
        try:
            rig.start_session()
            cpu0, wall0 = thread_cpu_s(), now()
            for _ in range(n):
                time.sleep(0.05 + rng.uniform(0.0, period_s))  # random phase to the sensor's period
                t_onset = now()
                rig.set_distance(TOO_CLOSE_MM)
                t_off = rig.relay_off_after(t_onset)
                time.sleep(0.05)  # the switching step has finished and been logged
                sample = rig.distance.values.first_after(t_onset, hazard)
                ready = rig.vl53.ready.first_after(t_onset - period_s, hazard)
                t_ready = None if ready is None else max(ready[0], t_onset)
                trials.append(
                    _latencies("distance", t_onset, None if sample is None else sample[0], t_ready, t_off, rig)
                )
                t_back = now()
                rig.set_distance(IN_BAND_MM)
                if rig.relay.changes.wait_for(t_back, lambda on: on, cfg.distance.resume_after_s + 2.0) is None:
                    raise BenchError(
                        f"the lamp did not resume after trial {len(trials)} "
                        f"(state {rig.daemon.controller.state}, faults {rig.daemon.controller.latched})"
                    )
            if usage is not None:
                usage.update(_thread_usage(cpu0, thread_cpu_s(), now() - wall0))
                steps = [(end - start) * 1000.0 for start, end in rig.steps if start >= wall0]
                usage["loop_steps_per_s"] = round(len(steps) / (now() - wall0), 1)
                usage["loop_step_ms"] = summarize(steps)
        finally:
            rig.close()
    return trials


def overheat_trials(n: int, *, seed: int = 0, cfg=None) -> list[dict]:
    """Skin jumps to 44 C at a random phase of the 250 ms skin period; a fresh daemon each time."""
    cfg = cfg or bench_config()
    rng = random.Random(seed)
    limit_c = cfg.skin.limit_c
    period_s = cfg.skin.period_ms / 1000.0
    trials = []
    for rig in _fresh_sessions(cfg, n, seed):
        time.sleep(0.05 + rng.uniform(0.0, period_s))
        t_onset = now()
        rig.set_skin(OVERHEAT_C)
        t_off = rig.relay_off_after(t_onset)
        time.sleep(0.02)
        sample = rig.skin.values.first_after(t_onset, lambda c: c >= limit_c)
        trials.append(_latencies("overheat", t_onset, None if sample is None else sample[0], None, t_off, rig))
    return trials


def stall_trials(n: int, *, seed: int = 0, cfg=None, kind: str = "stall") -> list[dict]:
    """The loop stops stepping mid-session; only the guard thread can cut the relay."""
    cfg = cfg or bench_config()
    deadline_ms = cfg.loop.guard_deadline_s * 1000.0
    rng = random.Random(seed)
    trials = []
    for rig in _fresh_sessions(cfg, n, seed):
        time.sleep(0.1 + rng.uniform(0.0, 0.1))
        t_freeze = now()
        rig.gate.clear()
        t_off = rig.relay_off_after(t_freeze)
        last_step = rig.last_step_s
        last_confirm_to_off = _ms(t_off, rig.hw.guard.last_confirm_s)  # the guard's own deadline base
        trials.append(
            {
                "kind": kind,
                "onset_to_off_ms": _ms(t_off, t_freeze),
                "last_step_to_off_ms": _ms(t_off, last_step),
                "last_confirm_to_off_ms": last_confirm_to_off,
                "beyond_deadline_ms": None if t_off is None else round(last_confirm_to_off - deadline_ms, 4),
                "guard_trip": rig.hw.guard.tripped,
                "off": t_off is not None,
            }
        )
    return trials


def hang_trials(n: int, *, seed: int = 0, cfg=None, sources: str = "sim") -> list[dict]:
    """A read that never returns: sim distance 'hang' fault, or (emulated) the I2C bus stuck."""
    cfg = cfg or bench_config()
    rng = random.Random(seed)
    trials = []
    kind = "hang_distance" if sources == "sim" else "hang_bus"
    for rig in _fresh_sessions(cfg, n, seed, sources=sources):
        time.sleep(0.1 + rng.uniform(0.0, 0.1))
        t_hang = now()
        rig.hang()
        t_off = rig.relay_off_after(t_hang)
        time.sleep(0.3)  # let the 'hang' fault latch, to report it
        trials.append(
            {
                "kind": kind,
                "onset_to_off_ms": _ms(t_off, t_hang),
                "faults": list(rig.daemon.controller.latched),
                "off": t_off is not None,
            }
        )
    return trials


def _latencies(
    kind: str,
    t_onset: float,
    t_sample: float | None,
    t_ready: float | None,
    t_off: float | None,
    rig: IrlampRig | None = None,
) -> dict:
    trial = {
        "kind": kind,
        "off": t_off is not None,
        "onset_to_off_ms": _ms(t_off, t_onset),
        "sample_to_off_ms": _ms(t_off, t_sample),
        "ready_to_off_ms": _ms(t_off, t_ready),
        "onset_to_sample_ms": _ms(t_sample, t_onset),
        "onset_to_ready_ms": _ms(t_ready, t_onset),
    }
    if t_off is not None and t_sample is not None and t_off < t_sample:
        trial["note"] = "relay went off before the hazardous sample (another cause)"
    elif rig is not None and t_off is not None and t_sample is not None:
        trial.update(_path_profile(rig, t_sample, t_off))
    return trial


def _path_profile(rig: IrlampRig, t_sample: float, t_off: float) -> dict:
    """Where sample -> off went. The sampler's own hazard cut (no loop step involved) is the
    normal path: `cut_by_sampler`. When a loop step switched it instead: finishing a step
    already running when the sample arrived (busy), waking the loop for the next step (wake),
    and that step's work up to the relay write (step_to_relay)."""
    switching = rig.step_around(t_off)
    if switching is None:
        return {"cut_by_sampler": True}
    busy = rig.step_around(t_sample)
    busy_end = t_sample if busy is None or busy == switching else busy[1]
    return {
        "cut_by_sampler": False,
        "profile_busy_ms": round((busy_end - t_sample) * 1000.0, 4),
        "profile_wake_ms": round(max(0.0, switching[0] - busy_end) * 1000.0, 4),
        "profile_step_to_relay_ms": round((t_off - max(switching[0], t_sample)) * 1000.0, 4),
        "profile_switching_step_ms": round((switching[1] - switching[0]) * 1000.0, 4),
    }


def thread_wake_trials(n: int, *, seed: int = 0) -> list[dict]:
    """The platform's floor: one thread sets an Event, another wakes up (no daemon involved).

    irlamp's hazard path crosses exactly one such hand-off (sampler thread -> loop thread),
    so this tail is part of every sample -> off figure measured on this machine.
    """
    rng = random.Random(seed)
    event, done = threading.Event(), threading.Event()
    set_at = [0.0]
    woke: list[float] = []

    def waiter() -> None:
        while not done.is_set():
            if event.wait(1.0):
                woke.append(now() - set_at[0])
                event.clear()

    thread = threading.Thread(target=waiter, name="bench-wake", daemon=True)
    thread.start()
    for _ in range(n):
        time.sleep(rng.uniform(0.002, 0.008))
        set_at[0] = now()
        event.set()
    time.sleep(0.01)
    done.set()
    event.set()
    thread.join(timeout=2.0)
    return [{"kind": "thread_wake", "off": True, "wake_ms": round(w * 1000.0, 4)} for w in woke[:n]]


GUARD_DEADLINE_TIGHT_S = 0.4  # the config-only remedy for the stall target (see bench/README.md)

TRIALS = {
    "distance": distance_trials,
    "overheat": overheat_trials,
    "stall": stall_trials,
    "stall_tight": lambda n, seed=0: stall_trials(
        n, seed=seed, kind="stall_tight", cfg=bench_config({"loop": {"guard_deadline_s": GUARD_DEADLINE_TIGHT_S}})
    ),
    "hang_distance": lambda n, seed=0: hang_trials(n, seed=seed, sources="sim"),
    "hang_bus": lambda n, seed=0: hang_trials(n, seed=seed, sources="emulated"),
    "thread_wake": thread_wake_trials,
}


def thread_cpu_s() -> dict[str, float]:
    """CPU seconds used so far by each live thread of this process, by thread name."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for thread in threading.enumerate():
        try:
            fields = Path(f"/proc/self/task/{thread.native_id}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, TypeError):
            continue
        out[thread.name] = out.get(thread.name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def _thread_usage(before: dict[str, float], after: dict[str, float], wall_s: float) -> dict:
    daemon = {name: after[name] - before.get(name, 0.0) for name in after if name.startswith("irlamp-")}
    return {
        "session_s": round(wall_s, 2),
        "thread_cpu_percent": {name: round(100.0 * cpu / wall_s, 3) for name, cpu in sorted(daemon.items())},
        "daemon_cpu_percent": round(100.0 * sum(daemon.values()) / wall_s, 3),
    }


def run_kinds(plan: list[tuple[str, int]], seed: int) -> dict:
    results: dict = {"trials": [], "errors": [], "usage": {}}
    for kind, n in plan:
        try:
            if kind == "distance":
                results["trials"] += distance_trials(n, seed=seed, usage=results["usage"])
                continue
            results["trials"] += TRIALS[kind](n, seed=seed)
        except BenchError as exc:
            results["errors"].append(f"{kind}: {exc}")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="run irlamp latency trials in this process, print JSON")
    parser.add_argument("plan", nargs="+", help="KIND=N pairs, e.g. distance=70 overheat=40")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--label", default="", help="appended to each trial's kind (e.g. '_loaded')")
    args = parser.parse_args(argv)
    plan = []
    for item in args.plan:
        kind, _, count = item.partition("=")
        if kind not in TRIALS or not count.isdigit():
            print(f"bench.trials: bad trial plan {item!r} (kinds: {', '.join(TRIALS)})", file=sys.stderr)
            return 2
        plan.append((kind, int(count)))
    # The daemon logs at INFO as `irlamp run` does; here to /dev/null instead of the journal.
    logging.basicConfig(level=logging.INFO, stream=open(os.devnull, "w"), format="%(levelname)s %(name)s: %(message)s")
    wall0, cpu0 = time.monotonic(), time.process_time()
    results = run_kinds(plan, args.seed)
    for trial in results["trials"]:
        trial["kind"] += args.label
    results["wall_s"] = time.monotonic() - wall0
    results["process_cpu_s"] = time.process_time() - cpu0
    json.dump(results, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
