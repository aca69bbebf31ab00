"""`irlamp selftest`: bring up the real hardware step by step, with a person watching.

1. scan the I2C bus and say, for the VL53L0X (0x29) and the MLX90614 (0x5A), whether it
   answers - with what to check when it does not;
2. print live readings through the real readers for a few seconds;
3. blink each LED (and the buzzer) once, naming it, so the person can check the wiring;
4. click the lamp relay for 1 s, only after the person types exactly "yes";
5. with a config: the lamp-on test (controller/service/selftest_lamp.py), only after a second
   "yes" with the person in the band - the lamp lit for at most 30 s by the real safety
   decision, and a verdict per sensor on how the lamp's own light and heat affect it.
The relay (and the optional enable relay) is switched off before anything else and again
at the end, whatever happens in between (an exception, Ctrl-C).

Returns 0 when both sensors were found, every reading succeeded and no sensor was
judged not usable under the lamp; 1 otherwise.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from controller.service.selftest_lamp import DEFAULT_LAMP_S, NOT_USABLE, run_lamp_test
from controller.service.selftest_lamp import lamp_off as _relays_off
from drivers.mlx90614 import MLX90614Source
from drivers.relay import switch_pair
from drivers.sensor_source import NO_TARGET_MM, SensorValueError
from drivers.vl53l0x import VL53L0XSource, open_pi_i2c_bus

VL53L0X_ADDRESS = 0x29
MLX90614_ADDRESS = 0x5A

READING_INTERVAL_S = 0.5
BLINK_ON_S = 0.5
BLINK_GAP_S = 0.3
RELAY_CLICK_S = 1.0
BUS_LOCK_TIMEOUT_S = 1.0
MM_PER_INCH = 25.4

RELAY_PROMPT = "Type yes to click the relay for 1 s (the lamp will light if connected): "
INDICATORS = (("green", "green LED"), ("amber", "amber LED"), ("red", "red LED"), ("buzzer", "buzzer"))

WIRING_HINT = "check the wiring: SDA to GPIO2 (pin 3), SCL to GPIO3 (pin 5), VIN to 3.3 V (pin 1), GND to GND (pin 6)"
I2C_DISABLED_HINT = "if I2C is disabled, enable it: sudo raspi-config nonint do_i2c 0 (then reboot)"
MLX_SPEED_HINT = (
    "the MLX90614 needs the bus at <= 50 kHz: add dtparam=i2c_arm_baudrate=50000 "
    "to /boot/firmware/config.txt and reboot"
)
READ_ERRORS = (OSError, RuntimeError, SensorValueError)

Say = Callable[[str], None]


@dataclass
class _SensorCheck:
    label: str
    address: int
    hints: tuple[str, ...]
    found: bool = False
    source: Any = None
    good_readings: int = 0
    failed_readings: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.found and self.good_readings > 0 and self.failed_readings == 0


def run_selftest(
    i2c,
    outputs: dict[str, Any],
    *,
    ask: Callable[[str], str] = input,
    say: Say = print,
    readings_s: float = 3.0,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
    cfg=None,
    lamp_s: float = DEFAULT_LAMP_S,
) -> int:
    """Run the hardware self-test on bus ``i2c`` with gpiozero-like ``outputs``.

    ``outputs`` maps 'green', 'amber', 'red', 'relay' and optionally 'buzzer' and
    'enable_relay' to devices with ``on()``/``off()``. With ``cfg`` (the validated
    configuration) the lamp-on test follows. Returns the exit status.
    """
    checks = [
        _SensorCheck("VL53L0X distance sensor", VL53L0X_ADDRESS, (WIRING_HINT,)),
        _SensorCheck("MLX90614 skin thermometer", MLX90614_ADDRESS, (WIRING_HINT, MLX_SPEED_HINT)),
    ]
    _relays_off(outputs)
    verdicts = []
    budget_ms = cfg.distance.timing_budget_ms if cfg is not None else 33
    try:
        found = _scan(i2c, say, sleep, monotonic)
        _report_presence(checks, found, say)
        _open_readers(i2c, checks, say, sleep, monotonic, budget_ms)
        _show_live_readings(checks, say, readings_s, sleep, monotonic)
        _blink_indicators(outputs, say, sleep)
        _click_relay_if_confirmed(outputs, ask, say, sleep)
        if cfg is not None and outputs.get("relay") is not None and all(c.source for c in checks):
            verdicts = (
                run_lamp_test(
                    checks[0].source,
                    checks[1].source,
                    outputs,
                    cfg,
                    ask=ask,
                    say=say,
                    monotonic=monotonic,
                    lamp_s=lamp_s,
                )
                or []
            )
    finally:
        try:
            _relays_off(outputs)
        finally:
            _close_readers(checks)
    status = _summarise(checks, say)
    return 1 if any(v.grade == NOT_USABLE for v in verdicts) else status


def run_selftest_on_pi(outputs: dict[str, Any], **options) -> int:
    """``run_selftest`` on the Pi's I2C bus 1; explains a bus that cannot be opened."""
    try:
        i2c = open_pi_i2c_bus()
    except (ImportError, NotImplementedError, RuntimeError, ValueError, OSError) as exc:
        _relays_off(outputs)
        say = options.get("say", print)
        say(f"Cannot open I2C bus 1: {exc}")
        say(f"  {I2C_DISABLED_HINT}")
        return 1
    return run_selftest(i2c, outputs, **options)


