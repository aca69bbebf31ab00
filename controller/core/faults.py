"""Every fault irlamp can latch: a stable code, its LED blink code, and what a caregiver should do.

A fault latches (the lamp stays off, no session can start) until someone holds the
button for the long-press time. Nothing clears a fault by itself.

Blink code: the red LED blinks `red` times, then the amber LED blinks `amber` times,
then both stay dark for a pause, and the pattern repeats. `red` names the part
(1 distance sensor, 2 skin sensor, 3 skin temperature, 4 button, 5 controller,
6 records / storage),
`amber` names what went wrong with it.
"""

from __future__ import annotations

from dataclasses import dataclass

# Per-sensor failure kinds, in the order of their amber blink count.
SENSOR_FAULT_KINDS = (
    "io_error",  # 1: I2C error (OSError), e.g. errno 121 remote I/O error
    "timeout",  # 2: driver gave up waiting for data (RuntimeError)
    "out_of_range",  # 3: the chip says the value is invalid, or the value is impossible
    "nan",  # 4: not a number
    "frozen",  # 5: exactly the same value far longer than sensor noise allows
    "stale",  # 6: no good reading within the deadline
    "hang",  # 7: a read has been blocked longer than the deadline
    "missing",  # 8: the sensor did not answer at start-up
)

SENSOR_ADVICE = {
    "io_error": "check the sensor cable and connectors; then hold the button 3 s",
    "timeout": "sensor stopped delivering data; check wiring and power, then hold 3 s",
    "out_of_range": "sensor reported impossible values; check aim and wiring, then hold 3 s",
    "nan": "sensor reported garbage; check wiring, then hold 3 s",
    "frozen": "sensor value stopped changing; check it is not loose, then hold 3 s",
    "stale": "no valid readings arrive; check wiring and power, then hold 3 s",
    "hang": "the I2C bus is locked up; power-cycle the Pi if it repeats",
    "missing": "sensor not found on the bus; check wiring, run `irlamp selftest`",
}


@dataclass(frozen=True)
class FaultInfo:
    code: str
    red: int
    amber: int
    meaning: str
    advice: str


def _sensor_faults(sensor: str, red: int, what: str) -> list[FaultInfo]:
    return [
        FaultInfo(f"{sensor}_{kind}", red, index + 1, f"{what}: {kind.replace('_', ' ')}", SENSOR_ADVICE[kind])
        for index, kind in enumerate(SENSOR_FAULT_KINDS)
    ]


FAULTS: dict[str, FaultInfo] = {
    f.code: f
    for f in [
        *_sensor_faults("distance", 1, "distance sensor"),
        FaultInfo(
            "distance_unreliable",
            1,
            9,
            "distance sensor: its measurements stayed untrustworthy (blinded by the lamp's light?)",
            "shade the distance sensor from the bulb (see `irlamp selftest`), then hold 3 s",
        ),
        *_sensor_faults("skin", 2, "skin thermometer"),
        FaultInfo(
            "skin_overheat",
            3,
            1,
            "skin reached the temperature limit",
            "let the skin cool; check the lamp distance; then hold 3 s",
        ),
        FaultInfo(
            "skin_not_heating",
            3,
            2,
            "lamp was on but the skin reading did not rise",
            "the thermometer is misaimed or fell off: re-aim it at the skin, then hold 3 s",
        ),
        FaultInfo(
            "skin_sensor_hot",
            3,
            3,
            "the thermometer itself is too hot",
            "move the thermometer out of the lamp's beam, let it cool, then hold 3 s",
        ),
        FaultInfo(
            "button_stuck",
            4,
            1,
            "button held at start-up or far too long",
            "release the button; if it stays pressed, repair or replace it; then hold the "
            "working button 3 s (nothing else clears it)",
        ),
        FaultInfo(
            "guard_loop_stall",
            5,
            1,
            "the control loop stopped confirming the lamp",
            "independent guard cut the lamp; check the log, then hold 3 s",
        ),
        FaultInfo(
            "guard_on_time",
            5,
            2,
            "independent guard's on-time limit reached",
            "the session timer failed to stop the lamp; check the log, then hold 3 s",
        ),
        FaultInfo(
            "control_exception",
            5,
            3,
            "unexpected error in the control loop",
            "check `journalctl -u irlamp`; then hold 3 s",
        ),
        FaultInfo(
            "guard_failed",
            5,
            5,
            "the independent guard's own check failed; it holds the lamp off",
            "a software fault: check `journalctl -u irlamp`, report it; then hold 3 s",
        ),
        FaultInfo(
            "journal_stalled",
            6,
            1,
            "the journal cannot be written: a write failed (disk full, I/O error) or has waited 10 s (SD card stuck)",
            "check the SD card and free space (`df -h /var/lib/irlamp`), see `journalctl -u irlamp`; then hold 3 s",
        ),
    ]
}


def fault_info(code: str) -> FaultInfo:
    """The table row for `code`; unknown codes map to a generic controller fault row."""
    return FAULTS.get(code) or FaultInfo(code, 5, 4, code.replace("_", " "), "check the log")
