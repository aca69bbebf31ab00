"""`make bench`: irlamp and the naive baseline on simulated hardware in real time.

Writes bench/results.json and prints a table. Its phases, each a few fresh processes:
  0. start-up to READY=1, several times each, on an otherwise idle machine;
  1. irlamp: `irlamp run --simulate` measured from outside (CPU idle and running, peak RSS)
     while worker processes run the latency trials in-process (bench/trials.py on bench/harness.py);
  2. the baseline's latency trials (bench/baseline.py), alone;
  3. the baseline program's CPU and RSS, alone;
  slow disk: irlamp with a slow journal disk (bench/slow_disk.py: every commit +1 s; a commit
     that never returns), alone; `make bench-slow-disk` runs this phase by itself.
(`make bench` then runs phase 4, the MQTT bridge: bench/bridge.py.)
The irlamp workers run side by side to fit the time budget; each holds one complete daemon,
and the light load of the others can only make the figures more pessimistic. The baseline
busy-waits a whole core, so its two measurements get the machine to themselves.
See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:           # `python bench/run.py` puts bench/ first, not the repo
    sys.path.insert(0, str(REPO))

from bench import report  # noqa: E402
from bench.procstats import baseline_command, irlamp_command, measure_program, measure_startups  # noqa: E402


@dataclass(frozen=True)
class Plan:
    startups: int                               # fresh starts per program (phase 0)
    idle_s: float                               # CPU measurement windows
    running_s: float
    settle_s: float
    irlamp_workers: tuple[tuple[str, ...], ...]  # each worker's KIND=N items (bench.trials)
    baseline_trials: tuple[str, ...]             # KIND=N items (bench.baseline trials)
    baseline_never_s: float                      # how long a baseline stall/hang waits for an off
    slow_disk: tuple[str, ...] = ("--full",)     # bench.slow_disk arguments ('--quick' or '--full')


FULL = Plan(startups=5, idle_s=30.0, running_s=30.0, settle_s=1.0,
            irlamp_workers=(("distance=70",), ("distance=70",), ("distance=70",),
                            ("overheat=100", "stall=20", "stall_tight=10"),
                            ("overheat=100", "hang_distance=15", "hang_bus=10", "thread_wake=1000")),
            baseline_trials=("distance=210", "overheat=200", "stall=3", "hang=3"),
            baseline_never_s=1.5)

QUICK = Plan(startups=1, idle_s=0.3, running_s=0.3, settle_s=0.2,
             irlamp_workers=(("distance=2", "overheat=2"),
                             ("stall=1", "stall_tight=1", "hang_distance=1", "hang_bus=1", "thread_wake=20")),
             baseline_trials=("distance=2", "overheat=2", "stall=1", "hang=1"),
             baseline_never_s=0.5, slow_disk=("--quick",))

WORKER_TIMEOUT_S = 240.0


def _spawn(argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *argv], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _collect(proc: subprocess.Popen, label: str, errors: list[str]) -> dict:
    try:
        out, err = proc.communicate(timeout=WORKER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        errors.append(f"{label}: killed after {WORKER_TIMEOUT_S:.0f} s")
    try:
        data = json.loads(out)
    except json.JSONDecodeError:
        tail = (err.strip().splitlines() or ["no output"])[-1]
        errors.append(f"{label}: exit {proc.returncode}, no results ({tail})")
        return {"trials": [], "errors": []}
    errors += [f"{label}: {e}" for e in data.get("errors", [])]
    return data


def _program_figures(run: dict | None, startups: list[float], errors: list[str], label: str) -> dict:
    if run is None:
        errors.append(f"{label}: no CPU/RSS figures")
        run = {"idle": {}, "running": {}, "rss_peak_mb": None, "startup_s": None, "threads": None}
    startup = report.summarize(startups)
    startup["samples"] = startups
    startup["during_cpu_run"] = run["startup_s"]
    return {"cpu_percent": {"idle": run["idle"].get("cpu_percent"), "running": run["running"].get("cpu_percent"),
                            "windows": {"idle": run["idle"], "running": run["running"]}},
            "rss_mb": run["rss_peak_mb"], "threads": run["threads"], "startup_s": startup}


STALL_FIGURES = ("loop_frozen", "loop_frozen_deadline_0.4", "read_hangs", "bus_stuck")


def _latency_figures(trials: list[dict], kinds: dict[str, str]) -> tuple[dict, dict]:
    """(hazard_to_off_ms, stall_to_off_ms) from trial records; `kinds` maps figure -> trial kind."""
    hazard = {name: report.latency_figures(trials, kinds[name]) for name in ("distance", "overheat")}
    stall = {name: report.latency_figures(trials, kinds.get(name, "none")) for name in STALL_FIGURES}
    return hazard, stall


def _ratio(a, b):
    if a is None:
        return None
    if b is None:
        return "baseline never"
    return round(a / b, 3) if b else None


def _ratios(irl: dict, base: dict) -> dict:
    hi, hb = irl["hazard_to_off_ms"], base["hazard_to_off_ms"]
    out = {}
    for kind in ("distance", "overheat"):
        for field in ("sample_to_off", "onset_to_off", "ready_to_off"):
            a, b = hi[kind].get(field, {}).get("p99"), hb[kind].get(field, {}).get("p99")
            if a is not None or b is not None:
                out[f"{kind}_{field}_p99"] = _ratio(a, b)
    si, sb = irl["stall_to_off_ms"], base["stall_to_off_ms"]
    out["stall_to_off"] = _ratio(si["loop_frozen"].get("onset_to_off", {}).get("max"),
                                 sb["loop_frozen"].get("onset_to_off", {}).get("max"))
    out["hang_to_off"] = _ratio(si["bus_stuck"].get("onset_to_off", {}).get("max"),
                                sb["bus_stuck"].get("onset_to_off", {}).get("max"))
    out["cpu_idle"] = _ratio(irl["cpu_percent"]["idle"], base["cpu_percent"]["idle"])
    out["cpu_running"] = _ratio(irl["cpu_percent"]["running"], base["cpu_percent"]["running"])
    out["rss"] = _ratio(irl["rss_mb"], base["rss_mb"])
    out["startup"] = _ratio(irl["startup_s"].get("p50"), base["startup_s"].get("p50"))
    return out


def run_bench(plan: Plan, out_path: Path | None, *, log=print) -> dict:
    """Run every measurement of `plan`; write the JSON to `out_path` (unless None); return it."""
    from bench.harness import BENCH_OVERRIDES, bench_config

    t0 = time.monotonic()
    errors: list[str] = []
    machine = report.machine_facts()
    cfg = bench_config()

    load: dict[str, dict] = {}
    log("phase 0: start-up to READY=1")
    meter = report.LoadMeter()
    irl_starts = measure_startups(irlamp_command, cwd=REPO, count=plan.startups)
    base_starts = measure_startups(baseline_command, cwd=REPO, count=plan.startups)
    load["phase0_startup"] = meter.read()

    log(f"phase 1: irlamp - CPU/RSS of `irlamp run --simulate` beside {len(plan.irlamp_workers)} latency workers")
    meter = report.LoadMeter()
    workers = [_spawn(["-m", "bench.trials", *items, "--seed", str(i + 1)])
               for i, items in enumerate(plan.irlamp_workers)]
    irl_run = _measure(irlamp_command, plan, errors, "irlamp")
    irl_data = [_collect(w, f"irlamp worker {i + 1}", errors) for i, w in enumerate(workers)]
    irl_trials = [t for d in irl_data for t in d["trials"]]
    usage = next((d["usage"] for d in irl_data if d.get("usage")), {})
    load["phase1_irlamp"] = meter.read()

    log("phase 2: baseline - latency worker (alone: its busy-wait needs a core)")
    meter = report.LoadMeter()
    worker = _spawn(["-m", "bench.baseline", "trials", *plan.baseline_trials,
                     "--never-s", str(plan.baseline_never_s)])
    base_trials = _collect(worker, "baseline worker", errors)["trials"]
    load["phase2_baseline_latency"] = meter.read()

    log("phase 3: baseline - CPU/RSS of bench/baseline.py (alone)")
    meter = report.LoadMeter()
    base_run = _measure(baseline_command, plan, errors, "baseline")
    load["phase3_baseline_cpu"] = meter.read()

    log("slow-disk phase: irlamp with a slow journal disk (alone)")
    meter = report.LoadMeter()
    disk_worker = _spawn(["-m", "bench.slow_disk", *[a for a in plan.slow_disk if a != "--full"]])
    slow_disk = _collect(disk_worker, "slow-disk worker", errors)
    load["slowdisk_journal"] = meter.read()

    irlamp = _program_figures(irl_run, irl_starts, errors, "irlamp")
    irlamp["cpu_percent"]["daemon_threads_emulated_chips"] = usage.get("daemon_cpu_percent")
    irlamp["cpu_percent"]["threads_emulated_chips"] = usage.get("thread_cpu_percent")
    irlamp["loop"] = {"steps_per_s": usage.get("loop_steps_per_s"), "step_ms": usage.get("loop_step_ms")}
    irlamp["hazard_to_off_ms"], irlamp["stall_to_off_ms"] = _latency_figures(
        irl_trials, {"distance": "distance", "overheat": "overheat", "loop_frozen": "stall",
                     "loop_frozen_deadline_0.4": "stall_tight", "read_hangs": "hang_distance",
                     "bus_stuck": "hang_bus"})
    baseline = _program_figures(base_run, base_starts, errors, "baseline")
    baseline["hazard_to_off_ms"], baseline["stall_to_off_ms"] = _latency_figures(
        base_trials, {"distance": "distance", "overheat": "overheat", "loop_frozen": "stall",
                      "read_hangs": "no such trial", "bus_stuck": "hang"})
    baseline["stall_to_off_ms"]["waited_s"] = plan.baseline_never_s

    results = {
        "schema": 1, "machine": machine, "plan": asdict(plan),
        "config": {"bench_overrides": BENCH_OVERRIDES, "distance_period_ms": _distance_period_ms(cfg),
                   "skin_period_ms": cfg.skin.period_ms, "guard_deadline_s": cfg.loop.guard_deadline_s,
                   "guard_check_period_s": cfg.loop.guard_deadline_s / 5.0, "loop_rate_hz": cfg.loop.rate_hz},
        "platform": {"thread_wake_ms": report.latency_figures(irl_trials, "thread_wake").get("wake", {}),
                     "load": load},
        "irlamp": irlamp, "baseline": baseline, "errors": errors,
        "slow_disk": {"figures": slow_disk.get("figures"), "plan": slow_disk.get("plan"),
                      "trials": slow_disk.get("trials", [])},
        "raw_trials": {"irlamp": irl_trials, "baseline": base_trials}}
    results["ratios"] = _ratios(irlamp, baseline)
    results["targets"] = report.check_targets(results)
    results["pi_estimate"] = report.pi_estimates(results)
    results["duration_s"] = round(time.monotonic() - t0, 1)
    if out_path is not None:
        out_path.write_text(json.dumps(results, indent=2) + "\n")
    return results


def _measure(command, plan: Plan, errors: list[str], label: str) -> dict | None:
    from bench.procstats import ProcessError
    try:
        return measure_program(command, cwd=REPO, idle_s=plan.idle_s, running_s=plan.running_s,
                               running_marker="lamp ON", settle_s=plan.settle_s)
    except ProcessError as exc:
        errors.append(f"{label}: {exc}")
        return None


def _distance_period_ms(cfg) -> float:
    """The period the emulated VL53L0X really ranges at for the configured timing budget."""
    from drivers.vl53l0x import VL53L0XSource

    from bench.instruments import noisy_bus
    bus, _, _ = noisy_bus()
    source = VL53L0XSource(bus, timing_budget_ms=cfg.distance.timing_budget_ms, io_timeout_s=0.2)
    try:
        return round(source.sample_period_s * 1000.0, 3)
    finally:
        source.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny trial counts (seconds, not minutes)")
    parser.add_argument("--out", default=str(REPO / "bench" / "results.json"), help="JSON output path")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    results = run_bench(plan, Path(args.out), log=lambda msg: print(msg, file=sys.stderr, flush=True))
    print(report.table(results))
    print(f"\n{args.out} written in {results['duration_s']:.0f} s")
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
