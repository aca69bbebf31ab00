"""SR-2 on the Pi's own pin factory: the relay line is claimed at its off level and left driving it.

gpiozero 2.0.1's LGPIOPin claims every pin as an input with the pull switched off when it is
created and again when it is closed, and sets an output's level only after claiming it
(claimed low first). For a relay that means: a short "on" pulse for an active-low relay at
every start and fail-safe run, and a floating pin after every stop. These tests run gpiozero's
real LGPIOFactory on a fake `lgpio` module that records every call and keeps each line's
state the way a Raspberry Pi OS kernel does: a released output keeps driving its level.
"""

from __future__ import annotations

import importlib
import io
import sys
import types

import gpiozero.devices
import gpiozero.pins
import pytest
from gpiozero import OutputDevice
from gpiozero.exc import GPIOPinInUse

from controller.service.failsafe import failsafe_command
from drivers.relay import LampOutput

PI4_REVISION = 0xC03111
PULL_NONE = 0x80


class FakeLgpio(types.ModuleType):
    """The calls gpiozero's lgpio pin factory makes, on one chip; `calls` logs them in order."""

    SET_PULL_UP, SET_PULL_DOWN, SET_PULL_NONE = 0x20, 0x40, PULL_NONE
    RISING_EDGE, FALLING_EDGE, BOTH_EDGES = 1, 2, 3
    GPIO_IS_OUT = 1 << 1

    class error(Exception):
        pass

    def __init__(self):
        super().__init__("lgpio")
        self.calls: list[tuple] = []
        self.lines: dict[int, dict] = {}  # gpio -> {'claimed', 'direction', 'level'}
        self.open_handles: set[int] = set()

    def line(self, gpio: int) -> dict:
        return self.lines.setdefault(gpio, {"claimed": False, "direction": "input", "level": None})

    def gpiochip_open(self, chip):
        self.open_handles.add(chip + 100)
        return chip + 100

    def gpiochip_close(self, handle):
        self.calls.append(("chip_close", handle))
        self.open_handles.discard(handle)
        for line in self.lines.values():  # the kernel releases the lines; outputs keep their level
            line["claimed"] = False

    def _check(self, handle):
        if handle not in self.open_handles:
            raise self.error("bad handle")

    def gpio_claim_output(self, handle, gpio, level=0, lFlags=0):
        self._check(handle)
        self.calls.append(("claim_output", gpio, int(level)))
        self.line(gpio).update(claimed=True, direction="output", level=int(level))
        return 0

    def gpio_claim_input(self, handle, gpio, lFlags=0):
        self._check(handle)
        self.calls.append(("claim_input", gpio, lFlags))
        self.line(gpio).update(claimed=True, direction="input", level=None)  # floats at no pull
        return 0

    def gpio_write(self, handle, gpio, level):
        self._check(handle)
        line = self.line(gpio)
        if not line["claimed"] or line["direction"] != "output":
            raise self.error("GPIO not set as an output")
        self.calls.append(("write", gpio, int(level)))
        line["level"] = int(level)
        return 0

    def gpio_read(self, handle, gpio):
        self._check(handle)
        return self.line(gpio)["level"] or 0

    def gpio_free(self, handle, gpio):
        self._check(handle)
        self.calls.append(("free", gpio))
        self.line(gpio)["claimed"] = False
        return 0

    def gpio_get_mode(self, handle, gpio):
        return self.GPIO_IS_OUT if self.line(gpio)["direction"] == "output" else 0

    def ops(self, gpio: int) -> list[tuple]:
        return [call for call in self.calls if len(call) > 1 and call[1] == gpio]


@pytest.fixture
def lgpio_pins(monkeypatch):
    """(fake lgpio, gpiozero's LGPIOFactory built on it, as on a Pi 4)."""
    fake = FakeLgpio()
    monkeypatch.setitem(sys.modules, "lgpio", fake)
    monkeypatch.delitem(sys.modules, "gpiozero.pins.lgpio", raising=False)
    module = importlib.import_module("gpiozero.pins.lgpio")
    monkeypatch.setattr(gpiozero.pins, "lgpio", module, raising=False)

    class Pi4LGPIOFactory(module.LGPIOFactory):
        def _get_revision(self):  # this machine is not a Pi
            return PI4_REVISION

    factory = Pi4LGPIOFactory(chip=0)
    yield fake, factory
    factory.close()
    leaked = [pin for pin, refs in factory._reservations.items() if any(ref() is not None for ref in refs)]
    factory._reservations.clear()  # LocalPiFactory shares these class-wide: never leak into other tests
    assert not leaked, f"still reserved after the test: {leaked}"


def off(active_high: bool) -> int:
    return 0 if active_high else 1


