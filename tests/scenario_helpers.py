"""Shared helpers for the scenario, fault-matrix and daemon tests.

Two ways to run a scenario, same parser and simulator:
  - `run_sim(tmp_path, scenario)`: in-process through `controller.simulate.run_scenario`
    with an io.StringIO (fast; used for most cases);
  - `run_cli(*args)`: `python -m controller.cli ...` as a subprocess (exit codes, stderr,
    the real command line).
Both give a `SimRun`: the parsed JSON lines plus lookups that make assertions short.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
DEFAULT_CONFIG = REPO / "config" / "lamp.yaml"

# Time granularity of the simulator, used to state bounds: a control step runs at every new
# sample and at least at the loop rate; 1 ms covers rounding of `t` to 3 decimals.
ROUNDING_S = 0.001


def default_config():
    """The bundled default config (the numbers the bounds in the tests are derived from)."""
    from controller.config import load_config
    return load_config(DEFAULT_CONFIG)


def write_scenario(directory: Path, scenario: dict | str, name: str = "scenario.yaml") -> Path:
    """Write a scenario (a dict, dumped as YAML, or YAML text as it is) and return its path."""
    path = Path(directory) / name
    text = scenario if isinstance(scenario, str) else yaml.safe_dump(scenario, sort_keys=False)
    path.write_text(text, encoding="utf-8")
    return path


@dataclass
class SimRun:
    """The records of one simulated run, in output order."""

    records: list[dict]

    @property
    def summary(self) -> dict:
        assert self.records and self.records[-1]["event"] == "summary", "last line is not the summary"
        return self.records[-1]

    def events(self, name: str, **match: Any) -> list[dict]:
        """All records of this event kind whose fields equal `match`."""
        return [r for r in self.records if r["event"] == name
                and all(r.get(k) == v for k, v in match.items())]

    def first(self, name: str, after: float = float("-inf"), **match: Any) -> dict | None:
        """The first such record at or after `after` seconds, or None."""
        for record in self.events(name, **match):
            if record["t"] >= after:
                return record
        return None

    def relay(self) -> list[dict]:
        return self.events("relay")

    def relay_on_at(self, t: float) -> bool:
        """The lamp relay's state just after time t (off before the first change)."""
        state = False
        for record in self.relay():
            if record["t"] <= t:
                state = record["on"]
        return state

    def on_intervals(self) -> list[tuple[float, float]]:
        """(on, off) times from the relay events; an interval still open ends at the summary."""
        intervals, since = [], None
        for record in self.relay():
            if record["on"] and since is None:
                since = record["t"]
            elif not record["on"] and since is not None:
                intervals.append((since, record["t"]))
                since = None
        if since is not None:
            intervals.append((since, self.summary["t"]))
        return intervals

    def fault_codes(self) -> list[str]:
        return [r["code"] for r in self.events("fault")]


def parse_json_lines(text: str) -> list[dict]:
    """Every non-empty line must be one JSON object; fails the test otherwise."""
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        assert line.strip(), f"empty line {number} in --json output"
        record = json.loads(line)
        assert isinstance(record, dict), f"line {number} is not a JSON object: {line!r}"
        records.append(record)
    return records


def run_sim(tmp_path: Path, scenario: dict | str, *, state_dir: Path | None = None,
            config_path: Path | None = None, name: str = "scenario.yaml") -> SimRun:
    """Write and run a scenario in-process (JSON records), like `irlamp simulate --json`."""
    from controller.scenario import load_scenario
    from controller.simulate import run_scenario
    path = write_scenario(tmp_path, scenario, name)
    out = io.StringIO()
    run_scenario(load_scenario(path), as_json=True, out=out,
                 state_dir=None if state_dir is None else str(state_dir),
                 config_path=None if config_path is None else str(config_path))
    return SimRun(parse_json_lines(out.getvalue()))


def cli_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("NOTIFY_SOCKET", None)
    return env


def run_cli(*args: str, timeout_s: float = 120.0) -> subprocess.CompletedProcess:
    """`python -m controller.cli ARGS` in the repo; text output captured."""
    return subprocess.run([PYTHON, "-m", "controller.cli", *args], cwd=REPO, env=cli_env(),
                          capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL)


def simulate_cli(path: Path, *extra: str, as_json: bool = True) -> tuple[subprocess.CompletedProcess, SimRun | None]:
    """`irlamp simulate PATH [--json] EXTRA` as a subprocess; the run is parsed on exit 0 with --json."""
    args = ["simulate", str(path), *extra] + (["--json"] if as_json else [])
    proc = run_cli(*args)
    run = SimRun(parse_json_lines(proc.stdout)) if as_json and proc.returncode == 0 else None
    return proc, run


def press(at: float, held_s: float = 0.2) -> dict:
    return {"at": at, "press": held_s}


def scenario(events: list[dict], until: float, *, config: dict | None = None, start: dict | None = None,
             thermal_model: bool = False, **extra: Any) -> dict:
    """A scenario dict with the given events (sorted by `at` here, stably)."""
    doc: dict[str, Any] = {}
    if config:
        doc["config"] = config
    doc["start"] = {"distance_mm": 400, "skin_c": 32.0, **(start or {})}
    doc["thermal_model"] = thermal_model
    doc["events"] = sorted(events, key=lambda e: e["at"])
    doc["until"] = until
    doc.update(extra)
    return doc
