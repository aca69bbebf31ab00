"""What the displays show besides the decision itself: the latest readings and a refused start.

The safety controller keeps only what decides. Each step's `Decision` carries the samples it
judged by (`StepReadings`) and its events; `Readout.observe()` keeps from them what the status
file, the session trace, the simulator's progress lines, the keyboard view and the LEDs show:

  distance_mm, skin_c, ambient_c   the last good reading of each sensor (a doubt keeps the previous)
  signal_mcps, ambient_mcps        the distance sensor's newest light rates
  refused                          (reason, until_s) while the LEDs blink why a start was refused
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.core.events import EventKind
from controller.core.indicators import REFUSAL_SHOW_S
from controller.core.safety import Decision


@dataclass
class Readout:
    distance_mm: float | None = None
    skin_c: float | None = None
    ambient_c: float | None = None  # the thermometer's own body
    signal_mcps: float | None = None
    ambient_mcps: float | None = None  # the distance sensor's ambient light rate
    refused: tuple[str, float] | None = None  # (reason, until_s) for the LEDs

    def observe(self, decision: Decision, now_s: float) -> None:
        """Keep what a step at `now_s` showed."""
        seen = decision.readings
        if seen.distance is not None:
            self.distance_mm = seen.distance.value
        if seen.skin is not None:
            self.skin_c, self.ambient_c = seen.skin.value, seen.skin.ambient_c
        light = seen.light
        if light is not None and light.ambient_rate_mcps is not None:
            self.signal_mcps, self.ambient_mcps = light.signal_rate_mcps, light.ambient_rate_mcps
        for kind, fields in decision.events:
            if kind == EventKind.START_REFUSED:
                self.refused = (fields["reason"], now_s + REFUSAL_SHOW_S)
            elif kind == EventKind.SESSION_STARTED:
                self.refused = None

    def refusal_showing(self, now_s: float) -> bool:
        return self.refused is not None and now_s < self.refused[1]
