"""An emulated I2C bus with register-level models of the VL53L0X and the MLX90614.

There is no Raspberry Pi in development or CI, so the real readers
(drivers.vl53l0x, drivers.mlx90614) and the UNMODIFIED Adafruit drivers under them run
on this bus instead of Blinka's ``board.I2C()``. The bus offers what Blinka's
``busio.I2C`` offers and what ``adafruit_bus_device.i2c_device.I2CDevice`` calls:
``try_lock``/``unlock``, ``scan``, ``writeto``, ``readfrom_into`` and
``writeto_then_readfrom`` with the same start/end keyword arguments.

The chips are models of their registers, not of the drivers: every transfer is turned
into register reads and writes, so a driver that reads the wrong register or forgets to
clear an interrupt sees what it would see on the real chip.

Faults a test can switch on:
  - ``chip.nack = True``           the chip stops acknowledging: OSError(121, 'Remote I/O error')
  - ``bus.stuck = True``           every transfer blocks until ``bus.stuck = False``
  - ``vl53l0x.data_ready_stops``   the ranging core never raises data-ready again
  - ``vl53l0x.period_factor``      the chip's real ranging period over the programmed one (a real
                                   chip's oscillator is a few % off); may change while ranging
  - ``mlx90614.corrupt_pec``       the PEC byte of every read is wrong
  - ``mlx90614.error_flag``        bit 15 (error flag) of the object temperature is set

Glare (drivers/glare.py, the model the simulated sensors share): ``vl53l0x.glare_mcps`` is
ambient light the chip sees at all times, ``vl53l0x.lamp_glare_mcps`` what the heat lamp
adds while ``vl53l0x.lamp_on()`` says it is lit. Under glare the chip's range gets noisier
and more measurements carry a sigma/SNR/range-ignore status; the signal and ambient rate
registers always hold the model's rates. ``ranging_noise=True`` adds the dark-room noise
(sigma 2 mm) even without glare. The MLX90614's body (and the skin it looks at) warm
towards ``lamp_body_rise_c`` / ``lamp_skin_rise_c`` above their set values while its
``lamp_on()`` is true, and cool back when it is not.

Run ``python tests/emulated_i2c.py`` to measure the CPU time the real distance reader
uses per sample at the real 33 ms timing budget.
"""

from __future__ import annotations

import errno
import math
import os
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Protocol

from drivers import glare

Clock = Callable[[], float]


class FakeClock:
    """A monotonic clock that only moves when someone sleeps on it (thread-safe).

    Pass ``clock.monotonic`` to the chips and the readers and ``clock.sleep`` to the
    readers: waits then take no real time and are exactly reproducible. ``tick_s`` moves
    the clock a little on every reading of it, so code that busy-waits on the clock
    (instead of sleeping) still reaches its deadline and fails a test instead of hanging it.
    """

    def __init__(self, start_s: float = 1000.0, tick_s: float = 0.0) -> None:
        self._now_s = start_s
        self._tick_s = tick_s
        self._guard = threading.Lock()

    def monotonic(self) -> float:
        with self._guard:
            self._now_s += self._tick_s
            return self._now_s

    def sleep(self, seconds: float) -> None:
        with self._guard:
            self._now_s += max(0.0, seconds)

    advance = sleep


def nack_error() -> OSError:
    """What Linux's i2c-dev reports when a device does not acknowledge its address."""
    return OSError(errno.EREMOTEIO, os.strerror(errno.EREMOTEIO))


class EmulatedChip(Protocol):
    """One device on the emulated bus: it sees whole I2C transfers, as the real chip does."""

    address: int
    nack: bool

    def write(self, data: bytes) -> None: ...

    def read(self, length: int) -> bytes: ...

    def write_then_read(self, data: bytes, length: int) -> bytes: ...


