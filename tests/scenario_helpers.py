"""Shared helpers for the scenario, fault-matrix and daemon tests.

Two ways to run a scenario, same parser and simulator:
  - `run_sim(tmp_path, scenario)`: in-process through `controller.sim.simulate.run_scenario`
    with an io.StringIO (fast; used for most cases);
  - `run_cli(*args)`: `python -m controller.cli ...` as a subprocess (exit codes, stderr,
    the real command line).
Both give a `SimRun`: the parsed JSON lines plus lookups that make assertions short.
"""

from __future__ import annotations

import contextlib
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
    from controller.service.config import load_config

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
        return [r for r in self.records if r["event"] == name and all(r.get(k) == v for k, v in match.items())]

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


def run_sim(
    tmp_path: Path,
    scenario: dict | str,
    *,
    state_dir: Path | None = None,
    config_path: Path | None = None,
    name: str = "scenario.yaml",
) -> SimRun:
    """Write and run a scenario in-process (JSON records), like `irlamp simulate --json`."""
    from controller.sim.scenario import load_scenario
    from controller.sim.simulate import run_scenario

    path = write_scenario(tmp_path, scenario, name)
    out = io.StringIO()
    run_scenario(
        load_scenario(path),
        as_json=True,
        out=out,
        state_dir=None if state_dir is None else str(state_dir),
        config_path=None if config_path is None else str(config_path),
    )
    return SimRun(parse_json_lines(out.getvalue()))


def cli_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("NOTIFY_SOCKET", None)
    return env


def run_cli_as_nobody(*args: str, groups: tuple[int, ...] = ()) -> subprocess.CompletedProcess:
    """`python -m controller.cli ARGS` as the user `nobody` (group nogroup, and `groups` as its
    only supplementary groups), with no home. Skips unless root with `setpriv` and a `nobody`."""
    import pwd
    import shutil

    import pytest

    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run irlamp as another user")
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user nobody")
    group_args = ["--groups", ",".join(map(str, groups))] if groups else ["--clear-groups"]
    setpriv = ["setpriv", "--reuid", "nobody", "--regid", "nogroup", *group_args]
    return run_cli(*args, timeout_s=60.0, env_extra={"HOME": "/nonexistent"}, prefix=setpriv)


def run_cli(
    *args: str, timeout_s: float = 120.0, env_extra: dict[str, str] | None = None, prefix: list[str] | None = None
) -> subprocess.CompletedProcess:
    """`python -m controller.cli ARGS` in the repo (after `prefix`, e.g. setpriv), with
    `env_extra` over cli_env(); text output captured, stdin empty."""
    return subprocess.run(
        [*(prefix or []), PYTHON, "-m", "controller.cli", *args],
        cwd=REPO,
        env={**cli_env(), **(env_extra or {})},
        capture_output=True,
        text=True,
        timeout=timeout_s,
        stdin=subprocess.DEVNULL,
    )


def simulate_cli(path: Path, *extra: str, as_json: bool = True) -> tuple[subprocess.CompletedProcess, SimRun | None]:
    """`irlamp simulate PATH [--json] EXTRA` as a subprocess; the run is parsed on exit 0 with --json."""
    args = ["simulate", str(path), *extra] + (["--json"] if as_json else [])
    proc = run_cli(*args)
    run = SimRun(parse_json_lines(proc.stdout)) if as_json and proc.returncode == 0 else None
    return proc, run


def press(at: float, held_s: float = 0.2) -> dict:
    return {"at": at, "press": held_s}


def scenario(
    events: list[dict],
    until: float,
    *,
    config: dict | None = None,
    start: dict | None = None,
    thermal_model: bool = False,
    **extra: Any,
) -> dict:
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


# -- the real-time daemon (`irlamp run --simulate`) as a subprocess ------------------------------


def wait_for(predicate, timeout_s: float, interval_s: float = 0.05, what: str = "condition"):
    """Poll `predicate()` until it returns something truthy; fail after `timeout_s` (bounded wait)."""
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(interval_s)


class RunningDaemon:
    """`python -m controller.cli run --simulate` with piped stdin (keys) and a NOTIFY_SOCKET the
    test binds, so READY/WATCHDOG/STATUS/STOPPING datagrams can be checked."""

    def __init__(
        self,
        base: Path,
        *,
        config: Path = DEFAULT_CONFIG,
        notify: bool = True,
        extra_args: tuple[str, ...] = (),
        extra_env: dict[str, str] | None = None,
    ):
        import socket

        self.base = Path(base)
        self.state_dir = self.base / "state"
        self.runtime_dir = self.base / "run"
        self.runtime_dir.mkdir(parents=True, exist_ok=True)
        self.messages: list[str] = []
        self.sock = None
        env = {**cli_env(), **(extra_env or {})}
        if notify:
            address = str(self.base / "notify.sock")
            Path(address).unlink(missing_ok=True)
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self.sock.bind(address)
            self.sock.setblocking(False)
            env["NOTIFY_SOCKET"] = address
        self.stderr_path = self.base / f"daemon-{len(list(self.base.glob('daemon-*.log')))}.log"
        self._stderr = open(self.stderr_path, "w")
        self.proc = subprocess.Popen(
            [
                PYTHON,
                "-m",
                "controller.cli",
                "run",
                "--simulate",
                "--state-dir",
                str(self.state_dir),
                "--runtime-dir",
                str(self.runtime_dir),
                "--config",
                str(config),
                *extra_args,
            ],
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )

    # notify socket
    def poll_messages(self) -> list[str]:
        """Every datagram received so far (each may hold several NAME=value lines)."""
        while self.sock is not None:
            try:
                self.messages.append(self.sock.recv(65536).decode())
            except BlockingIOError:
                break
        return self.messages

    def lines(self) -> list[str]:
        return [line for message in self.poll_messages() for line in message.splitlines()]

    def wait_message(self, line: str, timeout_s: float = 10.0, count: int = 1) -> None:
        wait_for(
            lambda: self.lines().count(line) >= count or self._died(),
            timeout_s,
            what=f"{count} x {line!r} from the daemon",
        )
        assert self.lines().count(line) >= count, f"daemon exited early: {self.stderr()}"

    def _died(self) -> bool:
        return self.proc.poll() is not None

    # keys, status, signals
    def keys(self, text: str) -> None:
        self.proc.stdin.write(text.encode() + b"\n")
        self.proc.stdin.flush()

    @property
    def status_file(self) -> Path:
        return self.runtime_dir / "status.json"

    def status(self) -> dict | None:
        try:
            return json.loads(self.status_file.read_text())
        except (OSError, ValueError):
            return None

    def wait_status(self, predicate, timeout_s: float = 10.0, what: str = "status") -> dict:
        def check():
            status = self.status()
            return status if status is not None and status.get("pid") == self.proc.pid and predicate(status) else None

        return wait_for(check, timeout_s, what=what)

    def stop(self, signum, timeout_s: float = 10.0) -> int:
        self.proc.send_signal(signum)
        return self.proc.wait(timeout=timeout_s)

    def stderr(self) -> str:
        self._stderr.flush()
        return self.stderr_path.read_text()

    def close(self) -> None:
        """Make sure nothing outlives the test (SIGKILL only this process, if still running)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self.proc.stdin:
            with contextlib.suppress(BrokenPipeError):  # the daemon is gone already
                self.proc.stdin.close()
        self._stderr.close()
        if self.sock is not None:
            self.sock.close()


def history_json(state_dir: Path) -> dict:
    proc = run_cli("history", "--state-dir", str(state_dir), "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)
