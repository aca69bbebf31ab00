"""The emulated chips' own share of a measured program's CPU.

The bench runs irlamp's real readers on register-level emulated chips inside irlamp's own
process (tests/emulated_i2c.py), so the program's CPU includes the chips' Python: the work a
real VL53L0X and MLX90614 do in silicon. To say how much, a separate run (never the headline
one: the clock reads cost CPU themselves) reads the thread's CPU clock around every emulated
I2C transfer and keeps the sum; a writer thread puts the running total into a file twice a
second, which the bench reads at the start and the end of its window.

    IRLAMP_BENCH_CHIP_CPU_FILE=PATH python -m bench.emulated_program ...
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

ENV = "IRLAMP_BENCH_CHIP_CPU_FILE"
WRITE_EVERY_S = 0.5
TRANSFERS = ("writeto", "readfrom_into", "writeto_then_readfrom")


def install(path: Path, bus_class) -> None:
    """Count the CPU spent inside `bus_class`'s transfers (every thread) and keep `path` up to date."""
    per_thread: dict[int, float] = {}  # each thread adds only to its own entry: no lost update

    def counted(transfer):
        def wrapper(self, *args, **kwargs):
            start = time.thread_time()
            try:
                return transfer(self, *args, **kwargs)
            finally:
                ident = threading.get_ident()
                per_thread[ident] = per_thread.get(ident, 0.0) + time.thread_time() - start

        return wrapper

    for name in TRANSFERS:
        setattr(bus_class, name, counted(getattr(bus_class, name)))

    def write_totals() -> None:
        scratch = path.with_name(path.name + ".tmp")
        while True:
            scratch.write_text(repr(sum(list(per_thread.values()))))
            os.replace(scratch, path)
            time.sleep(WRITE_EVERY_S)

    threading.Thread(target=write_totals, name="bench-chip-cpu", daemon=True).start()


def read_total_s(path: Path) -> float:
    """The CPU seconds spent in emulated transfers so far (0.0 before the first write)."""
    try:
        return float(path.read_text())
    except (OSError, ValueError):
        return 0.0
