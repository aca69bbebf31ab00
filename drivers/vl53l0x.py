"""The real distance reader: a VL53L0X time-of-flight sensor through Adafruit's driver.

Runs the UNMODIFIED ``adafruit_vl53l0x`` driver over whatever ``busio.I2C``-like bus it
is given: Blinka's ``board.I2C()`` on the Pi (``open_pi_i2c_bus``, shared through
``drivers.i2c_bus.pi_i2c_bus``), the
register-level emulation of ``tests/emulated_i2c.py`` in tests.

The Adafruit driver initialises the chip, programs the timing budget and starts and
stops continuous ranging. Reading a sample is done here, through the driver's
``I2CDevice`` and the named result registers, because the driver
  - busy-waits for data-ready (a core at 100 % for a whole timing budget), and
  - does not expose the range status, without which an invalid measurement
    (hardware failure, sigma or signal check failed) would pass as a distance.
The result block is read in one transfer so status and range belong to the same sample.

Range status (bits 6:3 of RESULT_RANGE_STATUS, ST's ``VL53L0X_DEVICEERROR_*``), graded
(SR-15; docs/safety.md has the table and the reasoning):
  11 range complete        -> the distance (unless the range is the 8190/8191 sentinel)
   4 MSRC no target        -> NO_TARGET_MM (ST: "signal fail", nothing returned light)
   6, 9 phase check/phase consistency -> NO_TARGET_MM (ST: "phase fail", the target is
                              beyond the unambiguous range: nobody within reach)
  range >= 8190 mm         -> NO_TARGET_MM (the chip's own "out of range" value),
                              except with a status below that says the chip is broken
  0 (no update), 1-3 (VCSEL continuity/watchdog, no VHV value), 15 (undefined)
                           -> SensorValueError: the chip itself failed. A fault after the
                              bounded retry, as before.
  5 SNR, 7 sigma, 8 TCC, 10 min clip, 12/13 algorithm under/overflow, 14 range-ignore
  threshold                -> DistanceDoubtError: the chip measured, but says this one
                              measurement is not trustworthy (too little signal against
                              the noise - what glare causes). A doubt: lamp off at once,
                              a fault only when doubts persist (controller/core/sensor_health.py).

Light rates: the same 12-byte result block holds the signal rate (0x1A) and the ambient
rate (0x1C), both unsigned 9.7 fixed point in mega-counts per second (ST's
``VL53L0X_GetRangingMeasurementData`` reads them from the same block). They come with
every reading, good or doubted, at no extra bus traffic. Adafruit's driver reads only the
two range bytes and discards the rest.
"""

from __future__ import annotations

import errno
import logging
import time
from typing import Callable

import adafruit_vl53l0x

from controller.core.readings import TIMING_BUDGET_MS_MAX, TIMING_BUDGET_MS_MIN
from drivers.data_ready_phase import POLL_INTERVAL_S, DataReadyPhase, Look
from drivers.sensor_source import NO_TARGET_MM, DistanceDoubtError, DistanceReading, LightRates, SensorValueError

log = logging.getLogger(__name__)

DEFAULT_ADDRESS = 0x29

# Registers (page 0), from ST's VL53L0X API register map.
SYSTEM_INTERRUPT_CLEAR = 0x0B
RESULT_INTERRUPT_STATUS = 0x13
RESULT_RANGE_STATUS = 0x14  # first byte of the 12-byte result block
RESULT_BLOCK_LENGTH = 12
RESULT_RANGE_MM_OFFSET = 10  # RESULT_RANGE_STATUS + 10 = 0x1E, big-endian mm
RESULT_SIGNAL_RATE_OFFSET = 6  # 0x1A, 9.7 fixed point Mcps
RESULT_AMBIENT_RATE_OFFSET = 8  # 0x1C, 9.7 fixed point Mcps
FIXED_POINT_97 = 128.0

