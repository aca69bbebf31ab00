"""ButtonTracker (SR-10): debounce, press/short/long/stuck, chatter, wake-up deadlines."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from controller.core.button import EPSILON_S, ButtonTracker

LONG_S, STUCK_S, BOUNCE_S = 3.0, 20.0, 0.03


def tracker() -> ButtonTracker:
    b = ButtonTracker(LONG_S, STUCK_S, BOUNCE_S)
    assert b.update(0.0, False) == []
    return b


def feed(b: ButtonTracker, samples: list[tuple[float, bool]]) -> list[tuple[float, str]]:
    out = []
    for t, level in samples:
        out += [(t, e) for e in b.update(t, level)]
    return out


def test_press_is_confirmed_after_the_debounce_time_and_not_before():
    b = tracker()
    assert b.update(1.0, True) == []
    assert b.update(1.0 + BOUNCE_S * 0.9, True) == []
    assert b.update(1.0 + BOUNCE_S, True) == ["press"]
    assert b.update(1.1, True) == []


def test_short_press_release_gives_short_once():
    b = tracker()
    events = feed(b, [(1.0, True), (1.05, True), (1.3, False), (1.3 + BOUNCE_S, False), (2.0, False)])
    assert [e for _, e in events] == ["press", "short"]
    assert events[1][0] == 1.3 + BOUNCE_S


def test_long_press_fires_once_at_long_press_s_from_the_first_contact_and_release_is_silent():
    b = tracker()
    events = feed(
        b,
        [
            (1.0, True),
            (1.0 + BOUNCE_S, True),
            (1.0 + LONG_S - 0.01, True),
            (1.0 + LONG_S, True),
            (1.0 + LONG_S + 0.5, True),
            (5.0, False),
            (5.1, False),
        ],
    )
    assert events == [(1.0 + BOUNCE_S, "press"), (1.0 + LONG_S, "long")]


def test_held_for_stuck_s_is_stuck_once():
    b = tracker()
    samples = [(1.0 + 0.5 * i, True) for i in range(60)]
    events = [e for _, e in feed(b, samples)]
    assert events == ["press", "long", "stuck"]
    stuck_t = [t for t, e in feed(tracker(), samples) if e == "stuck"][0]
    assert stuck_t == 1.0 + STUCK_S


def test_button_held_at_start_up_is_stuck_and_never_a_press():
    b = ButtonTracker(LONG_S, STUCK_S, BOUNCE_S)
    assert b.update(0.0, True) == ["stuck"]
    events = feed(b, [(t / 10, True) for t in range(1, 400)] + [(41.0, False), (41.1, False)])
    assert events == []


def test_chatter_never_makes_two_presses():
    b = tracker()
    closing = [(1.000, True), (1.004, False), (1.009, True), (1.012, False), (1.020, True)]
    opening = [(1.500, False), (1.503, True), (1.510, False), (1.521, True), (1.530, False)]
    events = feed(
        b, closing + [(1.020 + BOUNCE_S, True), (1.3, True)] + opening + [(1.530 + BOUNCE_S, False), (2.0, False)]
    )
    assert events == [(1.020 + BOUNCE_S, "press"), (1.530 + BOUNCE_S, "short")]


def test_tap_shorter_than_debounce_is_nothing():
    b = tracker()
    assert feed(b, [(1.0, True), (1.0 + BOUNCE_S / 2, False), (1.5, False)]) == []


def test_deadline_computed_as_start_plus_bounce_is_met_despite_float_rounding():
    b = tracker()
    t0 = 0.1
    b.update(t0, True)
    assert b.next_deadline_s() == t0 + BOUNCE_S
    assert b.update(t0 + BOUNCE_S, True) == ["press"]


def test_next_deadline_names_the_next_event_that_needs_no_level_change():
    b = tracker()
    assert b.next_deadline_s() is None
    b.update(1.0, True)
    assert b.next_deadline_s() == 1.0 + BOUNCE_S
    b.update(1.0 + BOUNCE_S, True)
    assert b.next_deadline_s() == 1.0 + LONG_S
    b.update(1.0 + LONG_S, True)
    assert b.next_deadline_s() == 1.0 + STUCK_S
    b.update(1.0 + STUCK_S, True)
    assert b.next_deadline_s() is None


# -- property: events follow the raw level exactly as promised ------------------------------------
samples_strategy = st.lists(st.tuples(st.floats(0.001, 0.8), st.booleans()), min_size=1, max_size=120)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(samples_strategy)
def test_events_match_the_raw_level(steps):
    b = tracker()
    t = 0.0
    history: list[tuple[float, bool]] = [(0.0, False)]
    pressed = False
    press_start = None
    long_seen = stuck_seen = False
    for dt, level in steps:
        t += dt
        history.append((t, level))
        for event in b.update(t, level):
            # the level that was confirmed has been seen, unbroken, for the debounce time
            stable_since = t
            for ts, lv in reversed(history):
                if lv != (event == "press" or (event in ("long", "stuck") and pressed)):
                    break
                stable_since = ts
            if event == "press":
                assert not pressed and t - stable_since >= BOUNCE_S - 1e-9
                pressed, press_start, long_seen, stuck_seen = True, stable_since, False, False
            elif event == "short":
                assert pressed and not long_seen and t - stable_since >= BOUNCE_S - 1e-9
                pressed = False
            elif event == "long":
                assert pressed and not long_seen and t - press_start >= LONG_S - 1e-9
                long_seen = True
            elif event == "stuck":
                assert pressed and not stuck_seen and t - press_start >= STUCK_S - 1e-9
                stuck_seen = True
        if b.pressed != pressed:  # a release after a long press is silent
            assert pressed and long_seen and not b.pressed
            pressed = False


# -- edges timestamped by the driver, fed late (the loop was stalled) ------------------------------
def test_a_press_that_began_and_ended_between_two_steps_is_seen():
    b = tracker()
    # the loop's previous step was at 0.0; the next comes 1 s later; a 100 ms press lies between
    assert b.update_edges([(0.4, True), (0.5, False)], 1.0, False) == ["press", "short"]
    assert b.pressed_since_s == 0.4


def test_chatter_between_two_steps_is_still_one_press():
    b = tracker()
    edges = [
        (1.000, True),
        (1.004, False),
        (1.009, True),
        (1.012, False),
        (1.020, True),
        (1.500, False),
        (1.503, True),
        (1.510, False),
    ]
    assert b.update_edges(edges, 2.0, False) == ["press", "short"]


def test_a_hold_reported_late_still_counts_as_long_from_its_edges():
    b = tracker()
    assert b.update_edges([(1.0, True)], 1.0 + LONG_S + 0.5, True) == ["press", "long"]
    assert b.update_edges([(1.0 + LONG_S + 1.0, False)], 1.0 + LONG_S + 2.0, False) == []


edge_gaps_ms = st.lists(st.integers(1, 300), min_size=1, max_size=40)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(edge_gaps_ms, st.integers(1, 2000))
# A press exactly bounce_s long, at float-unfriendly instants: a deadline that falls on the
# next edge is not reached (the level changed at that instant), as in dense sampling.
@example([1, 30], 1)
@example([5, 30], 7)
def test_edges_fed_late_give_the_events_of_a_level_sampled_every_millisecond(gaps_ms, step_every_ms):
    """Replaying timestamped edges at sparse loop steps = sampling the level densely."""
    edges, t_ms, level = [], 0, False
    for gap in gaps_ms:
        t_ms += gap
        level = not level
        edges.append((t_ms, level))
    end_ms = t_ms + 500
    dense, sparse = tracker(), tracker()
    dense_events, sparse_events = [], []
    current, index = False, 0
    for now_ms in range(1, end_ms + 1):
        while index < len(edges) and edges[index][0] <= now_ms:
            current = edges[index][1]
            index += 1
        dense_events += dense.update(now_ms / 1000.0, current)
    pending = [(t / 1000.0, lv) for t, lv in edges]
    for now_ms in list(range(step_every_ms, end_ms + 1, step_every_ms)) + [end_ms]:
        due = [e for e in pending if e[0] <= now_ms / 1000.0]
        pending = pending[len(due) :]
        level_now = due[-1][1] if due else sparse.last_level
        sparse_events += sparse.update_edges(due, now_ms / 1000.0, level_now)
    assert sparse_events == dense_events


def test_an_edge_within_the_float_tolerance_after_a_deadline_falls_on_it():
    """EPSILON_S makes instants 1 ns apart one instant both ways: a sample 1 ns before the
    debounce deadline meets it (above), and an edge 1 ns after it falls on it, so the level
    changed at the deadline and the press is not confirmed, as for an edge exactly on it."""
    for release_s in (1.0 + BOUNCE_S, 1.0 + BOUNCE_S + EPSILON_S):
        b = tracker()
        assert b.update_edges([(1.0, True)], 1.0, True) == []
        assert b.update_edges([(release_s, False)], 1.5, False) == [], release_s
    b = tracker()
    b.update_edges([(1.0, True)], 1.0, True)
    assert b.update_edges([(1.0 + BOUNCE_S + 2 * EPSILON_S, False)], 1.5, False) == ["press", "short"]