# --- steps ---------------------------------------------------------------------------


def _scan(i2c, say: Say, sleep, monotonic) -> list[int]:
    say("Scanning I2C bus 1 ...")
    give_up_at = monotonic() + BUS_LOCK_TIMEOUT_S
    while not i2c.try_lock():
        if monotonic() >= give_up_at:
            say("  the I2C bus stays locked by something else; nothing scanned")
            return []
        sleep(0.01)
    try:
        found = sorted(i2c.scan())
    except OSError as exc:
        say(f"  scan failed: {exc}")
        say(f"  {I2C_DISABLED_HINT}")
        return []
    finally:
        i2c.unlock()
    say("  devices answering: " + (", ".join(f"0x{a:02X}" for a in found) or "none"))
    return found


def _report_presence(checks: list[_SensorCheck], found: list[int], say: Say) -> None:
    expected = {check.address for check in checks}
    strangers = [f"0x{a:02X}" for a in found if a not in expected]
    for check in checks:
        check.found = check.address in found
        if check.found:
            say(f"  found   {check.label} at 0x{check.address:02X}")
            continue
        say(f"  MISSING {check.label}: nothing answers at 0x{check.address:02X}")
        for hint in check.hints:
            say(f"    - {hint}")
        if strangers:
            say(f"    - wrong address? other devices answer at {', '.join(strangers)}")
    if not found:
        say(f"  no device answers at all: {I2C_DISABLED_HINT}")


def _open_readers(i2c, checks: list[_SensorCheck], say: Say, sleep, monotonic, budget_ms: int = 33) -> None:
    openers = {
        VL53L0X_ADDRESS: lambda: VL53L0XSource(
            i2c,
            timing_budget_ms=budget_ms,
            sleep=sleep,
            monotonic=monotonic,
            io_timeout_s=max(0.2, 3 * budget_ms / 1000.0),
        ),
        MLX90614_ADDRESS: lambda: MLX90614Source(i2c),
    }
    for check in checks:
        if not check.found:
            continue
        try:
            check.source = openers[check.address]()
        except (*READ_ERRORS, ValueError) as exc:
            check.failed_readings += 1
            check.errors.append(f"start-up failed: {exc}")
            say(f"  {check.label}: found but would not start: {exc}")
            for hint in check.hints:
                say(f"    - {hint}")


def _show_live_readings(checks: list[_SensorCheck], say: Say, readings_s: float, sleep, monotonic) -> None:
    running = [check for check in checks if check.source is not None]
    if not running:
        say("No sensor to read.")
        return
    say(f"Live readings for {readings_s:g} s:")
    start = monotonic()
    while True:
        say("  " + " | ".join(_read_once(check) for check in running))
        if monotonic() - start >= readings_s:
            return
        sleep(READING_INTERVAL_S)


def _read_once(check: _SensorCheck) -> str:
    try:
        if check.address == VL53L0X_ADDRESS:
            distance_mm = check.source.read_distance_mm()
            text = (
                "distance: no target in range"
                if distance_mm >= NO_TARGET_MM
                else f"distance {distance_mm:.0f} mm ({distance_mm / MM_PER_INCH:.1f} in)"
            )
        else:
            reading = check.source.read_skin()
            text = f"skin {reading.skin_c:.2f} °C, sensor body {reading.ambient_c:.2f} °C"
    except READ_ERRORS as exc:
        check.failed_readings += 1
        check.errors.append(str(exc))
        return f"{check.label}: ERROR {type(exc).__name__}: {exc}"
    check.good_readings += 1
    return text


def _blink_indicators(outputs: dict[str, Any], say: Say, sleep) -> None:
    say("Blinking each indicator once - watch (and listen):")
    for key, label in INDICATORS:
        device = outputs.get(key)
        if device is None:
            if key != "buzzer":
                say(f"  {label}: not configured")
            continue
        say(f"  {label} now")
        try:
            device.on()
            sleep(BLINK_ON_S)
        finally:
            device.off()
        sleep(BLINK_GAP_S)


def _click_relay_if_confirmed(outputs: dict[str, Any], ask, say: Say, sleep) -> None:
    relay = outputs.get("relay")
    if relay is None:
        say("No lamp relay configured: relay not tested.")
        return
    try:
        answer = ask(RELAY_PROMPT)
    except EOFError:
        answer = ""
    if answer != "yes":
        say("Relay not clicked (you did not type yes).")
        return
    say(f"Relay ON for {RELAY_CLICK_S:g} s ...")
    try:
        switch_pair(relay, outputs.get("enable_relay"), True)
        sleep(RELAY_CLICK_S)
    finally:
        _relays_off(outputs)
    say("Relay OFF.")


def _close_readers(checks: list[_SensorCheck]) -> None:
    for check in checks:
        if check.source is not None:
            check.source.close()


def _summarise(checks: list[_SensorCheck], say: Say) -> int:
    for check in checks:
        if check.passed:
            say(f"PASS {check.label}: {check.good_readings} good readings")
        elif not check.found:
            say(f"FAIL {check.label}: not found on the bus")
        else:
            say(
                f"FAIL {check.label}: {check.good_readings} good, "
                f"{check.failed_readings} failed; last error: "
                f"{check.errors[-1] if check.errors else 'no reading'}"
            )
    return 0 if all(check.passed for check in checks) else 1
