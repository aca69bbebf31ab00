"""LED patterns: every state and fault looks different, a heartbeat always shows, blink counts.

Patterns are sampled every 10 ms over a window long enough for several repetitions of the
slowest code, and compared the way a person across the room would: by what changes.
"""

from __future__ import annotations

import functools

import pytest

from controller.core.faults import FAULTS, fault_info
from controller.core.indicators import (
    HEARTBEAT_PERIOD_S,
    REFUSAL_BLINKS,
    REFUSAL_SHOW_S,
    LedState,
    fault_code_leds,
    leds_for,
)

DT_S = 0.01
WINDOW_S = 20.0


def sample(
    state: str,
    fault_code: str | None = None,
    warning: bool = False,
    refused: tuple[str, float] | None = None,
    start_s: float = 0.0,
    seconds: float = WINDOW_S,
    pause_reason: str | None = None,
) -> list[LedState]:
    n = int(round(seconds / DT_S))
    return [
        leds_for(start_s + i * DT_S, state, fault_code, warning, refused, pause_reason=pause_reason) for i in range(n)
    ]


def runs(values: list[bool]) -> list[tuple[bool, int]]:
    """Run-length encoding: [(value, number of samples), ...]."""
    out: list[tuple[bool, int]] = []
    for v in values:
        if out and out[-1][0] == v:
            out[-1] = (v, out[-1][1] + 1)
        else:
            out.append((v, 1))
    return out


def blink_groups(values: list[bool], gap_s: float) -> list[int]:
    """Numbers of blinks in each complete group; groups are separated by dark gaps >= gap_s."""
    groups: list[int] = []
    count = 0
    started = False
    for v, n in runs(values):
        if not v and n * DT_S >= gap_s - 1e-9:
            if started and count:
                groups.append(count)
            started, count = True, 0
        elif v:
            count += 1
    return groups


def every_group(values: list[bool], gap_s: float) -> list[int]:
    """Blink counts of all groups, including any cut off at the start or end of the window."""
    groups: list[int] = []
    count = 0
    for v, n in runs(values):
        if v:
            count += 1
        elif n * DT_S >= gap_s - 1e-9 and count:
            groups.append(count)
            count = 0
    if count:
        groups.append(count)
    return groups


@functools.lru_cache(maxsize=1)
def all_patterns() -> dict[str, list[LedState]]:
    patterns = {
        "idle": sample("idle"),
        "running": sample("running"),
        "paused": sample("paused"),
        "starting": sample("starting"),
        "paused, distance in doubt": sample("paused", pause_reason="distance_doubt"),
        "running, skin warning": sample("running", warning=True),
        "cooling at the comfort set point": sample("cooling"),
    }
    for reason in REFUSAL_BLINKS:
        if reason != "fault_latched":
            patterns[f"refused {reason}"] = sample("idle", refused=(reason, WINDOW_S))
    for code in FAULTS:
        patterns[f"fault {code}"] = sample("fault", code)
    return patterns


def test_every_state_and_fault_code_looks_different():
    patterns = all_patterns()
    seen: dict[tuple, str] = {}
    for name, seq in patterns.items():
        key = tuple(seq)
        assert key not in seen, f"{name!r} looks exactly like {seen[key]!r}"
        seen[key] = name


def test_fault_codes_blink_their_own_counts():
    counts = {}
    for code, info in FAULTS.items():
        seq = sample("fault", code)
        red = [s.red for s in seq]
        amber = [s.amber for s in seq]
        both = [r or a for r, a in zip(red, amber, strict=True)]
        red_groups = blink_groups(red, gap_s=1.0)
        amber_groups = blink_groups(amber, gap_s=1.0)
        assert red_groups and set(red_groups) == {info.red}, (code, red_groups)
        assert amber_groups and set(amber_groups) == {info.amber}, (code, amber_groups)
        assert set(blink_groups(both, gap_s=1.0)) == {info.red + info.amber}, code
        counts[code] = (info.red, info.amber)
    assert len(set(counts.values())) == len(counts), "two faults share a blink code"


def test_red_blinks_come_before_amber_blinks():
    seq = sample("fault", "skin_stale")
    first_red = next(i for i, s in enumerate(seq) if s.red)
    first_amber = next(i for i, s in enumerate(seq) if s.amber)
    assert first_red < first_amber
    assert not any(s.red and s.amber for s in seq)


def test_unknown_fault_code_still_blinks_a_controller_code():
    seq = sample("fault", "something_new")
    assert set(blink_groups([s.red for s in seq], 1.0)) == {5}
    assert set(blink_groups([s.amber for s in seq], 1.0)) == {fault_info("something_new").amber}


@pytest.mark.parametrize("name", list(all_patterns()))
def test_heartbeat_in_every_state(name):
    seq = all_patterns()[name]
    per_period = int(round(HEARTBEAT_PERIOD_S / DT_S))
    for start in range(0, len(seq) - per_period + 1, per_period):
        green = [s.green for s in seq[start : start + per_period]]
        assert len(runs(green)) >= 2, f"{name}: green did not change within {start * DT_S:.2f}..+2 s"
    # a blip: short and regular, whatever the state shows otherwise
    green_runs = runs([s.green for s in seq])
    minority = min((v for v, _ in green_runs), key=lambda v: sum(n for w, n in green_runs if w == v))
    blips = [n for v, n in green_runs[1:-1] if v == minority]
    assert blips and all(n * DT_S <= 0.2 for n in blips), name


def test_running_and_idle_heartbeats_are_inverse():
    idle = [s.green for s in sample("idle")]
    running = [s.green for s in sample("running")]
    assert all(a != b for a, b in zip(idle, running, strict=True))
    assert sum(idle) < len(idle) / 5 < sum(running)


