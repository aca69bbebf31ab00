"""`Hardware.close()` (lamp off first, then threads, sensors, LEDs, relay) is safe to call twice:
`run_daemon`'s `finally` and a caller's own clean-up may both reach it."""

from __future__ import annotations

from gpiozero.pins.mock import MockFactory

from controller.service.clock import SimClock
from drivers.hardware import build_hardware
from drivers.sim_sensors import SimDistanceSource, SimSkinSource, SimWorld
from helpers_core import default_config


def _lit_hardware(distance_source_class=SimDistanceSource):
    """Simulated hardware with the relay switched on; returns (cfg, factory, hardware)."""
    cfg = default_config()
    clock = SimClock(1_767_600_000.0)
    world = SimWorld(400.0, 32.0, monotonic=clock.monotonic)
    factory = MockFactory()
    hw = build_hardware(
        cfg,
        distance_source=distance_source_class(world),
        skin_source=SimSkinSource(world),
        monotonic=clock.monotonic,
        pin_factory=factory,
    )
    hw.guard.command(True, clock.monotonic(), "test")
    return cfg, factory, hw


def test_hardware_close_twice_is_safe_and_leaves_the_relay_off():
    cfg, factory, hw = _lit_hardware()
    assert factory.pin(cfg.gpio.relay_pin).state is True
    hw.close()
    hw.close()
    assert factory.pin(cfg.gpio.relay_pin).state is False
    assert not hw.output.commanded_on


def test_a_sensor_that_fails_to_close_is_logged_and_shutdown_still_drives_the_relay_off(caplog):
    class DistanceThatWillNotClose(SimDistanceSource):
        name = "distance"

        def close(self):
            raise OSError(121, "Remote I/O error")

    cfg, factory, hw = _lit_hardware(DistanceThatWillNotClose)
    with caplog.at_level("WARNING", logger="irlamp.hardware"):
        hw.close()
    assert factory.pin(cfg.gpio.relay_pin).state is False
    assert "could not close the distance sensor: [Errno 121] Remote I/O error" in caplog.text
