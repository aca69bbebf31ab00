"""A real sensor that is absent at start, or loses its settings, is reopened - never trusted blindly."""

from __future__ import annotations

import pytest

from emulated_i2c import emulated_bus
from drivers.hardware import ReopeningSource
from drivers.sampler import classify
from drivers.sensor_source import SensorMissingError
from drivers.vl53l0x import VL53L0XSource


def test_absent_chip_reads_as_missing_until_it_answers():
    bus, vl53, mlx = emulated_bus(distance_mm=420)
    bus.detach(vl53.address)
    source = ReopeningSource("distance", lambda: VL53L0XSource(bus, io_timeout_s=0.2))
    with pytest.raises(SensorMissingError) as info:
        source.read_distance_mm()
    assert classify(info.value) == "missing" and "distance" in str(info.value)
    bus.attach(vl53)
    assert source.read_distance_mm() == pytest.approx(420, abs=1)
    assert source.opened == 1


def test_repeated_failures_reopen_the_chip():
    class Flaky:
        def __init__(self):
            self.fail = True
            self.closed = False

        def read_distance_mm(self):
            if self.fail:
                raise RuntimeError("no data ready")
            return 400.0

        def close(self):
            self.closed = True

    made = []

    def opener():
        made.append(Flaky())
        made[-1].fail = len(made) == 1  # the first instance is broken, a fresh one works
        return made[-1]

    source = ReopeningSource("distance", opener, reopen_after=3)
    for _ in range(3):
        with pytest.raises(RuntimeError):
            source.read_distance_mm()
    assert made[0].closed and len(made) == 1
    assert source.read_distance_mm() == 400.0
    assert len(made) == 2


def test_a_chip_that_fails_to_close_before_reopening_is_logged_and_reopened(caplog):
    class Broken:
        def read_distance_mm(self):
            raise RuntimeError("no data ready")

        def close(self):
            raise OSError(5, "Input/output error")

    made = []

    def opener():
        made.append(Broken())
        return made[-1]

    source = ReopeningSource("distance", opener, reopen_after=2)
    with caplog.at_level("WARNING", logger="irlamp.hardware"):
        for _ in range(2):
            with pytest.raises(RuntimeError):
                source.read_distance_mm()
        with pytest.raises(RuntimeError):
            source.read_distance_mm()
    assert len(made) == 2  # given up on and opened afresh despite the failed close
    assert "distance sensor: closing it before reopening failed: [Errno 5] Input/output error" in caplog.text
