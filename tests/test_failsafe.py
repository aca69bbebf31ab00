"""`irlamp failsafe` (systemd ExecStopPost, SR-2): every relay pin ends at its off level.

Out of process with GPIOZERO_PIN_FACTORY=mock (gpiozero builds its MockFactory from that
variable), and in process on a MockFactory whose pins the test reads afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from gpiozero import Device, OutputDevice
from gpiozero.pins.mock import MockFactory

from controller.run import failsafe
from helpers_core import REPO, config_with

ACTIVE_LOW_GPIO = {"relay_pin": 5, "relay_active_high": False, "enable_relay_pin": 6,
                   "enable_relay_active_high": False, "buzzer_pin": 25}


def write_config(path: Path, gpio: dict) -> Path:
    path.write_text(yaml.safe_dump({"gpio": gpio}))
    return path


def run_failsafe(config: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, GPIOZERO_PIN_FACTORY="mock", PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "controller.cli", "failsafe", "--config", str(config)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("gpio", [{}, ACTIVE_LOW_GPIO], ids=["defaults", "active_low"])
def test_failsafe_command_exits_zero_with_mock_pins(tmp_path, gpio):
    result = run_failsafe(write_config(tmp_path / "lamp.yaml", gpio))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    relay_pin = gpio.get("relay_pin", 17)
    assert f"relay GPIO {relay_pin} driven off" in result.stderr


def test_failsafe_command_still_drives_off_with_a_broken_config(tmp_path):
    config = tmp_path / "lamp.yaml"
    config.write_text("gpio:\n  relay_pin: 5\n  relay_active_high: false\n  no_such_key: 1\n")
    result = run_failsafe(config)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "relay GPIO 5 driven off" in result.stderr


@pytest.fixture
def mock_pins(monkeypatch):
    factory = MockFactory()
    monkeypatch.setattr(Device, "pin_factory", factory)
    return factory


def leave_at(factory: MockFactory, pin: int, level: bool) -> None:
    """Drive `pin` to `level` and release it, as a crashed daemon would leave it."""
    device = OutputDevice(pin, initial_value=level, pin_factory=factory)
    device.close()
    assert factory.pin(pin).state is level


@pytest.mark.parametrize("gpio", [{}, ACTIVE_LOW_GPIO], ids=["active_high", "active_low"])
def test_failsafe_drives_relays_to_their_off_level_in_process(mock_pins, gpio):
    cfg = config_with({"gpio": gpio})
    g = cfg.gpio
    relays = [(g.relay_pin, g.relay_active_high)]
    if g.enable_relay_pin is not None:
        relays.append((g.enable_relay_pin, g.enable_relay_active_high))
    for pin, active_high in relays:          # the relays were left ON
        leave_at(mock_pins, pin, active_high)
    leds = [p for p in (g.led_green_pin, g.led_amber_pin, g.led_red_pin, g.buzzer_pin) if p is not None]
    for pin in leds:
        leave_at(mock_pins, pin, True)
    assert failsafe(g) == 0
    for pin, active_high in relays:
        assert mock_pins.pin(pin).state is (not active_high), f"relay GPIO {pin} is not at its off level"
    for pin in leds:
        assert mock_pins.pin(pin).state is False, f"GPIO {pin} still lit"


def test_failsafe_reports_a_relay_it_could_not_drive(mock_pins, capsys):
    cfg = config_with({})
    blocker = OutputDevice(cfg.gpio.relay_pin, pin_factory=mock_pins)   # pin already in use
    try:
        assert failsafe(cfg.gpio) == 1
    finally:
        blocker.close()
    assert f"could not drive GPIO {cfg.gpio.relay_pin}" in capsys.readouterr().err
