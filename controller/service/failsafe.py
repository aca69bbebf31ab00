"""`irlamp failsafe` (systemd ExecStopPost, SR-2): drive the lamp's relay pins to their off level.

It runs after every stop and crash, with whatever the config file holds at that moment
(someone may be editing it). So the pins come from, in this order of trust:

  1. the record the daemon wrote before it drove any pin (`outputs.json`, next to its status
     file: the runtime directory, or the state directory when that is not writable): the
     pins and polarities it really drove;
  2. the config, validated;
  3. the relay keys read leniently from the config file: undecodable bytes and YAML errors
     elsewhere in the file do not hide `relay_pin: 5`.

It prints which source it used and each pin it drove, to which level. When no source names
the lamp relay's pin it drives nothing and exits 1 saying so (the unit then shows failed).

A record that disagrees with the config: the record's pins are driven (they are what was
really driven). A relay pin the config names and the record does not is driven to the
config's off level too (the file may have been edited for a rewiring while the daemon ran);
it is left alone when the record shows that pin in another role (a button wired to GND
must never be driven). A pin the record names with another polarity than the config keeps
the record's polarity: driving the config's "off" would switch that relay on.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import yaml

OUTPUTS_FILENAME = "outputs.json"
RECORD_VERSION = 1
BCM_PINS = range(0, 28)  # the GPIO numbers on the Pi's 40-pin header
RELAY_KEYS = ("relay_pin", "relay_active_high", "enable_relay_pin", "enable_relay_active_high")
PANEL_OUTPUT_KEYS = ("led_green_pin", "led_amber_pin", "led_red_pin", "buzzer_pin")
RECORD_KEYS = RELAY_KEYS + PANEL_OUTPUT_KEYS + ("button_pin",)


@dataclass(frozen=True)
class Relay:
    role: str  # 'lamp relay' | 'enable relay'
    pin: int
    active_high: bool


@dataclass(frozen=True)
class PinPlan:
    """What to drive off, and where the pins came from (in words, for the log)."""

    source: str
    relays: tuple[Relay, ...]
    dark_pins: tuple[int, ...] = ()  # LEDs and buzzer: driven low
    roles: dict[int, str] = field(default_factory=dict)  # every pin the source names -> its key


class PinSourceError(Exception):
    """A record or config file that does not say which pins to drive; the message says why."""


def _pin(value, key: str, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    return _bcm_pin(value, key)


def _bcm_pin(value, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value not in BCM_PINS:
        raise PinSourceError(f"{key} is {value!r}, not a GPIO number 0-27")
    return value


def _polarity(value, key: str) -> bool:
    if not isinstance(value, bool):
        raise PinSourceError(f"{key} is {value!r}, not true/false")
    return value


def plan_from_gpio(values: dict, source: str) -> PinPlan:
    """A plan from the gpio keys (a record, or a validated config); raises PinSourceError."""
    relays = [
        Relay(
            "lamp relay",
            _bcm_pin(values.get("relay_pin"), "relay_pin"),
            _polarity(values.get("relay_active_high"), "relay_active_high"),
        )
    ]
    enable_pin = _pin(values.get("enable_relay_pin"), "enable_relay_pin", optional=True)
    if enable_pin is not None:
        relays.append(
            Relay(
                "enable relay",
                enable_pin,
                _polarity(values.get("enable_relay_active_high"), "enable_relay_active_high"),
            )
        )
    roles = {}
    for key in (key for key in RECORD_KEYS if key.endswith("_pin")):
        pin = _pin(values.get(key), key, optional=True)
        if pin is not None:
            roles[pin] = key
    dark = tuple(pin for pin, key in roles.items() if key in PANEL_OUTPUT_KEYS)
    return PinPlan(source, tuple(relays), dark, roles)


# -- the daemon's record --------------------------------------------------------------------
def write_output_record(directory: Path, gpio) -> Path:
    """Record the pins the daemon is about to drive (atomic, fsynced). Call before driving any."""
    from controller.service.status_writer import write_status_atomic

    path = Path(directory) / OUTPUTS_FILENAME
    record = {key: getattr(gpio, key) for key in RECORD_KEYS}
    record.update(version=RECORD_VERSION, pid=os.getpid(), written_wall=time.time())
    write_status_atomic(path, record)
    return path


def read_output_record(path: Path) -> PinPlan:
    """The plan from a record file; raises PinSourceError (or OSError) when it cannot be used."""
    try:
        record = json.loads(Path(path).read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        raise PinSourceError(f"not valid JSON ({exc})") from exc
    if not isinstance(record, dict) or record.get("version") != RECORD_VERSION:
        raise PinSourceError(f"not an irlamp output record of version {RECORD_VERSION}")
    return plan_from_gpio(record, f"the daemon's record {path} (written by pid {record.get('pid')})")


# -- lenient reading of the config file -----------------------------------------------------
_KEY_LINE = re.compile(r"^[ \t]*(%s)[ \t]*:[ \t]*([^#\r\n]*)" % "|".join(RELAY_KEYS), re.M)
_AMBIGUOUS = object()


def _scan_relay_keys(text: str) -> tuple[dict, list[str]]:
    """Relay keys from a file YAML cannot parse, line by line; a key given twice with two
    values is left out (ambiguous)."""
    found: dict = {}
    doubts = []
    for match in _KEY_LINE.finditer(text):
        key, raw = match.group(1), match.group(2).strip()
        try:
            value = yaml.safe_load(raw) if raw else None
        except (yaml.YAMLError, RecursionError):
            doubts.append(f"{key}: cannot read {raw!r}")
            continue
        if key in found and found[key] != value:
            doubts.append(f"{key} is given twice ({found[key]!r} and {value!r})")
            found[key] = _AMBIGUOUS
        elif key not in found:
            found[key] = value
    return {k: v for k, v in found.items() if v is not _AMBIGUOUS}, doubts


def lenient_relay_plan(path: Path, problem: str) -> PinPlan:
    """Relay pins from a config file that does not validate; raises PinSourceError/OSError when the
    lamp relay's pin cannot be determined from it."""
    from controller.service.config import GpioConfig
    from drivers.relay import undriven_level_high

    text = Path(path).read_bytes().decode("utf-8", errors="replace")
    try:
        tree = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError):  # RecursionError: nesting deeper than the parser copes with
        values, doubts = _scan_relay_keys(text)
        how = "read line by line (the file is not valid YAML)"
        if "relay_pin" not in values:
            raise PinSourceError("relay_pin not found" + (f" ({'; '.join(doubts)})" if doubts else "")) from None
        pin = values["relay_pin"]
        if "relay_active_high" not in values and isinstance(pin, int) and not isinstance(pin, bool):
            # the only polarity the daemon accepts on this pin (SR-2 boot-pull rule)
            values["relay_active_high"] = not undriven_level_high(pin)
            how += (
                f"; relay_active_high not found, taken as {values['relay_active_high']}, the only "
                f"polarity the daemon runs with on GPIO {pin}"
            )
        values.setdefault("enable_relay_pin", None)
        values.setdefault("enable_relay_active_high", GpioConfig.enable_relay_active_high)
    else:
        section = tree.get("gpio", {}) if isinstance(tree, dict) else None
        if not isinstance(section, dict):
            raise PinSourceError("its gpio section is not a mapping")
        defaults = GpioConfig()
        values = {key: section.get(key, getattr(defaults, key)) for key in RELAY_KEYS}
        how = "read from its gpio section alone (keys it leaves out: the defaults)"
    relay_values = {key: values.get(key) for key in RELAY_KEYS}
    return plan_from_gpio(relay_values, f"the relay keys of {path}, {how}; the file does not validate: {problem}")


