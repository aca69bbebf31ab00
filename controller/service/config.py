"""Strict loader for the irlamp YAML configuration (SR-11).

`load_config` reads one YAML file (plus optional overrides, e.g. a scenario's `config:`
section) and returns a frozen `Config`, or raises `ConfigError` whose `.message` is one
line naming file, line and dotted key: `config/lamp.yaml:12: session.max_on_minutes:
must be at most 20 (hard ceiling), got 25`. Unknown keys, duplicate keys, wrong types,
out-of-range values and broken cross-field rules are all refused; nothing is guessed.
Every number has bounds, declared at its field (`bounded`, gathered in `_BOUNDS`); bounds
that are safety limits (`Hard`) are called "hard floor" / "hard ceiling" in messages because
no configuration may loosen them. Cross-field rules are listed in `_RELATIONS`.
"""

import dataclasses
import difflib
import math
import operator
import os
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path

import yaml
from yaml.constructor import SafeConstructor

from controller.core.settings import (  # noqa: F401 - the settings' types, read through this module too
    USABLE_PINS,
    ButtonConfig,
    Config,
    DistanceConfig,
    FaultConfig,
    GpioConfig,
    Hard,
    LoopConfig,
    PathsConfig,
    SessionConfig,
    SkinConfig,
    bounded,
    field_bounds,
)
from controller.service.yaml_numbers import NumberFormError, plain_number


class ConfigError(Exception):
    """A refused configuration. `.message` is one line: `file:line: key: problem`."""

    def __init__(self, message: str):
        self.message = " ".join(str(message).split())
        super().__init__(self.message)


@dataclass(frozen=True)
class _Where:
    """Where a value came from: rank 0 = default, 1 = config file, 2 = overrides."""

    source: str
    line: int | None
    rank: int

    def order(self) -> tuple[int, int]:
        return (self.rank, self.line or 0)

    def __str__(self) -> str:
        return f"{self.source}:{self.line}" if self.line else self.source


def refusal(cfg: Config, keys: typing.Sequence[str], problem: str) -> ConfigError:
    """A ConfigError `file:line: key: problem` blaming whichever of `keys` was set last in `cfg`
    (for a rule that several keys break together, e.g. a relay pin and its polarity)."""
    fallback = _Where(cfg.source, None, 0)
    origins = typing.cast(typing.Mapping[str, _Where], cfg.origins)
    key = _last_set(keys, lambda key: origins.get(key, fallback))
    return ConfigError(f"{origins.get(key, fallback)}: {key}: {problem}")


@dataclass(frozen=True)
class Schema:
    """What one YAML file may hold: sections (name -> dataclass with defaults), inclusive
    (lowest, highest) bounds of every number, cross-field rules, and for text settings that
    are not absolute paths a (regex, description) they must match. lamp.yaml and the MQTT
    bridge's bridge.yaml are both read through this one validator."""

    sections: dict
    bounds: dict
    relations: tuple = ()
    text_patterns: dict = dataclasses.field(default_factory=dict)

    @property
    def types(self) -> dict:
        return {
            f"{name}.{key}": hint
            for name, cls in self.sections.items()
            for key, hint in typing.get_type_hints(cls).items()
        }


def sections_of(config_class) -> dict:
    """{section name: dataclass} of a config dataclass whose fields are sections (+ `source`,
    and `origins` where it has them)."""
    hints = typing.get_type_hints(config_class)
    return {f.name: hints[f.name] for f in dataclasses.fields(config_class) if f.name not in ("source", "origins")}


_SECTIONS = sections_of(Config)
_TYPES = {f"{name}.{key}": hint for name, cls in _SECTIONS.items() for key, hint in typing.get_type_hints(cls).items()}
_PIN_KEYS = [key for key in _TYPES if key.startswith("gpio.") and key.endswith("_pin")]

# Inclusive (lowest, highest) of every number, as declared at its field.
_BOUNDS = field_bounds(_SECTIONS)

