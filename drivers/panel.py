"""The caregiver panel: start/stop button, green/amber/red LEDs and optional buzzer (gpiozero).

The button is read as a level by the control loop (debouncing and press timing are
controller/button.py's job, so they run identically in simulation). LEDs are written
only when their state changes.
"""

from __future__ import annotations

from gpiozero import LED, Button, Buzzer

from controller.indicators import LedState


class Panel:
    def __init__(self, gpio, pin_factory=None):
        self.button = Button(gpio.button_pin, pull_up=True, bounce_time=None, pin_factory=pin_factory)
        self.green = LED(gpio.led_green_pin, pin_factory=pin_factory)
        self.amber = LED(gpio.led_amber_pin, pin_factory=pin_factory)
        self.red = LED(gpio.led_red_pin, pin_factory=pin_factory)
        self.buzzer = Buzzer(gpio.buzzer_pin, pin_factory=pin_factory) if gpio.buzzer_pin is not None else None
        self._shown: LedState | None = None

    def button_pressed(self) -> bool:
        return bool(self.button.is_pressed)

    def show(self, leds: LedState) -> None:
        if leds == self._shown:
            return
        self._shown = leds
        for device, on in ((self.green, leds.green), (self.amber, leds.amber), (self.red, leds.red),
                           (self.buzzer, leds.buzzer)):
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
