"""`irlamp selftest`'s lamp-on test on emulated installations (SR-15, issue 11 item 3).

The emulated VL53L0X sees `lamp_glare_mcps` of the bulb's light while the relay is on;
the emulated MLX90614's body warms towards `lamp_body_rise_c` and the skin it looks at
towards `lamp_skin_rise_c`. Everything else is the real self-test: the real readers, the
real SafetyController switching the (MockFactory) relay.
"""

from __future__ import annotations

import re

import pytest
from gpiozero import LED, OutputDevice
from gpiozero.pins.mock import MockFactory

from controller.service.selftest import RELAY_PROMPT, run_selftest
from controller.service.selftest_lamp import LAMP_TEST_MAX_S
from drivers import glare
from emulated_i2c import EmulatedI2C, EmulatedMLX90614, EmulatedVL53L0X, FakeClock
from helpers_core import default_config

CFG = default_config()


class Installation:
    """An emulated lamp head: sensors that feel the relay's lamp, a fake clock, a transcript."""

    def __init__(
        self,
        *,
        lamp_glare_mcps: float = 0.2,
        body_rise_c: float = 0.5,
        skin_rise_c: float = 4.0,
        distance_mm: float = 400.0,
    ):
        self.clock = FakeClock(tick_s=1e-6)
        factory = MockFactory()
        self.outputs = {
            "green": LED(5, pin_factory=factory),
            "amber": LED(6, pin_factory=factory),
            "red": LED(13, pin_factory=factory),
            "relay": OutputDevice(17, initial_value=False, pin_factory=factory),
        }
        relay = self.outputs["relay"]
        self.vl53 = EmulatedVL53L0X(
            monotonic=self.clock.monotonic,
            distance_mm=distance_mm,
            ranging_noise=True,
            lamp_on=lambda: bool(relay.value),
        )
        self.vl53.lamp_glare_mcps = lamp_glare_mcps
        self.mlx = EmulatedMLX90614(
            object_c=33.0, ambient_c=24.0, monotonic=self.clock.monotonic, lamp_on=lambda: bool(relay.value)
        )
        self.mlx.lamp_body_rise_c, self.mlx.lamp_skin_rise_c = body_rise_c, skin_rise_c
        self.bus = EmulatedI2C(self.vl53, self.mlx)
        self.lines: list[str] = []
        self.prompts: list[str] = []
        self.on_intervals: list[list[float]] = []
        relay.pin.clear_states()

    def sleep(self, seconds: float) -> None:
        self.clock.sleep(seconds)
        self._note_relay()

    def _note_relay(self) -> None:
        on, now = bool(self.outputs["relay"].value), self.clock.monotonic()
        if on and (not self.on_intervals or self.on_intervals[-1][1] is not None):
            self.on_intervals.append([now, None])
        elif not on and self.on_intervals and self.on_intervals[-1][1] is None:
            self.on_intervals[-1][1] = now

    def run(self, *answers: str, lamp_s: float = 20.0, sleep=None) -> int:
        queue = list(answers)

        def ask(prompt: str) -> str:
            self.prompts.append(prompt)
            return queue.pop(0) if queue else ""

        code = run_selftest(
            self.bus,
            self.outputs,
            ask=ask,
            say=self.lines.append,
            readings_s=1.0,
            sleep=sleep or self.sleep,
            monotonic=self.clock.monotonic,
            cfg=CFG,
            lamp_s=lamp_s,
        )
        self._note_relay()
        return code

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def verdict(self, label: str) -> str:
        return next(line for line in self.lines if line.startswith(f"VERDICT {label}"))

    def close(self) -> None:
        for device in self.outputs.values():
            device.close()


@pytest.fixture
def install():
    made: list[Installation] = []

    def make(**options) -> Installation:
        made.append(Installation(**options))
        return made[-1]

    yield make
    for item in made:
        item.close()


def test_a_well_mounted_installation_is_good_on_both_sensors(install):
    rig = install()
    assert rig.run("no", "yes") == 0
    assert rig.prompts[0] == RELAY_PROMPT and "light it for 20 s" in rig.prompts[1]
    assert "GOOD" in rig.verdict("Distance sensor") and "GOOD" in rig.verdict("Skin thermometer")
    assert "ambient light" in rig.text and "signal (the laser's return)" in rig.text
    assert "sensor body    23.99 °C" in rig.text  # 24 °C in the chip's 0.02 K steps
    assert len(rig.on_intervals) == 1 and 19.0 <= rig.on_intervals[0][1] - rig.on_intervals[0][0] <= 20.5
    assert not rig.outputs["relay"].value