# Cross-field rules: (subject, relation, expression of other keys and constants joined by + / -).
_RELATIONS = (
    ("distance.max_mm", ">=", "distance.min_mm + distance.hysteresis_mm + 20"),
    ("distance.absent_mm", ">", "distance.max_mm"),
    ("session.max_wall_minutes", ">=", "session.max_on_minutes"),
    ("skin.plausible_max_c", ">", "skin.limit_c"),
    ("skin.plausible_min_c", "<", "skin.limit_c - skin.warning_margin_c"),
    ("button.stuck_s", ">=", "button.long_press_s + 5"),
    ("distance.ambient_doubt_mcps", ">", "distance.ambient_warn_mcps"),
    ("faults.distance_unreliable_after_s", ">=", "faults.distance_stale_s"),
    ("skin.comfort_c", "<=", "skin.limit_c - skin.warning_margin_c"),
)
_COMPARE = {
    ">=": (operator.ge, "at least"),
    ">": (operator.gt, "greater than"),
    "<": (operator.lt, "less than"),
    "<=": (operator.le, "at most"),
}

LAMP_SCHEMA = Schema(_SECTIONS, _BOUNDS, _RELATIONS)

SYSTEM_CONFIG_PATH = Path("/etc/irlamp/lamp.yaml")
# The example config of this checkout (outside an installed package: a source checkout only).
BUNDLED_CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
BUNDLED_CONFIG_PATH = BUNDLED_CONFIG_DIR / "lamp.yaml"
_NULL_TAG = "tag:yaml.org,2002:null"


def _refuse(where: _Where, key: str, problem: str) -> typing.NoReturn:
    raise ConfigError(f"{where}: {key}: {problem}")


def _last_set(keys: typing.Iterable[str], where_of: typing.Callable[[str], _Where]) -> str:
    """Of several keys that break a rule together, the one set last (overrides after the file,
    later lines after earlier ones, defaults first): that is the edit to blame."""
    return max(keys, key=lambda key: where_of(key).order())


def _fmt(number) -> str:
    if isinstance(number, int) and not isinstance(number, bool) and abs(number) >= 10**15:
        return f"a {int(math.log10(abs(number))) + 1}-digit number"  # str() of it may even fail
    if isinstance(number, float) and math.isfinite(number):
        number = round(number, 9)
        return str(int(number)) if number.is_integer() else repr(number)
    return str(number)


def _describe(value) -> str:
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if value is None:
        return "nothing (null)"
    if isinstance(value, str):
        return f"{value[:40]!r} (a string)"
    if isinstance(value, (yaml.MappingNode, dict)):
        return "a mapping"
    if isinstance(value, (yaml.SequenceNode, list)):
        return "a list"
    if isinstance(value, (int, float)):
        return _fmt(value)
    if isinstance(value, yaml.ScalarNode):
        return value.value[:40]
    return f"{value} (a {type(value).__name__})"


def _suggest(word: str, choices) -> str:
    """' (did you mean ...?)' naming the same key in another section, else the closest name."""
    moved = [choice for choice in choices if choice.endswith("." + word.split(".")[-1])]
    close = moved or difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _items(tree, name: str, where: _Where):
    """Yield (key, value, where) of a mapping given as a YAML node or a dict; empty means {}."""
    if tree is None or (isinstance(tree, yaml.ScalarNode) and tree.tag == _NULL_TAG):
        return
    if isinstance(tree, dict):
        for key, value in tree.items():
            if not isinstance(key, str):
                _refuse(where, name, f"keys must be names, got {_describe(key)}")
            yield key, value, where
        return
    if not isinstance(tree, yaml.MappingNode):
        _refuse(where, name, f"must be a mapping of names to values, got {_describe(tree)}")
    first_lines: dict[str, int | None] = {}
    for key_node, value_node in tree.value:
        key_where = _Where(where.source, key_node.start_mark.line + 1, where.rank)
        if not isinstance(key_node, yaml.ScalarNode):
            _refuse(key_where, name, "keys must be plain names")
        key = key_node.value
        dotted = key if name == "(top level)" else f"{name}.{key}"
        if key in first_lines:
            _refuse(key_where, dotted, f"duplicate key (first given at line {first_lines[key]})")
        first_lines[key] = key_where.line
        yield key, value_node, key_where


