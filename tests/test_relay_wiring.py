"""SR-2: the relay wiring check against the Pi's power-on pulls, and LampOutput on mock pins.

The mock pin's level (`factory.pin(n).state`) is the truth in every assertion: what the
relay coil would see, not what the object believes.
"""

from __future__ import annotations

import pytest
from gpiozero.pins.mock import MockFactory, MockPin

from drivers.hardware import check_wiring
from drivers.relay import LampOutput, WiringError, check_boot_safe
from helpers_core import config_with

PULLED_UP = range(0, 9)  # BCM 0-8 pull up at power-on, 9-27 pull down


def off_level(active_high: bool) -> bool:
    return not active_high


@pytest.mark.parametrize("pin", range(4, 28))
@pytest.mark.parametrize("active_high", [True, False])
def test_boot_pull_rule_for_every_pin_and_polarity(pin, active_high):
    undriven_high = pin in PULLED_UP
    lamp_on_when_undriven = undriven_high == active_high
    if not lamp_on_when_undriven:
        check_boot_safe(pin, active_high, "lamp relay")
        return
    with pytest.raises(WiringError) as info:
        check_boot_safe(pin, active_high, "lamp relay")
    message = str(info.value)
    assert "\n" not in message
    assert f"GPIO {pin} " in message and "lamp relay" in message
    assert ("pulled up" if undriven_high else "pulled down") in message
    if active_high:
        assert "GPIO 9 and 27" in message and "active-low" in message
    else:
        assert "GPIO 4 and 8" in message and "active-high" in message


def test_config_wiring_check_covers_the_enable_relay_too():
    check_wiring(config_with({}).gpio)
    check_wiring(config_with({"gpio": {"relay_pin": 5, "relay_active_high": False}}).gpio)
    with pytest.raises(WiringError, match="enable relay on GPIO 6"):
        check_wiring(config_with({"gpio": {"enable_relay_pin": 6, "enable_relay_active_high": True}}).gpio)
    with pytest.raises(WiringError, match="lamp relay on GPIO 17"):
        check_wiring(config_with({"gpio": {"relay_active_high": False}}).gpio)


class RecordingPin(MockPin):
    """A mock pin that writes every level change into its factory's shared log, in order."""

    def _change_state(self, value):
        changed = super()._change_state(value)
        if changed:
            self.factory.log.append((self.info.name, value))
        return changed


def recording_factory() -> MockFactory:
    factory = MockFactory(pin_class=RecordingPin)
    factory.log = []
    return factory


@pytest.mark.parametrize("relay_pin, active_high", [(17, True), (5, False)])
def test_lamp_output_is_created_off_at_the_off_level(relay_pin, active_high):
    factory = MockFactory()
    output = LampOutput(relay_pin, active_high, pin_factory=factory)
    pin = factory.pin(relay_pin)
    assert pin.function == "output" and pin.state == off_level(active_high)
    assert not output.is_on() and not output.commanded_on
    output.set(True, "test")
    assert pin.state == active_high and output.is_on()
    output.set(False, "test")
    assert pin.state == off_level(active_high)
    output.close()
    assert pin.state == off_level(active_high)


@pytest.mark.parametrize("main_high, enable_pin, enable_high", [(True, 18, True), (False, 6, False)])
def test_enable_relay_in_series(main_high, enable_pin, enable_high):
    factory = recording_factory()
    main_pin = 17 if main_high else 5
    output = LampOutput(main_pin, main_high, enable_pin, enable_high, pin_factory=factory)
    main, enable = factory.pin(main_pin), factory.pin(enable_pin)
    assert main.state == off_level(main_high) and enable.state == off_level(enable_high)

    def lamp_lit() -> bool:
        return main.state == main_high and enable.state == enable_high

    output.set(True, "start")
    assert lamp_lit() and output.is_on()
    factory.log.clear()
    output.set(False, "stop")
    assert not lamp_lit()
    assert [name for name, _ in factory.log] == [f"GPIO{main_pin}", f"GPIO{enable_pin}"], (
        "switching off must open the main relay first"
    )
    # one relay alone never lights the lamp
    output.main.on()
    assert not output.is_on() and not lamp_lit()
    output.main.off()
    output.enable.on()
    assert not output.is_on() and not lamp_lit()
    output.enable.off()


