"""Strict loader for the irlamp YAML configuration (SR-11).

`load_config` reads one YAML file (plus optional overrides, e.g. a scenario's `config:`
section) and returns a frozen `Config`, or raises `ConfigError` whose `.message` is one
line naming file, line and dotted key: `config/lamp.yaml:12: session.max_on_minutes:
must be at most 20 (hard ceiling), got 25`. Unknown keys, duplicate keys, wrong types,
out-of-range values and broken cross-field rules are all refused; nothing is guessed.
Every number has bounds, declared at its field (`bounded`, gathered in `_BOUNDS`); bounds
that are safety limits (`Hard`) are called "hard floor" / "hard ceiling" in messages because
no configuration may loosen them. Rules between settings (`distance.absent_mm` above
`distance.max_mm`, ...) are plain functions over the loaded settings, listed in
`CROSS_FIELD_RULES`; each refuses naming every key it reads and the bound with its value.
"""

import dataclasses
import difflib
import math
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


class LoadedSettings(typing.Protocol):
    """A loaded config (lamp.yaml's `Config`, bridge.yaml's `BridgeConfig`): its file, and
    where each dotted key was set."""

    @property
    def source(self) -> str: ...

    @property
    def origins(self) -> typing.Mapping[str, object]: ...


def _blamed(cfg: LoadedSettings, keys: typing.Sequence[str]) -> tuple[str, _Where]:
    """Of `keys`, the one set last in `cfg`, and where."""
    fallback = _Where(cfg.source, None, 0)
    origins = typing.cast(typing.Mapping[str, _Where], cfg.origins)
    key = _last_set(keys, lambda key: origins.get(key, fallback))
    return key, origins.get(key, fallback)


def refusal(cfg: LoadedSettings, keys: typing.Sequence[str], problem: str) -> ConfigError:
    """A ConfigError `file:line: key: problem` blaming whichever of `keys` was set last in `cfg`
    (for a rule that several keys break together, e.g. a relay pin and its polarity)."""
    key, where = _blamed(cfg, keys)
    return ConfigError(f"{where}: {key}: {problem}")


def bound_of(total: float) -> float:
    """A bound summed from settings, rounded to 9 places, so that it is what the user typed:
    304.8 + 5.1 + 20 is 329.90000000000003 in floating point, the bound is 329.9."""
    return round(total, 9)


def broken_rule(
    cfg: LoadedSettings, keys: typing.Sequence[str], value: float, must_be: str, bound: float
) -> ConfigError:
    """The refusal of a cross-field rule: `keys[0]` (now `value`) must be `must_be` (the bound
    written out with its keys, e.g. "at least session.max_on_minutes") = `bound`. `keys` are
    the subject and every key of the bound; the one set last is blamed (that is the edit that
    broke the rule), and the message names the others: `lamp.yaml:12: session.max_wall_minutes:
    must be at least session.max_on_minutes = 20, got 15`, or when max_on_minutes was set
    last, `lamp.yaml:14: session.max_on_minutes: session.max_wall_minutes (15) must be ...`."""
    subject = keys[0]
    blamed, where = _blamed(cfg, keys)
    rule = f"must be {must_be} = {_fmt(bound)}"
    if blamed == subject:
        return ConfigError(f"{where}: {subject}: {rule}, got {_fmt(value)}")
    return ConfigError(f"{where}: {blamed}: {subject} ({_fmt(value)}) {rule}")


@dataclass(frozen=True)
class Schema:
    """What one YAML file may hold: sections (name -> dataclass with defaults), inclusive
    (lowest, highest) bounds of every number, cross-field rules (functions that raise
    ConfigError for a loaded config that breaks them), and for text settings that
    are not absolute paths a (regex, description) they must match. lamp.yaml and the MQTT
    bridge's bridge.yaml are both read through this one validator."""

    sections: dict
    bounds: dict
    rules: tuple[typing.Callable[[typing.Any], None], ...] = ()
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


# --- cross-field rules: one plain function each, over the loaded settings -----------------------


def start_band_clears_the_resume_point(cfg: Config) -> None:
    """A start needs the person 20 mm or more inside the band beyond where a paused session
    resumes (min_mm + hysteresis_mm)."""
    distance = cfg.distance
    bound = bound_of(distance.min_mm + distance.hysteresis_mm + 20)
    if not distance.max_mm >= bound:
        keys = ("distance.max_mm", "distance.min_mm", "distance.hysteresis_mm")
        raise broken_rule(cfg, keys, distance.max_mm, "at least distance.min_mm + distance.hysteresis_mm + 20", bound)


def nobody_there_is_beyond_the_band(cfg: Config) -> None:
    """Nobody there (beyond absent_mm) is farther than the top of the start band."""
    distance = cfg.distance
    bound = bound_of(distance.max_mm)
    if not distance.absent_mm > bound:
        keys = ("distance.absent_mm", "distance.max_mm")
        raise broken_rule(cfg, keys, distance.absent_mm, "greater than distance.max_mm", bound)


