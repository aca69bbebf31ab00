"""`irlamp selftest` against the emulated chips and gpiozero MockFactory pins."""

from __future__ import annotations

import re

import pytest
from gpiozero import LED, Buzzer, OutputDevice
from gpiozero.pins.mock import MockFactory

from controller.service.selftest import RELAY_PROMPT, run_selftest
from emulated_i2c import EmulatedI2C, EmulatedMLX90614, EmulatedVL53L0X, FakeClock


class Rig:
    """Emulated sensors, mock-pin outputs, a fake clock and a transcript."""

    def __init__(
        self,
        *,
        with_vl53: bool = True,
        with_mlx: bool = True,
        relay_active_high: bool = True,
        enable_relay: bool = False,
        buzzer: bool = True,
    ) -> None:
        self.clock = FakeClock(tick_s=1e-6)
        self.vl53 = EmulatedVL53L0X(monotonic=self.clock.monotonic, distance_mm=420)
        self.mlx = EmulatedMLX90614(object_c=33.4, ambient_c=22.0)
        self.bus = EmulatedI2C(*([self.vl53] if with_vl53 else []), *([self.mlx] if with_mlx else []))
        factory = MockFactory()
        self.outputs = {
            "green": LED(5, pin_factory=factory),
            "amber": LED(6, pin_factory=factory),
            "red": LED(13, pin_factory=factory),
            "relay": OutputDevice(17, active_high=relay_active_high, initial_value=False, pin_factory=factory),
        }
        if buzzer:
            self.outputs["buzzer"] = Buzzer(19, pin_factory=factory)
        if enable_relay:
            self.outputs["enable_relay"] = OutputDevice(27, initial_value=False, pin_factory=factory)
        for device in self.outputs.values():
            device.pin.clear_states()  # history starts with the device at rest
        self.lines: list[str] = []
        self.prompts: list[str] = []

    def run(self, answer: str | BaseException = "no", sleep=None) -> int:
        def ask(prompt: str) -> str:
            self.prompts.append(prompt)
            if isinstance(answer, BaseException):
                raise answer
            return answer

        return run_selftest(
            self.bus,
            self.outputs,
            ask=ask,
            say=self.lines.append,
            readings_s=3.0,
            sleep=sleep or self.clock.sleep,
            monotonic=self.clock.monotonic,
        )

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def was_on(self, name: str) -> bool:
        """Did the output's pin ever reach its 'on' level?"""
        device = self.outputs[name]
        return any(change.state == device.active_high for change in device.pin.states)

    def is_off(self, name: str) -> bool:
        return not self.outputs[name].value

    def close(self) -> None:
        for device in self.outputs.values():
            device.close()


@pytest.fixture
def make_rig():
    rigs: list[Rig] = []

    def make(**options) -> Rig:
        rigs.append(Rig(**options))
        return rigs[-1]

    yield make
    for rig in rigs:
        rig.close()


def test_all_hardware_present_passes_and_prints_live_readings(make_rig):
    rig = make_rig()
    assert rig.run("no") == 0
    assert "found   VL53L0X distance sensor at 0x29" in rig.text
    assert "found   MLX90614 skin thermometer at 0x5A" in rig.text
    reading_lines = [line for line in rig.lines if "distance 420 mm" in line]
    assert len(reading_lines) >= 4  # about 3 s at a reading every 0.5 s
    for line in reading_lines:
        numbers = re.search(r"skin (\S+) °C, sensor body (\S+) °C", line).groups()
        skin_c, body_c = map(float, numbers)
        assert skin_c == pytest.approx(33.4, abs=0.02) and body_c == pytest.approx(22.0, abs=0.02)


def test_each_indicator_blinks_once_and_is_named(make_rig):
    rig = make_rig()
    rig.run("no")
    for name in ("green", "amber", "red", "buzzer"):
        levels = [change.state for change in rig.outputs[name].pin.states]
        assert levels == [False, True, False], name
        assert f"{name} {'LED' if name != 'buzzer' else ''}".strip() + " now" in rig.text


@pytest.mark.parametrize("answer", ["no", "", "y", "Yes", "YES", "yes ", " yes", "yes please"])
def test_relay_never_switches_on_without_exactly_yes(make_rig, answer):
    rig = make_rig(enable_relay=True)
    rig.run(answer)
    assert rig.prompts == [RELAY_PROMPT]
    assert not rig.was_on("relay")
    assert not rig.was_on("enable_relay")
    assert "Relay not clicked" in rig.text


def test_no_answer_at_all_does_not_click_the_relay(make_rig):
    rig = make_rig()
    assert rig.run(EOFError()) == 0
    assert not rig.was_on("relay")


@pytest.mark.parametrize("active_high", [True, False])
def test_yes_clicks_the_relay_once_for_one_second_and_leaves_it_off(make_rig, active_high):
    rig = make_rig(relay_active_high=active_high, enable_relay=True)
    on_times: list[float] = []
    relay = rig.outputs["relay"]

    def sleep(seconds: float) -> None:
        if relay.value:
            on_times.append(seconds)
        rig.clock.sleep(seconds)

    assert rig.run("yes", sleep=sleep) == 0
    levels = [change.state for change in relay.pin.states]
    assert levels == [not active_high, active_high, not active_high]
    assert on_times == [1.0]
    assert rig.is_off("relay") and rig.is_off("enable_relay")
    assert rig.was_on("enable_relay")