def assert_claimed_at_off_only(fake: FakeLgpio, gpio: int, active_high: bool) -> None:
    ops = fake.ops(gpio)
    assert ops, f"GPIO {gpio} was never touched"
    assert not [op for op in ops if op[0] == "claim_input"], f"GPIO {gpio} was claimed as an input: {ops}"
    assert ops[0] == ("claim_output", gpio, off(active_high)), f"GPIO {gpio} not claimed at its off level: {ops}"
    levels = [op[2] for op in ops if op[0] in ("claim_output", "write")]
    assert set(levels) == {off(active_high)}, f"GPIO {gpio} was driven to its on level: {ops}"


def assert_left_driving_off(fake: FakeLgpio, gpio: int, active_high: bool) -> None:
    line = fake.line(gpio)
    assert line["direction"] == "output" and line["level"] == off(active_high), (
        f"GPIO {gpio} left as {line}, not an output at its off level: {fake.ops(gpio)}"
    )
    assert not line["claimed"] and fake.ops(gpio)[-1] == ("free", gpio), "the line was not released"


@pytest.mark.parametrize(
    "relay_pin, active_high, enable_pin", [(17, True, 18), (5, False, 6)], ids=["active_high", "active_low"]
)
def test_lamp_output_on_lgpio_claims_the_relays_at_their_off_level_and_leaves_them_there(
    lgpio_pins, relay_pin, active_high, enable_pin
):
    fake, factory = lgpio_pins
    output = LampOutput(relay_pin, active_high, enable_pin, active_high, pin_factory=factory)
    for pin in (relay_pin, enable_pin):
        assert_claimed_at_off_only(fake, pin, active_high)
    assert not output.is_on()
    output.set(True, "session_started")
    assert output.is_on() and fake.line(relay_pin)["level"] == 1 - off(active_high)
    output.close()
    output.close()
    for pin in (relay_pin, enable_pin):
        ops = fake.ops(pin)
        assert ops[-2:] == [("write", pin, off(active_high)), ("free", pin)], ops
        assert not [op for op in ops if op[0] == "claim_input"], ops
        assert_left_driving_off(fake, pin, active_high)


@pytest.mark.parametrize("relay_pin, active_high", [(17, True), (5, False)], ids=["active_high", "active_low"])
def test_lamp_output_on_lgpio_is_left_off_by_gpiozeros_own_shutdown_at_exit(
    lgpio_pins, monkeypatch, relay_pin, active_high
):
    fake, factory = lgpio_pins
    monkeypatch.setattr(gpiozero.devices.Device, "pin_factory", factory)
    output = LampOutput(relay_pin, active_high, pin_factory=None)  # the daemon: the default factory
    output.set(True, "session_started")
    gpiozero.devices._devices_shutdown()  # what gpiozero's atexit hook runs
    assert_left_driving_off(fake, relay_pin, active_high)
    assert not [op for op in fake.ops(relay_pin) if op[0] == "claim_input"]
    assert output.main.closed


def test_relay_pin_on_lgpio_stays_reserved_against_other_devices(lgpio_pins):
    fake, factory = lgpio_pins
    output = LampOutput(17, True, pin_factory=factory)
    with pytest.raises(GPIOPinInUse):
        OutputDevice(17, pin_factory=factory)
    assert [op[0] for op in fake.ops(17)] == ["claim_output"], "the refused device touched the relay line"
    output.close()
    assert_left_driving_off(fake, 17, True)


@pytest.mark.parametrize(
    "gpio, active_high",
    [
        ({}, True),
        ({"relay_pin": 5, "relay_active_high": False, "enable_relay_pin": 6, "enable_relay_active_high": False}, False),
    ],
    ids=["active_high", "active_low"],
)
def test_failsafe_on_lgpio_leaves_each_relay_an_output_at_its_off_level(lgpio_pins, tmp_path, gpio, active_high):
    import yaml

    fake, factory = lgpio_pins
    relays = [gpio.get("relay_pin", 17)] + ([gpio["enable_relay_pin"]] if "enable_relay_pin" in gpio else [])
    for pin in relays:  # a crashed daemon left the relays ON, lines released
        fake.line(pin).update(direction="output", level=1 - off(active_high))
    config = tmp_path / "lamp.yaml"
    config.write_text(yaml.safe_dump({"gpio": gpio}))
    err = io.StringIO()
    code = failsafe_command(config, tmp_path / "run", tmp_path / "state", pin_factory=factory, err=err)
    assert code == 0, err.getvalue()
    for pin in relays:
        assert_claimed_at_off_only(fake, pin, active_high)
        assert_left_driving_off(fake, pin, active_high)
        assert f"GPIO {pin} driven off" in err.getvalue()