def test_observer_is_told_about_changes_only():
    calls = []
    factory = MockFactory()
    output = LampOutput(17, True, pin_factory=factory, observer=lambda on, reason: calls.append((on, reason)))
    output.set(False, "idle")
    output.set(True, "session_started")
    output.set(True, "resumed")
    output.set(False, "too_close")
    output.set(False, "too_close")
    assert calls == [(True, "session_started"), (False, "too_close")]
    assert factory.pin(17).state is False


def test_is_on_reads_the_pins_not_the_last_command():
    factory = MockFactory()
    output = LampOutput(17, True, pin_factory=factory)
    output.set(True, "start")
    output.main.off()  # something else drove the pin low
    assert output.commanded_on and not output.is_on()
    assert factory.pin(17).state is False


@pytest.mark.parametrize("relay_pin, active_high, enable_pin", [(17, True, None), (5, False, 6)])
def test_lamp_output_close_twice_is_safe_and_leaves_the_relays_off(relay_pin, active_high, enable_pin):
    factory = MockFactory()
    output = LampOutput(relay_pin, active_high, enable_pin, active_high, pin_factory=factory)
    output.set(True, "test")
    output.close()
    output.close()  # gpiozero's own close() allows this too
    for pin in (relay_pin, enable_pin):
        if pin is not None:
            assert factory.pin(pin).state == off_level(active_high)
    assert not output.commanded_on


# --- the same wiring check in `check-config`, `run` and `simulate`, naming file:line: key ----------

UNSAFE_WIRINGS = [  # (gpio section, line of the key to blame, key, words)
    (
        "gpio:\n  relay_pin: 5\n  relay_active_high: true\n",
        3,
        "gpio.relay_active_high",
        "lamp relay on GPIO 5 is active-high, but GPIO 5 is pulled up at power-on",
    ),
    ("gpio:\n  relay_active_high: true\n  relay_pin: 5\n", 3, "gpio.relay_pin", "lamp relay on GPIO 5 is active-high"),
    (
        "gpio:\n  relay_active_high: false\n",
        2,
        "gpio.relay_active_high",
        "lamp relay on GPIO 17 is active-low, but GPIO 17 is pulled down",
    ),
    ("gpio:\n  enable_relay_pin: 6\n", 2, "gpio.enable_relay_pin", "enable relay on GPIO 6 is active-high"),
]


def write_config(tmp_path, text: str):
    path = tmp_path / "lamp.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("text, line, key, words", UNSAFE_WIRINGS)
def test_check_config_refuses_a_wiring_that_run_refuses_naming_file_line_and_key(tmp_path, text, line, key, words):
    from scenario_helpers import run_cli

    path = write_config(tmp_path, text)
    proc = run_cli("check-config", str(path))
    assert proc.returncode == 2, proc.stdout
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    (message,) = proc.stderr.splitlines()
    assert message.startswith(f"{path}:{line}: {key}: "), message
    assert words in message and "Refusing" in message


def test_check_config_accepts_a_boot_safe_wiring(tmp_path):
    from scenario_helpers import run_cli

    path = write_config(tmp_path, "gpio:\n  relay_pin: 5\n  relay_active_high: false\n")
    proc = run_cli("check-config", str(path))
    assert proc.returncode == 0 and proc.stdout.startswith(f"OK: {path}\n"), proc.stderr


def test_run_refuses_an_unsafe_wiring_naming_file_line_and_key(tmp_path):
    from scenario_helpers import RunningDaemon

    text, line, key, words = UNSAFE_WIRINGS[0]
    path = write_config(tmp_path, text)
    daemon = RunningDaemon(tmp_path, config=path)
    try:
        assert daemon.proc.wait(timeout=10) == 2
        assert "READY=1" not in daemon.lines()
        (message,) = daemon.stderr().splitlines()
        assert message.startswith(f"irlamp: {path}:{line}: {key}: "), message
        assert words in message
    finally:
        daemon.close()
    assert not (tmp_path / "state").exists(), "a refused wiring must not touch the state directory"
