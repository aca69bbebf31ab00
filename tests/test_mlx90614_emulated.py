"""The production MLX90614 reader on the UNMODIFIED Adafruit driver, on the emulated chip."""

from __future__ import annotations

import errno
import threading

import adafruit_mlx90614
import pytest
from hypothesis import given
from hypothesis import strategies as st

import emulated_i2c
from drivers import mlx90614
from emulated_i2c import EmulatedI2C, EmulatedMLX90614, EepromWrite
from drivers.mlx90614 import MLX90614Source
from drivers.sensor_source import SensorValueError, SkinReading, SkinSource

EMISSIVITY = EmulatedMLX90614.EEPROM_EMISSIVITY


@pytest.fixture
def chip() -> EmulatedMLX90614:
    return EmulatedMLX90614(object_c=34.5, ambient_c=23.0)


@pytest.fixture
def bus(chip: EmulatedMLX90614):
    bus = EmulatedI2C(chip)
    yield bus
    bus.stuck = False  # never leave a reader thread blocked behind a failed test


@pytest.fixture
def source(bus: EmulatedI2C) -> MLX90614Source:
    return MLX90614Source(bus)


# --- PEC ----------------------------------------------------------------------------


@pytest.mark.parametrize("pec", [mlx90614.smbus_pec, emulated_i2c.smbus_pec])
def test_pec_matches_known_answers(pec):
    assert pec(b"123456789") == 0xF4  # CRC-8 (poly 0x07) check value
    # MLX90614 datasheet example: SA 0x5A, read Tobj1 (0x07) -> LSB 0xD2, MSB 0x3A, PEC 0x30
    assert pec(bytes([0xB4, 0x07, 0xB5, 0xD2, 0x3A])) == 0x30


@given(st.binary(max_size=64))
def test_the_reader_s_table_pec_equals_the_bitwise_one_for_any_bytes(data):
    assert mlx90614.smbus_pec(data) == emulated_i2c.smbus_pec(data)


# --- normal operation ---------------------------------------------------------------


def test_runs_the_unmodified_adafruit_driver_and_implements_the_interface(source):
    assert isinstance(source._sensor, adafruit_mlx90614.MLX90614)
    assert isinstance(source, SkinSource)


@pytest.mark.parametrize(
    "object_c, ambient_c",
    [
        (34.5, 23.0),
        (43.0, 25.5),
        (36.87, 40.13),
        (-12.3, 5.0),
        (120.0, 60.0),
    ],
)
def test_reading_is_what_the_chip_holds(source, chip, object_c, ambient_c):
    chip.object_c, chip.ambient_c = object_c, ambient_c
    reading = source.read_skin()
    assert isinstance(reading, SkinReading)
    assert reading.skin_c == pytest.approx(object_c, abs=0.02)
    assert reading.ambient_c == pytest.approx(ambient_c, abs=0.02)


def test_reading_follows_the_chip(source, chip):
    first = source.read_skin()
    chip.object_c = 41.0
    assert source.read_skin().skin_c == pytest.approx(41.0, abs=0.02)
    assert first.skin_c == pytest.approx(34.5, abs=0.02)


# --- invalid data -------------------------------------------------------------------


def test_corrupted_pec_raises_sensor_value_error(source, chip):
    chip.corrupt_pec = True
    with pytest.raises(SensorValueError, match="PEC"):
        source.read_skin()


def test_error_flag_raises_sensor_value_error(source, chip):
    chip.error_flag = True
    with pytest.raises(SensorValueError, match="error flag"):
        source.read_skin()


def test_reader_recovers_when_the_fault_clears(source, chip):
    chip.corrupt_pec = True
    with pytest.raises(SensorValueError):
        source.read_skin()
    chip.corrupt_pec = False
    assert source.read_skin().skin_c == pytest.approx(34.5, abs=0.02)


# --- bus faults ---------------------------------------------------------------------


def test_nack_raises_oserror_121(source, chip):
    chip.nack = True
    with pytest.raises(OSError) as raised:
        source.read_skin()
    assert raised.value.errno == errno.EREMOTEIO == 121


def test_missing_chip_at_start_raises_oserror_121():
    with pytest.raises(OSError) as raised:
        MLX90614Source(EmulatedI2C())
    assert raised.value.errno == errno.EREMOTEIO
    assert "0x5A" in str(raised.value)


def test_stuck_bus_blocks_the_read_until_released(source, bus):
    results: list[SkinReading] = []
    bus.stuck = True
    reader = threading.Thread(target=lambda: results.append(source.read_skin()), daemon=True)
    reader.start()
    assert bus.wait_until_blocked(timeout_s=5.0)
    assert reader.is_alive() and results == []
    bus.stuck = False
    reader.join(timeout=5.0)
    assert not reader.is_alive()
    assert results[0].skin_c == pytest.approx(34.5, abs=0.02)


# --- EEPROM ---------------------------------------------------------------------------


def test_reader_never_writes_the_eeprom(bus, chip):
    emissivity_before = chip.eeprom[EMISSIVITY]
    source = MLX90614Source(bus)
    for _ in range(10):
        source.read_skin()
    chip.corrupt_pec = True
    with pytest.raises(SensorValueError):
        source.read_skin()
    source.close()
    assert chip.eeprom_writes == []
    assert chip.eeprom[EMISSIVITY] == emissivity_before


def test_the_chip_records_eeprom_writes_so_the_test_above_can_fail(bus, chip):
    # An SMBus write-word of emissivity 0.95 (0xF332) with its PEC, as a careless driver would.
    frame = bytes([EMISSIVITY, 0x32, 0xF3])
    pec = emulated_i2c.smbus_pec(bytes([0x5A << 1]) + frame)
    assert bus.try_lock()
    try:
        bus.writeto(0x5A, frame + bytes([pec]))
    finally:
        bus.unlock()
    assert chip.eeprom_writes == [EepromWrite(EMISSIVITY, 0xF332, pec_ok=True)]
    assert chip.eeprom[EMISSIVITY] == 0xF332


def test_emissivity_eeprom_is_readable(bus, chip):
    reply = bytearray(3)
    assert bus.try_lock()
    try:
        bus.writeto_then_readfrom(0x5A, bytes([EMISSIVITY]), reply)
    finally:
        bus.unlock()
    assert reply[0] | (reply[1] << 8) == 0xFFFF  # emissivity 1.0
    assert reply[2] == emulated_i2c.smbus_pec(bytes([0xB4, EMISSIVITY, 0xB5, 0xFF, 0xFF]))
