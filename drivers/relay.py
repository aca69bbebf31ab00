"""The lamp relay (and the optional enable relay in series) on gpiozero output pins.

Both relays are created OFF. The lamp is lit only when both are on; switching off
opens the main relay first. `check_boot_safe` refuses wirings whose undriven pin would
light the lamp: a Raspberry Pi pulls GPIO 0-8 up and GPIO 9-27 down at power-on, and a
pin that no process drives floats to that pull (boot, until the daemon claims it, reset).

On the Pi's own pin factory (gpiozero's lgpio one) a relay pin does not go through
gpiozero's pin object, whose creation and close() claim the line as an input with the pull
switched off and whose output is claimed low before its level is written (a pulse "on" for
an active-low relay). `open_relay_line` claims the line as an output at its off level in one
call, and `close()` writes the off level and releases the line still an output: a Raspberry Pi
OS kernel keeps a released output's level (pinctrl persist_gpio_outputs; not with
dtparam=strict_gpiod, where it returns to an input, at its pull as far as we know).
"""

from __future__ import annotations

import sys
import threading
from typing import Callable

from gpiozero import Device, OutputDevice
from gpiozero.exc import DeviceClosed

LAST_PULLED_UP_PIN = 8  # GPIO 0-8 have pull-ups at power-on, 9-27 pull-downs


class WiringError(Exception):
    """A relay wiring that would switch the lamp on while the pin is undriven. `keys` names
    the config keys that set it (so the caller can point at file:line), empty if unknown."""

    def __init__(self, message: str, keys: tuple[str, ...] = ()):
        super().__init__(message)
        self.keys = keys


def undriven_level_high(pin: int) -> bool:
    return 0 <= pin <= LAST_PULLED_UP_PIN


def check_boot_safe(pin: int, active_high: bool, role: str, keys: tuple[str, ...] = ()) -> None:
    """Raise WiringError when `pin` with this polarity would turn the relay on by itself;
    `keys` are the config keys of the pin and its polarity, handed on in the error."""
    if undriven_level_high(pin) == active_high:
        pull = "up" if undriven_level_high(pin) else "down"
        level = "active-high" if active_high else "active-low"
        fix = (
            "use a pin between GPIO 9 and 27, or an active-low relay"
            if active_high
            else "use a pin between GPIO 4 and 8, or an active-high relay"
        )
        raise WiringError(
            f"{role} on GPIO {pin} is {level}, but GPIO {pin} is pulled {pull} at power-on: the lamp "
            f"would switch on whenever the daemon is not driving the pin (boot, crash). Refusing; {fix}.",
            keys,
        )


class LgpioRelayLine:
    """One relay's line on gpiozero's LGPIOFactory, driven through the factory's chip handle.

    Reserved in the factory like a gpiozero device (a second device on the pin is refused, and
    gpiozero's shutdown at interpreter exit calls `close()`); the same on/off/value/close as an
    OutputDevice.
    """

    def __init__(self, pin: int, active_high: bool, factory, lgpio):
        self.pin, self.active_high, self.pin_factory = pin, active_high, factory
        self._lgpio = lgpio
        self._handle = None
        factory.reserve_pins(self, pin)
        try:
            lgpio.gpio_claim_output(factory._handle, pin, self._level(False))
        except BaseException:
            factory.release_pins(self, pin)
            raise
        self._handle = factory._handle

    def _conflicts_with(self, other) -> bool:  # asked by Factory.reserve_pins, as of a Device
        return True

    def _level(self, on: bool) -> int:
        return int(on == self.active_high)

    def _write(self, on: bool) -> None:
        if self._handle is None:
            raise DeviceClosed(f"relay line GPIO {self.pin} is closed")
        self._lgpio.gpio_write(self._handle, self.pin, self._level(on))

    def on(self) -> None:
        self._write(True)

    def off(self) -> None:
        self._write(False)

    @property
    def value(self) -> int:
        if self._handle is None:
            raise DeviceClosed(f"relay line GPIO {self.pin} is closed")
        return int(self._lgpio.gpio_read(self._handle, self.pin) == self._level(True))

    @property
    def closed(self) -> bool:
        return self._handle is None

    def close(self) -> None:
        """Off level, then release the line as it is (an output); a second call does nothing."""
        if self._handle is None:
            return
        if self.pin_factory._handle == self._handle:  # else the chip is closed: lines already released
            self._write(False)
            self._lgpio.gpio_free(self._handle, self.pin)
        self._handle = None
        self.pin_factory.release_pins(self, self.pin)


