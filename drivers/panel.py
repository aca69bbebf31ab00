"""The caregiver panel: start/stop button, green/amber/red LEDs and optional buzzer (gpiozero).

The button is watched two ways: every edge is timestamped as it happens (gpiozero's pin
edge events: on a Pi the lgpio alert thread calls back with the kernel's timestamp of the
edge; a MockFactory pin calls back at once inside drive_low/drive_high), and the control
loop also reads the level. Debouncing and press timing stay controller/core/button.py's job,
on the edges' own times, so a press that begins and ends while the loop is late is still
seen, and it runs identically in simulation. LEDs are written only when their state changes.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Callable

from gpiozero import LED, Buzzer, InputDevice

from controller.core.indicators import LedState

EDGE_BUFFER = 4096  # edges kept between two loop steps (far beyond any real chatter)


class Panel:
    def __init__(
        self, gpio, pin_factory=None, monotonic: Callable[[], float] = time.monotonic, edges_on_clock: bool = False
    ):
        """`monotonic`: the loop's clock. An edge's time is `monotonic()` less the edge's age
        as the pin factory measures it from its ticks (lgpio's and MockFactory's ticks are
        CLOCK_MONOTONIC seconds, but gpiozero calls them opaque, so only `ticks_diff` is used).
        `edges_on_clock`: the time is `monotonic()` when the callback runs (a simulator that
        drives mock pins at simulated instants, whose ticks are real time)."""
        self.button = InputDevice(gpio.button_pin, pull_up=True, pin_factory=pin_factory)
        self._monotonic = monotonic
        self._ticks_count = not edges_on_clock
        self._edges: deque[tuple[float, bool]] = deque(maxlen=EDGE_BUFFER)
        pin = self.button.pin
        pin.edges = "both"
        pin.when_changed = self._on_edge  # the pin keeps a weak reference: self owns it
        self.green = LED(gpio.led_green_pin, pin_factory=pin_factory)
        self.amber = LED(gpio.led_amber_pin, pin_factory=pin_factory)
        self.red = LED(gpio.led_red_pin, pin_factory=pin_factory)
        self.buzzer = Buzzer(gpio.buzzer_pin, pin_factory=pin_factory) if gpio.buzzer_pin is not None else None
        self._shown: LedState | None = None
        self.on_press: Callable[[], None] | None = None  # called at each press edge (any thread)

    def _on_edge(self, ticks, state) -> None:
        """Called by the pin (any thread) at each edge; the button pulls the pin low."""
        now = self._monotonic()
        if self._ticks_count:
            factory = self.button.pin_factory
            now -= max(0.0, factory.ticks_diff(factory.ticks(), ticks))
        self._edges.append((now, not state))
        if not state and self.on_press is not None:
            self.on_press()

    def take_button_edges(self) -> list[tuple[float, bool]]:
        """The edges `(time_s, pressed)` since the last call, oldest first."""
        edges = []
        while self._edges:
            edges.append(self._edges.popleft())
        return edges

    def button_pressed(self) -> bool:
        return bool(self.button.is_active)

    def show(self, leds: LedState) -> None:
        if leds == self._shown:
            return
        self._shown = leds
        for device, on in (
            (self.green, leds.green),
            (self.amber, leds.amber),
            (self.red, leds.red),
            (self.buzzer, leds.buzzer),
        ):
            if device is not None:
                device.value = on

    @property
    def shown(self) -> LedState | None:
        return self._shown

    def close(self) -> None:
        self.show(LedState(False, False, False, False))
        for device in (self.button, self.green, self.amber, self.red, self.buzzer):
            if device is not None:
                device.close()