def test_a_few_per_cent_of_doubts_under_the_lamp_is_marginal_with_shading_advice(install):
    rig = install(lamp_glare_mcps=glare.glare_for_rejection_share(0.04))
    assert rig.run("no", "yes") == 0
    verdict = rig.verdict("Distance sensor")
    assert "MARGINAL" in verdict and "untrustworthy with the lamp on" in verdict
    assert "opaque hood" in rig.text and "940 nm" in rig.text and "farther from the bulb" in rig.text
    assert len(rig.on_intervals) > 1  # each doubt switched the lamp off


def test_a_sensor_blinded_by_the_lamp_is_not_usable_and_the_safety_rules_stop_the_lamp(install):
    rig = install(lamp_glare_mcps=glare.glare_for_rejection_share(0.5))
    assert rig.run("no", "yes") == 1
    assert "NOT USABLE" in rig.verdict("Distance sensor")
    assert "distance_unreliable" in rig.text
    assert sum(off - on for on, off in rig.on_intervals) < 15.0
    assert not rig.outputs["relay"].value


def test_a_thermometer_body_cooking_next_to_the_bulb_is_not_usable_with_heat_shield_advice(install):
    rig = install(body_rise_c=60.0)
    assert rig.run("no", "yes") == 1
    verdict = rig.verdict("Skin thermometer")
    assert "NOT USABLE" in verdict and "°C/min" in verdict
    assert "heat shield" in rig.text and "medical-accuracy variant" in rig.text


def test_a_slowly_warming_thermometer_body_is_marginal(install):
    rig = install(body_rise_c=2.0)  # ~0.9 °C/min: ~42 °C after a session (linear, pessimistic)
    assert rig.run("no", "yes") == 0
    assert "MARGINAL" in rig.verdict("Skin thermometer")


def test_a_thermometer_that_does_not_see_the_lit_skin_is_marginal_with_aiming_advice(install):
    rig = install(skin_rise_c=0.0)
    rig.mlx.object_c = 33.0
    rig.run("no", "yes", lamp_s=10.0)  # shorter than the 15 s frozen-skin window
    assert "MARGINAL" in rig.verdict("Skin thermometer")
    assert "aim the thermometer at the centre of the lit skin" in rig.text


@pytest.mark.parametrize("answer", ["no", "", "y", "YES", "yes please"])
def test_the_lamp_never_lights_without_exactly_yes(install, answer):
    rig = install()
    rig.run("no", answer)
    assert rig.on_intervals == [] and "Lamp test skipped" in rig.text
    assert not any(change.state for change in rig.outputs["relay"].pin.states)


def test_the_lamp_never_lights_with_the_person_out_of_the_band(install):
    rig = install(distance_mm=250.0)
    rig.run("no", "yes")
    assert rig.on_intervals == []
    assert "refused the start (too close)" in rig.text
    assert re.search(r"the sensor measured 2[45]\d mm", rig.text)


def test_the_lamp_time_is_capped_at_thirty_seconds(install):
    rig = install()
    rig.run("no", "yes", lamp_s=600.0)
    assert "light it for 30 s" in rig.prompts[1]
    assert rig.on_intervals[0][1] - rig.on_intervals[0][0] <= LAMP_TEST_MAX_S + 0.1


def test_moving_too_close_during_the_test_switches_the_lamp_off_within_one_sample(install):
    rig = install()
    moved_at = []

    def sleep(seconds: float) -> None:
        rig.sleep(seconds)
        if rig.on_intervals and rig.clock.monotonic() - rig.on_intervals[0][0] > 5.0 and not moved_at:
            rig.vl53.distance_mm = 250.0
            moved_at.append(rig.clock.monotonic())

    rig.run("no", "yes", sleep=sleep)
    assert moved_at
    off_at = rig.on_intervals[0][1]
    assert off_at - moved_at[0] <= 2 * CFG.distance.timing_budget_ms / 1000.0 + 0.01
    assert len(rig.on_intervals) == 1


def test_an_interrupt_during_the_lamp_test_leaves_the_relay_off(install):
    rig = install()

    def sleep(seconds: float) -> None:
        rig.sleep(seconds)
        if rig.outputs["relay"].value:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rig.run("no", "yes", sleep=sleep)
    assert not rig.outputs["relay"].value
