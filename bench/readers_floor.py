"""What reading alone costs: irlamp's real readers at a session's rates, one thread, nothing else.

The production sources exactly as the bench's `irlamp run` builds them (bench/emulated_program.py:
`VL53L0XSource` and `MLX90614Source` on the unmodified Adafruit drivers, each in a
`ReopeningSource`, on the bench's emulated chips), read back to back as a session reads them: every distance sample
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
    from bench.emulated_program import emulated_readers
    from bench.harness import bench_config

    cfg = bench_config()
    distance, skin = emulated_readers(cfg)
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
