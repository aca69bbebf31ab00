"""Daily session limits (SR-7): sessions per calendar day and the cool-down gap. Pure logic.

No I/O and no clock reads: the caller passes the journal's sessions and the current clocks.

The rules
---------
1. At most `sessions_per_day` sessions may start on one local calendar day.
2. A session may start only `min_gap_s` after the END of the previous session. A session that
   is still running counts as ending now. A session cut off by a crash ends, for this rule, one
   checkpoint interval after its last checkpoint (see `journal.close_interrupted`).
3. When the clocks leave any doubt, irlamp counts conservatively: it never allows a start that
   the same history would be refused under a correct clock. It may refuse more.

A Raspberry Pi has no real-time clock: after a boot its wall clock is wrong until a time server
sets it, and anyone may set it back or forward. So irlamp never takes a wall time written in a
record at face value. For every session it works out a LOWER BOUND on the true time elapsed
since the session started and since it ended (its "age"):

- Same boot as now: `now_mono - mono`. The monotonic clock never jumps, whatever the wall
  clock does, and it survives daemon restarts within one boot.
- Another boot: at least `now_mono` (that session is older than this boot, and this boot has
  been up for `now_mono` seconds). More only if the wall clock can be trusted now (it is
  synchronised AND not behind the newest wall time in the journal) AND the session's boot once
  saw a synchronised clock, so its records' true time is known (`offset + mono`, see
  `journal.note_clock_synced`; this corrects records written before the clock was set). Then
  the age is `now_wall - (offset + mono)`, less a 2 s tolerance.
- Chronology: sessions happen one after another in id order, so each is at least as old as
  the next one: within one boot, older by at least the monotonic time between them; across a
  reboot, by at least the later boot's monotonic time (its uptime) at the later session.

Counting "today":
- If the wall clock can be trusted now, a session counts for today when the earliest start its
  age allows (`now_wall - age`) falls on today's local date, or when its recorded start is on
  today's date. For a session of this boot that is its start corrected by the monotonic clock.
- Otherwise today's date is unknown, and every session that may have started within the last
  26 hours counts (a local day lasts at most 25 h, at the end of summer time; 1 h margin).
  A session recorded "in the future" (clock set back) is covered by this: it counts unless
  monotonic time proves it is older than 26 h.

Consequence: without a time server, the calendar day becomes a rolling 26 h window, and after a
reboot the cool-down (and, for sessions the journal cannot place in time, the day count) runs
from the boot.

`next_start_wall` / `next_start_mono` say when a start will be allowed if nothing else happens
(for the status display; a running session is assumed to end now). When the daily limit blocks,
that is the next local midnight (with an untrusted clock: when enough sessions leave the 26 h
window), or later if the gap also blocks.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Sequence, TypeGuard

from controller.core.records import SessionRecord

MAX_LOCAL_DAY_S = 26 * 3600.0
CLOCK_TOLERANCE_S = 2.0


@dataclass(frozen=True)
class Allowance:
    allowed: bool
    reason: str | None  # None | 'daily_limit' | 'daily_dose' | 'cooldown'
    sessions_today: int
    next_start_wall: float | None  # None when a start is allowed now
    next_start_mono: float | None


@dataclass(frozen=True)
class _Ages:
    session: SessionRecord
    start_age_s: float  # lower bounds on the true seconds elapsed since start / end
    end_age_s: float


def _is_finite_number(value: object) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _require(name: str, value: object) -> float:
    if _is_finite_number(value):
        return float(value)
    raise ValueError(f"limits: {name} must be a finite number, got {value!r}")


def _local_date(wall: float, tz: dt.tzinfo | None) -> dt.date | None:
    try:
        return dt.datetime.fromtimestamp(wall, tz).date()
    except (OverflowError, OSError, ValueError):
        return None


def _next_midnight_wall(now_wall: float, tz: dt.tzinfo | None) -> float:
    today = _local_date(now_wall, tz)
    if today is None:
        return now_wall + 86400.0
    midnight = dt.datetime.combine(today + dt.timedelta(days=1), dt.time(0), tzinfo=tz)
    return max(midnight.timestamp(), now_wall)


def _age_bounds(
    sessions: Sequence[SessionRecord], *, now_wall: float, now_mono: float, boot_id: str, wall_trusted: bool
) -> list[_Ages]:
    def direct_age_s(session: SessionRecord, mono: float | None) -> float:
        if session.boot_id == boot_id:
            if mono is None or not _is_finite_number(mono):
                return 0.0  # still running (or unreadable): it ends now
            return max(0.0, now_mono - mono)
        age_s = now_mono
        offset_s = session.boot_clock_offset_s
        if wall_trusted and _is_finite_number(offset_s) and _is_finite_number(mono):
            age_s = max(age_s, now_wall - (offset_s + mono) - CLOCK_TOLERANCE_S)
        return age_s

    def mono_step_s(
        earlier: SessionRecord, earlier_mono: float | None, later: SessionRecord, later_mono: float | None
    ) -> float:
        """Lower bound on the true seconds from the earlier instant to the later one."""
        if not _is_finite_number(later_mono):
            return 0.0
        if earlier.boot_id != later.boot_id:  # a reboot lies between: at least the uptime
            return max(0.0, later_mono)  # of the later boot at the later instant
        if _is_finite_number(earlier_mono):
            return max(0.0, later_mono - earlier_mono)
        return 0.0

    result: list[_Ages] = []
    later: _Ages | None = None
    for session in sorted(sessions, key=lambda s: s.id, reverse=True):
        end_age_s = direct_age_s(session, session.end_mono)
        if later is not None:  # this session ended before the later one started
            end_age_s = max(
                end_age_s,
                later.start_age_s + mono_step_s(session, session.end_mono, later.session, later.session.start_mono),
            )
        start_age_s = max(
            direct_age_s(session, session.start_mono),
            end_age_s + mono_step_s(session, session.start_mono, session, session.end_mono),
        )
        later = _Ages(session, start_age_s, end_age_s)
        result.append(later)
    result.reverse()
    return result


def start_allowance(
    sessions: Sequence[SessionRecord],
    *,
    now_wall: float,
    now_mono: float,
    boot_id: str,
    clock_synced: bool,
    newest_record_wall: float | None,
    sessions_per_day: int,
    min_gap_s: float,
    tz: dt.tzinfo | None = None,
    max_daily_dose_cem43: float | None = None,
) -> Allowance:
    """May a session start now? See the module docstring for the rules.

    `sessions`: at least every session that may have started in the last 26 h, and the newest
    one (`Journal.sessions_for_limits()`); any order. `tz`: local time zone (None: the system's).
    `max_daily_dose_cem43`: the day's heat-dose cap (None: none); the sessions counted for today
    are summed (a session without a recorded dose adds 0) and a start is refused ('daily_dose')
    once the sum reaches it, until the counted sessions leave the day as for the session count.
    Raises ValueError for non-finite clocks or nonsensical limits."""
    now_wall, now_mono = _require("now_wall", now_wall), _require("now_mono", now_mono)
    min_gap_s = _require("min_gap_s", min_gap_s)
    if min_gap_s < 0:
        raise ValueError(f"limits: min_gap_s must be >= 0, got {min_gap_s}")
    if isinstance(sessions_per_day, bool) or not isinstance(sessions_per_day, int) or sessions_per_day < 1:
        raise ValueError(f"limits: sessions_per_day must be an integer >= 1, got {sessions_per_day!r}")
    if newest_record_wall is not None:
        newest_record_wall = _require("newest_record_wall", newest_record_wall)

    wall_trusted = (
        bool(clock_synced)
        and _local_date(now_wall, tz) is not None
        and (newest_record_wall is None or now_wall >= newest_record_wall)
    )
    ages = _age_bounds(sessions, now_wall=now_wall, now_mono=now_mono, boot_id=boot_id, wall_trusted=wall_trusted)

    gap_wait_s = max([0.0] + [min_gap_s - a.end_age_s for a in ages])

    if wall_trusted:
        today = _local_date(now_wall, tz)
        counted = [
            a
            for a in ages
            if _local_date(now_wall - a.start_age_s, tz) in (today, None)
            or (_is_finite_number(a.session.start_wall) and _local_date(a.session.start_wall, tz) == today)
        ]
    else:
        counted = [a for a in ages if a.start_age_s < MAX_LOCAL_DAY_S]
    sessions_today = len(counted)

    dose_today = sum(a.session.dose_cem43 or 0.0 for a in counted)
    dose_reached = max_daily_dose_cem43 is not None and dose_today >= max_daily_dose_cem43
    day_wait_s = 0.0
    if dose_reached and not wall_trusted:  # every counted session must leave the 26 h window
        day_wait_s = MAX_LOCAL_DAY_S - min(a.start_age_s for a in counted)
    elif dose_reached:
        day_wait_s = _next_midnight_wall(now_wall, tz) - now_wall
    if sessions_today >= sessions_per_day:
        if wall_trusted:
            day_wait_s = max(day_wait_s, _next_midnight_wall(now_wall, tz) - now_wall)
        else:  # the oldest counted sessions leave the 26 h window first
            oldest_first = sorted((a.start_age_s for a in counted), reverse=True)
            must_leave = sessions_today - sessions_per_day + 1
            day_wait_s = max(day_wait_s, MAX_LOCAL_DAY_S - oldest_first[must_leave - 1])

    if sessions_today >= sessions_per_day:
        reason = "daily_limit"
    elif dose_reached:
        reason = "daily_dose"
    elif gap_wait_s > 0:
        reason = "cooldown"
    else:
        return Allowance(True, None, sessions_today, None, None)
    wait_s = max(gap_wait_s, day_wait_s)
    return Allowance(False, reason, sessions_today, now_wall + wait_s, now_mono + wait_s)
