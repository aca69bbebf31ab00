"""The production VL53L0X reader on the UNMODIFIED Adafruit driver, on the emulated chip."""

from __future__ import annotations

import errno
import threading

import adafruit_vl53l0x
import pytest

from emulated_i2c import EmulatedI2C, EmulatedVL53L0X, FakeClock
from drivers.sensor_source import NO_TARGET_MM, DistanceSource, SensorValueError
from drivers.vl53l0x import VL53L0XSource

RESULT_INTERRUPT_STATUS = EmulatedVL53L0X.RESULT_INTERRUPT_STATUS


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(tick_s=1e-6)


@pytest.fixture
def chip(clock: FakeClock) -> EmulatedVL53L0X:
    return EmulatedVL53L0X(monotonic=clock.monotonic, distance_mm=500)


@pytest.fixture
def bus(chip: EmulatedVL53L0X):
    bus = EmulatedI2C(chip)
    yield bus
    bus.stuck = False  # never leave a reader thread blocked behind a failed test


def open_source(bus: EmulatedI2C, clock: FakeClock, **config) -> VL53L0XSource:
    return VL53L0XSource(bus, sleep=clock.sleep, monotonic=clock.monotonic, **config)


@pytest.fixture
def source(bus: EmulatedI2C, clock: FakeClock):
    source = open_source(bus, clock)
    yield source
    source.close()


def polls(chip: EmulatedVL53L0X) -> int:
    return chip.read_count(RESULT_INTERRUPT_STATUS)


# --- normal operation ---------------------------------------------------------------


def test_runs_the_unmodified_adafruit_driver_and_implements_the_interface(source, chip):
    assert isinstance(source._sensor, adafruit_vl53l0x.VL53L0X)
    assert isinstance(source, DistanceSource)
    assert chip.continuous


@pytest.mark.parametrize("distance_mm", [31.0, 304.8, 412.4, 1200.0, 2000.0])
def test_reading_is_what_the_chip_measures(source, chip, distance_mm):
    chip.distance_mm = distance_mm
    assert source.read_distance_mm() == pytest.approx(distance_mm, abs=1.0)


def test_each_read_returns_a_new_sample_and_follows_the_target(source, chip, clock):
    readings = []
    for distance_mm in (400, 350, 300, 250):
        chip.distance_mm = distance_mm
        before = chip.samples_completed
        readings.append(source.read_distance_mm())
        assert chip.samples_completed == before + 1
    assert readings == [400.0, 350.0, 300.0, 250.0]


def test_read_clears_the_data_ready_interrupt(source, chip):
    source.read_distance_mm()
    assert chip.register(RESULT_INTERRUPT_STATUS) & 0x07 == 0


@pytest.mark.parametrize("budget_ms", [20, 33, 50, 100])
def test_timing_budget_programs_the_chip_and_paces_the_reads(bus, chip, clock, budget_ms):
    source = open_source(bus, clock, timing_budget_ms=budget_ms, io_timeout_s=0.5)
    try:
        assert chip.measurement_period_s() == pytest.approx(budget_ms / 1000, abs=0.001)
        source.read_distance_mm()
        start = clock.monotonic()
        for _ in range(5):
            source.read_distance_mm()
        per_sample_s = (clock.monotonic() - start) / 5
        assert per_sample_s == pytest.approx(chip.measurement_period_s(), abs=0.0015)
    finally:
        source.close()


def test_close_stops_continuous_ranging_and_is_idempotent(bus, chip, clock):
    source = open_source(bus, clock)
    source.close()
    assert not chip.continuous
    source.close()


def test_close_on_a_dead_bus_does_not_raise(bus, chip, clock, caplog):
    source = open_source(bus, clock)
    chip.nack = True
    source.close()
    assert "could not stop" in caplog.text


# --- no target ----------------------------------------------------------------------


@pytest.mark.parametrize("raw_mm", [8190, 8191])
def test_out_of_range_sentinel_is_no_target(source, chip, raw_mm):
    chip.distance_mm = raw_mm
    assert source.read_distance_mm() == NO_TARGET_MM


@pytest.mark.parametrize("device_status", [4, 6, 9])  # MSRC no target, phase fail x2
def test_no_target_statuses_are_no_target(source, chip, device_status):
    chip.distance_mm = 120  # whatever the range registers hold, it is not a distance
    chip.range_status = device_status
    assert source.read_distance_mm() == NO_TARGET_MM


# --- invalid measurements -----------------------------------------------------------


@pytest.mark.parametrize("device_status", [0, 1, 2, 3, 5, 7, 8, 10, 12, 13, 14])
def test_invalid_range_status_raises_sensor_value_error(source, chip, device_status):
    chip.distance_mm = 400
    chip.range_status = device_status
    with pytest.raises(SensorValueError, match=f"status {device_status}"):
        source.read_distance_mm()