def wall_time_cap_allows_the_on_time_cap(cfg: Config) -> None:
    """A session's elapsed-time cap leaves room for its whole lamp-on cap."""
    session = cfg.session
    bound = bound_of(session.max_on_minutes)
    if not session.max_wall_minutes >= bound:
        keys = ("session.max_wall_minutes", "session.max_on_minutes")
        raise broken_rule(cfg, keys, session.max_wall_minutes, "at least session.max_on_minutes", bound)


def plausible_skin_reaches_above_the_limit(cfg: Config) -> None:
    """A skin reading at the limit is still believed, so it trips the limit. (Today's field
    bounds already keep this one and the next two; the rules stay for bounds that may change.)"""
    skin = cfg.skin
    bound = bound_of(skin.limit_c)
    if not skin.plausible_max_c > bound:
        keys = ("skin.plausible_max_c", "skin.limit_c")
        raise broken_rule(cfg, keys, skin.plausible_max_c, "greater than skin.limit_c", bound)


def plausible_skin_reaches_below_the_warning_band(cfg: Config) -> None:
    """A skin reading at the start of the warning band is still believed (not a sensor fault)."""
    skin = cfg.skin
    bound = bound_of(skin.limit_c - skin.warning_margin_c)
    if not skin.plausible_min_c < bound:
        keys = ("skin.plausible_min_c", "skin.limit_c", "skin.warning_margin_c")
        raise broken_rule(cfg, keys, skin.plausible_min_c, "less than skin.limit_c - skin.warning_margin_c", bound)


def stuck_button_outlasts_a_long_press(cfg: Config) -> None:
    """A long press (acknowledge) is over well before the button counts as stuck."""
    button = cfg.button
    bound = bound_of(button.long_press_s + 5)
    if not button.stuck_s >= bound:
        keys = ("button.stuck_s", "button.long_press_s")
        raise broken_rule(cfg, keys, button.stuck_s, "at least button.long_press_s + 5", bound)


def glare_doubt_is_above_the_glare_warning(cfg: Config) -> None:
    """Ambient light is warned about before it is strong enough to doubt a measurement."""
    distance = cfg.distance
    bound = bound_of(distance.ambient_warn_mcps)
    if not distance.ambient_doubt_mcps > bound:
        keys = ("distance.ambient_doubt_mcps", "distance.ambient_warn_mcps")
        raise broken_rule(cfg, keys, distance.ambient_doubt_mcps, "greater than distance.ambient_warn_mcps", bound)


def unreliable_distance_waits_for_a_stale_one(cfg: Config) -> None:
    """Doubted distances latch distance_unreliable no sooner than missing ones go stale."""
    faults = cfg.faults
    bound = bound_of(faults.distance_stale_s)
    if not faults.distance_unreliable_after_s >= bound:
        keys = ("faults.distance_unreliable_after_s", "faults.distance_stale_s")
        value = faults.distance_unreliable_after_s
        raise broken_rule(cfg, keys, value, "at least faults.distance_stale_s", bound)


def comfort_set_point_below_the_warning_band(cfg: Config) -> None:
    """SR-14: the servo may only switch off earlier than the warning band; null: no servo."""
    skin = cfg.skin
    bound = bound_of(skin.limit_c - skin.warning_margin_c)
    if skin.comfort_c is not None and not skin.comfort_c <= bound:
        keys = ("skin.comfort_c", "skin.limit_c", "skin.warning_margin_c")
        raise broken_rule(cfg, keys, skin.comfort_c, "at most skin.limit_c - skin.warning_margin_c", bound)


CROSS_FIELD_RULES = (
    start_band_clears_the_resume_point,
    nobody_there_is_beyond_the_band,
    wall_time_cap_allows_the_on_time_cap,
    plausible_skin_reaches_above_the_limit,
    plausible_skin_reaches_below_the_warning_band,
    stuck_button_outlasts_a_long_press,
    glare_doubt_is_above_the_glare_warning,
    unreliable_distance_waits_for_a_stale_one,
    comfort_set_point_below_the_warning_band,
)

LAMP_SCHEMA = Schema(_SECTIONS, _BOUNDS, CROSS_FIELD_RULES)

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
    ConfigError (one line, file:line: key). The schema's rules run on what `build` returned,
    then `check(values)` runs extra rules over {'section.key': (value, where)}."""
    try:
        defaults = _Where(source, None, 0)
        values = {
            key: (getattr(schema.sections[key.split(".")[0]](), key.split(".")[1]), defaults) for key in schema.types
        }
        values.update(_read_entries(schema, _compose_file(source), source, rank=1))
        if overrides is not None:
            values.update(_read_entries(schema, overrides, overrides_source, rank=2))
        sections = {
            name: cls(**{key.split(".")[1]: value for key, (value, _) in values.items() if key.startswith(name + ".")})
            for name, cls in schema.sections.items()
        }
        loaded = build(sections, types.MappingProxyType({key: where for key, (_, where) in values.items()}))
        for rule in schema.rules:
            rule(loaded)
        if check is not None:
            check(values)
        return loaded
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
