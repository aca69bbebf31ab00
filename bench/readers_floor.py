"""What reading alone costs: irlamp's real readers at a session's rates, one thread, nothing else.

The production `VL53L0XSource` and `MLX90614Source` (unmodified Adafruit drivers underneath) on
the bench's emulated chips, read back to back as a session reads them: every distance sample
(the reader sleeps until each is due) and the skin every `skin.period_ms`. No judging, no
loop, no guard, no journal. Its CPU is the floor any program pays on this machine to read
these sensors at these rates through these drivers; the rest of irlamp's figure is the
daemon's own work. Prints one JSON object.

    python -m bench.readers_floor [--seconds S]
"""

from __future__ import annotations

import argparse
import json
import time


def measure(seconds: float) -> dict:
    from bench.harness import bench_config
    from bench.instruments import noisy_bus
    from drivers.i2c_bus import PoliteI2C
    from drivers.mlx90614 import MLX90614Source
    from drivers.vl53l0x import VL53L0XSource

    cfg = bench_config()
    budget = cfg.distance.timing_budget_ms
    bus, _, _ = noisy_bus(seed=1, distance_mm=400.0, skin_c=33.0)
    shared = PoliteI2C(bus)
    distance = VL53L0XSource(shared, timing_budget_ms=budget, io_timeout_s=max(0.1, 3 * budget / 1000.0))
    skin = MLX90614Source(shared)
    skin_period_s = cfg.skin.period_ms / 1000.0
    for _ in range(10):  # the reader finds the chip's phase
        distance.read_distance()
    cpu0, wall0 = time.process_time(), time.monotonic()
    distance_reads = skin_reads = 0
    next_skin_s = wall0
    while time.monotonic() - wall0 < seconds:
        distance.read_distance()
        distance_reads += 1
        if time.monotonic() >= next_skin_s:
            skin.read_skin()
            skin_reads += 1
            next_skin_s += skin_period_s
    wall_s, cpu_s = time.monotonic() - wall0, time.process_time() - cpu0
    distance.close()
    return {
        "cpu_percent": round(100.0 * cpu_s / wall_s, 3),
        "wall_s": round(wall_s, 3),
        "distance_reads_per_s": round(distance_reads / wall_s, 2),
        "skin_reads_per_s": round(skin_reads / wall_s, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.seconds)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