def config_plan(config_path) -> tuple[PinPlan | None, str]:
    """The plan from the config (validated, else lenient); (None, why) when neither names the pins."""
    import dataclasses

    from controller.service.config import ConfigError, default_config_path, load_config

    path = Path(default_config_path() if config_path is None else config_path)
    try:
        cfg = load_config(path)
        return plan_from_gpio(dataclasses.asdict(cfg.gpio), f"the config {path}"), ""
    except ConfigError as exc:
        problem = exc.message
    try:
        return lenient_relay_plan(path, problem), ""
    except OSError as exc:
        return None, f"cannot read {path}: {exc.strerror or exc}"
    except PinSourceError as exc:
        return None, f"{path} does not validate ({problem}) and names no usable lamp relay pin: {exc}"
    except Exception as exc:  # noqa: BLE001 - the fail-safe says what it could not read, never a traceback
        return None, f"cannot read the relay keys of {path}: {type(exc).__name__}: {exc}"


# -- driving the pins -----------------------------------------------------------------------
def _level(active_high: bool) -> str:
    return f"{'low' if active_high else 'high'}: active-{'high' if active_high else 'low'}"


def drive_off(relays, dark_pins, pin_factory, say) -> bool:
    """Drive each relay to its off level and each LED pin low. True when every relay was driven."""
    from drivers.relay import leave_driven_off

    all_driven = True
    for relay in relays:
        try:
            leave_driven_off(relay.pin, relay.active_high, pin_factory)
            say(f"{relay.role} GPIO {relay.pin} driven off ({_level(relay.active_high)})")
        except Exception as exc:  # noqa: BLE001 - every other pin must still be driven off
            all_driven = False
            say(f"could not drive {relay.role} GPIO {relay.pin} off: {exc}")
    dark = []
    for pin in dark_pins:
        try:
            leave_driven_off(pin, True, pin_factory)
            dark.append(str(pin))
        except Exception as exc:  # noqa: BLE001 - an LED left lit is not a hazard
            say(f"could not switch GPIO {pin} (LED/buzzer) off: {exc}")
    if dark:
        say(f"LED/buzzer GPIO {', '.join(dark)} driven low")
    return all_driven


