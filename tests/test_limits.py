"""SR-7: daily session limit and cool-down gap, conservative under any wall-clock error."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from controller.service.journal import SessionRecord
from controller.core.limits import MAX_LOCAL_DAY_S, start_allowance

UTC = dt.timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
HOUR, MINUTE, DAY = 3600.0, 60.0, 86400.0
GAP_S = 60 * MINUTE


def at(text: str, tz: dt.tzinfo = UTC) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=tz).timestamp()


def session(
    id_: int, boot: str, start_mono: float, end_mono: float | None, *, wall_minus_mono: float, offset_known: bool = True
) -> SessionRecord:
    """A session whose recorded walls are `wall_minus_mono + mono` (right or wrong)."""
    return SessionRecord(
        id=id_,
        boot_id=boot,
        start_wall=wall_minus_mono + start_mono,
        start_mono=start_mono,
        end_wall=None if end_mono is None else wall_minus_mono + end_mono,
        end_mono=end_mono,
        on_s=0.0 if end_mono is None else end_mono - start_mono,
        end_reason=None if end_mono is None else "completed",
        max_skin_c=None,
        min_distance_mm=None,
        boot_clock_offset_s=wall_minus_mono if offset_known else None,
    )


def allow(sessions, *, now_wall, now_mono, boot="B", synced=True, newest=None, per_day=3, gap_s=GAP_S, tz=UTC):
    if newest is None:
        newest = max([s.start_wall for s in sessions] + [s.end_wall or 0 for s in sessions], default=None)
    return start_allowance(
        sessions,
        now_wall=now_wall,
        now_mono=now_mono,
        boot_id=boot,
        clock_synced=synced,
        newest_record_wall=newest,
        sessions_per_day=per_day,
        min_gap_s=gap_s,
        tz=tz,
    )


# --- plain cases with a correct clock ------------------------------------------------------

BOOT_WALL = at("2026-01-05T06:00:00")  # boot "B" started then; wall = BOOT_WALL + mono


def three_sessions_today() -> list[SessionRecord]:
    return [
        session(i + 1, "B", start, start + 20 * MINUTE, wall_minus_mono=BOOT_WALL)
        for i, start in enumerate([1 * HOUR, 4 * HOUR, 8 * HOUR])
    ]  # 07:00, 10:00, 14:00


def test_empty_history_allows_a_start():
    a = allow([], now_wall=BOOT_WALL + 60, now_mono=60)
    assert (a.allowed, a.reason, a.sessions_today, a.next_start_wall) == (True, None, 0, None)


def test_fourth_session_of_a_day_is_refused_until_midnight():
    now_mono = 12 * HOUR  # 18:00, last session ended 3 h 40 min ago
    a = allow(three_sessions_today(), now_wall=BOOT_WALL + now_mono, now_mono=now_mono)
    assert not a.allowed and a.reason == "daily_limit" and a.sessions_today == 3
    assert a.next_start_wall == at("2026-01-06T00:00:00")
    assert a.next_start_mono == pytest.approx(now_mono + 6 * HOUR)


def test_third_session_is_allowed_and_a_lower_config_limit_refuses_it():
    sessions = three_sessions_today()[:2]
    now_mono = 12 * HOUR
    assert allow(sessions, now_wall=BOOT_WALL + now_mono, now_mono=now_mono).allowed
    lowered = allow(sessions, now_wall=BOOT_WALL + now_mono, now_mono=now_mono, per_day=2)
    assert not lowered.allowed and lowered.reason == "daily_limit"


def test_new_local_day_allows_again():
    now_mono = 18 * HOUR + 60  # 00:01 next day
    a = allow(three_sessions_today(), now_wall=BOOT_WALL + now_mono, now_mono=now_mono)
    assert a.allowed and a.sessions_today == 0


def test_day_is_the_local_calendar_day():
    # 23:30 local in Berlin is 22:30 UTC: the three sessions are 'today' only in Berlin's day
    tz_wall = at("2026-01-05T06:00:00", BERLIN)
    sessions = [
        session(i + 1, "B", start, start + 20 * MINUTE, wall_minus_mono=tz_wall)
        for i, start in enumerate([1 * HOUR, 4 * HOUR, 8 * HOUR])
    ]
    now_mono = 17 * HOUR + 45 * MINUTE  # 23:45 Berlin
    assert not allow(sessions, now_wall=tz_wall + now_mono, now_mono=now_mono, tz=BERLIN).allowed
    now_mono = 18 * HOUR + 15 * MINUTE  # 00:15 Berlin next day
    assert allow(sessions, now_wall=tz_wall + now_mono, now_mono=now_mono, tz=BERLIN).allowed


def test_next_midnight_on_the_day_summer_time_ends():
    boot_wall = at("2026-10-25T00:30:00", BERLIN) - 30 * MINUTE  # local day of 25 h
    sessions = [
        session(i + 1, "B", start, start + 20 * MINUTE, wall_minus_mono=boot_wall)
        for i, start in enumerate([1 * HOUR, 4 * HOUR, 8 * HOUR])
    ]
    now_mono = 12 * HOUR
    a = allow(sessions, now_wall=boot_wall + now_mono, now_mono=now_mono, tz=BERLIN)
    assert a.next_start_wall == at("2026-10-26T00:00:00", BERLIN)
    assert a.next_start_wall - boot_wall == 25 * HOUR


def test_cooldown_counts_from_the_end_of_the_previous_session():
    prev = session(1, "B", HOUR, HOUR + 20 * MINUTE, wall_minus_mono=BOOT_WALL)
    now_mono = HOUR + 50 * MINUTE  # 30 min after its end
    a = allow([prev], now_wall=BOOT_WALL + now_mono, now_mono=now_mono)
    assert not a.allowed and a.reason == "cooldown" and a.sessions_today == 1
    assert a.next_start_mono == pytest.approx(prev.end_mono + GAP_S)
    assert a.next_start_wall == pytest.approx(prev.end_wall + GAP_S)
    assert allow([prev], now_wall=BOOT_WALL + prev.end_mono + GAP_S, now_mono=prev.end_mono + GAP_S).allowed


def test_running_session_counts_as_ending_now():
    running = session(1, "B", HOUR, None, wall_minus_mono=BOOT_WALL)
    now_mono = 3 * HOUR
    a = allow([running], now_wall=BOOT_WALL + now_mono, now_mono=now_mono)
    assert not a.allowed and a.reason == "cooldown"
    assert a.next_start_mono == pytest.approx(now_mono + GAP_S)


def test_daily_limit_and_cooldown_together_wait_for_the_later():
    sessions = three_sessions_today()
    last = sessions[-1]
    boot_wall = at("2026-01-05T23:10:00") - last.end_mono  # last ended 23:10
    sessions = [session(s.id, "B", s.start_mono, s.end_mono, wall_minus_mono=boot_wall) for s in sessions]
    now_mono = last.end_mono + 20 * MINUTE  # 23:30
    a = allow(sessions, now_wall=boot_wall + now_mono, now_mono=now_mono)
    assert a.reason == "daily_limit"
    assert a.next_start_wall == pytest.approx(at("2026-01-06T00:10:00"))


# --- restarts, reboots and wall-clock jumps ------------------------------------------------


@pytest.mark.parametrize("wall_jump_s", [-2 * DAY, -HOUR, 0.0, 2 * HOUR, 3 * DAY])
def test_gap_enforced_across_a_daemon_restart_whatever_the_wall_clock_says(wall_jump_s):
    prev = session(1, "B", HOUR, HOUR + 20 * MINUTE, wall_minus_mono=BOOT_WALL)
    now_mono = prev.end_mono + 30 * MINUTE  # same boot, daemon restarted meanwhile
    a = allow([prev], now_wall=BOOT_WALL + now_mono + wall_jump_s, now_mono=now_mono, synced=wall_jump_s == 0)
    assert not a.allowed and a.reason == "cooldown"
    assert a.next_start_mono == pytest.approx(prev.end_mono + GAP_S)
    later = prev.end_mono + GAP_S
    assert allow([prev], now_wall=BOOT_WALL + later + wall_jump_s, now_mono=later, synced=wall_jump_s == 0).allowed


def test_gap_after_a_reboot_without_a_synchronised_clock_runs_from_the_boot():
    # previous boot "A": the record says the session ended 5 h ago, but the clock is unsynced
    prev = session(1, "A", HOUR, HOUR + 20 * MINUTE, wall_minus_mono=BOOT_WALL)
    now_wall = prev.end_wall + 5 * HOUR
    early = allow([prev], now_wall=now_wall, now_mono=10 * MINUTE, synced=False)
    assert not early.allowed and early.reason == "cooldown"
    assert early.next_start_mono == pytest.approx(GAP_S)
    assert allow([prev], now_wall=now_wall, now_mono=GAP_S, synced=False).allowed


def test_gap_after_a_reboot_with_a_synchronised_clock_uses_the_boot_offset():
    prev = session(1, "A", HOUR, HOUR + 20 * MINUTE, wall_minus_mono=BOOT_WALL)
    now_wall = prev.end_wall + 2 * HOUR
    a = allow([prev], now_wall=now_wall, now_mono=5 * MINUTE, synced=True)
    assert a.allowed
    too_soon = allow([prev], now_wall=prev.end_wall + 40 * MINUTE, now_mono=5 * MINUTE)
    assert not too_soon.allowed and too_soon.reason == "cooldown"


def test_record_walls_of_a_boot_that_never_synchronised_are_not_trusted():
    # boot A's clock was 1 day behind and never synced: its record claims it ended 25 h ago
    prev = session(1, "A", HOUR, HOUR + 20 * MINUTE, wall_minus_mono=BOOT_WALL - DAY, offset_known=False)
    now_wall = BOOT_WALL + prev.end_mono + 30 * MINUTE  # truly 30 min after it ended
    a = allow([prev], now_wall=now_wall, now_mono=5 * MINUTE, synced=True)
    assert not a.allowed and a.reason == "cooldown" and a.sessions_today == 1


def test_clock_behind_the_newest_record_is_not_trusted():
    prev = session(1, "A", HOUR, HOUR + 20 * MINUTE, wall_minus_mono=BOOT_WALL)
    now_wall = prev.end_wall + 5 * HOUR
    a = allow([prev], now_wall=now_wall, now_mono=5 * MINUTE, synced=True, newest=now_wall + 1)
    assert not a.allowed and a.reason == "cooldown"


def test_unsynchronised_clock_counts_a_rolling_26_hour_window():
    # one boot, three sessions 25 h, 20 h and 2 h ago by the monotonic clock; the wall clock
    # was set back by a week, so their recorded dates say nothing useful
    now_mono = 30 * HOUR
    starts = [now_mono - 25 * HOUR, now_mono - 20 * HOUR, now_mono - 2 * HOUR]
    sessions = [session(i + 1, "B", s, s + 20 * MINUTE, wall_minus_mono=BOOT_WALL) for i, s in enumerate(starts)]
    now_wall = BOOT_WALL + now_mono - 7 * DAY
    a = allow(sessions, now_wall=now_wall, now_mono=now_mono, synced=True)  # behind records
    assert not a.allowed and a.reason == "daily_limit" and a.sessions_today == 3
    assert a.next_start_mono == pytest.approx(now_mono + MAX_LOCAL_DAY_S - 25 * HOUR)
    later = allow(sessions, now_wall=now_wall + HOUR, now_mono=a.next_start_mono, synced=False)
    assert later.allowed and later.sessions_today == 2


def test_sessions_recorded_in_the_future_count_for_today():
    # clock set back 2 days after three sessions; nothing proves they are older than 26 h
    sessions = three_sessions_today()
    now_mono = 12 * HOUR
    a = allow(sessions, now_wall=BOOT_WALL + now_mono - 2 * DAY, now_mono=now_mono, synced=False)
    assert not a.allowed and a.reason == "daily_limit"


def test_sessions_of_an_unplaceable_boot_count_until_a_new_day_after_this_boot():
    # boot A never saw a synced clock: its 3 sessions count as today (they may be)...
    old = [
        session(i + 1, "A", s, s + 20 * MINUTE, wall_minus_mono=BOOT_WALL - 3 * DAY, offset_known=False)
        for i, s in enumerate([HOUR, 4 * HOUR, 8 * HOUR])
    ]
    boot_wall = at("2026-01-05T08:00:00")
    now_mono = 3 * HOUR
    a = allow(old, now_wall=boot_wall + now_mono, now_mono=now_mono)
    assert not a.allowed and a.reason == "daily_limit"
    # ...but the next day they are at least a day old
    now_mono = 17 * HOUR  # 01:00 on the 6th
    assert allow(old, now_wall=boot_wall + now_mono, now_mono=now_mono).allowed


def test_a_reboot_between_two_sessions_proves_the_earlier_one_older_by_the_uptime():
    """Chronology across reboots, to the second: session 1 (boot A) ended before session 2 (boot C)
    started, and boot C had been up `c_uptime_s` by then, so session 1 is at least that much older
    than session 2. No clock is trusted here; only this bound takes session 1 out of the 26 h
    window, and it must do so exactly when the bound says, not a minute early."""
    now_mono = 2 * HOUR  # this boot ("N") has been up 2 h
    wanted_age_s = MAX_LOCAL_DAY_S - 30.0  # session 1's start age: 30 s inside
    c_uptime_s = wanted_age_s - now_mono - 40 * MINUTE  # the 40 min: both sessions' 20 min
    first = session(1, "A", HOUR, HOUR + 20 * MINUTE, wall_minus_mono=BOOT_WALL, offset_known=False)
    second = session(2, "C", c_uptime_s, c_uptime_s + 20 * MINUTE, wall_minus_mono=BOOT_WALL, offset_known=False)
    now_wall = BOOT_WALL + 3 * DAY
    a = allow([first, second], now_wall=now_wall, now_mono=now_mono, boot="N", synced=False, per_day=2)
    assert not a.allowed and a.reason == "daily_limit" and a.sessions_today == 2
    assert a.next_start_mono == pytest.approx(now_mono + 30.0, abs=1e-6)
    later = allow(
        [first, second], now_wall=now_wall + 30.0, now_mono=now_mono + 30.0, boot="N", synced=False, per_day=2
    )
    assert later.allowed and later.sessions_today == 1


def test_an_impossible_monotonic_time_in_this_boot_counts_as_now():
    """A record of this boot whose end time is not a usable number (NaN, minus infinity) ends,
    for the cool-down, now: never 'long ago'."""
    for bad_end in (float("nan"), float("-inf"), float("inf")):
        prev = session(1, "B", HOUR, HOUR + 20 * MINUTE, wall_minus_mono=BOOT_WALL)
        prev = replace(prev, end_mono=bad_end)
        now_mono = 5 * HOUR
        a = allow([prev], now_wall=BOOT_WALL + now_mono, now_mono=now_mono)
        assert not a.allowed and a.reason == "cooldown"
        assert a.next_start_mono == pytest.approx(now_mono + GAP_S)


def test_a_short_session_of_an_earlier_boot_is_placed_to_the_half_second():
    """A session of 0.5 s in a boot nothing places in time: its start is at least its end's age
    plus 0.5 s old, not a whole second."""
    first = session(1, "X", HOUR, HOUR + 0.5, wall_minus_mono=BOOT_WALL, offset_known=False)
    now_mono = MAX_LOCAL_DAY_S - 0.25 - 0.5  # start age 26 h - 0.25 s: still counts
    a = allow([first], now_wall=BOOT_WALL + 3 * DAY, now_mono=now_mono, boot="N", synced=False, per_day=1)
    assert not a.allowed and a.reason == "daily_limit"
    assert a.next_start_mono == pytest.approx(now_mono + 0.25, abs=1e-6)


def test_a_truncated_history_gives_the_same_answer():
    sessions = [
        session(i + 1, "B", i * 5 * HOUR, i * 5 * HOUR + 20 * MINUTE, wall_minus_mono=BOOT_WALL) for i in range(40)
    ]
    now_mono = sessions[-1].end_mono + 2 * HOUR
    full = allow(sessions, now_wall=BOOT_WALL + now_mono, now_mono=now_mono, synced=False)
    newest = allow(sessions[-32:], now_wall=BOOT_WALL + now_mono, now_mono=now_mono, synced=False)
    assert full == newest


@pytest.mark.parametrize(
    "bad, named",
    [
        ({"now_wall": float("nan")}, "now_wall"),
        ({"now_mono": float("inf")}, "now_mono"),
        ({"per_day": 0}, "sessions_per_day"),
        ({"per_day": 2.5}, "sessions_per_day"),
        ({"per_day": True}, "sessions_per_day"),
        ({"gap_s": -1.0}, "min_gap_s"),
        ({"gap_s": float("nan")}, "min_gap_s"),
        ({"gap_s": float("inf")}, "min_gap_s"),
        ({"newest": float("nan")}, "newest_record_wall"),
    ],
)
def test_nonsense_inputs_are_refused_naming_the_input(bad, named):
    kwargs = {"now_wall": BOOT_WALL, "now_mono": 10.0, **bad}
    with pytest.raises(ValueError, match=f"limits: {named} must be"):
        allow([], **kwargs)


def test_a_zero_gap_is_a_valid_limit():
    prev = session(1, "B", HOUR, HOUR + 20 * MINUTE, wall_minus_mono=BOOT_WALL)
    now_mono = prev.end_mono + 0.25
    assert allow([prev], now_wall=BOOT_WALL + now_mono, now_mono=now_mono, gap_s=0.0).allowed


def test_the_gap_is_kept_to_the_second_right_after_a_session_and_just_before_it_ends():
    """The cool-down runs from the end of the previous session exactly: half a second after it
    ends, and half a second before the gap is over, the next start is at end + gap."""
    prev = session(1, "B", HOUR, HOUR + 20 * MINUTE, wall_minus_mono=BOOT_WALL)
    for now_mono in (prev.end_mono + 0.5, prev.end_mono + GAP_S - 0.5):
        a = allow([prev], now_wall=BOOT_WALL + now_mono, now_mono=now_mono)
        assert not a.allowed and a.reason == "cooldown"
        assert a.next_start_mono == pytest.approx(prev.end_mono + GAP_S, abs=1e-6)
        assert a.next_start_wall == pytest.approx(prev.end_wall + GAP_S, abs=1e-6)


def test_a_synchronised_clock_across_a_reboot_keeps_a_2_s_tolerance():
    """A session of an earlier boot is placed in time by that boot's clock offset, less 2 s of
    tolerance: never a moment earlier than that allows."""
    prev = session(1, "A", HOUR, HOUR + 20 * MINUTE, wall_minus_mono=BOOT_WALL)
    now_wall = prev.end_wall + 30 * MINUTE
    a = allow([prev], now_wall=now_wall, now_mono=5 * MINUTE, synced=True)
    assert not a.allowed and a.reason == "cooldown"
    assert a.next_start_wall == pytest.approx(prev.end_wall + GAP_S + 2.0, abs=1e-6)


def test_a_clock_exactly_at_the_newest_record_is_trusted():
    prev = session(1, "A", HOUR, HOUR + 20 * MINUTE, wall_minus_mono=BOOT_WALL)
    now_wall = prev.end_wall + 2 * HOUR
    assert allow([prev], now_wall=now_wall, now_mono=5 * MINUTE, synced=True, newest=now_wall).allowed


def test_next_start_is_the_local_midnight_when_utc_is_still_on_the_previous_day():
    # 00:30 in Berlin on the 6th is 23:30 UTC on the 5th: 'today' and 'midnight' are Berlin's
    boot_wall = at("2026-01-06T00:00:00", BERLIN)
    sessions = [session(1, "B", 60.0, 120.0, wall_minus_mono=boot_wall)]
    now_mono = 30 * MINUTE
    a = allow(sessions, now_wall=boot_wall + now_mono, now_mono=now_mono, per_day=1, gap_s=0.0, tz=BERLIN)
    assert not a.allowed and a.reason == "daily_limit"
    assert a.next_start_wall == at("2026-01-07T00:00:00", BERLIN)


def test_a_session_recorded_today_counts_even_when_its_age_places_it_before_today():
    """A boot whose clock was never set (and ran a day fast) recorded a session 'today'. All that
    is proven is that it is older than this boot (up since yesterday 22:00); its recorded date
    still counts, since the true one cannot be known."""
    now_wall = at("2026-01-05T08:00:00")
    now_mono = 10 * HOUR
    prev = session(1, "A", HOUR, HOUR + 20 * MINUTE, wall_minus_mono=at("2026-01-05T05:00:00"), offset_known=False)
    a = allow([prev], now_wall=now_wall, now_mono=now_mono, per_day=1)
    assert not a.allowed and a.reason == "daily_limit" and a.sessions_today == 1


def test_within_an_earlier_boot_the_monotonic_time_between_sessions_counts():
    """Boot X ran two sessions 4 h apart (by its monotonic clock); nothing places boot X in time.
    The first is at least 4 h 20 min older than the second's start, and that takes it out of the
    26 h window exactly when the bound says."""
    now_mono = 2 * HOUR
    second_start_age_s = now_mono + 20 * MINUTE  # boot X is older than this boot
    first_start_age_s = MAX_LOCAL_DAY_S - 30.0  # 30 s inside the window
    between_s = first_start_age_s - second_start_age_s - 20 * MINUTE  # end of 1st .. start of 2nd
    first = session(1, "X", HOUR, HOUR + 20 * MINUTE, wall_minus_mono=BOOT_WALL, offset_known=False)
    second_start = first.end_mono + between_s
    second = session(2, "X", second_start, second_start + 20 * MINUTE, wall_minus_mono=BOOT_WALL, offset_known=False)
    a = allow([first, second], now_wall=BOOT_WALL + 3 * DAY, now_mono=now_mono, boot="N", synced=False, per_day=2)
    assert not a.allowed and a.reason == "daily_limit" and a.sessions_today == 2
    assert a.next_start_mono == pytest.approx(now_mono + 30.0, abs=1e-6)


# --- property: a distorted wall clock never allows what the true timeline refuses ---------

TIME_ZONES = [UTC, BERLIN, ZoneInfo("America/New_York"), ZoneInfo("Australia/Lord_Howe")]
EPOCHS = [at("2026-03-27T00:00:00"), at("2026-10-23T00:00:00"), at("2026-01-05T00:00:00")]


@dataclass
class Boot:
    boot_id: str
    start_true: float  # true epoch second at which its monotonic clock was 0
    # (from_mono, wall error s, synced) in mono order; the first starts at 0
    clock: list[tuple[float, float, bool]]
    end_mono: float = 0.0

    def error_at(self, mono: float) -> tuple[float, bool]:
        error_s, synced = self.clock[0][1:]
        for from_mono, seg_error, seg_synced in self.clock:
            if mono >= from_mono:
                error_s, synced = seg_error, seg_synced
        return error_s, synced

    def wall(self, mono: float) -> float:
        return self.start_true + mono + self.error_at(mono)[0]

    def offset_known_by(self, mono: float) -> bool:
        return any(synced and from_mono <= mono for from_mono, _, synced in self.clock)


@dataclass
class TrueSession:
    boot: Boot
    start_mono: float
    end_mono: float | None  # true lamp-off (None: running now)
    recorded_end_mono: float | None  # >= true end (a crash is closed at checkpoint + 5 s)


@dataclass
class Timeline:
    tz: dt.tzinfo
    boots: list[Boot] = field(default_factory=list)
    sessions: list[TrueSession] = field(default_factory=list)
    now_mono: float = 0.0
    per_day: int = 3
    gap_s: float = GAP_S

    @property
    def now_boot(self) -> Boot:
        return self.boots[-1]

    def true_now(self) -> float:
        return self.now_boot.start_true + self.now_mono


def short_or_long(short_s: float, long_s: float, min_s: float = 1.0):
    """Durations biased towards the short ones, where the interesting cases hide."""
    return st.one_of(st.floats(min_s, short_s), st.floats(short_s, long_s))


def clock_segments(draw, kind: str, dur) -> list[tuple[float, float, bool]]:
    """How one boot's wall clock behaved: 'correct', 'never_synced', 'synced_soon' (typical:
    fake-hwclock time until NTP answers), 'synced_after_a_while', or 'messy' (manual sets)."""
    if kind == "correct":
        return [(0.0, 0.0, True)]
    errors = st.one_of(
        st.just(0.0), st.floats(-3 * DAY, -MINUTE), st.floats(-3 * DAY, 3 * DAY), st.floats(-2 * HOUR, 2 * HOUR)
    )
    segments = [(0.0, draw(errors), False)]
    if kind == "never_synced":
        return segments
    if kind == "synced_soon":
        return segments + [(draw(st.floats(0.5, 5.0)), 0.0, True)]
    if kind == "synced_after_a_while":
        return segments + [(draw(dur(5 * MINUTE, 30 * HOUR)), 0.0, True)]
    for from_mono in sorted(draw(st.lists(dur(10 * MINUTE, 30 * HOUR), max_size=3))):
        synced = draw(st.booleans())
        segments.append((from_mono, 0.0 if synced else draw(errors), synced))
    return segments


ANY_CLOCK = ("never_synced", "synced_soon", "synced_after_a_while", "messy")


@st.composite
def timelines(draw, clocks: str = "any", hurried: bool = False) -> Timeline:
    """A true history over 1-4 boots and the clocks each boot had.

    clocks: 'any'; 'correct' (every boot synchronised from its start); 'unsynced_then_synced'
    (the earlier boots never had a synchronised clock, the current one has: their record walls
    are wrong but look trustworthy). hurried: only short uptimes, gaps and downtimes
    (reboots soon after a session, where the gap rule bites)."""

    def dur(short_s: float, long_s: float, min_s: float = 1.0):
        return st.floats(min_s, short_s) if hurried else short_or_long(short_s, long_s, min_s)

    t = Timeline(
        tz=draw(st.sampled_from(TIME_ZONES)),
        per_day=draw(st.integers(1, 3)),
        gap_s=draw(st.sampled_from([30 * MINUTE, GAP_S, 90 * MINUTE])),
    )
    true_time = draw(st.sampled_from(EPOCHS)) + draw(st.floats(0, 4 * DAY))
    n_boots = draw(st.integers(2 if clocks == "unsynced_then_synced" else 1, 4))
    for index in range(n_boots):
        last = index == n_boots - 1
        kind = {
            "any": draw(st.sampled_from(ANY_CLOCK)),
            "correct": "correct",
            "unsynced_then_synced": "synced_soon" if last else "never_synced",
        }[clocks]
        boot = Boot(f"boot{index}", true_time, clock_segments(draw, kind, dur))
        t.boots.append(boot)
        mono = draw(dur(10 * MINUTE, 6 * HOUR, min_s=5))
        no_sessions_yet = hurried and last and draw(st.booleans())  # a start right after boot
        for _ in range(0 if no_sessions_yet else draw(st.integers(0, 4))):
            duration_s = draw(st.floats(30, 25 * MINUTE))
            crashed = draw(st.booleans())
            recorded_s = duration_s + (draw(st.floats(0, 5)) if crashed else 0.0)
            t.sessions.append(TrueSession(boot, mono, mono + duration_s, mono + recorded_s))
            mono += recorded_s + draw(dur(90 * MINUTE, 10 * HOUR))
        if last and t.sessions and t.sessions[-1].boot is boot and draw(st.booleans()):
            running = t.sessions[-1]  # still running now
            running.end_mono = running.recorded_end_mono = None
            mono = running.start_mono + draw(st.floats(1, 20 * MINUTE))
        boot.end_mono = mono
        true_time += mono + draw(dur(30 * MINUTE, 2 * DAY, min_s=30))  # downtime
    t.now_mono = t.now_boot.end_mono
    return t


def truly_allowed(t: Timeline) -> bool:
    """The rules applied to the true timeline: the oracle."""
    now = t.true_now()
    today = dt.datetime.fromtimestamp(now, t.tz).date()
    today_count = sum(
        1 for s in t.sessions if dt.datetime.fromtimestamp(s.boot.start_true + s.start_mono, t.tz).date() == today
    )
    gap_ok = all(s.end_mono is not None and now - (s.boot.start_true + s.end_mono) >= t.gap_s for s in t.sessions)
    return today_count < t.per_day and gap_ok


def journal_view(t: Timeline) -> tuple[list[SessionRecord], float | None]:
    """What the journal holds: walls as the clock showed them, offsets of synced boots."""
    records, walls = [], []
    for id_, s in enumerate(t.sessions, start=1):
        boot = s.boot
        seen_until = t.now_mono if boot is t.now_boot else boot.end_mono
        known = boot.offset_known_by(seen_until)
        end_wall = None if s.recorded_end_mono is None else boot.wall(s.recorded_end_mono)
        records.append(
            SessionRecord(
                id_,
                boot.boot_id,
                boot.wall(s.start_mono),
                s.start_mono,
                end_wall,
                s.recorded_end_mono,
                0.0,
                None if end_wall is None else "completed",
                None,
                None,
                boot.start_true if known else None,
            )
        )
        walls += [boot.wall(s.start_mono)] + ([end_wall] if end_wall is not None else [])
    for boot in t.boots:
        seen_until = t.now_mono if boot is t.now_boot else boot.end_mono
        walls += [boot.wall(m) for m, _, synced in boot.clock if synced and m <= seen_until]
    return records, max(walls, default=None)


def distorted_allowance(t: Timeline):
    records, newest = journal_view(t)
    now_error_s, now_synced = t.now_boot.error_at(t.now_mono)
    return start_allowance(
        records,
        now_wall=t.true_now() + now_error_s,
        now_mono=t.now_mono,
        boot_id=t.now_boot.boot_id,
        clock_synced=now_synced,
        newest_record_wall=newest,
        sessions_per_day=t.per_day,
        min_gap_s=t.gap_s,
        tz=t.tz,
    )


@settings(max_examples=500, deadline=None)
@given(st.one_of(timelines(), timelines(hurried=True), timelines(clocks="unsynced_then_synced", hurried=True)))
def test_a_wrong_wall_clock_never_allows_what_the_true_timeline_refuses(t):
    a = distorted_allowance(t)
    if a.allowed:
        assert truly_allowed(t)


def near_a_boundary(t: Timeline, margin_s: float = 10.0) -> bool:
    now = t.true_now()
    for s in t.sessions:
        start = s.boot.start_true + s.start_mono
        local = dt.datetime.fromtimestamp(start, t.tz)
        midnight = dt.datetime.combine(local.date(), dt.time(0), tzinfo=t.tz).timestamp()
        next_midnight = dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(0), tzinfo=t.tz).timestamp()
        if min(start - midnight, next_midnight - start) < margin_s:
            return True
        if s.end_mono is not None and abs(now - (s.boot.start_true + s.recorded_end_mono) - t.gap_s) < margin_s:
            return True
    return False


@settings(max_examples=300, deadline=None)
@given(timelines(clocks="correct"))
def test_with_a_correct_clock_the_answer_is_the_true_one(t):
    assume(not near_a_boundary(t))
    assume(all(s.recorded_end_mono == s.end_mono for s in t.sessions))
    assert distorted_allowance(t).allowed == truly_allowed(t)


# --- the daily heat-dose cap (issue 13) ------------------------------------------------------


def _with_doses(sessions, doses):
    from dataclasses import replace

    return [replace(s, dose_cem43=d) for s, d in zip(sessions, doses, strict=True)]


def test_daily_dose_cap_refuses_once_todays_sessions_reach_it_until_midnight():
    sessions = _with_doses(three_sessions_today()[:2], [0.6, 0.5])  # 1.1 CEM43 min today
    now_mono = 12 * HOUR
    common = dict(
        sessions=sessions,
        now_wall=BOOT_WALL + now_mono,
        now_mono=now_mono,
        boot_id="B",
        clock_synced=True,
        newest_record_wall=BOOT_WALL + 4 * HOUR + 20 * MINUTE,
        sessions_per_day=3,
        min_gap_s=GAP_S,
        tz=UTC,
    )
    assert start_allowance(**common).allowed  # no cap: allowed
    assert start_allowance(**common, max_daily_dose_cem43=1.2).allowed  # below the cap
    capped = start_allowance(**common, max_daily_dose_cem43=1.1)
    assert not capped.allowed and capped.reason == "daily_dose"
    assert capped.next_start_wall == at("2026-01-06T00:00:00")


def test_daily_dose_of_sessions_recorded_before_doses_counts_as_nothing_and_yesterday_not_at_all():
    yesterday = session(1, "A", 1 * HOUR, 1 * HOUR + 20 * MINUTE, wall_minus_mono=BOOT_WALL - 86400)
    old = session(2, "B", 1 * HOUR, 1 * HOUR + 20 * MINUTE, wall_minus_mono=BOOT_WALL)  # no dose
    sessions = _with_doses([yesterday], [5.0]) + [old]
    now_mono = 12 * HOUR
    a = _dose_capped(sessions, now_mono=now_mono, now_wall=BOOT_WALL + now_mono, synced=True, tz=UTC)
    assert a.allowed and a.sessions_today == 1


def _dose_capped(sessions, *, now_mono: float, now_wall: float, synced: bool, tz: dt.tzinfo):
    return start_allowance(
        sessions,
        now_wall=now_wall,
        now_mono=now_mono,
        boot_id="B",
        clock_synced=synced,
        newest_record_wall=None,
        sessions_per_day=3,
        min_gap_s=GAP_S,
        tz=tz,
        max_daily_dose_cem43=1.0,
    )


def test_daily_dose_cap_without_a_trusted_clock_waits_until_the_newest_counted_session_leaves_26_hours():
    sessions = _with_doses(three_sessions_today()[:2], [0.6, 0.5])  # started 11 h and 8 h ago
    now_mono = 12 * HOUR
    a = _dose_capped(sessions, now_mono=now_mono, now_wall=BOOT_WALL + now_mono, synced=False, tz=UTC)
    assert not a.allowed and a.reason == "daily_dose"
    assert a.next_start_mono == pytest.approx(now_mono + MAX_LOCAL_DAY_S - 8 * HOUR)


def test_daily_dose_cap_waits_for_midnight_in_the_lamps_time_zone():
    sessions = _with_doses(three_sessions_today()[:2], [0.6, 0.5])
    now_mono = 12 * HOUR
    a = _dose_capped(sessions, now_mono=now_mono, now_wall=BOOT_WALL + now_mono, synced=True, tz=BERLIN)
    assert not a.allowed and a.reason == "daily_dose"
    assert a.next_start_wall == at("2026-01-06T00:00:00", BERLIN)
