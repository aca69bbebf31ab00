"""The lamp relay (and the optional enable relay in series) on gpiozero output pins.

Both relays are created OFF. The lamp is lit only when both are on; switching off
opens the main relay first. `check_boot_safe` refuses wirings whose undriven pin would
light the lamp: a Raspberry Pi pulls GPIO 0-8 up and GPIO 9-27 down at power-on, and a
pin that no process drives floats to that pull (boot, crash before start, after exit).
"""

from __future__ import annotations

import threading
from typing import Callable

from gpiozero import OutputDevice

LAST_PULLED_UP_PIN = 8   # GPIO 0-8 have pull-ups at power-on, 9-27 pull-downs


class WiringError(Exception):
    """A relay wiring that would switch the lamp on while the pin is undriven."""


def undriven_level_high(pin: int) -> bool:
    return 0 <= pin <= LAST_PULLED_UP_PIN


def check_boot_safe(pin: int, active_high: bool, role: str) -> None:
    """Raise WiringError when `pin` with this polarity would turn the relay on by itself."""
    if undriven_level_high(pin) == active_high:
        pull = "up" if undriven_level_high(pin) else "down"
        level = "active-high" if active_high else "active-low"
        fix = ("use a pin between GPIO 9 and 27, or an active-low relay" if active_high
               else "use a pin between GPIO 4 and 8, or an active-high relay")
        raise WiringError(
            f"{role} on GPIO {pin} is {level}, but GPIO {pin} is pulled {pull} at power-on: the lamp "
            f"would switch on whenever the daemon is not driving the pin (boot, crash). Refusing; {fix}.")


class LampOutput:
    """The lamp's switch: main relay plus optional enable relay. Thread-safe.

    `observer(on, reason)` is told about every change of the lamp's actual state.
    """

    def __init__(self, relay_pin: int, active_high: bool, enable_pin: int | None = None,
                 enable_active_high: bool = True, pin_factory=None,
                 observer: Callable[[bool, str], None] | None = None):
        # Re-entrant: a signal handler may switch the lamp off while the main thread is inside set().
        self._lock = threading.RLock()
        self.main = OutputDevice(relay_pin, active_high=active_high, initial_value=False,
                                 pin_factory=pin_factory)
        self.enable = None
        if enable_pin is not None:
            self.enable = OutputDevice(enable_pin, active_high=enable_active_high,
                                       initial_value=False, pin_factory=pin_factory)
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
            if on:
                if self.enable is not None:
                    self.enable.on()
                self.main.on()
            else:
                self.main.off()
                if self.enable is not None:
                    self.enable.off()
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