def test_hardware_failure_is_an_error_even_with_the_no_target_sentinel(source, chip):
    chip.distance_mm = 8190
    chip.range_status = EmulatedVL53L0X.STATUS_VCSEL_CONTINUITY_FAIL
    with pytest.raises(SensorValueError):
        source.read_distance_mm()


def test_reader_recovers_after_an_invalid_sample(source, chip):
    chip.range_status = 7
    with pytest.raises(SensorValueError):
        source.read_distance_mm()
    chip.range_status = EmulatedVL53L0X.STATUS_RANGE_COMPLETE
    chip.distance_mm = 333
    assert source.read_distance_mm() == 333.0


# --- bus and chip faults ------------------------------------------------------------


def test_nack_raises_oserror_121(source, chip):
    chip.nack = True
    with pytest.raises(OSError) as raised:
        source.read_distance_mm()
    assert raised.value.errno == errno.EREMOTEIO == 121


def test_missing_chip_at_start_raises_oserror_121(clock):
    with pytest.raises(OSError) as raised:
        open_source(EmulatedI2C(), clock)
    assert raised.value.errno == errno.EREMOTEIO
    assert "0x29" in str(raised.value)


def test_data_ready_stopping_raises_runtime_error_within_io_timeout(bus, chip, clock):
    source = open_source(bus, clock, io_timeout_s=0.2)
    try:
        source.read_distance_mm()
        chip.data_ready_stops = True
        start = clock.monotonic()
        with pytest.raises(RuntimeError, match="no new measurement"):
            source.read_distance_mm()
        waited_s = clock.monotonic() - start
        assert 0.2 <= waited_s <= 0.2 + 0.002
    finally:
        source.close()


def test_stuck_bus_blocks_the_read_until_released(source, bus, chip):
    chip.distance_mm = 640
    results: list[float] = []
    bus.stuck = True
    reader = threading.Thread(target=lambda: results.append(source.read_distance_mm()), daemon=True)
    reader.start()
    assert bus.wait_until_blocked(timeout_s=5.0)
    assert reader.is_alive() and results == []
    bus.stuck = False
    reader.join(timeout=5.0)
    assert not reader.is_alive()
    assert results == [640.0]


# --- no spinning ----------------------------------------------------------------------


def test_polls_per_sample_are_few_when_reads_follow_each_other(source, chip):
    source.read_distance_mm()
    before = polls(chip)
    for _ in range(20):
        source.read_distance_mm()
    assert (polls(chip) - before) / 20 <= 5


def test_in_phase_a_read_sleeps_until_the_predicted_sample_and_looks_about_once(source, chip, clock):
    """Each look is an I2C transfer (0.85 ms at 50 kHz on a Pi) and each sleep a thread
    wake-up: locked to the chip's phase, a read sleeps until just before the next sample
    and usually finds it at its first look, without returning it any later."""
    for _ in range(3):  # lock to the chip's phase
        source.read_distance_mm()
    before, lateness_s = polls(chip), []
    for _ in range(30):
        source.read_distance_mm()
        ready_s = chip._next_sample_due - chip.measurement_period_s()  # when this sample completed
        lateness_s.append(clock.monotonic() - ready_s)
    assert (polls(chip) - before) / 30 <= 2  # ~1.5 here (the old fixed 2 ms aim: ~4)
    assert max(lateness_s) <= 0.0012  # still within about one ~1 ms poll of data-ready


def test_first_read_and_late_reads_poll_a_bounded_number_of_times(source, chip, clock):
    before = polls(chip)
    source.read_distance_mm()  # phase known from start_continuous
    assert polls(chip) - before < 50
    clock.advance(0.080)  # the caller comes late: data waiting
    before = polls(chip)
    source.read_distance_mm()
    assert polls(chip) - before == 1
    before = polls(chip)
    source.read_distance_mm()  # phase unknown: polls at ~1 ms
    assert polls(chip) - before < 50


def test_polls_per_sample_are_bounded_at_real_chip_timing():
    """Real clock, real 33 ms budget: a busy loop would poll thousands of times."""
    chip = EmulatedVL53L0X(distance_mm=450)
    source = VL53L0XSource(EmulatedI2C(chip))
    try:
        before = polls(chip)
        for _ in range(6):
            assert source.read_distance_mm() == 450.0
        assert (polls(chip) - before) / 6 < 50
    finally:
        source.close()


# --- configuration ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "config, word",
    [
        ({"timing_budget_ms": 10}, "timing_budget_ms"),
        ({"timing_budget_ms": 500}, "timing_budget_ms"),
        ({"io_timeout_s": 0.0}, "io_timeout_s"),
        ({"io_timeout_s": 0.06, "timing_budget_ms": 100}, "longer than the timing budget"),
    ],
)
def test_bad_config_is_refused_with_a_clear_message(bus, clock, config, word):
    with pytest.raises(ValueError, match=word):
        open_source(bus, clock, **config)
