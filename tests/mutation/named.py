"""Hand-written mutants that mutmut does not generate, each of which a test must kill.

mutmut 3 mutates function bodies only, one operator or literal at a time. The first mutation
pass of issue 9 (another tool) also changed class constants, swapped min/max and deleted
statements, and found these changes that no test noticed. Each is kept here as a regression
gate: `make mutate` applies it to a copy of the tree and runs the named fast test modules;
the mutant must make at least one test fail.

    python tests/mutation/named.py            # all of them
    python tests/mutation/named.py -k grace   # those whose name contains 'grace'
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
COPIED = ["controller", "drivers", "tests", "config", "pyproject.toml"]


@dataclass(frozen=True)
class NamedMutant:
    name: str
    path: str  # file to change, relative to the repository
    old: str  # text that must occur exactly once in it
    new: str
    tests: tuple[str, ...]


SAFETY_TESTS = ("tests/test_safety_controller.py",)
LIMITS_TESTS = ("tests/test_limits.py",)
GUARD_TESTS = ("tests/test_guard.py", "tests/test_guard_schedule.py")

MUTANTS = [
    NamedMutant(
        "startup grace raised from 2 to 4 s",
        "controller/core/safety.py",
        "STARTUP_GRACE_S = 2.0",
        "STARTUP_GRACE_S = 4.0",
        SAFETY_TESTS,
    ),
    NamedMutant(
        "heating check accepts half the rise",
        "controller/core/safety.py",
        ">= cfg.skin.heating_min_rise_c",
        ">= cfg.skin.heating_min_rise_c / 2",
        SAFETY_TESTS,
    ),
    NamedMutant(
        "heating check accepts 0.1 C less",
        "controller/core/safety.py",
        ">= cfg.skin.heating_min_rise_c",
        ">= cfg.skin.heating_min_rise_c - 0.1",
        SAFETY_TESTS,
    ),
    NamedMutant(
        "distance and skin swapped in the displayed readings",
        "controller/core/safety.py",
        "readings = StepReadings(dist.good, skin.good, self.distance.latest)",
        "readings = StepReadings(skin.good, dist.good, self.distance.latest)",
        SAFETY_TESTS,
    ),
    NamedMutant(
        "min_gap_s validation deleted (a NaN gap disables the cool-down)",
        "controller/core/limits.py",
        '    min_gap_s = _require("min_gap_s", min_gap_s)\n',
        "",
        LIMITS_TESTS,
    ),
    NamedMutant(
        "cross-boot chronology: no uptime bound across a reboot",
        "controller/core/limits.py",
        "return max(0.0, later_mono)  # of the later boot",
        "return 0.0  # of the later boot",
        LIMITS_TESTS,
    ),
    NamedMutant(
        "cross-boot chronology one minute generous per reboot",
        "controller/core/limits.py",
        "return max(0.0, later_mono)  # of the later boot",
        "return max(0.0, later_mono + 60.0)  # of the later boot",
        LIMITS_TESTS,
    ),
    NamedMutant(
        "guard error handler switches the relay on",
        "drivers/guard.py",
        'self.fail_closed(f"the guard\'s own check raised {type(exc).__name__}: {exc}")',
        'self.output.set(True, "guard_failed")',
        GUARD_TESTS,
    ),
    NamedMutant(
        "frozen-loop cut one period late (the thread wakes a period after the due time)",
        "drivers/guard.py",
        "return OFF_RECHECK_S if due_s is None else max(MIN_WAIT_S, due_s)",
        "return OFF_RECHECK_S if due_s is None else max(MIN_WAIT_S, due_s + period_s)",
        GUARD_TESTS,
    ),
    NamedMutant(
        "frozen-loop cut late (due-time wake deleted: the thread sleeps its relay-off recheck)",
        "drivers/guard.py",
        "return OFF_RECHECK_S if due_s is None else max(MIN_WAIT_S, due_s)",
        "return OFF_RECHECK_S",
        GUARD_TESTS,
    ),
    NamedMutant(
        "guard's on-time check in command() disabled",
        "drivers/guard.py",
        "if on and self.tripped is None and self.on_s >= self.max_on_s:",
        "if False:",
        GUARD_TESTS,
    ),
    NamedMutant(
        "guard's on-time check in check() disabled",
        "drivers/guard.py",
        "elif self.on_s >= self.max_on_s:",
        "elif False:",
        GUARD_TESTS,
    ),
]


def run_one(mutant: NamedMutant, python: str) -> tuple[bool, float, str]:
    """Apply the mutant to a copy of the tree and run its tests: (killed, seconds, note)."""
    with tempfile.TemporaryDirectory(prefix="irlamp-mutant-") as tmp:
        root = Path(tmp)
        for name in COPIED:
            src = REPO / name
            if src.is_dir():
                shutil.copytree(src, root / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(src, root / name)
        target = root / mutant.path
        text = target.read_text()
        if text.count(mutant.old) != 1:
            return False, 0.0, f"the text to change occurs {text.count(mutant.old)} times in {mutant.path}"
        target.write_text(text.replace(mutant.old, mutant.new))
        started = time.monotonic()
        # `python -m pytest` from the copy: its directory comes first on sys.path, so the copy's
        # (mutated) packages shadow the editable install of the real tree.
        proc = subprocess.run(
            [python, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-k", "not real_time", *mutant.tests],
            cwd=root,
            capture_output=True,
            text=True,
        )
        seconds = time.monotonic() - started
        failed = [line.split(" - ")[0] for line in proc.stdout.splitlines() if line.startswith("FAILED ")]
        note = failed[0] if failed else (proc.stdout.strip().splitlines() or [""])[-1]
        return proc.returncode == 1, seconds, note


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", default="", help="only mutants whose name contains this")
    args = parser.parse_args(argv)
    failures = 0
    for mutant in MUTANTS:
        if args.k not in mutant.name:
            continue
        killed, seconds, note = run_one(mutant, sys.executable)
        failures += not killed
        print(f"{'killed  ' if killed else 'SURVIVED'} {mutant.name} ({seconds:.0f} s): {note}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