class EmulatedI2C:
    """A ``busio.I2C``-like bus that routes transfers by 7-bit address to chip models.

    Like CircuitPython (and stricter than Blinka on Linux), every transfer and scan must
    be made while holding the bus lock, so a driver that forgets to lock is caught.
    """

    def __init__(self, *chips: EmulatedChip) -> None:
        self._chips: dict[int, EmulatedChip] = {}
        self._lock_guard = threading.Lock()
        self._locked = False
        self._released = threading.Event()
        self._released.set()
        self._someone_blocked = threading.Event()
        self.transfer_count: Counter[int] = Counter()
        for chip in chips:
            self.attach(chip)

    # --- wiring ---------------------------------------------------------------
    def attach(self, chip: EmulatedChip) -> None:
        """Connect a chip to the bus (replacing any chip at the same address)."""
        self._chips[chip.address] = chip

    def detach(self, address: int) -> None:
        """Disconnect the chip at ``address``: it will no longer acknowledge."""
        self._chips.pop(address, None)

    # --- fault switch ---------------------------------------------------------
    @property
    def stuck(self) -> bool:
        """True while every transfer blocks (a slave holding SDA low, a wedged controller)."""
        return not self._released.is_set()

    @stuck.setter
    def stuck(self, value: bool) -> None:
        if value:
            self._someone_blocked.clear()
            self._released.clear()
        else:
            self._released.set()

    def wait_until_blocked(self, timeout_s: float) -> bool:
        """Wait until a transfer is blocked on the stuck bus; False if none within timeout_s."""
        return self._someone_blocked.wait(timeout_s)

    # --- busio.I2C locking ----------------------------------------------------
    def try_lock(self) -> bool:
        with self._lock_guard:
            if self._locked:
                return False
            self._locked = True
            return True

    def unlock(self) -> None:
        with self._lock_guard:
            self._locked = False

    def deinit(self) -> None:
        self.unlock()

    def __enter__(self) -> EmulatedI2C:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.deinit()

    # --- busio.I2C transfers --------------------------------------------------
    def scan(self) -> list[int]:
        """Addresses that acknowledge, like ``busio.I2C.scan()``."""
        self._begin_transfer()
        return sorted(addr for addr, chip in self._chips.items() if not chip.nack)

    def writeto(self, address: int, buffer, *, start: int = 0, end: int | None = None, stop: bool = True) -> None:
        chip = self._chip_for_transfer(address)
        chip.write(bytes(memoryview(buffer)[start:end]))

    def readfrom_into(self, address: int, buffer, *, start: int = 0, end: int | None = None, stop: bool = True) -> None:
        chip = self._chip_for_transfer(address)
        end = len(buffer) if end is None else end
        buffer[start:end] = chip.read(end - start)

    def writeto_then_readfrom(
        self,
        address: int,
        buffer_out,
        buffer_in,
        *,
        out_start: int = 0,
        out_end: int | None = None,
        in_start: int = 0,
        in_end: int | None = None,
        stop: bool = False,
    ) -> None:
        chip = self._chip_for_transfer(address)
        in_end = len(buffer_in) if in_end is None else in_end
        data = bytes(memoryview(buffer_out)[out_start:out_end])
        buffer_in[in_start:in_end] = chip.write_then_read(data, in_end - in_start)

    def _begin_transfer(self) -> None:
        if not self._locked:
            raise RuntimeError("emulated I2C bus used without holding its lock (try_lock)")
        if not self._released.is_set():
            self._someone_blocked.set()
            self._released.wait()

    def _chip_for_transfer(self, address: int) -> EmulatedChip:
        self._begin_transfer()
        self.transfer_count[address] += 1
        chip = self._chips.get(address)
        if chip is None or chip.nack:
            raise nack_error()
        return chip


# =============================================================================
# VL53L0X time-of-flight distance sensor
# =============================================================================


