"""Two sensor threads share one I2C bus; a thread waiting for a busy (or hung) bus must sleep.

Adafruit's I2CDevice retries `try_lock()` in a `sleep(0)` loop. On a bus held by a hung
transfer that is a core burnt forever. PoliteI2C makes each try wait on a real lock, so
the number of attempts stays proportional to the time waited, not to the CPU speed.
"""

from __future__ import annotations

import threading

from emulated_i2c import emulated_bus
from drivers.i2c_bus import WAIT_PER_TRY_S, PoliteI2C
from drivers.mlx90614 import MLX90614Source
from drivers.vl53l0x import VL53L0XSource

HOLD_S = 0.3


def _hung_bus_with_a_waiting_reader(bus):
    """Thread 1 hangs inside an MLX90614 transfer holding the bus; thread 2 wants a distance."""
    raw_bus, vl53, _ = bus
    shared = PoliteI2C(raw_bus)
    skin = MLX90614Source(shared)
    distance = VL53L0XSource(shared, io_timeout_s=2.0)
    raw_bus.stuck = True
    done = {"skin": threading.Event(), "distance": threading.Event()}
    threading.Thread(target=lambda: (skin.read_skin(), done["skin"].set()), daemon=True).start()
    assert raw_bus.wait_until_blocked(2.0)
    attempts_before = shared.lock_attempts
    threading.Thread(target=lambda: (distance.read_distance_mm(), done["distance"].set()), daemon=True).start()
    return raw_bus, shared, done, attempts_before


def test_a_reader_waiting_for_a_hung_bus_sleeps_instead_of_spinning():
    raw_bus, shared, done, before = _hung_bus_with_a_waiting_reader(emulated_bus(distance_mm=400))
    assert not done["distance"].wait(HOLD_S)  # still waiting for the bus, as it must
    attempts = shared.lock_attempts - before
    # Sleeping tries: about HOLD_S / WAIT_PER_TRY_S of them. A sleep(0) spin makes 10^5 or more.
    assert 0 < attempts <= 3 * HOLD_S / WAIT_PER_TRY_S + 20
    raw_bus.stuck = False
    assert done["skin"].wait(2.0) and done["distance"].wait(2.0)


def test_the_bus_lock_is_released_after_every_read():
    raw_bus, _, _ = emulated_bus(distance_mm=400)
    shared = PoliteI2C(raw_bus)
    skin = MLX90614Source(shared)
    distance = VL53L0XSource(shared)
    for _ in range(3):
        skin.read_skin()
        distance.read_distance_mm()
    assert shared.try_lock()  # nobody holds it
    shared.unlock()
    assert raw_bus.try_lock()
    raw_bus.unlock()
