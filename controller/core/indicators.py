"""What the green, amber and red LEDs (and the buzzer) show. Pure: a function of state and time.

The README's LED tables are checked against these constants and controller/core/faults.py
(tests/test_docs.py), so the documentation cannot drift from what the lamp shows.

Heartbeat: the green LED inverts for 0.15 s every 2 s in every state. A lit but unchanging
pattern therefore means a frozen daemon; all dark means a dead one.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.core.faults import fault_info

HEARTBEAT_PERIOD_S = 2.0
HEARTBEAT_BLIP_S = 0.15
CODE_ON_S = 0.3  # one blink of a blink code: 0.3 s on, 0.3 s off
CODE_GAP_S = 1.5  # dark pause between repetitions of a code
REFUSAL_BLINK_S = 0.15  # refused-start blinks are faster than fault codes
REFUSAL_SHOW_S = 6.0  # how long the LEDs show why a start was refused

# Why a start was refused -> number of fast amber blinks (shown for a few seconds).
REFUSAL_BLINKS = {
    "too_close": 1,
    "out_of_band": 2,
    "skin_too_warm": 3,
    "daily_limit": 4,
    "cooldown": 5,
    "sensor_unhealthy": 6,
    "fault_latched": 7,
    "journal_busy": 8,
    "distance_doubt": 9,
    "skin_above_comfort": 10,
    "daily_dose": 11,
}
STARTING_BLINK_S = 0.1  # 'starting': green blinks 5 times a second until the start is journaled
DOUBT_FLASH_S = 0.1  # distance_doubt pause: two short amber flashes every second
COOLING_PERIOD_S = 3.0  # cooling at the comfort set point: amber slow blink, 1.5 s on, 1.5 s off


@dataclass(frozen=True)
class LedState:
    green: bool
    amber: bool
    red: bool
    buzzer: bool = False

    def describe(self) -> str:
        return "".join(c if on else "." for c, on in zip("GAR", (self.green, self.amber, self.red), strict=True))


def _heartbeat(now_s: float) -> bool:
    return (now_s % HEARTBEAT_PERIOD_S) < HEARTBEAT_BLIP_S


def next_heartbeat_change_s(now_s: float) -> float:
    """The next instant after `now_s` at which the idle heartbeat blip starts or ends."""
    cycle_start = now_s - now_s % HEARTBEAT_PERIOD_S
    for edge in (cycle_start + HEARTBEAT_BLIP_S, cycle_start + HEARTBEAT_PERIOD_S):
        if edge > now_s:
            return edge
    return cycle_start + HEARTBEAT_PERIOD_S + HEARTBEAT_BLIP_S


def _counted_blinks(t_s: float, count: int, on_s: float) -> bool:
    """True while inside one of `count` blinks that start at t=0 (t within one repetition)."""
    index = int(t_s // (2 * on_s))
    return index < count and (t_s - index * 2 * on_s) < on_s


def fault_code_leds(now_s: float, red_count: int, amber_count: int) -> tuple[bool, bool]:
    """(red, amber) for a two-part blink code repeating forever."""
    red_len = red_count * 2 * CODE_ON_S
    cycle = red_len + amber_count * 2 * CODE_ON_S + CODE_GAP_S
    t = now_s % cycle
    if t < red_len:
        return _counted_blinks(t, red_count, CODE_ON_S), False
    return False, _counted_blinks(t - red_len, amber_count, CODE_ON_S)


def leds_for(
    now_s: float,
    state: str,
    fault_code: str | None,
    warning: bool,
    refused: tuple[str, float] | None,
    buzz_until_s: float = 0.0,
    pause_reason: str | None = None,
) -> LedState:
    """The LED picture for one instant.

    state         'idle' | 'starting' | 'running' | 'paused' | 'cooling' | 'fault'
    fault_code    the first latched fault (state 'fault')
    warning       skin in the warning band
    refused       (reason, show_until_s) after a refused start
    pause_reason  why a paused session is paused ('distance_doubt' has its own picture)
    """
    beat = _heartbeat(now_s)
    buzzer = now_s < buzz_until_s
    # A press refused because a fault is latched is answered like any refusal; the fault's code
    # shows again when the refusal's time is up.
    refusing_in_fault = refused is not None and refused[0] == "fault_latched" and now_s < refused[1]
    if state == "fault" and fault_code and not refusing_in_fault:
        info = fault_info(fault_code)
        red, amber = fault_code_leds(now_s, info.red, info.amber)
        return LedState(beat, amber, red, buzzer)
    if state == "starting":  # lamp off until the session's start is durable in the journal
        return LedState((now_s % (2 * STARTING_BLINK_S)) < STARTING_BLINK_S, False, False, buzzer)
    lamp_session = state in ("running", "paused", "cooling")
    green = (not beat) if lamp_session else beat
    amber = False
    if state == "paused" and pause_reason == "distance_doubt":
        amber = _counted_blinks(now_s % 1.0, 2, DOUBT_FLASH_S)
    elif state == "paused":
        amber = (now_s % 1.0) < 0.5
    elif state == "cooling":
        amber = (now_s % COOLING_PERIOD_S) < COOLING_PERIOD_S / 2
    if warning and state == "running":  # paused keeps its blink: "lamp off, waiting" matters more
        amber = True
    if refused is not None and now_s < refused[1] and not lamp_session:
        count = REFUSAL_BLINKS.get(refused[0], 7)
        group_s = count * 2 * REFUSAL_BLINK_S
        cycle = group_s + 1.0
        shown_s = max(0.0, now_s - (refused[1] - REFUSAL_SHOW_S))  # groups start at the refusal
        index = int(shown_s // cycle)
        whole = index * cycle + group_s <= REFUSAL_SHOW_S + 1e-9  # never show a cut-off group
        amber = whole and _counted_blinks(shown_s - index * cycle, count, REFUSAL_BLINK_S)
    return LedState(green, amber, False, buzzer)


def pattern_name(
    state: str, warning: bool = False, fault_code: str | None = None, pause_reason: str | None = None
) -> str:
    """The README's words for what the LEDs show in this state (for timelines and logs)."""
    if state == "fault" and fault_code:
        info = fault_info(fault_code)
        return f"red {info.red} / amber {info.amber} blink code"
    if state == "running":
        return "green steady, amber steady (skin warning)" if warning else "green steady"
    if state == "paused" and pause_reason == "distance_doubt":
        return "green steady, amber double flash"
    if state == "paused":
        return "green steady, amber blinking"
    if state == "cooling":
        return "green steady, amber slow blink (cooling)"
    if state == "starting":
        return "green blinking fast (starting)"
    return "green heartbeat"
