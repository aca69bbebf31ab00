"""The slow-disk phase: irlamp in real time while its journal's commits are slow or never return.

Each trial runs one complete daemon (bench.harness.IrlampRig, emulated chips) whose journal is
wrapped so that every write (session start, checkpoint, end, fault, acknowledgement) first
waits on the journal writer's thread, the way a stalled SD card fsync does:

  commit_1s      every commit takes 1 s more: a session of `session_s`, then a 100 ms STOP
                 press placed inside a commit stall. Reported: the loop's step time (p50, p99,
                 max), guard trips (target 0), faults, start delay (press -> lamp on, which now
                 includes the start record's commit), press -> relay off.
  commit_never   mid-session every commit blocks for good. Reported: time from the stuck disk
                 to the relay off with `journal_stalled` (bound: checkpoint_s + 10 s), and
                 whether a start is then refused (`journal_busy`).

Run alone: `python -m bench.slow_disk [--quick] [--out FILE]` prints JSON (and writes FILE);
`make bench` runs it as its last phase (bench/run.py).
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
from pathlib import Path

from controller.core.safety import JOURNAL_STALL_S

from bench.harness import BenchError, IrlampRig, bench_config
from bench.instruments import now
from bench.report import summarize

COMMIT_DELAY_S = 1.0
PRESS_S = 0.1
# Every write the daemon commits during a session. (`note_clock_synced` commits only when the
# clock offset moved, about once per boot, so it is not slowed.)
WRITES = ("start_session", "checkpoint", "end_session", "record_fault", "acknowledge_faults")


class SlowDisk:
    """Wraps a Journal: each write waits `delay_s` first, or blocks while `stuck` is set.
    `busy` is set while a write is waiting (a commit stall in progress)."""

    def __init__(self, journal, delay_s: float = 0.0):
        self._journal = journal
        self.delay_s = delay_s
        self.stuck = threading.Event()
        self.released = threading.Event()
        self.busy = threading.Event()
        self.waits = 0

    def __getattr__(self, name):
        target = getattr(self._journal, name)
        if name not in WRITES:
            return target

        def slow_write(*args, **kwargs):
            self.busy.set()
            self.waits += 1
            try:
                if self.stuck.is_set():
                    self.released.wait()
                elif self.delay_s:
                    time.sleep(self.delay_s)
            finally:
                self.busy.clear()
            return target(*args, **kwargs)

        return slow_write


def _rig(cfg, root: Path, index: int, seed: int, delay_s: float) -> tuple[IrlampRig, list[SlowDisk]]:
    disks: list[SlowDisk] = []

    def wrap(journal):
        disks.append(SlowDisk(journal, delay_s))
        return disks[-1]

    state = root / f"daemon{index}"
    state.mkdir()
    return IrlampRig(cfg, state, seed=seed * 1000 + index, journal_wrap=wrap, drain_timeout_s=1.0), disks


def _press(rig: IrlampRig) -> float:
    t = now()
    rig.button.drive_low()
    time.sleep(PRESS_S)
    rig.button.drive_high()
    return t


def commit_1s_trials(n: int, session_s: float, *, seed: int = 0, cfg=None) -> list[dict]:
    cfg = cfg or bench_config()
    rng = random.Random(seed)
    trials = []
    with tempfile.TemporaryDirectory(prefix="irlamp-bench-disk-") as tmp:
        for i in range(n):
            rig, disks = _rig(cfg, Path(tmp), i, seed, COMMIT_DELAY_S)
            rig.start()
            try:
                t0 = now()
                rig.start_session()  # waits for the lamp: the start is committed by then
                t_on = rig.relay.changes.wait_for(t0, lambda on: on, 0.1)
                time.sleep(session_s if i == 0 else rng.uniform(0.0, cfg.loop.checkpoint_s))
                if not disks[0].busy.wait(cfg.loop.checkpoint_s + 2 * COMMIT_DELAY_S):
                    raise BenchError("no journal commit was in progress to press inside")
                time.sleep(rng.uniform(0.0, COMMIT_DELAY_S - PRESS_S - 0.2))
                in_stall = disks[0].busy.is_set()
                t_press = _press(rig)
                t_off = rig.relay_off_after(t_press)
                ctl = rig.daemon.controller
                steps = [(end - start) * 1000.0 for start, end in rig.steps if start >= t0]
                trials.append(
                    {
                        "kind": "commit_1s",
                        "session_s": round(now() - t0, 2),
                        "off": t_off is not None,
                        "press_inside_commit_stall": in_stall and disks[0].busy.is_set(),
                        "press_to_off_ms": None if t_off is None else round((t_off - t_press) * 1000.0, 3),
                        "start_press_to_on_ms": None if t_on is None else round((t_on[0] - t0) * 1000.0, 1),
                        "stopped_by_button": ctl.session is None and not ctl.latched,
                        "guard_trip": rig.hw.guard.tripped,
                        "faults": list(ctl.latched),
                        "loop_step_ms": summarize(steps),
                        "commits_waited": disks[0].waits,
                    }
                )
            finally:
                disks[0].released.set()
                rig.close()
    return trials


def commit_never_trials(n: int, *, seed: int = 0, cfg=None) -> list[dict]:
    cfg = cfg or bench_config()
    rng = random.Random(seed)
    trials = []
    with tempfile.TemporaryDirectory(prefix="irlamp-bench-disk-") as tmp:
        for i in range(n):
            rig, disks = _rig(cfg, Path(tmp), i, seed + 7, 0.0)
            rig.start()
            try:
                rig.start_session()
                time.sleep(rng.uniform(0.2, cfg.loop.checkpoint_s))
                t_stuck = now()
                disks[0].stuck.set()
                bound_s = cfg.loop.checkpoint_s + JOURNAL_STALL_S
                t_off = rig.relay_off_after(t_stuck, bound_s + 2.0)
                ctl = rig.daemon.controller
                time.sleep(0.1)
                faults = list(ctl.latched)
                refused = None
                if t_off is not None:  # acknowledge (long press), then try to start
                    rig.button.drive_low()
                    time.sleep(cfg.button.long_press_s + 0.3)
                    rig.button.drive_high()
                    time.sleep(0.2)
                    _press(rig)
                    time.sleep(0.2)
                    shown = rig.daemon.readout.refused
                    refused = shown[0] if shown else None
                steps = [(end - start) * 1000.0 for start, end in rig.steps if start >= t_stuck]
                trials.append(
                    {
                        "kind": "commit_never",
                        "off": t_off is not None,
                        "stuck_to_fault_s": None if t_off is None else round(t_off - t_stuck, 3),
                        "bound_s": bound_s,
                        "faults": faults,
                        "guard_trip": rig.hw.guard.tripped,
                        "start_refused": refused,
                        "loop_step_ms": summarize(steps),
                    }
                )
            finally:
                disks[0].released.set()
                rig.close()
    return trials


def figures(trials: list[dict]) -> dict:
    """The phase's summary: what bench/README.md and the table report."""
    slow = [t for t in trials if t["kind"] == "commit_1s"]
    never = [t for t in trials if t["kind"] == "commit_never"]
    p99s = [t["loop_step_ms"].get("p99") for t in slow if t["loop_step_ms"].get("p99") is not None]
    maxes = [t["loop_step_ms"].get("max") for t in slow if t["loop_step_ms"].get("max") is not None]
    stuck = [t["stuck_to_fault_s"] for t in never if t["stuck_to_fault_s"] is not None]
    return {
        "commit_delay_s": COMMIT_DELAY_S,
        "commit_1s": {
            "trials": len(slow),
            "loop_step_p99_ms_worst": max(p99s, default=None),
            "loop_step_max_ms_worst": max(maxes, default=None),
            "guard_trips": sum(1 for t in slow if t["guard_trip"]),
            "faults": sorted({f for t in slow for f in t["faults"]}),
            "stops_inside_a_commit_stall": sum(
                1 for t in slow if t["press_inside_commit_stall"] and t["stopped_by_button"]
            ),
            "press_to_off_ms": summarize([t["press_to_off_ms"] for t in slow if t["press_to_off_ms"] is not None]),
            "start_press_to_on_ms": summarize(
                [t["start_press_to_on_ms"] for t in slow if t["start_press_to_on_ms"] is not None]
            ),
            "session_s_longest": max((t["session_s"] for t in slow), default=None),
        },
        "commit_never": {
            "trials": len(never),
            "stuck_to_journal_stalled_s": summarize(stuck),
            "bound_s": never[0]["bound_s"] if never else None,
            "all_off_within_bound": all(t["off"] and t["stuck_to_fault_s"] <= t["bound_s"] for t in never),
            "guard_trips": sum(1 for t in never if t["guard_trip"]),
            "faults": sorted({f for t in never for f in t["faults"]}),
            "start_refused": sorted({str(t["start_refused"]) for t in never}),
        },
    }


FULL = {"commit_1s": 3, "session_s": 60.0, "commit_never": 3}
# The smoke test's plan: a stuck disk takes ~15 s to reach its fault, so it is left to the full
# run (and to tests/test_slow_journal.py on the simulated clock).
QUICK = {"commit_1s": 1, "session_s": 3.0, "commit_never": 0}


def run_phase(plan: dict, seed: int = 1) -> dict:
    errors: list[str] = []
    trials: list[dict] = []
    for name, call in (
        ("commit_1s", lambda: commit_1s_trials(plan["commit_1s"], plan["session_s"], seed=seed)),
        ("commit_never", lambda: commit_never_trials(plan["commit_never"], seed=seed)),
    ):
        try:
            trials += call()
        except BenchError as exc:
            errors.append(f"slow disk {name}: {exc}")
    return {"plan": plan, "figures": figures(trials), "trials": trials, "errors": errors}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.slow_disk", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=open(os.devnull, "w"))
    results = run_phase(QUICK if args.quick else FULL, args.seed)
    text = json.dumps(results, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
