"""The real skin reader: an MLX90614 infrared thermometer through Adafruit's driver.

``adafruit_mlx90614.MLX90614`` (UNMODIFIED) finds the chip on the bus; the words are
read here, through the driver's ``I2CDevice``, because the driver drops the PEC byte and
ignores the error flag - a corrupted transfer or a chip reporting its own failure would
otherwise pass as a temperature.

Bus speed: the MLX90614 needs the Pi's I2C bus at <= 50 kHz. Linux ignores the
frequency requested from Python; set ``dtparam=i2c_arm_baudrate=50000`` in
/boot/firmware/config.txt and reboot.

EEPROM: emissivity (EEPROM 0x04, command 0x24) and the chip's other settings live in
EEPROM. This reader only ever reads RAM; it never writes anything to the chip.
"""

from __future__ import annotations

import errno

import adafruit_mlx90614

from drivers.sensor_source import SensorValueError, SkinReading

DEFAULT_ADDRESS = 0x5A

# SMBus commands: RAM access is 0x00 | RAM address.
RAM_TA = 0x06  # sensor body (ambient) temperature
RAM_TOBJ1 = 0x07  # object temperature, zone 1

KELVIN_PER_LSB = 0.02
ZERO_CELSIUS_K = 273.15
ERROR_FLAG = 0x8000  # bit 15 of a temperature word
READ_WORD_LENGTH = 3  # LSB, MSB, PEC


def _crc8_table(polynomial: int) -> bytes:
    """CRC-8 of each single byte (MSB first, no reflection): the table `smbus_pec` steps by."""
    table = bytearray(256)
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = ((crc << 1) ^ polynomial if crc & 0x80 else crc << 1) & 0xFF
        table[byte] = crc
    return bytes(table)


PEC_TABLE = _crc8_table(0x07)


def smbus_pec(data: bytes) -> int:
    """SMBus Packet Error Code: CRC-8 with polynomial 0x07, initial value 0, no reflection
    (one table step per byte instead of eight shifts: a skin read checks two words)."""
    crc = 0
    for byte in data:
        crc = PEC_TABLE[crc ^ byte]
    return crc


class MLX90614Source:
    """A ``SkinSource``: object (skin) and ambient temperature of an MLX90614.

    Each ``read_skin()`` reads the two RAM words with a PEC check. Raises OSError on
    I2C errors and SensorValueError on a bad PEC or a set error flag.
    """

    name = "mlx90614"

    def __init__(self, i2c, *, address: int = DEFAULT_ADDRESS) -> None:
        self._address = address
        try:
            self._sensor = adafruit_mlx90614.MLX90614(i2c, address=address)
        except ValueError as exc:  # I2CDevice's probe: nothing acknowledges the address
            raise OSError(errno.EREMOTEIO, f"MLX90614 not found at 0x{address:02X}: {exc}") from exc
        self._device = self._sensor._device  # the driver's I2CDevice
        self._command = bytearray(1)
        self._reply = bytearray(READ_WORD_LENGTH)

    def read_skin(self) -> SkinReading:
        """One object + ambient reading in deg C. May raise OSError or SensorValueError."""
        object_word = self._read_word(RAM_TOBJ1, "object temperature")
        ambient_word = self._read_word(RAM_TA, "ambient temperature")
        return SkinReading(skin_c=_celsius(object_word), ambient_c=_celsius(ambient_word))

    def close(self) -> None:
        """Nothing to stop: the MLX90614 measures continuously on its own."""

    def _read_word(self, command: int, what: str) -> int:
        self._command[0] = command
        with self._device as device:
            device.write_then_readinto(self._command, self._reply)
        lsb, msb, pec = self._reply
        expected = smbus_pec(bytes([self._address << 1, command, (self._address << 1) | 1, lsb, msb]))
        if pec != expected:
            raise SensorValueError(f"MLX90614 {what}: PEC 0x{pec:02X} != 0x{expected:02X} (corrupted transfer)")
        word = lsb | (msb << 8)
        if word & ERROR_FLAG:
            raise SensorValueError(f"MLX90614 {what}: error flag set (word 0x{word:04X})")
        return word


def _celsius(word: int) -> float:
    return word * KELVIN_PER_LSB - ZERO_CELSIUS_K