def _config_only_relays(record: PinPlan, config: PinPlan, say) -> list[Relay]:
    """Relays the config names that the record does not: the ones safe to drive off too."""
    extra = []
    recorded = {relay.pin: relay for relay in record.relays}
    for relay in config.relays:
        if relay.pin in recorded:
            if recorded[relay.pin].active_high != relay.active_high:
                say(
                    f"the config says GPIO {relay.pin} is active-{'high' if relay.active_high else 'low'}, "
                    f"but the daemon drove it the other way: its off level is the daemon's"
                )
        elif relay.pin in record.roles:
            say(
                f"the config names GPIO {relay.pin} as the {relay.role}, but the daemon used it as "
                f"{record.roles[relay.pin]}: left alone"
            )
        else:
            say(
                f"the config names GPIO {relay.pin} as the {relay.role}, which the daemon did not drive "
                f"(config edited since it started?): driving it off too"
            )
            extra.append(relay)
    return extra


def failsafe_command(
    config_path=None, runtime_dir=None, state_dir=None, *, pin_factory=None, err: TextIO | None = None
) -> int:
    """Exit 0: the lamp relay pins were driven off. 1: a relay pin could not be driven, or none
    of the sources names the lamp relay's pin (then nothing was driven)."""
    from controller.service.config import PathsConfig
    from controller.service.status_reader import find_status_file

    def say(line: str) -> None:
        print(f"irlamp failsafe: {line}", file=err or sys.stderr)

    record_path = find_status_file(
        runtime_dir or PathsConfig.runtime_dir, state_dir or PathsConfig.state_dir, OUTPUTS_FILENAME
    )
    record, record_problem = None, f"no record {record_path}"
    try:
        record = read_output_record(record_path)
    except FileNotFoundError:
        pass
    except (OSError, PinSourceError) as exc:
        record_problem = f"ignoring {record_path}: {exc}"
        say(record_problem)
    if record is not None:  # drive what was really driven before parsing anything else
        say(f"pins from {record.source}")
        all_driven = drive_off(record.relays, record.dark_pins, pin_factory, say)
        config, _ = config_plan(config_path)
        if config is not None:
            all_driven &= drive_off(_config_only_relays(record, config, say), (), pin_factory, say)
        return 0 if all_driven else 1
    config, config_problem = config_plan(config_path)
    if config is None:
        say(
            f"cannot tell which GPIO drives the lamp relay: {record_problem}; {config_problem}. "
            f"No pin was driven: make sure the lamp is off (unplug it) and fix the config"
        )
        return 1
    say(f"pins from {config.source}")
    return 0 if drive_off(config.relays, config.dark_pins, pin_factory, say) else 1
