"""The VL53L0X's optional data-ready interrupt (GPIO1 on `gpio.distance_ready_pin`).

The emulated chip drives a gpiozero MockPin low when a measurement completes and high when
the reader clears the interrupt (tests/emulated_i2c.py: attach_gpio1), in real time as a chip
ranges. With the pin the reader waits for its edge and reads data-ready over I2C once to
confirm, instead of polling every ~1 ms; without a pin (the default) it polls; a pin that
never falls costs one period and the polling path still delivers.
"""

from __future__ import annotations

import time

import pytest
from emulated_i2c import EmulatedI2C, EmulatedVL53L0X
from gpiozero.pins.mock import MockFactory

from controller.service.config import ConfigError, load_config
from drivers.vl53l0x import RESULT_INTERRUPT_STATUS, VL53L0XSource, data_ready_input
from helpers_core import DEFAULT_CONFIG_PATH

READY_PIN = 26
READS = 6


@pytest.fixture
def rig():
    chip = EmulatedVL53L0X(distance_mm=420.0)
    factory = MockFactory()
    pin_input = data_ready_input(READY_PIN, pin_factory=factory)
    yield chip, EmulatedI2C(chip), factory.pin(READY_PIN), pin_input
    chip.detach_gpio1()
    pin_input.close()


def _status_reads(chip: EmulatedVL53L0X) -> int:
    return chip.read_count(RESULT_INTERRUPT_STATUS)


def _read_many(source: VL53L0XSource, chip: EmulatedVL53L0X) -> tuple[list[float], int]:
    source.read_distance()  # in phase with the chip
    before, times = _status_reads(chip), []
    for _ in range(READS):
        source.read_distance()
        times.append(time.monotonic())
    return times, _status_reads(chip) - before


def test_with_the_pin_each_read_waits_for_the_edge_not_a_polling_sleep(rig):
    chip, bus, mock_pin, pin_input = rig
    chip.attach_gpio1(mock_pin)
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:  # the polling path's sleeps (until due, then ~1 ms)
        sleeps.append(seconds)
        time.sleep(seconds)

    source = VL53L0XSource(bus, timing_budget_ms=33, io_timeout_s=0.2, data_ready_pin=pin_input, sleep=sleep)
    times, status_reads = _read_many(source, chip)
    assert source.read_distance().distance_mm == 420.0
    period_s = source.sample_period_s
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert all(0.5 * period_s < gap < 2.5 * period_s for gap in gaps), gaps  # one new sample each
    assert sleeps == []  # it waited on the pin, never in the polling loop
    assert status_reads <= 2 * READS  # a check before the wait and a confirmation after
    source.close()


def test_without_the_pin_the_reader_polls(rig):
    chip, bus, _, _ = rig
    sleeps: list[float] = []
    source = VL53L0XSource(
        bus, timing_budget_ms=33, io_timeout_s=0.2, sleep=lambda s: (sleeps.append(s), time.sleep(s))
    )
    _read_many(source, chip)
    assert sleeps  # the default path: sleep until due, then poll
    source.close()


def test_the_pin_goes_inactive_when_the_reader_clears_the_interrupt(rig):
    chip, bus, mock_pin, pin_input = rig
    chip.attach_gpio1(mock_pin)
    source = VL53L0XSource(bus, timing_budget_ms=33, io_timeout_s=0.2, data_ready_pin=pin_input)
    source.read_distance()
    assert not pin_input.is_active
    assert pin_input.wait_for_active(0.2)  # the next measurement pulls it low
    source.close()


def test_a_pin_that_never_falls_costs_a_period_and_polling_still_delivers(rig):
    chip, bus, mock_pin, pin_input = rig  # the pin stays high: GPIO1 not wired
    source = VL53L0XSource(bus, timing_budget_ms=33, io_timeout_s=0.2, data_ready_pin=pin_input)
    source.read_distance()
    t0 = time.monotonic()
    assert source.read_distance().distance_mm == 420.0
    assert time.monotonic() - t0 < 0.2  # within io_timeout_s: no RuntimeError
    source.close()


def test_the_pin_is_optional_and_checked_like_every_pin(tmp_path):
    assert load_config(DEFAULT_CONFIG_PATH).gpio.distance_ready_pin is None
    path = tmp_path / "lamp.yaml"
    path.write_text("gpio:\n  distance_ready_pin: 26\n")
    assert load_config(path).gpio.distance_ready_pin == 26
    path.write_text("gpio:\n  distance_ready_pin: 27\n")
    with pytest.raises(ConfigError, match="distance_ready_pin"):
        load_config(path)  # the button's pin
    assert data_ready_input(None) is None