INTERRUPT_STATUS_MASK = 0x07
READY_PIN_SLACK_S = 0.005  # GPIO1 wait: one period plus this, then the polling path
INTERRUPT_CLEAR_RANGING = 0x01
CLEAR_RANGING_INTERRUPT = bytes([SYSTEM_INTERRUPT_CLEAR, INTERRUPT_CLEAR_RANGING])  # the write that clears it

# Device range status values (bits 6:3 of RESULT_RANGE_STATUS).
STATUS_RANGE_COMPLETE = 11
NO_TARGET_STATUSES = frozenset({4, 6, 9})  # MSRC no target, range phase check, phase consistency
BROKEN_CHIP_STATUSES = frozenset({0, 1, 2, 3, 15})  # no update, VCSEL continuity/watchdog, no VHV, undefined
DOUBT_STATUSES = frozenset({5, 7, 8, 10, 12, 13, 14})  # SNR, sigma, TCC, min clip, algo under/overflow,
# range-ignore threshold
DEVICE_STATUS_NAMES = {
    0: "no update",
    1: "VCSEL continuity test failure",
    2: "VCSEL watchdog test failure",
    3: "no VHV value found",
    4: "MSRC no target",
    5: "SNR check",
    6: "range phase check",
    7: "sigma threshold check",
    8: "TCC (target centre check)",
    9: "phase consistency",
    10: "min clip",
    11: "range complete",
    12: "range algorithm underflow",
    13: "range algorithm overflow",
    14: "range ignore threshold",
    15: "undefined",
}
NO_TARGET_RAW_MM = 8190  # the chip reports 8190 or 8191 when out of range

# Bounds of the configuration numbers (the timing budget's: controller/core/readings.py).
IO_TIMEOUT_S_MIN, IO_TIMEOUT_S_MAX = 0.05, 5.0

# In phase, a read sleeps until just after the predicted data-ready instant and looks once;
# now and then it re-locks (looks just before and polls through the window). The prediction
# and why: drivers/data_ready_phase.py.


def open_pi_i2c_bus():
    """Blinka's I2C bus 1 on a Raspberry Pi (GPIO2 = SDA, GPIO3 = SCL).

    ``board`` is imported here, not at module import time: its import fails on a
    machine that is not a supported board. The bus speed is not set from Python on
    Linux; it comes from ``dtparam=i2c_arm_baudrate`` in /boot/firmware/config.txt
    (the MLX90614 needs <= 50 kHz, which the VL53L0X also accepts).
    """
    import board  # noqa: PLC0415 - lazy on purpose

    return board.I2C()


def data_ready_input(pin: int | None, pin_factory=None):
    """The VL53L0X's GPIO1 on BCM `pin` as a gpiozero input, active while it is low (the chip
    pulls it low for "new sample ready"; the breakout pulls it up). None without a pin."""
    if pin is None:
        return None
    from gpiozero import DigitalInputDevice  # noqa: PLC0415 - only with the optional pin

    return DigitalInputDevice(pin, pull_up=True, pin_factory=pin_factory)