def _scalar_value(key: str, node: yaml.ScalarNode, where: _Where, numeric: bool):
    """The Python value of a scalar; for a number key, number-like text is read by the
    plain-decimal rule of controller/service/yaml_numbers.py instead of YAML 1.1's."""
    if numeric:
        try:
            number = plain_number(node)
        except NumberFormError as error:
            _refuse(where, key, str(error))
        if number is not None:
            return number
    try:
        return SafeConstructor().construct_object(node)
    except yaml.YAMLError as error:
        _refuse(where, key, f"cannot read value: {getattr(error, 'problem', error)}")


def _checked_value(schema: Schema, key: str, raw, where: _Where):
    """The Python value of one setting, after type and static range checks."""
    hint = schema.types[key]
    optional = isinstance(hint, types.UnionType)
    kind = next(arg for arg in typing.get_args(hint) if arg is not type(None)) if optional else hint
    value = raw
    if isinstance(raw, yaml.ScalarNode):
        value = _scalar_value(key, raw, where, numeric=kind in (int, float))
    if value is None and optional:
        return None
    pattern = schema.text_patterns.get(key)
    if kind is bool or kind is str:
        if not isinstance(value, kind):
            wanted = "true or false" if kind is bool else ("text" if pattern else "a path (text)")
            _refuse(where, key, f"must be {wanted}{' or null' if optional else ''}, got {_describe(value)}")
        if kind is str and isinstance(value, str) and pattern is None and not Path(value).is_absolute():
            _refuse(where, key, f"must be an absolute path, got {value!r}")
        if kind is str and isinstance(value, str) and pattern is not None and not re.fullmatch(pattern[0], value):
            _refuse(where, key, f"must be {pattern[1]}, got {value[:40]!r}")
        return value
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int and not (is_number and isinstance(value, int)):
        decimal = isinstance(raw, yaml.ScalarNode) and is_number
        written = raw.value[:40] + " (no decimal point or exponent)" if decimal else _describe(value)
        _refuse(where, key, f"must be a whole number{' or null' if optional else ''}, got {written}")
    if kind is float and is_number:
        try:
            value = float(value)
        except OverflowError:  # an int from a dict beyond the float range
            _refuse(where, key, f"{_fmt(value)} is far too large")
    if kind is float and (not is_number or math.isnan(value)):
        _refuse(where, key, f"must be a number, got {_describe(value)}")
    lowest, highest = schema.bounds[key]
    if value < lowest:
        hard = " (hard floor)" if isinstance(lowest, Hard) else ""
        _refuse(where, key, f"must be at least {_fmt(lowest)}{hard}, got {_fmt(value)}")
    if value > highest:
        hard = " (hard ceiling)" if isinstance(highest, Hard) else ""
        _refuse(where, key, f"must be at most {_fmt(highest)}{hard}, got {_fmt(value)}")
    return value


def _read_entries(schema: Schema, tree, source: str, rank: int) -> dict:
    """Flatten a config tree into {'section.key': (value, where)}, refusing anything unknown."""
    line = tree.start_mark.line + 1 if isinstance(tree, yaml.Node) else None
    entries = {}
    top = _Where(source, line, rank)
    known = schema.types
    for section, section_tree, section_where in _items(tree, "(top level)", top):
        if section not in schema.sections:
            _refuse(section_where, section, "unknown section" + _suggest(section, [*schema.sections, *known]))
        for key, raw, where in _items(section_tree, section, section_where):
            dotted = f"{section}.{key}"
            if dotted not in known:
                _refuse(where, dotted, "unknown key" + _suggest(dotted, known))
            entries[dotted] = (_checked_value(schema, dotted, raw, where), where)
    return entries


