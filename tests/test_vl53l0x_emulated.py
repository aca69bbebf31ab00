"""The production VL53L0X reader on the UNMODIFIED Adafruit driver, on the emulated chip."""

from __future__ import annotations

import errno
import random
import threading

import adafruit_vl53l0x
import pytest

from emulated_i2c import EmulatedI2C, EmulatedVL53L0X, FakeClock
from drivers.data_ready_phase import AIM_SLACK_S, UNCERTAINTY_MAX_S
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
    assert (polls(chip) - before) / 30 <= 2  # ~1.4 while it learns the period (old: ~1.5)
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


# --- one look per sample -------------------------------------------------------------
# Each look is also a thread wake-up, what dominates the daemon's CPU in a session: in steady
# state a read should look once. The chip below numbers its samples (distance = 100 mm + its
# sample number), so a test sees exactly which samples were read and which were overwritten.

WAKE_LATENESS_S = 0.0003  # a sleeping thread wakes up to this much late (0..0.3 ms, random)
LOOKS_PER_SAMPLE_MAX = 1.1
STEADY_READY_TO_READ_MAX_S = 2 * UNCERTAINTY_MAX_S + AIM_SLACK_S + WAKE_LATENESS_S  # 1.15 ms


class LateWakingClock(FakeClock):
    """A fake clock whose sleeps end 0..`lateness_s` late, like a thread's wake-up."""

    def __init__(self, lateness_s: float, seed: int) -> None:
        super().__init__(tick_s=1e-6)
        self._lateness_s = lateness_s
        self._rng = random.Random(seed)

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds + self._rng.uniform(0.0, self._lateness_s))


class NumberedSamplesVL53L0X(EmulatedVL53L0X):
    """Each measurement reads 100 mm + its sample number (counting the overwritten ones)."""

    @property
    def distance_mm(self) -> float:
        return 100.0 + self.samples_due

    @distance_mm.setter
    def distance_mm(self, value: float) -> None:
        pass


class Reads:
    """A reader on a numbered chip; `read(n)` records the sample numbers, the looks at
    data-ready and how long after the chip finished each sample the read returned it."""

    def __init__(self, clock: FakeClock, period_factor: float = 1.0) -> None:
        self.clock = clock
        self.chip = NumberedSamplesVL53L0X(monotonic=clock.monotonic)
        self.chip.period_factor = period_factor
        self.source = VL53L0XSource(EmulatedI2C(self.chip), sleep=clock.sleep, monotonic=clock.monotonic)
        self.numbers: list[int] = []

    def read(self, count: int) -> tuple[float, list[float]]:
        """(looks per sample, data-ready -> read delays) over `count` reads."""
        looks_before, delays_s = polls(self.chip), []
        for _ in range(count):
            self.numbers.append(round(self.source.read_distance_mm() - 100.0))
            delays_s.append(self.clock.monotonic() - self.chip.last_sample_s)
        return (polls(self.chip) - looks_before) / count, delays_s

    def skipped(self) -> list[tuple[int, int]]:
        """Consecutive reads whose sample numbers are not consecutive."""
        return [(a, b) for a, b in zip(self.numbers, self.numbers[1:], strict=False) if b != a + 1]


@pytest.mark.parametrize("period_factor", [0.98, 1.0, 1.02])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_in_steady_state_a_read_looks_once_per_sample_and_every_sample_is_read(period_factor, seed):
    """The chip's real period 2 % shorter or longer than the programmed one, wake-ups 0..0.3 ms
    late: the reader learns the period and looks about once per sample (the old early aim:
    ~1.4), reads every sample exactly once, and returns each within ~1 ms of data-ready."""
    reads = Reads(LateWakingClock(WAKE_LATENESS_S, seed), period_factor)
    reads.read(100)  # learning the chip's phase and period
    looks_per_sample, delays_s = reads.read(900)  # 30 s
    assert looks_per_sample <= LOOKS_PER_SAMPLE_MAX
    assert reads.numbers == list(range(1, 1001))  # every sample, once, in order
    assert max(delays_s) <= STEADY_READY_TO_READ_MAX_S
    assert reads.source.learned_period_s == pytest.approx(reads.chip.measurement_period_s() * period_factor, abs=2e-5)


