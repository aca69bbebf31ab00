"""Judges one sensor's samples: good value, doubt (lamp off for now) or a fault kind. Pure.

Rules, per sensor, evaluated at every control step:
  1. A new sample that failed (I/O error, driver timeout, chip-reported invalid value),
     is NaN, or is physically impossible is *doubt*: the lamp goes off at once.
     More than `retry_errors` such samples in a row latch a fault of that kind.
     ('missing' — the chip could not be opened — latches at once.)
  2. A read that has been busy for longer than `stale_s`, or is still busy when the last
     good sample is older than `stale_s`, is a hung bus: 'hang'.
  3. No good sample for longer than `stale_s` (reads complete but none is good, or the
     sampler stopped): 'stale'. Before the first good sample, the start-up grace
     (`startup_grace_s`) applies instead, and the fault is 'missing'.
  4. The last good sample older than `doubt_s` (about two sample periods) is doubt.
  5. The same good value, to the last bit, for `frozen_s` is 'frozen' (real sensors
     always show noise; see docs/safety.md for the numbers behind the windows).
  6. SR-15, graded doubt (only for the failure kinds in `doubt_kinds`, the distance
     sensor's 'unreliable': the chip measured but flags the measurement untrustworthy,
     or its ambient light is far too high). Such a sample is doubt at once (lamp off,
     `Verdict.unreliable` so the session can pause for it) but never counts towards
     the retry streak, and while the newest sample is such a doubt the `stale_s` rule
     waits for the longer `unreliable_after_s`. The fault 'unreliable' latches when no
     trustworthy sample has come for `unreliable_after_s`, or when more than
     `unreliable_share` of the samples of the last `unreliable_window_s` were doubted
     (judged once the sensor has been watched for a whole window).
  7. Idle-rate sampling: with no session the samplers read slower (controller/core/sampling.py).
     `stale_s`, `doubt_s`, `frozen_s` and the doubt-share window `unreliable_window_s` are
     stated for the full rate (`period_s`) and scale with the sampler's period: the same
     number of sample periods (a share of fewer samples would be noise, not a verdict). The slower of the
     sampler's period now and the newest sample's period counts, so neither switch
     (idle -> full on a button press, full -> idle after a session) makes an older sample
     look stale. `full_rate()` says whether a sample was read at the full rate.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, replace
from typing import Callable

from controller.core.readings import Sample, SensorFeed, value_of


@dataclass(frozen=True)
class SensorLimits:
    name: str  # 'distance' or 'skin'; fault codes are f'{name}_{kind}'
    stale_s: float
    doubt_s: float
    frozen_s: float
    retry_errors: int
    startup_grace_s: float
    plausible: Callable[[Sample], str | None]  # returns a failure kind or None
    frozen_exempt: Callable[[float], bool] = lambda value: False
    doubt_kinds: frozenset[str] = frozenset()  # failure kinds that are doubt, not a broken part
    unreliable_after_s: float = math.inf
    unreliable_window_s: float = 10.0
    unreliable_share: float = 1.0
    period_s: float = 0.0  # the full-rate sample period the time bounds are stated for (0: no scaling)

    def at_period(self, period_s: float | None) -> SensorLimits:
        """These limits for a sampler reading every `period_s` (rule 7)."""
        if not self.period_s or period_s is None or period_s <= self.period_s:
            return self
        factor = period_s / self.period_s
        return replace(
            self,
            stale_s=self.stale_s * factor,
            doubt_s=self.doubt_s * factor,
            frozen_s=self.frozen_s * factor,
            unreliable_window_s=self.unreliable_window_s * factor,
            period_s=period_s,
        )


@dataclass(frozen=True)
class Verdict:
    good: Sample | None  # the newest good sample when the sensor may be trusted now
    doubt: str | None = None  # why the lamp must be off for now (not latched)
    fault: str | None = None  # fault kind to latch ('io_error', 'frozen', ...)
    detail: str = ""
    unreliable: bool = False  # the doubt is the sensor's own "not trustworthy" (SR-15)


def sample_problem(lim: SensorLimits, sample: Sample) -> tuple[str | None, str]:
    """What is wrong with one sample by itself (rule 1 and rule 6): its failure kind and
    detail, or (None, '') for a good value. One definition, used by the judge and by the
    sampler's hazard check (controller/core/safety.py: distance_hazard, skin_hazard)."""
    if sample.error is not None:
        return sample.error, sample.detail
    if (
        sample.value is None
        or math.isnan(sample.value)
        or (sample.ambient_c is not None and math.isnan(sample.ambient_c))
    ):
        return "nan", "reading is not a number"
    kind = lim.plausible(sample)
    if kind is None:
        return None, ""
    if kind in lim.doubt_kinds:
        return kind, f"reading {sample.value!r} with ambient light {sample.ambient_rate_mcps} Mcps"
    return kind, f"implausible reading {sample.value!r}"


