"""`irlamp run` on the real readers over emulated chips: the program the bench's headline CPU,
RSS and start-up figures are measured on.

This is `controller.cli main(["run", ...])` unchanged, except for what a build machine does
not have: `controller.service.run._real_sources` is replaced by the same construction on the
bench's noisy emulated I2C bus (the production `VL53L0XSource` and `MLX90614Source` on the
unmodified Adafruit drivers, each in a `ReopeningSource`, sharing one `PoliteI2C`), and the
pins are gpiozero MockFactory pins. A line with 'space' on stdin presses the mock button
for 0.15 s (bench scaffolding, as `irlamp run --simulate` reads its keyboard). With
$IRLAMP_BENCH_CHIP_CPU_FILE set, the CPU spent in the emulated chips is counted into that file
(bench/chip_cpu.py; a separate run, never the headline one).

    python -m bench.emulated_program --state-dir D --runtime-dir R   (READY=1 to $NOTIFY_SOCKET)
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

from gpiozero.pins.mock import MockFactory

from bench import chip_cpu

BUTTON_HELD_S = 0.15


def emulated_readers(cfg, seed: int = 1):
    """The production sources as `irlamp run` builds them (drivers.hardware.reopening_readers),
    on one `PoliteI2C` over the bench's noisy emulated bus: (distance, skin)."""
    from bench.instruments import noisy_bus
    from drivers.hardware import reopening_readers
    from drivers.i2c_bus import PoliteI2C

    bus, _, _ = noisy_bus(seed=seed, distance_mm=400.0, skin_c=33.0)
    shared = PoliteI2C(bus)
    return reopening_readers(lambda: shared, cfg.distance.timing_budget_ms)


def install_emulated_sources(factory: MockFactory, seed: int = 1) -> None:
    """Make `irlamp run` build its sensors on the emulated bus and its pins on `factory`."""
    import controller.service.run as run

    def emulated_sources(cfg):  # run.py's _real_sources, on the emulated bus
        distance, skin = emulated_readers(cfg, seed)
        return distance, skin, factory

    run._real_sources = emulated_sources


def main(argv: list[str] | None = None) -> int:
    from controller import cli
    from controller.service.config import load_config
    from bench.harness import REPO
    from bench.instruments import press_on_stdin_lines

    argv = sys.argv[1:] if argv is None else list(argv)
    if os.environ.get(chip_cpu.ENV):  # the bench's separate run that measures the chips' share
        from emulated_i2c import EmulatedI2C

        chip_cpu.install(Path(os.environ[chip_cpu.ENV]), EmulatedI2C)
    config = str(REPO / "config" / "lamp.yaml")
    factory = MockFactory()
    install_emulated_sources(factory)
    button_pin = load_config(REPO / "config" / "lamp.yaml").gpio.button_pin
    threading.Thread(
        target=press_on_stdin_lines, args=(factory.pin(button_pin), BUTTON_HELD_S), name="bench-keyboard", daemon=True
    ).start()
    return cli.main(["run", "--config", config, *argv])


if __name__ == "__main__":
    sys.exit(main())