class EmulatedVL53L0X:
    """Register model of the ST VL53L0X at 0x29.

    The register file is paged: register 0xFF selects the page the other addresses
    refer to (the init sequence of ST's API and Pololu's port switches pages). Multi-byte
    transfers auto-increment the register pointer; 16-bit registers are big-endian.

    Modelled behaviour:
      - identification registers 0xC0/0xC1/0xC2 = 0xEE/0xAA/0x10;
      - the NVM read of the reference SPAD info (page 7: address in 0x94, strobe 0x83,
        data in 0x92) and the stop variable (page 1, 0x91);
      - SYSRANGE_START: single-shot measurements and reference calibrations (VHV and
        phase) complete at once; back-to-back (continuous) ranging completes a new
        measurement every measurement period, which the chip derives from its timing
        registers exactly as the timing budget is defined (sequence steps, VCSEL periods,
        step timeouts) - so the period follows ``measurement_timing_budget``;
      - data-ready: RESULT_INTERRUPT_STATUS (0x13) & 0x07 != 0 until a write to
        SYSTEM_INTERRUPT_CLEAR (0x0B); results at RESULT_RANGE_STATUS (0x14: device range
        status in bits 6:3) and RESULT_RANGE_MM (0x1E, big-endian mm). An unread result
        is overwritten by the next one.
    Time comes from ``monotonic`` so a test can drive the chip with a fake clock.
    """

    DEFAULT_ADDRESS = 0x29

    # Registers (page 0 unless noted).
    SYSRANGE_START = 0x00
    SYSTEM_SEQUENCE_CONFIG = 0x01
    SYSTEM_INTERRUPT_CONFIG_GPIO = 0x0A
    SYSTEM_INTERRUPT_CLEAR = 0x0B
    RESULT_INTERRUPT_STATUS = 0x13
    RESULT_RANGE_STATUS = 0x14
    RESULT_EFFECTIVE_SPAD_RTN_COUNT = 0x16
    RESULT_SIGNAL_RATE = 0x1A
    RESULT_AMBIENT_RATE = 0x1C
    RESULT_RANGE_MM = 0x1E
    MSRC_CONFIG_CONTROL = 0x60
    MSRC_CONFIG_TIMEOUT_MACROP = 0x46
    PRE_RANGE_CONFIG_VCSEL_PERIOD = 0x50
    PRE_RANGE_CONFIG_TIMEOUT_MACROP_HI = 0x51
    FINAL_RANGE_CONFIG_VCSEL_PERIOD = 0x70
    FINAL_RANGE_CONFIG_TIMEOUT_MACROP_HI = 0x71
    GPIO_HV_MUX_ACTIVE_HIGH = 0x84
    GLOBAL_CONFIG_SPAD_ENABLES_REF_0 = 0xB0
    IDENTIFICATION_MODEL_ID = 0xC0
    IDENTIFICATION_MODULE_TYPE = 0xC1
    IDENTIFICATION_REVISION_ID = 0xC2
    PAGE_SELECT = 0xFF
    STOP_VARIABLE = 0x91  # page 1
    NVM_STROBE = 0x83  # page 7 (page 6: NVM access enable bit 0x04)
    NVM_DATA = 0x92  # page 7
    NVM_ADDRESS = 0x94  # page 7

    # Register values.
    SYSRANGE_START_STOP = 0x01
    SYSRANGE_MODE_BACK_TO_BACK = 0x02
    SYSRANGE_MODE_TIMED = 0x04
    INTERRUPT_NEW_SAMPLE_READY = 0x04
    NVM_READ_DONE = 0x10
    NVM_ADDRESS_SPAD_INFO = 0x6B

    # Device range status (bits 6:3 of RESULT_RANGE_STATUS), from ST's API.
    STATUS_RANGE_COMPLETE = 11
    STATUS_MSRC_NO_TARGET = 4
    STATUS_PHASE_CONSISTENCY = 9
    STATUS_VCSEL_CONTINUITY_FAIL = 1
    NO_TARGET_RANGE_MM = 8190

    def __init__(
        self,
        *,
        monotonic: Clock = time.monotonic,
        address: int = DEFAULT_ADDRESS,
        distance_mm: float = 500.0,
        ranging_noise: bool = False,
        seed: int = 0,
        lamp_on: Callable[[], bool] = lambda: False,
    ) -> None:
        self.address = address
        self.monotonic = monotonic
        # Settable state: what the laser currently sees.
        self.distance_mm = distance_mm
        self.range_status = self.STATUS_RANGE_COMPLETE
        self.glare_mcps = 0.0  # ambient light at 940 nm, always there (e.g. the sun)
        self.lamp_glare_mcps = 0.0  # what the heat lamp adds while it is lit
        self.lamp_on = lamp_on
        self.ranging_noise = ranging_noise
        self.rng = random.Random(seed)
        # Fault switches.
        self.nack = False
        self.data_ready_stops = False
        # Observation for tests.
        self.register_reads: Counter[tuple[int, int]] = Counter()
        self.samples_completed = 0
        self.samples_due = 0  # continuous measurements finished, counting those overwritten unread
        self.last_sample_s = 0.0  # when the newest continuous measurement finished

        self._pages: dict[int, bytearray] = {}
        self._page = 0
        self._pointer = 0
        self._nvm = {self.NVM_ADDRESS_SPAD_INFO: 0x86}  # aperture SPADs, 6 of them
        self._continuous_period_s: float | None = None
        self._period_factor = 1.0
        self._next_sample_due = 0.0
        self._chip_lock = threading.RLock()  # bus transfers vs the GPIO1 thread
        self.gpio1 = None  # a MockPin wired to GPIO1 (attach_gpio1)
        self._gpio1_stop = threading.Event()
        self._load_power_on_defaults()

    # --- what a test inspects --------------------------------------------------
    @property
    def continuous(self) -> bool:
        return self._continuous_period_s is not None

    def read_count(self, register: int, page: int = 0) -> int:
        """How many times ``register`` has been read over the bus."""
        return self.register_reads[(page, register)]

    def register(self, register: int, page: int = 0) -> int:
        """The current value of a register (without counting it as a bus read)."""
        return self._regs(page)[register]

    def newest_sample(self) -> int:
        """The number of the newest measurement finished by now (counting overwritten ones)."""
        with self._chip_lock:
            self._advance_clock()
            return self.samples_due

    def measurement_period_s(self) -> float:
        """The ranging period the chip's timing registers currently program."""
        return self._timing_budget_us() / 1e6

    @property
    def period_factor(self) -> float:
        """The real ranging period over the programmed one (1.0: exact, 1.02: 2 % slow)."""
        return self._period_factor

    @period_factor.setter
    def period_factor(self, value: float) -> None:
        self._period_factor = value
        if self._continuous_period_s is not None:  # while ranging: from the next sample on
            self._continuous_period_s = self.measurement_period_s() * value

    # --- I2C transfers -----------------------------------------------------------
    def write(self, data: bytes) -> None:
        with self._chip_lock:
            self._write_locked(data)

    def _write_locked(self, data: bytes) -> None:
        self._advance_clock()
        if not data:
            return  # address-only probe
        self._pointer = data[0]
        for value in data[1:]:
            self._write_register(self._pointer, value)
            self._pointer = (self._pointer + 1) & 0xFF

    # --- GPIO1: "new sample ready", active low (as the Adafruit driver configures it) -----
    def attach_gpio1(self, pin) -> None:
        """Wire GPIO1 to `pin` (a gpiozero MockPin): low while a new sample is ready, high once
        the interrupt is cleared. A thread of the emulation completes each measurement when it
        falls due (real chips range on their own), so the pin falls on time. `detach_gpio1()`."""
        self.gpio1 = pin
        pin.drive_high()
        self._gpio1_stop.clear()

        def run() -> None:
            while not self._gpio1_stop.is_set():
                with self._chip_lock:
                    self._advance_clock()
                    due = self._next_sample_due if self._continuous_period_s is not None else None
                wait_s = 0.01 if due is None else max(0.0, due - self.monotonic()) + 0.0001
                self._gpio1_stop.wait(wait_s)

        threading.Thread(target=run, name="emulated-vl53l0x-gpio1", daemon=True).start()

    def detach_gpio1(self) -> None:
        self._gpio1_stop.set()

    def _drive_gpio1(self) -> None:
        if self.gpio1 is None:
            return
        if self._regs(0)[self.RESULT_INTERRUPT_STATUS] & 0x07:
            self.gpio1.drive_low()
        else:
            self.gpio1.drive_high()

    def read(self, length: int) -> bytes:
        with self._chip_lock:
            return self._read_locked(length)

    def _read_locked(self, length: int) -> bytes:
        self._advance_clock()
        page, regs, reads = self._page, self._regs(self._page), self.register_reads
        out = bytearray(length)
        pointer = self._pointer
        for i in range(length):  # _read_register, inlined: reads never change the page
            if pointer == self.PAGE_SELECT:
                out[i] = page
            else:
                reads[(page, pointer)] += 1
                out[i] = regs[pointer]
            pointer = (pointer + 1) & 0xFF
        self._pointer = pointer
        return bytes(out)

    def write_then_read(self, data: bytes, length: int) -> bytes:
        with self._chip_lock:  # one lock for the whole transfer
            self._write_locked(data)
            return self._read_locked(length)

    # --- register file -------------------------------------------------------------
    def _regs(self, page: int) -> bytearray:
        regs = self._pages.get(page)
        if regs is None:  # (not setdefault: that would build a 256-byte default on every call)
            regs = self._pages[page] = bytearray(256)
        return regs

    def _load_power_on_defaults(self) -> None:
        page0 = self._regs(0)
        page0[self.IDENTIFICATION_MODEL_ID] = 0xEE
        page0[self.IDENTIFICATION_MODULE_TYPE] = 0xAA
        page0[self.IDENTIFICATION_REVISION_ID] = 0x10
        page0[self.SYSTEM_SEQUENCE_CONFIG] = 0xFF
        page0[self.SYSTEM_INTERRUPT_CONFIG_GPIO] = 0x04
        page0[self.GPIO_HV_MUX_ACTIVE_HIGH] = 0x11
        page0[self.MSRC_CONFIG_TIMEOUT_MACROP] = 0x25
        page0[self.PRE_RANGE_CONFIG_VCSEL_PERIOD] = 0x06
        self._set_u16(self.PRE_RANGE_CONFIG_TIMEOUT_MACROP_HI, 0x0096)
        page0[self.FINAL_RANGE_CONFIG_VCSEL_PERIOD] = 0x04
        self._set_u16(self.FINAL_RANGE_CONFIG_TIMEOUT_MACROP_HI, 0x01FE)
        first = self.GLOBAL_CONFIG_SPAD_ENABLES_REF_0
        page0[first : first + 6] = bytes([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F])
        self._regs(1)[self.STOP_VARIABLE] = 0x3C

    def _read_register(self, register: int) -> int:
        if register == self.PAGE_SELECT:
            return self._page
        self.register_reads[(self._page, register)] += 1
        return self._regs(self._page)[register]

    def _write_register(self, register: int, value: int) -> None:
        if register == self.PAGE_SELECT:
            self._page = value
            return
        self._regs(self._page)[register] = value
        if self._page == 0 and register == self.SYSRANGE_START:
            self._on_sysrange_start(value)
        elif self._page == 0 and register == self.SYSTEM_INTERRUPT_CLEAR and value & 0x07:
            self._regs(0)[self.RESULT_INTERRUPT_STATUS] = 0x00
            self._drive_gpio1()
        elif self._page == 7 and register == self.NVM_STROBE and value == 0x00:
            self._read_nvm()

    def _read_nvm(self) -> None:
        page7 = self._regs(7)
        page7[self.NVM_DATA] = self._nvm.get(page7[self.NVM_ADDRESS], 0x00)
        page7[self.NVM_STROBE] = self.NVM_READ_DONE

    # --- ranging core ------------------------------------------------------------------
    def _on_sysrange_start(self, value: int) -> None:
        page0 = self._regs(0)
        if value & (self.SYSRANGE_MODE_BACK_TO_BACK | self.SYSRANGE_MODE_TIMED):
            self._continuous_period_s = self.measurement_period_s() * self._period_factor
            self._next_sample_due = self.monotonic() + self._continuous_period_s
        elif value & self.SYSRANGE_START_STOP:
            if self.continuous:
                self._continuous_period_s = None  # the start/stop bit stops ranging
            else:
                self._complete_measurement()  # single shot or reference calibration
        page0[self.SYSRANGE_START] = value & ~self.SYSRANGE_START_STOP

    def _advance_clock(self) -> None:
        if self._continuous_period_s is None:
            return
        now = self.monotonic()
        if now < self._next_sample_due:
            return
        missed = math.floor((now - self._next_sample_due) / self._continuous_period_s)
        self.last_sample_s = self._next_sample_due + missed * self._continuous_period_s
        self.samples_due += missed + 1
        self._next_sample_due += (missed + 1) * self._continuous_period_s
        self._complete_measurement()

    def _complete_measurement(self) -> None:
        if self.data_ready_stops:
            return
        page0 = self._regs(0)
        status, range_mm, signal_mcps, ambient_mcps = self._measure()
        page0[self.RESULT_RANGE_STATUS] = (status & 0x0F) << 3
        self._set_u16(self.RESULT_EFFECTIVE_SPAD_RTN_COUNT, 6 << 8)  # 8.8 fixed point
        self._set_u16(self.RESULT_SIGNAL_RATE, _fixed_97(signal_mcps))  # 9.7 fixed point, Mcps
        self._set_u16(self.RESULT_AMBIENT_RATE, _fixed_97(ambient_mcps))
        self._set_u16(self.RESULT_RANGE_MM, max(0, min(0xFFFF, round(range_mm))))
        page0[self.RESULT_INTERRUPT_STATUS] = self.INTERRUPT_NEW_SAMPLE_READY
        self.samples_completed += 1
        self._drive_gpio1()

    def current_glare_mcps(self) -> float:
        return self.glare_mcps + (self.lamp_glare_mcps if self.lamp_on() else 0.0)

    def _measure(self) -> tuple[int, float, float, float]:
        """(status, range, signal rate, ambient rate) of the measurement completing now.

        A status set by a test wins; a target beyond range reads the sentinel. Otherwise,
        with glare or ranging noise, the shared glare model decides; without either the
        range is exact (so tests can compare readings to the millimetre)."""
        distance_mm = self.distance_mm  # once: a subclass may draw noise on every access
        glare_mcps = self.current_glare_mcps()
        signal_mcps = glare.signal_rate_mcps(distance_mm)
        ambient_mcps = glare.DARK_AMBIENT_MCPS + glare_mcps
        if (
            self.range_status != self.STATUS_RANGE_COMPLETE
            or distance_mm >= self.NO_TARGET_RANGE_MM
            or not (glare_mcps > 0.0 or self.ranging_noise)
        ):
            return self.range_status, distance_mm, signal_mcps, ambient_mcps
        measured = glare.measure(distance_mm, glare_mcps, self.rng)
        return (measured.device_status, measured.range_mm, measured.signal_rate_mcps, measured.ambient_rate_mcps)

    def _timing_budget_us(self) -> float:
        """The measurement time the timing registers program (ST's budget definition)."""
        page0 = self._regs(0)
        steps = page0[self.SYSTEM_SEQUENCE_CONFIG]
        tcc, dss, msrc = steps & 0x10, steps & 0x08, steps & 0x04
        pre_range, final_range = steps & 0x40, steps & 0x80
        pre_pclks = _vcsel_period_pclks(page0[self.PRE_RANGE_CONFIG_VCSEL_PERIOD])
        final_pclks = _vcsel_period_pclks(page0[self.FINAL_RANGE_CONFIG_VCSEL_PERIOD])
        msrc_us = _mclks_to_us(page0[self.MSRC_CONFIG_TIMEOUT_MACROP] + 1, pre_pclks)
        pre_mclks = _decode_timeout(self._u16(self.PRE_RANGE_CONFIG_TIMEOUT_MACROP_HI))
        final_mclks = _decode_timeout(self._u16(self.FINAL_RANGE_CONFIG_TIMEOUT_MACROP_HI))
        if pre_range:
            final_mclks -= pre_mclks
        budget_us = 1910 + 960
        if tcc:
            budget_us += msrc_us + 590
        if dss:
            budget_us += 2 * (msrc_us + 690)
        elif msrc:
            budget_us += msrc_us + 660
        if pre_range:
            budget_us += _mclks_to_us(pre_mclks, pre_pclks) + 660
        if final_range:
            budget_us += _mclks_to_us(final_mclks, final_pclks) + 550
        return budget_us

    def _u16(self, register: int) -> int:
        page0 = self._regs(0)
        return (page0[register] << 8) | page0[register + 1]

    def _set_u16(self, register: int, value: int) -> None:
        self._regs(0)[register : register + 2] = value.to_bytes(2, "big")