class VL53L0XSource:
    """A ``DistanceSource`` on a VL53L0X in continuous (back-to-back) ranging mode.

    ``read_distance_mm()`` returns the next new sample: it sleeps until just after the
    sample is predicted to be ready (the chip's phase and real period are learned from the
    previous reads: drivers/data_ready_phase.py) and looks at data-ready once; now and then it
    looks just before and polls through the predicted window to re-lock; when the phase is
    unknown, or a look finds nothing, it polls (~1 ms) and gives up with RuntimeError after
    ``io_timeout_s``. With ``data_ready_pin`` (the chip's GPIO1 on a Pi input, as a gpiozero
    input device that is active while the chip signals "new sample ready": the Adafruit
    driver configures GPIO1 that way, active low) it waits for that edge instead of polling
    over I2C, and confirms with one register read; an edge that never comes, or a pin that
    says ready when the register does not, falls back to the polling path. I2C errors
    (OSError) pass through unchanged. A read may still
    block for longer than ``io_timeout_s`` if the bus itself hangs inside a transfer;
    the caller runs it in its own thread for that reason.
    """

    name = "vl53l0x"

    def __init__(
        self,
        i2c,
        *,
        address: int = DEFAULT_ADDRESS,
        timing_budget_ms: int = 33,
        io_timeout_s: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        data_ready_pin=None,
    ) -> None:
        if not TIMING_BUDGET_MS_MIN <= timing_budget_ms <= TIMING_BUDGET_MS_MAX:
            raise ValueError(
                f"VL53L0X timing_budget_ms must be {TIMING_BUDGET_MS_MIN}.."
                f"{TIMING_BUDGET_MS_MAX}, got {timing_budget_ms}"
            )
        if not IO_TIMEOUT_S_MIN <= io_timeout_s <= IO_TIMEOUT_S_MAX:
            raise ValueError(f"VL53L0X io_timeout_s must be {IO_TIMEOUT_S_MIN}..{IO_TIMEOUT_S_MAX}, got {io_timeout_s}")
        if io_timeout_s <= timing_budget_ms / 1000:
            raise ValueError(
                f"VL53L0X io_timeout_s ({io_timeout_s} s) must be longer than the timing budget ({timing_budget_ms} ms)"
            )
        self._sleep = sleep
        self._monotonic = monotonic
        self._ready_pin = data_ready_pin  # gpiozero input device (wait_for_active) or None
        self._io_timeout_s = io_timeout_s
        self._closed = False
        try:
            self._sensor = adafruit_vl53l0x.VL53L0X(i2c, address=address, io_timeout_s=io_timeout_s)
        except ValueError as exc:  # I2CDevice's probe: nothing acknowledges the address
            raise OSError(errno.EREMOTEIO, f"VL53L0X not found at 0x{address:02X}: {exc}") from exc
        self._sensor.measurement_timing_budget = timing_budget_ms * 1000
        # The getter re-reads the programmed registers: the period the chip really uses.
        self._sample_period_s = self._sensor.measurement_timing_budget / 1e6
        self._device = self._sensor._device  # the driver's I2CDevice, for result registers
        self._register = bytearray(1)
        # RESULT_INTERRUPT_STATUS (0x13) and then the result block (0x14..0x1F): consecutive registers
        self._status_and_result = bytearray(1 + RESULT_BLOCK_LENGTH)
        self._sensor.start_continuous()
        # When the next sample becomes ready, learned from the looks (the polling path only).
        self._phase = DataReadyPhase(self._sample_period_s, started_s=self._monotonic())

    @property
    def sample_period_s(self) -> float:
        """The measurement period the chip is programmed for."""
        return self._sample_period_s

    @property
    def learned_period_s(self) -> float:
        """The chip's real period as learned from when its samples became ready (a real chip's
        oscillator is a few % off the programmed period); the programmed one until then."""
        return self._phase.period_s

    def read_distance_mm(self) -> float:
        """The next new measurement in mm, NO_TARGET_MM when nothing is in range (see read_distance)."""
        return self.read_distance().distance_mm

    def read_distance(self) -> DistanceReading:
        """The next new measurement with its light rates.

        Raises RuntimeError (no data-ready within io_timeout_s), DistanceDoubtError (the
        chip says this measurement is not trustworthy; it carries the rates),
        SensorValueError (the chip failed) or OSError (I2C error).
        """
        now = self._monotonic()
        deadline = now + self._io_timeout_s
        look: Look | None = None
        if self._ready_pin is None:
            look = self._phase.plan()
            if look is not None and now < look.at_s:  # it cannot be ready before: sleep, no look
                self._sleep(min(look.at_s, deadline) - now)
        elif not self._data_ready():
            # GPIO1: sleep until the chip says so (at most one period and a little); confirm
            # over I2C, else poll below for the rest of the deadline
            self._ready_pin.wait_for_active(
                max(0.0, min(deadline, now + self._sample_period_s + READY_PIN_SLACK_S) - now)
            )
        looked_s = self._monotonic()
        with_result = look is not None and not look.relock  # expected to find it: the result comes along
        ready = self._data_ready(with_result=with_result)
        if ready:
            if self._ready_pin is None:
                self._phase.found_at_first_look(look, looked_s, self._monotonic())
        else:
            missed_s = self._poll_until_ready(look, looked_s, deadline)
            if self._ready_pin is None:
                self._phase.found_by_polling(look, missed_s, self._monotonic())
        if not (ready and with_result):
            self._read_result()
        self._clear_interrupt()
        return _interpret(bytes(self._status_and_result[1:]))

    def _poll_until_ready(self, look: Look | None, missed_s: float, deadline: float) -> float:
        """Poll data-ready until set; returns when the last look that found nothing began.
        Raises RuntimeError at `deadline` (the phase is then lost)."""
        while True:
            now = self._monotonic()
            if now >= deadline:
                self._phase.lose_phase()
                raise RuntimeError(
                    f"VL53L0X: no new measurement within {self._io_timeout_s:.3f} s (data-ready never set)"
                )
            interval_s = POLL_INTERVAL_S if look is None else look.poll_interval_s(now)
            self._sleep(min(interval_s, deadline - now))
            looked_s = self._monotonic()
            if self._data_ready():
                return missed_s
            missed_s = looked_s

    def close(self) -> None:
        """Stop continuous ranging. Never raises; a failure is logged."""
        if self._closed:
            return
        self._closed = True
        try:
            self._sensor.stop_continuous()
        except (OSError, RuntimeError) as exc:
            log.warning("VL53L0X: could not stop continuous ranging: %s", exc)

    # --- registers -------------------------------------------------------------------
    def _data_ready(self, *, with_result: bool = False) -> bool:
        """One look at the interrupt status. `with_result`: the result block too, in the same
        transfer (the registers are consecutive) - for a look expected to find the sample,
        which then needs no second read (one I2C transfer a sample less); when it finds
        nothing the block is not used."""
        self._register[0] = RESULT_INTERRUPT_STATUS
        with self._device as device:
            device.write_then_readinto(
                self._register, self._status_and_result, in_end=len(self._status_and_result) if with_result else 1
            )
        return self._status_and_result[0] & INTERRUPT_STATUS_MASK != 0

    def _read_result(self) -> None:
        """The result block alone, into its place after the status byte."""
        self._register[0] = RESULT_RANGE_STATUS
        with self._device as device:
            device.write_then_readinto(self._register, self._status_and_result, in_start=1)

    def _clear_interrupt(self) -> None:
        with self._device as device:
            device.write(CLEAR_RANGING_INTERRUPT)


