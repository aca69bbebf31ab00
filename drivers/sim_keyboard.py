"""Keyboard control for `irlamp run --simulate`: the simulated person, button and faults.

  space  press the button (0.3 s)      l  long press (3.5 s: acknowledges a fault)
  up/+   person 20 mm farther          down/-  person 20 mm closer
  n      person leaves / comes back    w / c   skin 0.5 C warmer / cooler
  f      distance sensor I/O error     g       skin sensor I/O error
  x      clear injected faults         q       quit (lamp off)
A status line (relay, LEDs, distance, skin, time left) is redrawn twice a second.
With stdin not a terminal, each input line is read as a string of keys (the word
`space` stands for the space bar), so scripts and benchmarks can drive it too.
"""

from __future__ import annotations

import select
import sys
import termios
import threading
import tty

HELP = (
    "keys: space=button  l=long press  up/down(+/-)=farther/closer  n=leave/return  "
    "w/c=warmer/cooler  f/g=distance/skin fault  b=glare none/moderate/heavy  x=clear  q=quit"
)
GLARE_STEPS_MCPS = (0.0, 1.0, 3.0)  # dark; ~3 % of readings doubted at 400 mm; ~30 % (faults)


class KeyboardDriver:
    def __init__(self, world, factory, cfg, daemon, stop: threading.Event, wake: threading.Event):
        self.world, self.factory, self.cfg, self.daemon = world, factory, cfg, daemon
        self.stop_event, self.wake = stop, wake
        self._thread = threading.Thread(target=self._run, name="irlamp-keyboard", daemon=True)
        self._away_mm: float | None = None

    def start(self) -> None:
        print(HELP, file=sys.stderr)
        self._thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self._thread.join(timeout=1.0)
        sys.stderr.write("\n")

    def press(self, seconds: float) -> None:
        pin = self.factory.pin(self.cfg.gpio.button_pin)
        pin.drive_low()
        threading.Timer(seconds, pin.drive_high).start()

    def handle(self, key: str) -> None:
        w = self.world
        if key == " ":
            self.press(0.3)
        elif key == "l":
            self.press(3.5)
        elif key in ("+", "A"):
            w.distance_mm += 20
        elif key in ("-", "B"):
            w.distance_mm = max(0.0, w.distance_mm - 20)
        elif key == "n":
            if self._away_mm is None:
                self._away_mm, w.distance_mm = w.distance_mm, 8190.0
            else:
                w.distance_mm, self._away_mm = self._away_mm, None
        elif key == "w":
            w.set_skin(w.skin_c + 0.5)
        elif key == "c":
            w.set_skin(w.skin_c - 0.5)
        elif key == "f":
            w.set_fault("distance", "io_error")
        elif key == "g":
            w.set_fault("skin", "io_error")
        elif key == "b":
            later = [g for g in GLARE_STEPS_MCPS if g > w.glare_mcps]
            w.glare_mcps = later[0] if later else GLARE_STEPS_MCPS[0]
        elif key == "x":
            w.set_fault("distance", "clear")
            w.set_fault("skin", "clear")
        elif key == "q":
            self.stop_event.set()
        self.wake.set()

    def status_line(self) -> str:
        d = self.daemon
        leds = d.hw.panel.shown.describe() if d.hw.panel.shown else "..."
        left = d.controller.time_left_s()
        dist = d.readout.distance_mm
        skin = d.readout.skin_c
        return (
            f"\rrelay {'ON ' if d.hw.output.is_on() else 'off'} | LEDs {leds} | {d.controller.state:7s} | "
            f"distance {'-' if dist is None else f'{dist:4.0f} mm'} | "
            f"skin {'-' if skin is None else f'{skin:5.2f} C'} | "
            f"left {'-' if left is None else f'{left / 60:5.2f} min'} "
            f"| faults {','.join(d.controller.latched) or '-'}   "
        )

    def _run(self) -> None:
        interactive = sys.stdin.isatty()
        old = termios.tcgetattr(sys.stdin) if interactive else None
        try:
            if interactive:
                tty.setcbreak(sys.stdin.fileno())
            while not self.stop_event.is_set():
                if interactive:
                    sys.stderr.write(self.status_line())
                    sys.stderr.flush()
                ready, _, _ = select.select([sys.stdin], [], [], 0.5)
                if not ready:
                    continue
                if not interactive:  # piped input: each line is a string of keys
                    line = sys.stdin.readline()
                    if not line:  # end of input: keep running until a signal
                        self.stop_event.wait()
                        break
                    for key in line.rstrip("\n").replace("space", " "):
                        self.handle(key)
                    continue
                key = sys.stdin.read(1)
                if key == "\x1b":  # arrow keys: ESC [ A/B
                    key = sys.stdin.read(2)[-1:]
                self.handle(key)
        finally:
            if old is not None:
                termios.tcsetattr(sys.stdin, termios.TCSADRAIN, old)