def test_a_sample_found_at_its_first_look_costs_two_transfers_the_look_carries_the_result():
    """The interrupt status (0x13) and the result block (0x14..) are consecutive registers: a
    look expected to find the sample reads both in one transfer; then only the clear is left."""
    reads = Reads(LateWakingClock(WAKE_LATENESS_S, 1), period_factor=1.0)
    bus = reads.source._sensor._device.i2c
    reads.read(100)
    transfers_before = sum(bus.transfer_count.values())
    reads.read(300)
    assert (sum(bus.transfer_count.values()) - transfers_before) / 300 <= 2.1  # was 3: look, result, clear
    assert reads.numbers == list(range(1, 401))


def test_without_wake_up_lateness_a_read_returns_within_half_a_millisecond_of_data_ready():
    reads = Reads(FakeClock(tick_s=1e-6), period_factor=1.02)
    reads.read(100)
    looks_per_sample, delays_s = reads.read(300)
    assert looks_per_sample <= LOOKS_PER_SAMPLE_MAX
    assert max(delays_s) <= 0.0005
    assert not reads.skipped()


@pytest.mark.parametrize("stall_s", [0.2, 0.040, 0.030])
def test_a_caller_that_comes_back_late_loses_only_the_samples_it_overwrote_and_locks_again(stall_s):
    """Samples that finish while nobody reads overwrite each other (the chip keeps the newest):
    the first read after the stall returns the newest, the reads after it every sample again,
    and once the phase is found again a read looks about once per sample."""
    reads = Reads(LateWakingClock(WAKE_LATENESS_S, seed=4), period_factor=1.02)
    reads.read(200)
    reads.clock.advance(stall_s)
    newest_when_back = reads.chip.newest_sample()
    reads.read(100)
    first_after = reads.numbers[200]
    assert first_after == max(newest_when_back, reads.numbers[199] + 1)  # the newest, or the next
    assert reads.skipped() == ([] if first_after == reads.numbers[199] + 1 else [(reads.numbers[199], first_after)])
    looks_per_sample, delays_s = reads.read(300)
    assert looks_per_sample <= LOOKS_PER_SAMPLE_MAX
    assert max(delays_s) <= STEADY_READY_TO_READ_MAX_S


@pytest.mark.parametrize("new_factor", [0.98, 1.02])
def test_a_period_that_changes_while_ranging_is_learned_again_without_losing_a_sample(new_factor):
    """The learned period suddenly 2 % off (an oscillator that jumped): the normal looks drift
    until a re-lock (at least every 30 samples) sees the sample outside its predicted window;
    no sample is overwritten unseen meanwhile, and the reader settles on the new period."""
    reads = Reads(LateWakingClock(WAKE_LATENESS_S, seed=5), period_factor=1.0)
    reads.read(200)
    reads.chip.period_factor = new_factor
    reads.read(200)
    looks_per_sample, delays_s = reads.read(600)
    assert not reads.skipped()
    assert looks_per_sample <= LOOKS_PER_SAMPLE_MAX
    assert max(delays_s) <= STEADY_READY_TO_READ_MAX_S
    assert reads.source.learned_period_s == pytest.approx(reads.chip.measurement_period_s() * new_factor, abs=2e-5)


@pytest.mark.parametrize("drift", [-0.01, 0.01])
def test_a_drifting_period_is_followed_without_losing_a_sample(drift):
    """An oscillator whose period drifts 1 % in 100 s (far faster than warming would): when it
    shrinks the predictions come late and a re-lock finds the sample already there, so the
    next one looks earlier instead of polling from scratch; looks stay about one per sample.
    The predictions lag the drift by up to what a re-lock sees before it catches it: a read
    may return up to 1.5 ms after data-ready (seen: 1.4 ms shrinking, 1.06 ms growing)."""
    reads = Reads(LateWakingClock(WAKE_LATENESS_S, seed=6))
    reads.read(100)
    looks = delays_max_s = 0.0
    for sample in range(3000):
        reads.chip.period_factor = 1.0 + drift * sample / 3000
        looks_per_sample, delays_s = reads.read(1)
        looks, delays_max_s = looks + looks_per_sample, max(delays_max_s, *delays_s)
    assert not reads.skipped()
    assert looks / 3000 <= LOOKS_PER_SAMPLE_MAX
    assert delays_max_s <= 0.0015


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