def _u16(block: bytes, offset: int) -> int:
    return int.from_bytes(block[offset : offset + 2], "big")


def _interpret(block: bytes) -> DistanceReading:
    """Map the chip's result block to a reading (see the module docstring)."""
    device_status = (block[0] >> 3) & 0x0F
    range_mm = _u16(block, RESULT_RANGE_MM_OFFSET)
    rates = LightRates(
        _u16(block, RESULT_SIGNAL_RATE_OFFSET) / FIXED_POINT_97,
        _u16(block, RESULT_AMBIENT_RATE_OFFSET) / FIXED_POINT_97,
    )
    name = DEVICE_STATUS_NAMES[device_status]
    if device_status in BROKEN_CHIP_STATUSES:
        raise SensorValueError(
            f"VL53L0X range status {device_status} ({name}): no valid measurement (hardware or VCSEL failure)"
        )
    if range_mm >= NO_TARGET_RAW_MM or device_status in NO_TARGET_STATUSES:
        return DistanceReading(NO_TARGET_MM, rates)
    if device_status in DOUBT_STATUSES:
        raise DistanceDoubtError(
            f"VL53L0X range status {device_status} ({name}): measurement not trustworthy "
            f"(raw {range_mm} mm, signal {rates.signal_rate_mcps:.2f} Mcps, "
            f"ambient {rates.ambient_rate_mcps:.2f} Mcps)",
            rates,
            device_status,
        )
    return DistanceReading(float(range_mm), rates)