def open_relay_line(pin: int, active_high: bool, pin_factory=None):
    """The relay's output, claimed at its off level: an LgpioRelayLine on gpiozero's lgpio
    factory (the Pi's default), else a gpiozero OutputDevice (MockFactory, other factories)."""
    factory = pin_factory
    if factory is None:
        Device.ensure_pin_factory()
        factory = Device.pin_factory
    lgpio_pins = sys.modules.get("gpiozero.pins.lgpio")  # loaded whenever the factory is an LGPIOFactory
    if lgpio_pins is not None and isinstance(factory, lgpio_pins.LGPIOFactory):
        return LgpioRelayLine(pin, active_high, factory, lgpio_pins.lgpio)
    return OutputDevice(pin, active_high=active_high, initial_value=False, pin_factory=factory)


def leave_driven_off(pin: int, active_high: bool, pin_factory=None) -> None:
    """Drive `pin` to its off level and release it still driving that level (where the pin
    factory allows: see the module's docstring). Raises what gpiozero/lgpio raise."""
    line = open_relay_line(pin, active_high, pin_factory)
    line.off()
    line.close()


def switch_pair(main, enable, on: bool) -> None:
    """The one owner of the relay pair's order: on closes the enable relay first, then the lamp
    relay; off opens the lamp relay first, then the enable relay, attempted even when the first
    raises. `main` or `enable` may be None (not configured)."""
    if on:
        if enable is not None:
            enable.on()
        if main is not None:
            main.on()
        return
    try:
        if main is not None:
            main.off()
    finally:
        if enable is not None:
            enable.off()


class LampOutput:
    """The lamp's switch: main relay plus optional enable relay. Thread-safe.

    `observer(on, reason)` is told about every change of the lamp's actual state.
    """

    def __init__(
        self,
        relay_pin: int,
        active_high: bool,
        enable_pin: int | None = None,
        enable_active_high: bool = True,
        pin_factory=None,
        observer: Callable[[bool, str], None] | None = None,
    ):
        # Re-entrant: a signal handler may switch the lamp off while the main thread is inside set().
        self._lock = threading.RLock()
        self.main = open_relay_line(relay_pin, active_high, pin_factory)
        self.enable = None
        if enable_pin is not None:
            self.enable = open_relay_line(enable_pin, enable_active_high, pin_factory)
        self.observer = observer
        self._on = False
        self._closed = False

    @property
    def commanded_on(self) -> bool:
        """The state after the last `set()` (cheap; `is_on()` reads the pins)."""
        return self._on

    def is_on(self) -> bool:
        """True when the pins say the lamp circuit is closed."""
        main = bool(self.main.value)
        return main and (self.enable is None or bool(self.enable.value))

    def set(self, on: bool, reason: str) -> None:
        with self._lock:
            switch_pair(self.main, self.enable, on)
            now_on = self.is_on()
            changed = now_on != self._on
            self._on = now_on
        if changed and self.observer is not None:
            self.observer(now_on, reason)

    def close(self) -> None:
        """Relays off, then release the pins; a second call does nothing (as gpiozero's close())."""
        with self._lock:
            if self._closed:
                return
            self.set(False, "shutdown")
            for device in (self.main, self.enable):
                if device is not None:
                    device.close()
            self._closed = True
