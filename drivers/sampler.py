"""Reads one sensor on its own schedule and publishes timestamped samples.

The control loop never calls a sensor: it looks at `feed()`, which is always instant.
Reads run on the sampler's own worker thread, so a read that blocks forever (a locked
I2C bus blocks inside the kernel and cannot be interrupted) only makes the feed show
a read that has been busy too long; the loop notices and cuts the lamp.

Two rates (controller/core/sampling.py): with `idle_period_s` the sampler starts at that idle
rate; `set_full_rate(True)` switches to `full_period_s` and reads at once (the button's
press edge calls it), `set_full_rate(False)` goes back to idle. Each sample carries the
period its read began at, and the feed the period now, so the judge scales its bounds.

Two ways to drive it, same read path:
  - real time: `start()` runs a thread that reads every `period_s` (a source that waits
    for its own data-ready, like the VL53L0X, paces itself);
  - simulation: `step()` asks the worker for one read and waits for it to begin, then
    at most SIM_FINISH_GRACE_S of real time for it to end — a read still running then is
    a hung read, and later steps see it still busy until it returns.
The hazard fast path: with `hazard` (a pure rule function from controller/core/safety.py, the
same one the decision calls) and `on_hazard` (the guard's `cut`), a sample the rule calls
hazardous cuts the relay on this thread right after it is published, before the loop is
woken (`on_sample`) to decide and record why. It can only switch the lamp off. With
`wake_only_on_hazard` (both samplers of the daemon) `on_sample` is called only for such a
sample, and for one of the `quiet_hazards` (where the person is: too close, nobody there)
only when its cut switched the relay off. Every other sample waits for the loop's next tick,
which judges each sample published since its last step in order (`feed_since`,
Daemon._judge_missed): a wake-up of the loop per sample would cost CPU for nothing (issue 15).
Exceptions map to fault kinds: OSError -> io_error, RuntimeError -> timeout,
DistanceDoubtError -> unreliable (a doubt; its light rates stay in the sample),
SensorValueError -> out_of_range; anything else -> io_error with its type named.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Callable

from controller.core.readings import Sample, SensorFeed
from drivers.sensor_source import DistanceDoubtError, LightRates, SensorMissingError, SensorValueError

# Simulation: real seconds a read that has begun on the worker gets to finish before the
# simulator treats it as blocked (a simulated source only uses the worker while it hangs).
SIM_FINISH_GRACE_S = 0.05
# Samples kept for `feed_since`: the loop takes every sample published since its last step.
# At the full distance rate this covers 2 s of a loop that did not step (the guard has cut
# the relay by then); older ones are dropped, and the loop still judges the newest.
HISTORY_SAMPLES = 64
# Real time: a read due sooner than this starts at once. A source that paces itself (the
# VL53L0X waits for its own next measurement) is often due a fraction of a millisecond after
# the previous read returns; sleeping for that would only add a wake-up.
MIN_WAIT_S = 0.002

# -> (value, ambient_c or None, light rates or None)
ReadFn = Callable[[], tuple[float, float | None, LightRates | None]]


def classify(exc: BaseException) -> str:
    if isinstance(exc, SensorMissingError):
        return "missing"
    if isinstance(exc, DistanceDoubtError):
        return "unreliable"
    if isinstance(exc, SensorValueError):
        return "out_of_range"
    if isinstance(exc, OSError):
        return "io_error"
    if isinstance(exc, (RuntimeError, TimeoutError)):
        return "timeout"
    return "io_error"


class Sampler:
    def __init__(
        self,
        name: str,
        read: ReadFn,
        period_s: float,
        monotonic: Callable[[], float],
        on_sample: Callable[[], None] | None = None,
        sim_wait_s: float = 0.5,
        may_block: Callable[[], bool] = lambda: True,
        hazard: Callable[[Sample], str | None] | None = None,
        on_hazard: Callable[[str, float], bool] | None = None,
        idle_period_s: float | None = None,
        wake_only_on_hazard: bool = False,
        quiet_hazards: frozenset[str] = frozenset(),
    ):
        self.name = name
        self._read = read
        self.full_period_s = period_s
        self.idle_period_s = max(period_s, idle_period_s or period_s)
        self._full = self.idle_period_s == period_s
        self._due_base_s = monotonic()  # reads are due at base + n * period (n counts reads)
        self._due_n = 0
        self._wake = threading.Event()  # the real-time thread's sleep: a rate switch or stop ends it
        self._monotonic = monotonic
        self.on_sample = on_sample
        self.sim_wait_s = sim_wait_s
        self.may_block = may_block
        self.hazard = hazard
        self.on_hazard = on_hazard
        self.wake_only_on_hazard = wake_only_on_hazard
        self.quiet_hazards = quiet_hazards  # hazard reasons that wake the loop only if they cut
        self._latest: Sample | None = None
        self._history: deque[Sample] = deque(maxlen=HISTORY_SAMPLES)
        self._busy_since: float | None = None
        self._seq = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._request = threading.Event()
        self._done = threading.Event()
        self._started = threading.Event()

    @property
    def period_s(self) -> float:
        return self.full_period_s if self._full else self.idle_period_s

    @property
    def full_rate(self) -> bool:
        return self._full

    def set_full_rate(self, full: bool) -> None:
        """Switch rate. To the full rate: the next read is due now (the real-time thread wakes)."""
        with self._lock:
            if full == self._full:
                return
            self._full = full
            now = self._monotonic()
            self._due_base_s, self._due_n = (now, 0) if full else (now, 1)
        if full:
            self._wake.set()

    def next_read_s(self) -> float:
        """When the next read is due (simulation schedules `step()` at it)."""
        with self._lock:
            return self._due_base_s + self._due_n * self.period_s

    def _count_read(self) -> float:
        """One read is under way: the next is due one period later. Returns when."""
        with self._lock:
            self._due_n += 1
            return self._due_base_s + self._due_n * self.period_s

    def feed(self) -> SensorFeed:
        with self._lock:
            return SensorFeed(self._latest, self._busy_since, self.period_s)

    def feed_since(self, seen_seq: int) -> tuple[tuple[Sample, ...], SensorFeed]:
        """The feed now and, taken with it in one look, the samples published after sample
        `seen_seq` and before the feed's newest (oldest first): the loop judges each of them
        in its own sub-step, so a loop that steps on its own tick misses none."""
        with self._lock:
            latest = self._latest
            newest_seq = latest.seq if latest is not None else seen_seq
            missed: list[Sample] = []
            for sample in reversed(self._history):  # newest first; usually one or two to look at
                if sample.seq <= seen_seq:
                    break
                if sample.seq < newest_seq:
                    missed.append(sample)
            missed.reverse()
            return tuple(missed), SensorFeed(latest, self._busy_since, self.period_s)

    def read_once(self) -> None:
        """One read, published as a Sample (value or error). Never raises."""
        with self._lock:
            self._busy_since = self._monotonic()
            period_s = self.period_s
        self._started.set()
        value: float | None = None
        ambient: float | None = None
        rates: LightRates | None = None
        error: str | None = None
        detail = ""
        try:
            value, ambient, rates = self._read()
        except Exception as exc:  # every failure becomes a sample the controller judges
            error, detail = classify(exc), f"{type(exc).__name__}: {exc}"
            rates = getattr(exc, "rates", None)
        signal_mcps = None if rates is None else rates.signal_rate_mcps
        ambient_mcps = None if rates is None else rates.ambient_rate_mcps
        with self._lock:
            self._seq += 1
            sample = self._latest = Sample(
                self._seq,
                self._monotonic(),
                value,
                ambient,
                error,
                detail,
                signal_mcps,
                ambient_mcps,
                None if period_s == self.full_period_s else period_s,
            )
            self._history.append(sample)
            self._busy_since = None
        urgent = self._check_hazard(sample)
        if self.on_sample is not None and (urgent or not self.wake_only_on_hazard):
            self.on_sample()

    def _check_hazard(self, sample: Sample) -> bool:
        """Cut the relay now when this sample alone calls for it (see the module text).
        True when the loop should step now: the cut switched the relay off, or the hazard is
        more than where the person is (a failed or implausible read: a fault may latch)."""
        if self.hazard is None or self.on_hazard is None:
            return False
        try:
            reason = self.hazard(sample)
        except Exception as exc:  # noqa: BLE001 - a rule that cannot judge resolves to off
            reason = f"{self.name}_hazard_check_failed: {type(exc).__name__}"
        if reason is None:
            return False
        cut = self.on_hazard(reason, self._monotonic())
        return cut or reason not in self.quiet_hazards

    # -- real time ------------------------------------------------------------------------
    def start(self) -> None:
        def run() -> None:
            while not self._stop.is_set():
                self._wake.clear()
                self.read_once()
                due_s = self._count_read()
                now = self._monotonic()
                if due_s < now:  # late: the schedule restarts from now
                    with self._lock:
                        self._due_base_s, self._due_n = now, 0
                    continue
                if due_s - now >= MIN_WAIT_S:  # a shorter wait costs a wake-up and saves nothing
                    self._wake.wait(due_s - now)

        self._thread = threading.Thread(target=run, name=f"irlamp-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._request.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)  # a hung read cannot be joined; it is a daemon thread

    # -- simulation -----------------------------------------------------------------------
    def step(self) -> bool:
        """Simulation: do one read on the worker unless one is still running. True if a sample was published.

        A source that says it cannot block right now (`may_block() is False`) is read on the
        calling thread, which is the same read without the thread hand-off; the simulated
        sources say so except while a `hang` fault is injected.
        """
        self._count_read()
        if self._request.is_set() or self.feed().busy_since_s is not None:
            return False  # the previous read is still blocked
        seq_before = self._seq
        if not self.may_block():
            self.read_once()
            return self._seq != seq_before
        if self._thread is None:
            self._thread = threading.Thread(target=self._sim_worker, name=f"irlamp-sim-{self.name}", daemon=True)
            self._thread.start()
        self._done.clear()
        self._started.clear()
        self._request.set()
        # Wait until the read has begun (its busy time is stamped while simulated time stands
        # still), then give it a short real-time grace to finish; one still running is hung.
        self._started.wait(self.sim_wait_s)
        self._done.wait(min(self.sim_wait_s, SIM_FINISH_GRACE_S))
        return self._seq != seq_before

    def wait_idle(self, timeout_s: float) -> bool:
        """Simulation: wait (real time, at most `timeout_s`) until a read running on the worker
        has published its sample. True when no read is in progress any more.

        The simulator calls this right after releasing a hung read, so the released read
        lands at that simulated instant instead of whenever the thread gets scheduled."""
        if not self._request.is_set():
            return True
        return self._done.wait(timeout_s) or not self._request.is_set()

    def _sim_worker(self) -> None:
        while not self._stop.is_set():
            self._request.wait()
            if self._stop.is_set():
                return
            self.read_once()
            self._request.clear()  # before _done: whoever sees _done also sees no request
            self._done.set()