def _compose_file(source: str):
    """The YAML node tree of the file (None when empty), or ConfigError with the line."""
    try:
        data = Path(source).read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{source}: config file not found") from None
    except OSError as error:
        reason = error.strerror or error
        raise ConfigError(f"{source}: cannot read config file: {reason}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        bad_byte = data[error.start]
        raise ConfigError(f"{source}:{line}: not UTF-8 text (byte {bad_byte:#04x})") from None
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        problem = ", ".join(part for part in (error.context, error.problem) if part)
        mark = error.problem_mark or error.context_mark
        where = f"{source}:{mark.line + 1}" if mark else source
        raise ConfigError(f"{where}: YAML syntax error: {problem}") from None
    except yaml.reader.ReaderError as error:
        line = text.count("\n", 0, error.position) + 1
        raise ConfigError(f"{source}:{line}: YAML syntax error: {error.reason}") from None
    except RecursionError:
        raise ConfigError(f"{source}: YAML nested too deeply") from None


def _check_relations(schema: Schema, values: dict) -> None:
    """Cross-field rules, blamed on the key of the rule that was set last (the 'second' key)."""
    for subject, relation, expression in schema.relations:
        terms = expression.split()
        bound = values[terms[0]][0]
        for sign, term in zip(terms[1::2], terms[2::2], strict=True):
            amount = values[term][0] if term in values else float(term)
            bound = bound + amount if sign == "+" else bound - amount
        compare, words = _COMPARE[relation]
        value = values[subject][0]
        if value is None or compare(value, round(bound, 9)):  # null: the setting is off
            continue
        involved = [subject, *re.findall(r"[a-z_]+\.[a-z_]+", expression)]
        blamed = _last_set(involved, lambda key: values[key][1])
        rule = f"must be {words} {expression} = {_fmt(bound)}"
        if blamed == subject:
            _refuse(values[subject][1], subject, f"{rule}, got {_fmt(value)}")
        _refuse(values[blamed][1], blamed, f"{subject} ({_fmt(value)}) {rule}")


def _check_pins_distinct(values: dict) -> None:
    used: dict[int, str] = {}
    for key in sorted(_PIN_KEYS, key=lambda key: values[key][1].order()):
        pin, where = values[key]
        if pin is not None and pin in used:
            _refuse(where, key, f"GPIO {pin} is already used by {used[pin]}")
        if pin is not None:
            used[pin] = key


def default_config_path() -> Path:
    """$IRLAMP_CONFIG if set, else /etc/irlamp/lamp.yaml if it exists,
    else config/lamp.yaml of this repository."""
    if os.environ.get("IRLAMP_CONFIG"):
        return Path(os.environ["IRLAMP_CONFIG"])
    if SYSTEM_CONFIG_PATH.exists():
        return SYSTEM_CONFIG_PATH
    return BUNDLED_CONFIG_PATH


def load_config(path: str | Path | None = None, *, overrides=None, overrides_source: str = "<overrides>") -> Config:
    """Load and validate the file, deep-merging `overrides` (None, a dict, or a yaml MappingNode
    whose marks point into `overrides_source`) over it. Returns a Config or raises ConfigError."""
    source = str(default_config_path() if path is None else path)
    return load_sections(
        LAMP_SCHEMA,
        source,
        overrides=overrides,
        overrides_source=overrides_source,
        check=_check_pins_distinct,
        build=lambda sections, origins: Config(**sections, source=source, origins=origins),
    )


def load_sections(
    schema: Schema, source: str, *, build, overrides=None, overrides_source: str = "<overrides>", check=None
):
    """Validate the YAML file `source` (plus `overrides`) against `schema` and return
    `build({section name: section dataclass}, {dotted key: where it was set})`, or raise
    ConfigError (one line, file:line: key).
    `check(values)` runs extra rules over {'section.key': (value, where)}."""
    try:
        defaults = _Where(source, None, 0)
        values = {
            key: (getattr(schema.sections[key.split(".")[0]](), key.split(".")[1]), defaults) for key in schema.types
        }
        values.update(_read_entries(schema, _compose_file(source), source, rank=1))
        if overrides is not None:
            values.update(_read_entries(schema, overrides, overrides_source, rank=2))
        _check_relations(schema, values)
        if check is not None:
            check(values)
        sections = {
            name: cls(**{key.split(".")[1]: value for key, (value, _) in values.items() if key.startswith(name + ".")})
            for name, cls in schema.sections.items()
        }
        return build(sections, types.MappingProxyType({key: where for key, (_, where) in values.items()}))
    except ConfigError:
        raise
    except Exception as error:  # a bug here must still end as one clear line, lamp off
        problem = f"{type(error).__name__}: {error}"
        raise ConfigError(f"{source}: cannot load config: {problem}") from error


def config_to_dict(cfg: Config) -> dict:
    """Nested plain dict of the effective values, without `source`."""
    return {name: dataclasses.asdict(getattr(cfg, name)) for name in _SECTIONS}


def format_config(cfg: Config) -> str:
    """The effective configuration as YAML text (loadable again by load_config)."""
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False, default_flow_style=False)
