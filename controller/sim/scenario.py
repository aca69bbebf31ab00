"""Scenario files for `irlamp simulate` (format: requirements.md, "Simulation").

`load_scenario(path)` returns a validated `Scenario` or raises `ScenarioError` with one
line naming the file, the line and what is wrong. Accepted top-level keys: config, start,
thermal_model, events, until, plus seed (noise seed, default 0), name and description.
Numbers are plain decimal, as in the config (controller/service/yaml_numbers.py: 1e3 yes, 0x10 or
5:05 no). Each event has `at` (seconds, not decreasing) and one or more actions:
press (seconds held), distance_mm, skin_c, ambient_c (sensor body temperature),
glare (ambient light at 940 nm the distance sensor sees, Mcps; see drivers/glare.py),
fault {sensor: distance|skin, kind: io_error|timeout|out_of_range|nan|frozen|hang|clear},
restart: true, wall_clock_jump_s, journal_commit_s (from then on every journal commit takes
this many simulated seconds; `never`: commits never return). `start` may also set glare.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from controller.service.yaml_numbers import NumberFormError, plain_number
from drivers.sim_sensors import FAULT_KINDS

TOP_KEYS = ("config", "start", "thermal_model", "events", "until", "seed", "name", "description")
START_KEYS = ("distance_mm", "skin_c", "ambient_c", "glare", "wall_clock")
ACTION_KEYS = (
    "press",
    "distance_mm",
    "skin_c",
    "ambient_c",
    "glare",
    "fault",
    "restart",
    "wall_clock_jump_s",
    "journal_commit_s",
)
DEFAULT_WALL_CLOCK = "2026-01-05T09:00:00"
MAX_UNTIL_S = 7 * 86400.0
DEFAULT_TAIL_S = 60.0


class ScenarioError(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class ScenarioEvent:
    at_s: float
    actions: dict[str, Any]
    line: int


@dataclass(frozen=True)
class Scenario:
    path: str
    config_node: Any
    distance_mm: float = 400.0
    skin_c: float = 32.0
    ambient_c: float = 25.0
    glare: float = 0.0
    wall_clock: float = 0.0
    thermal_model: bool = False
    events: list[ScenarioEvent] = field(default_factory=list)
    until_s: float = 60.0
    seed: int = 0
    name: str = ""


class _Reader:
    def __init__(self, path: str):
        self.path = path

    def fail(self, node, message: str):
        line = node.start_mark.line + 1 if node is not None else None
        where = f"{self.path}:{line}" if line else self.path
        raise ScenarioError(f"{where}: {message}")

    def mapping(self, node, what: str, allowed: tuple[str, ...]) -> dict[str, tuple[Any, Any]]:
        if not isinstance(node, yaml.MappingNode):
            self.fail(node, f"{what} must be a mapping")
        out: dict[str, tuple[Any, Any]] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            if key not in allowed:
                self.fail(key_node, f"{what}: unknown key '{key}' (allowed: {', '.join(allowed)})")
            if key in out:
                self.fail(key_node, f"{what}: duplicate key '{key}'")
            out[key] = (key_node, value_node)
        return out

    def scalar(self, node, what: str = "value") -> Any:
        if not isinstance(node, yaml.ScalarNode):
            self.fail(node, f"{what}: expected a single value")
        try:
            return yaml.SafeLoader("").construct_object(node)
        except yaml.YAMLError as exc:  # e.g. a !!python/... tag the safe loader refuses
            self.fail(node, f"{what}: {getattr(exc, 'problem', None) or exc}")
        except ValueError as exc:  # e.g. 2026-13-01 looks like a date but is none
            self.fail(node, f"{what}: {exc}")

    def number(self, node, what: str, low: float = -math.inf, high: float = math.inf) -> float:
        """A number in plain decimal, the config's rule (controller/service/yaml_numbers.py)."""
        value = None
        if isinstance(node, yaml.ScalarNode):
            try:
                value = plain_number(node)
            except NumberFormError as exc:
                self.fail(node, f"{what}: {exc}")
        if value is None:
            value = self.scalar(node, what)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            self.fail(node, f"{what} must be a number, got {value!r}")
        if not low <= value <= high:
            self.fail(node, f"{what} must be between {low:g} and {high:g}, got {value!r}")
        return float(value)

    def wall_clock(self, node) -> float:
        value = self.scalar(node, "start.wall_clock")
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            value = dt.datetime(value.year, value.month, value.day)
        if isinstance(value, str):
            try:
                value = dt.datetime.fromisoformat(value)
            except ValueError:
                self.fail(node, f"start.wall_clock must be an ISO date-time like {DEFAULT_WALL_CLOCK}, got {value!r}")
        if not isinstance(value, dt.datetime):
            self.fail(node, f"start.wall_clock must be an ISO date-time, got {value!r}")
        return value.timestamp()  # naive -> local time