class SensorJudge:
    """Holds the little history one sensor needs (error streak, last good, frozen run)."""

    def __init__(self, limits: SensorLimits, start_s: float):
        self.limits = limits
        self.reset(start_s)

    def reset(self, now_s: float) -> None:
        """Forget history (after a fault is acknowledged): the sensor must prove itself again."""
        self.start_s = now_s
        self.seen_seq = -1
        self.error_streak = 0
        self.last_good: Sample | None = None
        self.frozen_value: float | None = None
        self.frozen_since_s = 0.0
        self.last_problem = ""
        self.last_sample_s = now_s
        self.doubting = False  # the newest sample was a doubt
        self.window: deque[tuple[float, bool]] = deque()  # (t_s, doubted) of recent samples
        self.window_doubts = 0
        self.samples_taken = 0  # counters for the session's record
        self.doubts_taken = 0
        self.latest: Sample | None = None  # newest sample, good or not

    def doubt_share(self) -> float:
        """Share of doubted samples in the current window (0 when empty)."""
        return self.window_doubts / len(self.window) if self.window else 0.0

    def full_rate(self, sample: Sample | None) -> bool:
        """Was `sample` read at the full rate (not the idle rate)?"""
        return sample is not None and (sample.period_s is None or sample.period_s <= self.limits.period_s)

    def limits_now(self, feed: SensorFeed) -> SensorLimits:
        """The limits for the slower of the sampler's period now and its newest sample's (rule 7)."""
        latest = self.latest if feed.latest is None else feed.latest
        periods = [p for p in (feed.period_s, latest.period_s if latest is not None else None) if p is not None]
        return self.limits.at_period(max(periods)) if periods else self.limits

    def judge(self, feed: SensorFeed, now_s: float) -> Verdict:
        lim = self.limits_now(feed)
        sample = feed.latest
        if sample is not None and sample.seq != self.seen_seq and sample.t_s >= self.start_s:
            self.seen_seq = sample.seq
            verdict = self._take(sample, lim)
            if verdict is not None:
                return verdict
        if feed.busy_since_s is not None:
            busy_s = now_s - feed.busy_since_s
            good_age_s = now_s - (self.last_good.t_s if self.last_good else self.start_s)
            if busy_s > lim.stale_s or good_age_s > lim.stale_s:
                return Verdict(
                    None,
                    fault="hang",
                    detail=f"read blocked for {busy_s:.2f} s, no good reading for {good_age_s:.2f} s",
                )
        # While fresh samples keep coming and say "not trustworthy", the longer doubt bound
        # replaces the stale rule; a sampler that stops delivering is still stale at stale_s.
        doubting = self.doubting and now_s - self.last_sample_s <= lim.stale_s
        if self.last_good is None:
            if doubting and now_s - self.start_s > max(lim.startup_grace_s, lim.unreliable_after_s):
                return Verdict(
                    None, fault="unreliable", detail=f"no trustworthy reading since start ({self.last_problem})"
                )
            if not doubting and now_s - self.start_s > lim.startup_grace_s:
                detail = self.last_problem or f"no reading within {lim.startup_grace_s:.1f} s of start"
                return Verdict(None, fault="missing", detail=detail)
            return Verdict(None, doubt=f"{lim.name}_not_ready", unreliable=doubting)
        age_s = now_s - self.last_good.t_s
        if doubting and age_s > lim.unreliable_after_s:
            return Verdict(
                None, fault="unreliable", detail=f"no trustworthy reading for {age_s:.2f} s ({self.last_problem})"
            )
        if not doubting and age_s > lim.stale_s:
            detail = f"no good reading for {age_s:.2f} s" + (f" ({self.last_problem})" if self.last_problem else "")
            return Verdict(None, fault="stale", detail=detail)
        if self.doubting:
            return Verdict(None, doubt=f"{lim.name}_unreliable", unreliable=True)
        if self.error_streak or age_s > lim.doubt_s:
            return Verdict(None, doubt=f"{lim.name}_doubt")
        return Verdict(self.last_good)

    def _take(self, sample: Sample, lim: SensorLimits) -> Verdict | None:
        """Account for one new sample; a Verdict when it decides this step by itself."""
        kind, detail = sample_problem(lim, sample)
        self.latest = sample
        self.last_sample_s = sample.t_s
        self.samples_taken += 1
        doubted = kind in lim.doubt_kinds
        self._count(sample.t_s, doubted, lim.unreliable_window_s)
        if doubted:
            self.doubting = True
            self.doubts_taken += 1
            self.last_problem = f"{kind}: {detail}"
            if sample.t_s - self.start_s >= lim.unreliable_window_s and self.doubt_share() > lim.unreliable_share:
                return Verdict(
                    None,
                    fault="unreliable",
                    detail=f"{self.window_doubts} of {len(self.window)} readings in "
                    f"{lim.unreliable_window_s:g} s not trustworthy ({detail})",
                )
            return None  # judge() applies the no-trustworthy bound and says "doubt"
        if kind is not None:
            self.error_streak += 1
            self.last_problem = f"{kind}: {detail}"
            if kind == "missing" or self.error_streak > lim.retry_errors:
                return Verdict(None, fault=kind, detail=detail)
            return Verdict(None, doubt=f"{lim.name}_{kind}")
        self.error_streak = 0
        self.doubting = False
        self.last_problem = ""
        self.last_good = sample
        if lim.frozen_exempt(value_of(sample)) or sample.value != self.frozen_value:
            self.frozen_value, self.frozen_since_s = sample.value, sample.t_s
        elif sample.t_s - self.frozen_since_s >= lim.frozen_s:
            return Verdict(
                None,
                fault="frozen",
                detail=f"value {sample.value!r} unchanged for {sample.t_s - self.frozen_since_s:.1f} s",
            )
        return None

    def _count(self, t_s: float, doubted: bool, window_s: float) -> None:
        """Slide the doubt-share window to end at `t_s` and add this sample."""
        window = self.window
        window.append((t_s, doubted))
        self.window_doubts += doubted
        while window and window[0][0] < t_s - window_s:
            self.window_doubts -= window.popleft()[1]
