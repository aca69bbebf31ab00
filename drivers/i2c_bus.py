"""The Pi's I2C bus, shared by the two sensor threads without spinning.

Adafruit's I2CDevice waits for a busy bus with `while not i2c.try_lock(): time.sleep(0)`,
which burns a whole core for as long as the other thread holds the bus - forever, if that
thread is stuck in a hung transfer. `PoliteI2C` makes `try_lock()` wait on a real lock for
a couple of milliseconds before saying no, so a waiting thread sleeps instead of spinning.
Everything else passes straight through to the wrapped bus.
"""

from __future__ import annotations

import threading

WAIT_PER_TRY_S = 0.002


class PoliteI2C:
    def __init__(self, bus, wait_per_try_s: float = WAIT_PER_TRY_S):
        self._bus = bus
        self._wait_s = wait_per_try_s
        self._lock = threading.Lock()
        self.lock_attempts = 0

    def try_lock(self) -> bool:
        self.lock_attempts += 1
        if not self._lock.acquire(timeout=self._wait_s):
            return False
        if self._bus.try_lock():
            return True
        self._lock.release()
        return False

    def unlock(self) -> None:
        self._bus.unlock()
        self._lock.release()

    def __getattr__(self, name):
        return getattr(self._bus, name)


_shared_bus: PoliteI2C | None = None


def pi_i2c_bus() -> PoliteI2C:
    """Bus 1 of the Pi (Blinka's `board.I2C()`), wrapped once and shared by both sensors."""
    global _shared_bus
    if _shared_bus is None:
        from drivers.vl53l0x import open_pi_i2c_bus

        _shared_bus = PoliteI2C(open_pi_i2c_bus())
    return _shared_bus
