"""`irlamp failsafe` (systemd ExecStopPost, SR-2): every relay pin the daemon drove ends at its off level.

It runs after every stop and crash with whatever the config file holds by then, so it takes
the pins from the daemon's own record first, then the config, then the relay keys read
leniently from a broken file. Out of process with GPIOZERO_PIN_FACTORY=mock (gpiozero builds
its MockFactory from that variable), and in process on a MockFactory whose pins the test
reads afterwards: a pin the fail-safe must not touch keeps the level it was left at.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from gpiozero import OutputDevice
from gpiozero.pins.mock import MockFactory

from controller.service import run as run_module
from controller.service.failsafe import OUTPUTS_FILENAME, failsafe_command, write_output_record
from helpers_core import REPO, config_with

ACTIVE_LOW_GPIO = {
    "relay_pin": 5,
    "relay_active_high": False,
    "enable_relay_pin": 6,
    "enable_relay_active_high": False,
    "buzzer_pin": 25,
}
BROKEN_YAML = "gpio:\n  relay_pin: 5\n  relay_active_high: false\n  led_red_pin: [24\nskin:\n  limit_c: 43\n"
LATIN1_DEGREE = "\N{DEGREE SIGN}".encode("latin-1")  # b"\xb0": not UTF-8 on its own


def write_config(path: Path, gpio: dict) -> Path:
    path.write_text(yaml.safe_dump({"gpio": gpio}))
    return path


def no_record_dirs(tmp_path: Path) -> list[str]:
    """Empty runtime and state directories: no daemon record to find."""
    return ["--runtime-dir", str(tmp_path / "run"), "--state-dir", str(tmp_path / "state")]


def run_failsafe(config: Path, *dirs: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, GPIOZERO_PIN_FACTORY="mock", PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "controller.cli", "failsafe", "--config", str(config), *dirs],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("gpio", [{}, ACTIVE_LOW_GPIO], ids=["defaults", "active_low"])
def test_failsafe_command_exits_zero_with_mock_pins(tmp_path, gpio):
    result = run_failsafe(write_config(tmp_path / "lamp.yaml", gpio), *no_record_dirs(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    relay_pin = gpio.get("relay_pin", 17)
    assert f"relay GPIO {relay_pin} driven off" in result.stderr


def test_failsafe_command_still_drives_off_with_a_broken_config(tmp_path):
    config = tmp_path / "lamp.yaml"
    config.write_text("gpio:\n  relay_pin: 5\n  relay_active_high: false\n  no_such_key: 1\n")
    result = run_failsafe(config, *no_record_dirs(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "relay GPIO 5 driven off" in result.stderr


def test_failsafe_command_reads_a_non_utf8_config_without_a_traceback(tmp_path):
    config = tmp_path / "lamp.yaml"
    config.write_bytes(b"# lamp head runs at 60 " + LATIN1_DEGREE + b"C\n" + BROKEN_YAML.encode())
    result = run_failsafe(config, *no_record_dirs(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "relay GPIO 5 driven off" in result.stderr


@pytest.fixture
def pins():
    return MockFactory()


def leave_at(factory: MockFactory, pin: int, level: bool) -> None:
    """Drive `pin` to `level` and release it, as a crashed daemon would leave it."""
    device = OutputDevice(pin, initial_value=level, pin_factory=factory)
    device.close()
    assert factory.pin(pin).state is level


def failsafe(tmp_path: Path, pins: MockFactory, config: Path | None) -> tuple[int, str]:
    err = io.StringIO()
    code = failsafe_command(config, tmp_path / "run", tmp_path / "state", pin_factory=pins, err=err)
    return code, err.getvalue()


def record_daemon_pins(tmp_path: Path, gpio: dict) -> Path:
    """What `irlamp run` writes before it drives a pin."""
    runtime = tmp_path / "run"
    runtime.mkdir(exist_ok=True)
    return write_output_record(runtime, config_with({"gpio": gpio}).gpio)


@pytest.mark.parametrize("gpio", [{}, ACTIVE_LOW_GPIO], ids=["active_high", "active_low"])
def test_failsafe_drives_relays_to_their_off_level_in_process(tmp_path, pins, gpio):
    g = config_with({"gpio": gpio}).gpio
    relays = [(g.relay_pin, g.relay_active_high)]
    if g.enable_relay_pin is not None:
        relays.append((g.enable_relay_pin, g.enable_relay_active_high))
    for pin, active_high in relays:  # the relays were left ON
        leave_at(pins, pin, active_high)
    leds = [p for p in (g.led_green_pin, g.led_amber_pin, g.led_red_pin, g.buzzer_pin) if p is not None]
    for pin in leds:
        leave_at(pins, pin, True)
    code, err = failsafe(tmp_path, pins, write_config(tmp_path / "lamp.yaml", gpio))
    assert code == 0, err
    assert f"pins from the config {tmp_path / 'lamp.yaml'}" in err
    for pin, active_high in relays:
        assert pins.pin(pin).state is (not active_high), f"relay GPIO {pin} is not at its off level"
    for pin in leds:
        assert pins.pin(pin).state is False, f"GPIO {pin} still lit"


def test_failsafe_reports_a_relay_it_could_not_drive(tmp_path, pins):
    config = write_config(tmp_path / "lamp.yaml", {})
    blocker = OutputDevice(17, pin_factory=pins)  # pin already in use
    try:
        code, err = failsafe(tmp_path, pins, config)
    finally:
        blocker.close()
    assert code == 1
    assert "could not drive lamp relay GPIO 17" in err


def test_failsafe_with_a_yaml_syntax_error_drives_the_relay_pin_in_the_file_not_the_default(tmp_path, pins):
    leave_at(pins, 5, False)  # the real relay, active-low: ON
    leave_at(pins, 17, True)  # the default relay pin: must not be touched
    config = tmp_path / "lamp.yaml"
    config.write_text(BROKEN_YAML)
    code, err = failsafe(tmp_path, pins, config)
    assert code == 0, err
    assert pins.pin(5).state is True, "GPIO 5 (active-low relay) is not at its off level (high)"
    assert pins.pin(17).state is True, "the fail-safe drove the default GPIO 17 instead"
    assert "read line by line" in err and "lamp relay GPIO 5 driven off (high: active-low)" in err


@pytest.mark.parametrize("pin, off_level", [(5, True), (18, False)])
def test_failsafe_takes_the_only_boot_safe_polarity_when_a_broken_file_does_not_give_one(
    tmp_path, pins, pin, off_level
):
    leave_at(pins, pin, not off_level)  # the relay was left ON
    config = tmp_path / "lamp.yaml"
    config.write_text(f"gpio:\n  relay_pin: {pin}\n  led_red_pin: [24\n")
    code, err = failsafe(tmp_path, pins, config)
    assert code == 0, err
    assert pins.pin(pin).state is off_level and "relay_active_high not found" in err


@pytest.mark.parametrize("yaml_ok", [True, False], ids=["valid_yaml", "broken_yaml"])
def test_failsafe_with_a_latin1_byte_in_the_config_drives_the_right_pin(tmp_path, pins, yaml_ok):
    leave_at(pins, 5, False)
    leave_at(pins, 17, True)
    body = "gpio:\n  relay_pin: 5\n  relay_active_high: false\n" if yaml_ok else BROKEN_YAML
    config = tmp_path / "lamp.yaml"
    config.write_bytes(b"# sensor body limit 60 " + LATIN1_DEGREE + b"C\n" + body.encode())
    code, err = failsafe(tmp_path, pins, config)
    assert code == 0, err
    assert pins.pin(5).state is True and pins.pin(17).state is True
    assert "Traceback" not in err and "lamp relay GPIO 5 driven off" in err


def test_failsafe_finds_the_relay_pin_in_a_config_that_makes_the_yaml_parser_recurse_too_deep(tmp_path, pins):
    leave_at(pins, 5, False)
    config = tmp_path / "lamp.yaml"
    config.write_text("gpio:\n  relay_pin: 5\n  relay_active_high: false\nx: " + "[" * 5000 + "]" * 5000 + "\n")
    code, err = failsafe(tmp_path, pins, config)
    assert code == 0, err
    assert pins.pin(5).state is True and "lamp relay GPIO 5 driven off" in err


def test_failsafe_uses_the_daemons_record_when_the_config_is_missing(tmp_path, pins):
    record_daemon_pins(tmp_path, ACTIVE_LOW_GPIO)
    leave_at(pins, 5, False)
    leave_at(pins, 6, False)
    code, err = failsafe(tmp_path, pins, tmp_path / "gone.yaml")
    assert code == 0, err
    assert pins.pin(5).state is True and pins.pin(6).state is True
    assert f"pins from the daemon's record {tmp_path / 'run' / OUTPUTS_FILENAME}" in err
    assert "enable relay GPIO 6 driven off (high: active-low)" in err


def test_failsafe_drives_the_recorded_pins_when_the_config_changed_since_the_daemon_started(tmp_path, pins):
    record_daemon_pins(tmp_path, {"relay_pin": 5, "relay_active_high": False})
    leave_at(pins, 5, False)  # what the daemon really drove: ON
    leave_at(pins, 18, True)  # the pin the edited config names, left high
    config = write_config(tmp_path / "lamp.yaml", {"relay_pin": 18, "relay_active_high": True})
    code, err = failsafe(tmp_path, pins, config)
    assert code == 0, err
    assert "pins from the daemon's record" in err
    assert pins.pin(5).state is True, "the relay the daemon really drove was not switched off"
    assert pins.pin(18).state is False, "the config's relay pin was not driven off as well"
    assert "the config names GPIO 18 as the lamp relay, which the daemon did not drive" in err


def test_failsafe_keeps_the_recorded_polarity_and_never_drives_the_daemons_button(tmp_path, pins):
    record_daemon_pins(tmp_path, {"relay_pin": 5, "relay_active_high": False, "enable_relay_pin": 18})
    leave_at(pins, 5, False)
    leave_at(pins, 27, True)  # the daemon's button input (pull-up, to GND)
    config = write_config(
        tmp_path / "lamp.yaml", {"relay_pin": 5, "relay_active_high": True, "enable_relay_pin": 27, "button_pin": 26}
    )
    code, err = failsafe(tmp_path, pins, config)
    assert code == 0, err
    assert pins.pin(5).state is True, "the config's polarity switched the recorded relay on"
    assert pins.pin(27).function == "input" and pins.pin(27).state is True, "the button pin was driven"
    assert "used it as button_pin: left alone" in err


def test_failsafe_ignores_a_damaged_record_and_says_so(tmp_path, pins):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / OUTPUTS_FILENAME).write_bytes(b'{"relay_pin": 5, "relay_act')
    leave_at(pins, 5, False)
    code, err = failsafe(tmp_path, pins, write_config(tmp_path / "lamp.yaml", ACTIVE_LOW_GPIO))
    assert code == 0, err
    assert "ignoring" in err and "pins from the config" in err and pins.pin(5).state is True


@pytest.mark.parametrize(
    "config_text",
    [None, "gpio:\n  led_red_pin: [24\n", "gpio:\n  relay_pin: five\n  x: [\n"],
    ids=["missing", "broken_without_relay_pin", "broken_with_a_bad_relay_pin"],
)
def test_failsafe_without_a_record_or_a_readable_relay_pin_drives_nothing_and_exits_non_zero(
    tmp_path, pins, config_text
):
    config = tmp_path / "lamp.yaml"
    if config_text is not None:
        config.write_text(config_text)
    code, err = failsafe(tmp_path, pins, config)
    assert code == 1
    assert "cannot tell which GPIO drives the lamp relay" in err and "No pin was driven" in err
    assert not any(pin.function == "output" for pin in pins.pins.values())
    assert "driven off" not in err


def test_the_daemon_records_its_pins_before_it_drives_any(tmp_path, monkeypatch):
    cfg = config_with({"gpio": ACTIVE_LOW_GPIO})
    runtime = tmp_path / "run"
    runtime.mkdir()

    class PinsDriven(Exception):
        pass

    def build_hardware(*_args, **_kwargs):  # the first thing that drives a pin
        record = yaml.safe_load((runtime / OUTPUTS_FILENAME).read_text())
        assert (record["relay_pin"], record["relay_active_high"]) == (5, False)
        assert (record["enable_relay_pin"], record["enable_relay_active_high"]) == (6, False)
        raise PinsDriven

    monkeypatch.setattr(run_module, "build_hardware", build_hardware)
    args = argparse.Namespace(state_dir=str(tmp_path / "state"), runtime_dir=str(runtime), simulate=True)
    with pytest.raises(PinsDriven):
        run_module.run_daemon(cfg, args)


def test_failsafe_leaves_no_doubt_which_source_it_used(tmp_path, pins):
    """Never 'as written in the file' when the pins came from elsewhere."""
    record_daemon_pins(tmp_path, {})
    config = tmp_path / "lamp.yaml"
    config.write_text(BROKEN_YAML)
    code, err = failsafe(tmp_path, pins, config)
    assert code == 0, err
    assert "pins from the daemon's record" in err and "as written" not in err
    assert pins.pin(17).state is False  # the recorded (default) relay
    assert "the config names GPIO 5 as the lamp relay, which the daemon did not drive" in err