def load_scenario(path: str | Path) -> Scenario:
    path = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read scenario: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{path}: cannot read scenario: not UTF-8 text (byte {exc.start})") from exc
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else path
        raise ScenarioError(f"{where}: YAML syntax error: {getattr(exc, 'problem', exc)}") from exc
    r = _Reader(path)
    if root is None:
        r.fail(None, "scenario is empty")
    top = r.mapping(root, "scenario", TOP_KEYS)
    kw: dict[str, Any] = {"wall_clock": dt.datetime.fromisoformat(DEFAULT_WALL_CLOCK).timestamp()}
    if "start" in top:
        start = r.mapping(top["start"][1], "start", START_KEYS)
        for key in ("distance_mm", "skin_c", "ambient_c", "glare"):
            if key in start:
                kw[key] = r.number(start[key][1], f"start.{key}", *_RANGES[key])
        if "wall_clock" in start:
            kw["wall_clock"] = r.wall_clock(start["wall_clock"][1])
    if "thermal_model" in top:
        value = r.scalar(top["thermal_model"][1], "thermal_model")
        if not isinstance(value, bool):
            r.fail(top["thermal_model"][1], f"thermal_model must be true or false, got {value!r}")
        kw["thermal_model"] = value
    if "seed" in top:
        seed = r.number(top["seed"][1], "seed", 0, 2**31)
        if not seed.is_integer():
            r.fail(top["seed"][1], f"seed must be a whole number, got {seed:g}")
        kw["seed"] = int(seed)
    if "name" in top:
        kw["name"] = str(r.scalar(top["name"][1], "name"))
    events = _events(r, top["events"][1]) if "events" in top else []
    last_at = events[-1].at_s if events else 0.0
    until = last_at + DEFAULT_TAIL_S
    if "until" in top:
        until = r.number(top["until"][1], "until", 0.0, MAX_UNTIL_S)
        late = [e for e in events if e.at_s > until]
        if late:  # it would silently never happen
            raise ScenarioError(
                f"{path}:{late[0].line}: event at {late[0].at_s:g} s comes after "
                f"until ({until:g} s) and would never run"
            )
    config_node = top["config"][1] if "config" in top else None
    if config_node is not None and not isinstance(config_node, yaml.MappingNode):
        if not (isinstance(config_node, yaml.ScalarNode) and config_node.value in ("", "~", "null")):
            r.fail(config_node, "config must be a mapping of config sections")
        config_node = None
    return Scenario(path=path, config_node=config_node, events=events, until_s=until, **kw)


_RANGES = {
    "distance_mm": (0.0, 65535.0),
    "skin_c": (-40.0, 400.0),
    "ambient_c": (-40.0, 125.0),
    "glare": (0.0, 100.0),
    "press": (0.001, 3600.0),
    "wall_clock_jump_s": (-10 * 365 * 86400.0, 10 * 365 * 86400.0),
    "journal_commit_s": (0.0, 3600.0),
}


def _events(r: _Reader, node) -> list[ScenarioEvent]:
    if isinstance(node, yaml.ScalarNode) and node.value in ("", "~", "null"):
        return []
    if not isinstance(node, yaml.SequenceNode):
        r.fail(node, "events must be a list")
    events: list[ScenarioEvent] = []
    for index, item in enumerate(node.value, start=1):
        entries = r.mapping(item, f"event {index}", ("at",) + ACTION_KEYS)
        if "at" not in entries:
            r.fail(item, f"event {index} has no 'at' (seconds of simulated time)")
        at_s = r.number(entries["at"][1], f"event {index}: at", 0.0, MAX_UNTIL_S)
        if events and at_s < events[-1].at_s:
            r.fail(
                entries["at"][1],
                f"event {index}: events must be sorted by 'at' ({at_s:g} comes after {events[-1].at_s:g})",
            )
        actions: dict[str, Any] = {}
        for key, (_key_node, value_node) in entries.items():
            if key == "at":
                continue
            if key == "fault":
                actions[key] = _fault(r, value_node, index)
            elif key == "restart":
                value = r.scalar(value_node, f"event {index}: restart")
                if value is not True:
                    r.fail(value_node, f"event {index}: restart must be true, got {value!r}")
                actions[key] = True
            elif key == "journal_commit_s" and isinstance(value_node, yaml.ScalarNode) and value_node.value == "never":
                actions[key] = None
            else:
                actions[key] = r.number(value_node, f"event {index}: {key}", *_RANGES[key])
        if not actions:
            r.fail(item, f"event {index} does nothing (one of: {', '.join(ACTION_KEYS)})")
        events.append(ScenarioEvent(at_s, actions, item.start_mark.line + 1))
    return events


def _fault(r: _Reader, node, index: int) -> tuple[str, str]:
    entries = r.mapping(node, f"event {index}: fault", ("sensor", "kind"))
    for key in ("sensor", "kind"):
        if key not in entries:
            r.fail(node, f"event {index}: fault needs '{key}'")
    sensor = r.scalar(entries["sensor"][1], f"event {index}: fault sensor")
    kind = r.scalar(entries["kind"][1], f"event {index}: fault kind")
    if sensor not in ("distance", "skin"):
        r.fail(entries["sensor"][1], f"event {index}: fault sensor must be distance or skin, got {sensor!r}")
    if kind not in FAULT_KINDS:
        r.fail(entries["kind"][1], f"event {index}: fault kind must be one of {', '.join(FAULT_KINDS)}, got {kind!r}")
    return sensor, kind