def _fixed_97(mcps: float) -> int:
    """Mega-counts per second in the chip's unsigned 9.7 fixed point."""
    return max(0, min(0xFFFF, round(mcps * 128)))


def _vcsel_period_pclks(register_value: int) -> int:
    return (register_value + 1) << 1


def _decode_timeout(encoded: int) -> int:
    """Timeouts are stored as (LSB * 2**MSB) + 1 macro periods."""
    return ((encoded & 0xFF) << (encoded >> 8)) + 1


def _mclks_to_us(mclks: int, vcsel_pclks: int) -> float:
    macro_period_ns = (2304 * vcsel_pclks * 1655 + 500) // 1000
    return (mclks * macro_period_ns + macro_period_ns // 2) // 1000


# =============================================================================
# MLX90614 infrared thermometer
# =============================================================================

LAMP_SKIN_TAU_S = 60.0  # skin under a 250 W lamp at 40 cm: minutes to settle
LAMP_BODY_TAU_S = 120.0  # the MLX90614's TO-39 can behind a bracket: slower


def _crc8_step(crc: int) -> int:
    for _ in range(8):
        crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


_CRC8_TABLE = bytes(_crc8_step(value) for value in range(256))  # one table look-up per byte


def smbus_pec(data: bytes) -> int:
    """SMBus Packet Error Code: CRC-8, polynomial x^8 + x^2 + x + 1 (0x07), initial 0."""
    crc = 0
    for byte in data:
        crc = _CRC8_TABLE[crc ^ byte]
    return crc


@dataclass(frozen=True)
class EepromWrite:
    """One SMBus write-word the chip received into its EEPROM."""

    eeprom_address: int
    word: int
    pec_ok: bool


class EmulatedMLX90614:
    """SMBus model of the Melexis MLX90614 at 0x5A.

    Commands: 0x00..0x1F read/write RAM, 0x20..0x3F read/write EEPROM (address =
    command & 0x1F). A read-word answers LSB, MSB, PEC where the PEC covers
    address+W, command, address+R, LSB, MSB. Temperatures are Kelvin * 50
    (0.02 K per LSB); bit 15 of the object temperature word is the error flag.
    Every EEPROM write is recorded in ``eeprom_writes`` (and applied only with a good
    PEC, as the chip does), so a test can prove the reader never writes it.
    """

    DEFAULT_ADDRESS = 0x5A
    KELVIN_PER_LSB = 0.02
    ZERO_CELSIUS_K = 273.15
    ERROR_FLAG = 0x8000

    # Commands / addresses.
    RAM_ACCESS = 0x00
    EEPROM_ACCESS = 0x20
    ACCESS_MASK = 0xE0
    RAM_RAW_IR1 = 0x04
    RAM_RAW_IR2 = 0x05
    RAM_TA = 0x06
    RAM_TOBJ1 = 0x07
    RAM_TOBJ2 = 0x08
    EEPROM_TO_MAX = 0x20
    EEPROM_TO_MIN = 0x21
    EEPROM_PWMCTRL = 0x22
    EEPROM_TA_RANGE = 0x23
    EEPROM_EMISSIVITY = 0x24
    EEPROM_CONFIG1 = 0x25
    EEPROM_SMBUS_ADDRESS = 0x2E
    EEPROM_ID_FIRST = 0x3C

    def __init__(
        self,
        *,
        address: int = DEFAULT_ADDRESS,
        object_c: float = 33.0,
        ambient_c: float = 24.0,
        monotonic: Clock = time.monotonic,
        lamp_on: Callable[[], bool] = lambda: False,
    ) -> None:
        self.address = address
        # Settable state.
        self.object_c = object_c
        self.ambient_c = ambient_c
        # Warming under the lamp (0 = the lamp does not reach it).
        self.lamp_on = lamp_on
        self.monotonic = monotonic
        self.lamp_skin_rise_c = 0.0  # steady-state rise of the skin it looks at
        self.lamp_body_rise_c = 0.0  # steady-state rise of its own body (package)
        self.skin_tau_s = LAMP_SKIN_TAU_S
        self.body_tau_s = LAMP_BODY_TAU_S
        self._skin_warmth_c = 0.0
        self._body_warmth_c = 0.0
        self._warmth_at_s = monotonic()
        # Fault switches.
        self.nack = False
        self.corrupt_pec = False
        self.error_flag = False
        # Observation for tests.
        self.eeprom_writes: list[EepromWrite] = []
        self.eeprom = {
            self.EEPROM_TO_MAX: 0x9993,
            self.EEPROM_TO_MIN: 0x62E3,
            self.EEPROM_PWMCTRL: 0x0201,
            self.EEPROM_TA_RANGE: 0xF71C,
            self.EEPROM_EMISSIVITY: 0xFFFF,  # emissivity 1.0
            self.EEPROM_CONFIG1: 0x9FB4,
            self.EEPROM_SMBUS_ADDRESS: 0xBE00 | address,
            self.EEPROM_ID_FIRST: 0x1234,
            0x3D: 0x5678,
            0x3E: 0x9ABC,
            0x3F: 0xDEF0,
        }

    # --- I2C transfers (SMBus protocol) -------------------------------------------
    def write(self, data: bytes) -> None:
        if len(data) < 3:
            return  # probe, or a command byte without data
        command, word = data[0], data[1] | (data[2] << 8)
        if command & self.ACCESS_MASK != self.EEPROM_ACCESS:
            return  # RAM is read-only over SMBus
        pec_ok = len(data) >= 4 and data[3] == smbus_pec(bytes([self.address << 1]) + data[:3])
        eeprom_address = command
        self.eeprom_writes.append(EepromWrite(eeprom_address, word, pec_ok))
        if pec_ok:
            self.eeprom[eeprom_address] = word

    def read(self, length: int) -> bytes:
        return b"\xff" * length  # a read without a command: bus idles high

    def write_then_read(self, data: bytes, length: int) -> bytes:
        if len(data) != 1:
            return b"\xff" * length
        command = data[0]
        word = self._word_for(command)
        lsb, msb = word & 0xFF, word >> 8
        pec = smbus_pec(bytes([self.address << 1, command, (self.address << 1) | 1, lsb, msb]))
        if self.corrupt_pec:
            pec ^= 0xA5
        return (bytes([lsb, msb, pec]) + b"\xff" * length)[:length]

    # --- registers -----------------------------------------------------------------------
    def body_c(self) -> float:
        """The package temperature now (set value plus what the lamp has added)."""
        self._warm()
        return self.ambient_c + self._body_warmth_c

    def skin_c(self) -> float:
        """The object temperature now (set value plus what the lamp has added)."""
        self._warm()
        return self.object_c + self._skin_warmth_c

    def _warm(self) -> None:
        now = self.monotonic()
        dt_s = max(0.0, now - self._warmth_at_s)
        self._warmth_at_s = now
        lit = self.lamp_on()
        for attr, rise_c, tau_s in (
            ("_skin_warmth_c", self.lamp_skin_rise_c, self.skin_tau_s),
            ("_body_warmth_c", self.lamp_body_rise_c, self.body_tau_s),
        ):
            target = rise_c if lit else 0.0
            current = getattr(self, attr)
            setattr(self, attr, target + (current - target) * math.exp(-dt_s / tau_s))

    def _word_for(self, command: int) -> int:
        if command & self.ACCESS_MASK == self.EEPROM_ACCESS:
            return self.eeprom.get(command, 0x0000)
        if command & self.ACCESS_MASK != self.RAM_ACCESS:
            return 0xFFFF
        if command == self.RAM_TA:
            return self._kelvin_word(self.body_c())
        if command in (self.RAM_TOBJ1, self.RAM_TOBJ2):
            word = self._kelvin_word(self.skin_c())
            return word | self.ERROR_FLAG if self.error_flag else word
        return 0x0000

    def _kelvin_word(self, celsius: float) -> int:
        raw = round((celsius + self.ZERO_CELSIUS_K) / self.KELVIN_PER_LSB)
        return max(0, min(0x7FFF, raw))


def emulated_bus(
    *,
    monotonic: Clock = time.monotonic,
    distance_mm: float = 500.0,
    object_c: float = 33.0,
    ambient_c: float = 24.0,
) -> tuple[EmulatedI2C, EmulatedVL53L0X, EmulatedMLX90614]:
    """A bus with both irlamp sensors at their default addresses."""
    vl53 = EmulatedVL53L0X(monotonic=monotonic, distance_mm=distance_mm)
    mlx = EmulatedMLX90614(object_c=object_c, ambient_c=ambient_c)
    return EmulatedI2C(vl53, mlx), vl53, mlx


def _measure_distance_reader_cpu(duration_s: float = 3.0, timing_budget_ms: int = 33) -> None:
    """Print the CPU share of VL53L0XSource.read_distance_mm() at real chip timing."""
    from drivers.vl53l0x import VL53L0XSource

    bus, vl53, _ = emulated_bus(distance_mm=400)
    source = VL53L0XSource(bus, timing_budget_ms=timing_budget_ms)
    try:
        samples = 0
        polls_before = vl53.read_count(EmulatedVL53L0X.RESULT_INTERRUPT_STATUS)
        wall_start, cpu_start = time.monotonic(), time.process_time()
        while time.monotonic() - wall_start < duration_s:
            source.read_distance_mm()
            samples += 1
        wall_s = time.monotonic() - wall_start
        cpu_s = time.process_time() - cpu_start
        polls = vl53.read_count(EmulatedVL53L0X.RESULT_INTERRUPT_STATUS) - polls_before
    finally:
        source.close()
    print(
        f"{samples} samples in {wall_s:.2f} s at a {timing_budget_ms} ms budget "
        f"(chip period {vl53.measurement_period_s() * 1000:.1f} ms)"
    )
    print(
        f"CPU {cpu_s * 1000:.1f} ms = {100 * cpu_s / wall_s:.2f} % of one core, "
        f"{1e6 * cpu_s / max(samples, 1):.0f} us per sample, "
        f"{polls / max(samples, 1):.1f} data-ready polls per sample"
    )


if __name__ == "__main__":
    _measure_distance_reader_cpu()