@pytest.mark.parametrize("reason, count", sorted(REFUSAL_BLINKS.items()))
def test_refusal_blinks_its_count_for_the_show_time_then_stops(reason, count):
    refused_at = 100.0
    state = "fault" if reason == "fault_latched" else "idle"
    fault_code = "distance_io_error" if state == "fault" else None
    until = refused_at + REFUSAL_SHOW_S
    shown = sample(state, fault_code, refused=(reason, until), start_s=refused_at, seconds=REFUSAL_SHOW_S)
    amber = [s.amber for s in shown]
    groups = every_group(amber, gap_s=0.5)
    assert groups and set(groups) == {count}, (reason, groups)
    assert not any(s.red for s in shown), "a refusal is amber only"
    after = sample(state, fault_code, refused=(reason, until), start_s=until, seconds=10.0)
    expected_after = sample(state, fault_code, start_s=until, seconds=10.0)
    assert after == expected_after, "the refusal must stop showing after its time"


@pytest.mark.parametrize("reason, count", sorted(REFUSAL_BLINKS.items()))
def test_a_refusal_shows_only_whole_groups_starting_at_once(reason, count):
    """Whenever the press happens, the caregiver sees the count from its first blink, and no
    group is cut short by the end of the show time (a cut group would name another reason)."""
    state = "fault" if reason == "fault_latched" else "idle"
    fault_code = "skin_stale" if state == "fault" else None
    for k in range(40):
        refused_at = 100.0 + k * 0.077
        until = refused_at + REFUSAL_SHOW_S
        shown = sample(state, fault_code, refused=(reason, until), start_s=refused_at, seconds=REFUSAL_SHOW_S)
        amber = [s.amber for s in shown]
        assert amber[0], f"{reason}: no blink at the moment of the refusal (at {refused_at})"
        groups = every_group(amber, gap_s=0.5)
        assert groups and set(groups) == {count}, (reason, refused_at, groups)


def test_refusal_is_not_shown_over_a_running_session():
    plain = sample("running", seconds=6.0)
    assert sample("running", refused=("too_close", 6.0), seconds=6.0) == plain


def test_a_new_fault_is_shown_at_once_even_while_an_older_refusal_shows():
    with_refusal = sample("fault", "skin_overheat", refused=("too_close", WINDOW_S))
    assert with_refusal == sample("fault", "skin_overheat")


def test_paused_blinks_amber_once_a_second_and_warning_holds_it_on():
    paused = [s.amber for s in sample("paused", seconds=4.0)]
    assert blink_groups(paused, gap_s=0.4) == [1, 1, 1]
    assert all(s.amber for s in sample("running", warning=True))
    assert not any(s.amber for s in sample("running"))
    assert not any(s.amber for s in sample("idle", warning=True)), "no warning without a session"


def test_buzzer_follows_buzz_until():
    assert leds_for(10.0, "idle", None, False, None, buzz_until_s=10.5).buzzer
    assert not leds_for(10.5, "idle", None, False, None, buzz_until_s=10.5).buzzer


def test_fault_code_cycle_repeats():
    cycle_s = 2 * 0.3 * (2 + 6) + 1.5
    for t in (0.0, 0.1, 0.35, 1.3, 4.0, 5.5):
        assert fault_code_leds(t, 2, 6) == fault_code_leds(t + cycle_s, 2, 6)


def test_describe_names_the_lit_leds():
    assert LedState(True, False, True).describe() == "G.R"


def test_paused_with_skin_in_the_warning_band_still_blinks_unlike_running():
    # "lamp off, waiting for the person" must not look like "lamp on, skin warm"
    paused_warm = sample("paused", warning=True)
    assert paused_warm != sample("running", warning=True)
    assert [s.amber for s in paused_warm] == [s.amber for s in sample("paused")]


def test_pattern_names_match_the_readme_words():
    from controller.core.indicators import pattern_name

    assert pattern_name("running") == "green steady"
    assert "amber steady" in pattern_name("running", warning=True)
    assert "amber blinking" in pattern_name("paused", warning=True)
    assert pattern_name("fault", fault_code="skin_overheat") == "red 3 / amber 1 blink code"


def test_starting_blinks_green_fast_with_the_lamp_off_and_no_refusal_over_it():
    seq = sample("starting", refused=("too_close", WINDOW_S))
    assert not any(s.amber or s.red for s in seq)
    assert len(runs([s.green for s in seq[:100]])) >= 9  # 5 blinks a second


def test_a_distance_doubt_pause_flashes_amber_twice_a_second_with_green_steady():
    seq = sample("paused", pause_reason="distance_doubt", seconds=4.0)
    assert blink_groups([s.amber for s in seq], gap_s=0.5) == [2, 2, 2]
    assert sum(s.green for s in seq) > 0.9 * len(seq)


def test_cooling_blinks_amber_slowly_and_keeps_its_blink_in_the_warning_band():
    from controller.core.indicators import COOLING_PERIOD_S, pattern_name

    seq = sample("cooling", seconds=3 * COOLING_PERIOD_S)
    amber = [s.amber for s in seq]
    on_runs = [n * DT_S for v, n in runs(amber) if v]
    whole = on_runs[1:-1]  # the first and last may be cut by the window
    assert whole and all(abs(r - COOLING_PERIOD_S / 2) < 0.1 for r in whole), on_runs
    assert sample("cooling", warning=True) == sample("cooling")  # the set point is the warning edge
    assert pattern_name("cooling") == "green steady, amber slow blink (cooling)"
