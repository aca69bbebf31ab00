"""`make bench`: irlamp and two baselines on emulated hardware in real time.

Writes bench/results.json and prints a table. Its phases, each a few fresh processes:
  0. start-up to READY=1: irlamp on its real readers over emulated chips (the headline), and
     both baselines, several times each, on an otherwise idle machine;
  1. irlamp's CPU (idle, then in a session) and peak RSS, measured from outside the process
     (bench/emulated_program.py: `irlamp run` on the real readers over emulated chips), alone;
     1b. what the session figure is made of: a second session run with the emulated chips'
     own CPU counted (bench/chip_cpu.py), and the readers alone at a session's rates
     (bench/readers_floor.py);
     1c. two latency workers side by side (overheat, stall, hang trials: bench/trials.py on
     bench/harness.py);
  2. distance hazard trials on an otherwise quiet machine (two workers);
  3. the loaded machine: two CPU-burning processes at normal priority, and beside them
     irlamp's distance trials, then the sleeping baseline's; the burners are killed after;
  4. the busy-waiting baseline's latency trials (alone: its busy-wait needs a core);
  5. the sleeping baseline's latency trials;
  6. both baselines' CPU and RSS, one after the other;
  slow disk: irlamp with a slow journal disk (bench/slow_disk.py), alone.
(`make bench` then runs the MQTT bridge's phase: bench/bridge.py.)
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
if str(REPO) not in sys.path:  # `python bench/run.py` puts bench/ first, not the repo
    sys.path.insert(0, str(REPO))

from bench import report  # noqa: E402
from bench.procstats import (  # noqa: E402
    measure_chip_share,
    baseline_command,
    emulated_command,
    measure_program,
    measure_startups,
    sleeping_baseline_command,
    sweep_runtime_dirs,
)

BASELINES = {"baseline_busy": ([], baseline_command), "baseline_sleeping": (["--sleeping"], sleeping_baseline_command)}


@dataclass(frozen=True)
class Plan:
    startups: int  # fresh starts of irlamp (phase 0)
    baseline_startups: int  # fresh starts of each baseline
    idle_s: float  # irlamp's CPU measurement windows
    running_s: float
    baseline_cpu_s: float  # each baseline's CPU windows (idle and running)
    settle_s: float
    side_workers: tuple[tuple[str, ...], ...]  # beside phase 1: KIND=N items (bench.trials)
    distance_workers: tuple[tuple[str, ...], ...]  # phase 2
    loaded: tuple[str, ...]  # phase 3, irlamp under two CPU burners
    baseline_loaded: tuple[str, ...]  # phase 3, the sleeping baseline under them
    baseline_trials: tuple[str, ...]  # KIND=N items (bench.baseline trials), each baseline
    baseline_never_s: float  # how long a baseline stall/hang waits for an off
    burners: int = 2
    slow_disk: tuple[str, ...] = ("--full",)  # bench.slow_disk arguments ('--quick' or '--full')


FULL = Plan(
    startups=5,
    baseline_startups=3,
    idle_s=60.0,  # six 10 s windows each (procstats.CPU_WINDOW_S)
    running_s=60.0,
    baseline_cpu_s=30.0,
    settle_s=2.0,
    side_workers=(
        ("overheat=80", "stall=20", "stall_tight=10"),
        ("overheat=80", "hang_distance=15", "hang_bus=10", "thread_wake=1000"),
    ),
    distance_workers=(("distance=60",), ("distance=60",)),
    loaded=("distance=60",),
    baseline_loaded=("distance=100",),
    baseline_trials=("distance=150", "overheat=150", "stall=3", "hang=3"),
    baseline_never_s=1.5,
)

QUICK = Plan(
    startups=1,
    baseline_startups=1,
    idle_s=0.3,
    running_s=0.3,
    baseline_cpu_s=0.3,
    settle_s=0.2,
    side_workers=(("overheat=2", "stall=1", "stall_tight=1", "hang_distance=1", "hang_bus=1", "thread_wake=20"),),
    distance_workers=(("distance=2",),),
    loaded=("distance=2",),
    baseline_loaded=("distance=2",),
    baseline_trials=("distance=2", "overheat=2", "stall=1", "hang=1"),
    baseline_never_s=0.5,
    slow_disk=("--quick",),
)

WORKER_TIMEOUT_S = 300.0
LOADED = "_loaded"


def _spawn(argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, *argv], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


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


class Burners:
    """`count` processes that burn a CPU each at normal priority; killed (by their pid) on exit."""

    def __init__(self, count: int):
        self.count = count
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> Burners:
        self.procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(self.count)]
        time.sleep(0.5)  # running at full tilt before the trials begin
        return self

    def __exit__(self, *exc) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()


def _program_figures(run: dict | None, startups: list[float], errors: list[str], label: str) -> dict:
    if run is None:
        errors.append(f"{label}: no CPU/RSS figures")
        run = {"idle": {}, "running": {}, "rss_peak_mb": None, "startup_s": None, "threads": None}
    startup = report.summarize(startups)
    startup["samples"] = startups
    startup["during_cpu_run"] = run["startup_s"]
    return {
        "cpu_percent": {
            "idle": run["idle"].get("cpu_percent"),
            "running": run["running"].get("cpu_percent"),
            "windows": {"idle": run["idle"], "running": run["running"]},
        },
        "rss_mb": run["rss_peak_mb"],
        "threads": run["threads"],
        "startup_s": startup,
    }


STALL_FIGURES = ("loop_frozen", "loop_frozen_deadline_0.4", "read_hangs", "bus_stuck")


def _latency_figures(trials: list[dict], kinds: dict[str, str]) -> tuple[dict, dict]:
    """(hazard_to_off_ms, stall_to_off_ms) from trial records; `kinds` maps figure -> trial kind."""
    hazard = {
        name: report.latency_figures(trials, kinds.get(name, "none"))
        for name in ("distance", "overheat", "distance" + LOADED)
    }
    stall = {name: report.latency_figures(trials, kinds.get(name, "none")) for name in STALL_FIGURES}
    return hazard, stall


def _ratio(a, b):
    if a is None:
        return None
    if b is None:
        return "baseline never"
    return round(a / b, 3) if b else None


def _ratios(irl: dict, base: dict) -> dict:
    """irlamp / baseline for every figure both have (p99 for latencies)."""
    hi, hb = irl["hazard_to_off_ms"], base["hazard_to_off_ms"]
    out = {}
    for kind in ("distance", "overheat", "distance" + LOADED):
        for field in ("sample_to_off", "onset_to_off", "ready_to_off"):
            a, b = hi[kind].get(field, {}).get("p99"), hb[kind].get(field, {}).get("p99")
            if a is not None and b is not None:  # a baseline not measured there has no ratio
                out[f"{kind}_{field}_p99"] = _ratio(a, b)
    si, sb = irl["stall_to_off_ms"], base["stall_to_off_ms"]
    out["stall_to_off"] = _ratio(
        si["loop_frozen"].get("onset_to_off", {}).get("max"), sb["loop_frozen"].get("onset_to_off", {}).get("max")
    )
    out["hang_to_off"] = _ratio(
        si["bus_stuck"].get("onset_to_off", {}).get("max"), sb["bus_stuck"].get("onset_to_off", {}).get("max")
    )
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
    for path in sweep_runtime_dirs():
        log(f"removed {path}, left by a bench that was killed")
    machine = report.machine_facts()
    cfg = bench_config()

    load: dict[str, dict] = {}
    log("phase 0: start-up to READY=1 (irlamp on real readers over emulated chips; both baselines)")
    meter = report.LoadMeter()
    starts = {"irlamp": measure_startups(emulated_command, cwd=REPO, count=plan.startups)}
    for name, (_, command) in BASELINES.items():
        starts[name] = measure_startups(command, cwd=REPO, count=plan.baseline_startups)
    load["phase0_startup"] = meter.read()

    log("phase 1: irlamp CPU/RSS (real readers, emulated chips), machine otherwise quiet")
    meter = report.LoadMeter()
    irl_run = _measure(emulated_command, plan.idle_s, plan.running_s, plan, errors, "irlamp")
    load["phase1_irlamp_cpu"] = meter.read()

    log("phase 1b: what the session figure is made of: the emulated chips' share, the readers alone")
    meter = report.LoadMeter()
    chip_share = _chip_share(plan, errors)
    readers_only = _collect(
        _spawn(["-m", "bench.readers_floor", "--seconds", str(plan.running_s)]), "readers floor", errors
    )
    load["phase1b_cpu_parts"] = meter.read()

    log(f"phase 1c: irlamp latency trials, {len(plan.side_workers)} workers side by side")
    meter = report.LoadMeter()
    workers = [
        _spawn(["-m", "bench.trials", *items, "--seed", str(i + 1)]) for i, items in enumerate(plan.side_workers)
    ]
    irl_data = [_collect(w, f"irlamp worker {i + 1}", errors) for i, w in enumerate(workers)]
    load["phase1c_latency"] = meter.read()

    log(f"phase 2: irlamp distance trials, {len(plan.distance_workers)} workers, machine otherwise quiet")
    meter = report.LoadMeter()
    workers = [
        _spawn(["-m", "bench.trials", *items, "--seed", str(i + 11)]) for i, items in enumerate(plan.distance_workers)
    ]
    irl_data += [_collect(w, f"irlamp distance worker {i + 1}", errors) for i, w in enumerate(workers)]
    load["phase2_distance"] = meter.read()

    log(f"phase 3: loaded machine ({plan.burners} CPU burners at normal priority): irlamp, then the sleeping baseline")
    with Burners(plan.burners):
        meter = report.LoadMeter()
        irl_data.append(
            _collect(
                _spawn(["-m", "bench.trials", *plan.loaded, "--seed", "21", "--label", LOADED]),
                "irlamp loaded worker",
                errors,
            )
        )
        load["phase3_loaded_irlamp"] = meter.read()
        meter = report.LoadMeter()
        sleeping_loaded = _collect(
            _spawn(["-m", "bench.baseline", "trials", "--sleeping", *plan.baseline_loaded, "--label", LOADED]),
            "sleeping baseline loaded worker",
            errors,
        )
        load["phase3_loaded_baseline"] = meter.read()
    irl_trials = [t for d in irl_data for t in d["trials"]]
    usage = next((d["usage"] for d in irl_data if d.get("usage")), {})

    base_trials: dict[str, list[dict]] = {}
    for phase, (name, (flags, _)) in enumerate(BASELINES.items(), start=4):
        log(f"phase {phase}: {name} latency trials (alone)")
        meter = report.LoadMeter()
        worker = _spawn(
            ["-m", "bench.baseline", "trials", *flags, *plan.baseline_trials, "--never-s", str(plan.baseline_never_s)]
        )
        base_trials[name] = _collect(worker, f"{name} worker", errors)["trials"]
        load[f"phase{phase}_{name}_latency"] = meter.read()
    base_trials["baseline_sleeping"] += sleeping_loaded["trials"]

    log("phase 6: baselines' CPU/RSS (one after the other)")
    base_runs = {}
    for name, (_, command) in BASELINES.items():
        meter = report.LoadMeter()
        base_runs[name] = _measure(command, plan.baseline_cpu_s, plan.baseline_cpu_s, plan, errors, name)
        load[f"phase6_{name}_cpu"] = meter.read()

    log("slow-disk phase: irlamp with a slow journal disk (alone)")
    meter = report.LoadMeter()
    disk_worker = _spawn(["-m", "bench.slow_disk", *[a for a in plan.slow_disk if a != "--full"]])
    slow_disk = _collect(disk_worker, "slow-disk worker", errors)
    load["slowdisk_journal"] = meter.read()

    irlamp = _program_figures(irl_run, starts["irlamp"], errors, "irlamp")
    irlamp["cpu_percent"]["session_parts"] = {
        "emulated_chips": None if chip_share is None else chip_share["emulated_chips_percent"],
        "chip_share_run": chip_share,
        "readers_only": readers_only if readers_only.get("cpu_percent") is not None else None,
    }
    irlamp["cpu_percent"]["daemon_threads_in_distance_trials"] = usage.get("daemon_cpu_percent")
    irlamp["cpu_percent"]["threads_in_distance_trials"] = usage.get("thread_cpu_percent")
    irlamp["loop"] = {"steps_per_s": usage.get("loop_steps_per_s"), "step_ms": usage.get("loop_step_ms")}
    irlamp["hazard_to_off_ms"], irlamp["stall_to_off_ms"] = _latency_figures(
        irl_trials,
        {
            "distance": "distance",
            "overheat": "overheat",
            "distance" + LOADED: "distance" + LOADED,
            "loop_frozen": "stall",
            "loop_frozen_deadline_0.4": "stall_tight",
            "read_hangs": "hang_distance",
            "bus_stuck": "hang_bus",
        },
    )
    baselines = {}
    for name in BASELINES:
        base = _program_figures(base_runs[name], starts[name], errors, name)
        base["hazard_to_off_ms"], base["stall_to_off_ms"] = _latency_figures(
            base_trials[name],
            {
                "distance": "distance",
                "overheat": "overheat",
                "distance" + LOADED: "distance" + LOADED,
                "loop_frozen": "stall",
                "bus_stuck": "hang",
            },
        )
        base["stall_to_off_ms"]["waited_s"] = plan.baseline_never_s
        baselines[name] = base

    results = {
        "schema": 2,
        "machine": machine,
        "plan": asdict(plan),
        "config": {
            "bench_overrides": BENCH_OVERRIDES,
            "distance_period_ms": _distance_period_ms(cfg),
            "skin_period_ms": cfg.skin.period_ms,
            "guard_deadline_s": cfg.loop.guard_deadline_s,
            "guard_check_period_s": cfg.loop.guard_deadline_s / 5.0,
            "loop_rate_hz": cfg.loop.rate_hz,
            "lamp_on_loop_rate_hz": round(1.0 / _lamp_on_loop_period_s(cfg), 3),
            "idle_periods_s": list(_idle_periods_s(cfg)),
        },
        "platform": {"thread_wake_ms": report.latency_figures(irl_trials, "thread_wake").get("wake", {}), "load": load},
        "irlamp": irlamp,
        **baselines,
        "errors": errors,
        "slow_disk": {
            "figures": slow_disk.get("figures"),
            "plan": slow_disk.get("plan"),
            "trials": slow_disk.get("trials", []),
        },
        "raw_trials": {"irlamp": irl_trials, **base_trials},
    }
    results["ratios"] = {
        "vs_sleeping": _ratios(irlamp, baselines["baseline_sleeping"]),
        "vs_busy": _ratios(irlamp, baselines["baseline_busy"]),
    }
    results["targets"] = report.check_targets(results)
    results["pi_estimate"] = report.pi_estimates(results)
    results["duration_s"] = round(time.monotonic() - t0, 1)
    if out_path is not None:
        out_path.write_text(json.dumps(results, indent=2) + "\n")
    return results


def _measure(command, idle_s: float, running_s: float, plan: Plan, errors: list[str], label: str) -> dict | None:
    from bench.procstats import ProcessError

    try:
        return measure_program(
            command, cwd=REPO, idle_s=idle_s, running_s=running_s, running_marker="lamp ON", settle_s=plan.settle_s
        )
    except ProcessError as exc:
        errors.append(f"{label}: {exc}")
        return None


def _chip_share(plan: Plan, errors: list[str]) -> dict | None:
    from bench.procstats import ProcessError

    try:
        return measure_chip_share(emulated_command, cwd=REPO, running_s=plan.running_s, settle_s=plan.settle_s)
    except ProcessError as exc:
        errors.append(f"irlamp chip share: {exc}")
        return None


def _lamp_on_loop_period_s(cfg) -> float:
    from controller.core.sampling import lamp_on_loop_period_s

    return lamp_on_loop_period_s(cfg)


def _idle_periods_s(cfg) -> tuple[float, float]:
    from controller.core.sampling import idle_periods_s

    return idle_periods_s(cfg)


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