def test_relay_goes_off_when_interrupted_while_on(make_rig):
    rig = make_rig(enable_relay=True)

    def sleep(seconds: float) -> None:
        if rig.outputs["relay"].value:
            raise KeyboardInterrupt
        rig.clock.sleep(seconds)

    with pytest.raises(KeyboardInterrupt):
        rig.run("yes", sleep=sleep)
    assert rig.was_on("relay")
    assert rig.is_off("relay") and rig.is_off("enable_relay")


def test_relay_is_switched_off_first_even_if_it_was_left_on(make_rig):
    rig = make_rig()
    rig.outputs["relay"].on()
    rig.outputs["relay"].pin.clear_states()
    rig.run("no")
    assert [change.state for change in rig.outputs["relay"].pin.states] == [True, False]


def test_missing_mlx90614_gives_the_hints_and_exit_1(make_rig):
    rig = make_rig(with_mlx=False)
    assert rig.run("no") == 1
    assert "MISSING MLX90614 skin thermometer: nothing answers at 0x5A" in rig.text
    assert "SDA to GPIO2 (pin 3), SCL to GPIO3 (pin 5)" in rig.text
    assert "dtparam=i2c_arm_baudrate=50000" in rig.text
    assert "found   VL53L0X" in rig.text
    assert "FAIL MLX90614 skin thermometer: not found" in rig.text
    assert not rig.was_on("relay")


def test_missing_vl53l0x_gives_the_wiring_hint_and_exit_1(make_rig):
    rig = make_rig(with_vl53=False)
    assert rig.run("no") == 1
    assert "MISSING VL53L0X distance sensor: nothing answers at 0x29" in rig.text
    assert "SDA to GPIO2 (pin 3)" in rig.text


def test_sensor_at_a_wrong_address_is_pointed_out(make_rig):
    rig = make_rig()
    rig.bus.detach(0x5A)
    rig.bus.attach(EmulatedMLX90614(address=0x5B))
    assert rig.run("no") == 1
    assert "wrong address? other devices answer at 0x5B" in rig.text


def test_empty_bus_suggests_enabling_i2c(make_rig):
    rig = make_rig(with_vl53=False, with_mlx=False)
    assert rig.run("no") == 1
    assert "sudo raspi-config nonint do_i2c 0" in rig.text
    assert "No sensor to read." in rig.text


def test_failing_readings_give_exit_1_and_show_the_error(make_rig):
    rig = make_rig()
    rig.mlx.error_flag = True
    assert rig.run("no") == 1
    assert "ERROR SensorValueError" in rig.text
    assert "FAIL MLX90614 skin thermometer" in rig.text
    assert "PASS VL53L0X distance sensor" in rig.text


def test_no_target_is_a_reading_not_a_failure(make_rig):
    rig = make_rig()
    rig.vl53.distance_mm = 8190
    assert rig.run("no") == 0
    assert "distance: no target in range" in rig.text


def test_distance_sensor_that_never_completes_a_measurement_fails_at_start_up(make_rig):
    rig = make_rig()
    rig.vl53.data_ready_stops = True  # even the driver's reference calibration times out
    assert rig.run("no") == 1
    assert "VL53L0X distance sensor: found but would not start" in rig.text
    assert "FAIL VL53L0X distance sensor" in rig.text


def test_distance_sensor_that_stops_during_live_readings_fails_the_test(make_rig):
    rig = make_rig()

    def sleep(seconds: float) -> None:
        if any("distance 420 mm" in line for line in rig.lines):
            rig.vl53.data_ready_stops = True  # after the first good reading
        rig.clock.sleep(seconds)

    assert rig.run("no", sleep=sleep) == 1
    assert "distance 420 mm" in rig.text
    assert "ERROR RuntimeError: VL53L0X: no new measurement" in rig.text
    assert "FAIL VL53L0X distance sensor" in rig.text


def test_sensors_are_closed_at_the_end(make_rig):
    rig = make_rig()
    rig.run("no")
    assert not rig.vl53.continuous


@pytest.mark.parametrize("active_high", [True, False])
def test_the_pi_selftest_wiring_uses_the_injected_pins_and_leaves_both_relays_off(monkeypatch, active_high):
    """`irlamp selftest` builds its relays through the relay driver on the injected pin factory
    (claimed at the off level, whatever the polarity) and leaves both relays off even when the
    test itself raises."""
    import dataclasses

    from controller.service import run as run_module
    from controller.service import selftest as selftest_module
    from controller.service.config import load_config

    base = load_config()
    # Pins whose power-on pull is the off level for this polarity (the boot-safety rule).
    relay_pin, enable_pin = (17, 18) if active_high else (5, 6)
    cfg = dataclasses.replace(
        base,
        gpio=dataclasses.replace(
            base.gpio,
            relay_pin=relay_pin,
            relay_active_high=active_high,
            enable_relay_pin=enable_pin,
            enable_relay_active_high=active_high,
        ),
    )
    factory = MockFactory()
    seen = {}

    def fake_selftest(outputs, readings_s, cfg):
        seen.update(outputs)
        assert not outputs["relay"].value and not outputs["enable_relay"].value  # created off
        outputs["enable_relay"].on()
        outputs["relay"].on()
        raise RuntimeError("interrupted")

    monkeypatch.setattr(selftest_module, "run_selftest_on_pi", fake_selftest)
    with pytest.raises(RuntimeError):
        run_module.selftest(cfg, 1.0, pin_factory=factory)
    off_level = not active_high
    assert factory.pin(relay_pin).state == off_level and factory.pin(enable_pin).state == off_level
    assert all(device.pin_factory is factory for device in seen.values())
