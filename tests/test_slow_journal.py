"""SR-9 / SR-10 / SR-12: a slow or stuck SD card never stalls the control loop.

The journal is written by a writer of its own (controller/service/journal_writer.py). These tests slow
it on the simulated clock (`journal_commit_s` in a scenario, `SimulatedDisk` in a hand-stepped
rig): every safety rule must still fire on time with 2 s commits, the records must land late
and in order, a disk that never answers must end in `journal_stalled` within the stated bound
and refuse starts, the lamp must never be on before its session's start record is durable,
and a clean stop must write the backlog. The writer's real thread is tested with an injected
slow journal (no LD_PRELOAD).
"""

from __future__ import annotations

from itertools import pairwise
import tempfile
import threading
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory
from hypothesis import given, settings
from helpers_core import Bench
from hypothesis import strategies as st
from scenario_helpers import ROUNDING_S, default_config, press, run_sim, scenario

from controller.service import journal_writer as records
from controller.service.clock import SimClock
from controller.service.daemon import Daemon
from controller.service.journal import Journal, JournalReader
from controller.service.journal_writer import JournalWriter, SimulatedDisk
from controller.core.safety import JOURNAL_BUSY_S, JOURNAL_STALL_S, JournalHealth
from drivers.hardware import build_hardware
from drivers.sim_sensors import SimDistanceSource, SimSkinSource, SimWorld

CFG = default_config()
DIST_PERIOD_S = CFG.distance.timing_budget_ms / 1000.0
SKIN_PERIOD_S = CFG.skin.period_ms / 1000.0
STEP_S = 1.0 / CFG.loop.rate_hz
EPS_S = ROUNDING_S + 1e-6
COMMIT_S = 2.0


@pytest.fixture
def commit_log(monkeypatch):
    """(simulated time, record type) of every journal commit, in commit order."""
    log: list[tuple[float, str]] = []
    original = JournalWriter._apply

    def logged(self, record):
        original(self, record)
        log.append((self.monotonic(), type(record).__name__))

    monkeypatch.setattr(JournalWriter, "_apply", logged)
    return log


def _session_rows(state_dir: Path):
    with JournalReader(state_dir) as reader:
        return reader.recent_sessions(), reader.unacknowledged_faults()


# -- 2 s per commit: no guard trip, every rule on time, records late and in order ---------------
SLOW_CASES = {
    "too_close": ([{"at": 20.0, "distance_mm": 250}, press(22.0)], None, 30.0),
    "overheat": ([{"at": 20.1, "skin_c": 44.0}], None, 30.0),
    "time_cap": ([], {"session": {"max_on_minutes": 1}}, 75.0),
}


@pytest.mark.parametrize("case", sorted(SLOW_CASES))
def test_slow_journal_keeps_every_safety_rule_on_time_and_records_land_late_in_order(tmp_path, commit_log, case):
    hazards, config, until = SLOW_CASES[case]
    state_dir = tmp_path / "state"
    run = run_sim(
        tmp_path,
        scenario([{"at": 0.0, "journal_commit_s": COMMIT_S}, press(1), *hazards], until, config=config),
        state_dir=state_dir,
    )
    assert "guard_loop_stall" not in run.fault_codes() and "journal_stalled" not in run.fault_codes()
    (started,) = run.events("session_started")
    on = run.first("relay", on=True)
    assert on["t"] - started["t"] == pytest.approx(COMMIT_S, abs=EPS_S)  # lit once the start is durable
    off = run.first("relay", on=False)
    (ended,) = run.events("session_ended")
    if case == "too_close":
        assert off["reason"] == "too_close" and off["t"] - 20.0 <= DIST_PERIOD_S + EPS_S
    elif case == "overheat":
        assert off["reason"] == "skin_overheat" and off["t"] - 20.1 <= SKIN_PERIOD_S + EPS_S
        assert ended["reason"] == "overheat" and run.fault_codes() == ["skin_overheat"]
    else:
        cap_s = 60.0
        assert ended["reason"] == "completed" and cap_s <= ended["on_s"] <= cap_s + STEP_S
        assert off["t"] - on["t"] <= cap_s + STEP_S + EPS_S

    kinds = [kind for _, kind in commit_log]
    assert kinds[0] == "StartSession" and kinds[-1] == "EndSession"
    assert kinds.count("StartSession") == kinds.count("EndSession") == 1
    assert "Checkpoint" in kinds
    if case == "overheat":
        assert kinds.index("Fault") < kinds.index("EndSession")  # the order they happened in
    times = [t for t, _ in commit_log]
    assert all(later - earlier >= COMMIT_S - 1e-9 for earlier, later in pairwise(times))
    assert times[-1] >= ended["t"] + COMMIT_S - 1e-9  # late, but it landed
    (session,), faults = _session_rows(state_dir)
    assert session.end_reason == ended["reason"] and session.on_s == pytest.approx(ended["on_s"])
    assert [f.code for f in faults] == run.fault_codes()


# -- a commit that never returns: bounded fault, lamp off, starts refused ---------------------------
def test_a_journal_that_never_returns_ends_the_session_latches_journal_stalled_and_refuses_starts(tmp_path):
    stuck_at = 20.0
    long_press_s = CFG.button.long_press_s + 0.5
    events = [press(1), {"at": stuck_at, "journal_commit_s": "never"}, press(40, long_press_s), press(50)]
    run = run_sim(tmp_path, scenario(events, 60))
    (fault,) = run.events("fault")
    assert fault["code"] == "journal_stalled"
    # The loop hands a checkpoint over at least every checkpoint_s: the writer has work within
    # that time of the disk's stall, and the fault follows JOURNAL_STALL_S later.
    assert fault["t"] - stuck_at <= CFG.loop.checkpoint_s + JOURNAL_STALL_S + STEP_S + EPS_S
    off = run.first("relay", after=stuck_at)
    assert off["on"] is False and off["t"] == fault["t"] and off["reason"] == "journal_stalled"
    assert run.first("session_ended", after=stuck_at)["reason"] == "fault"
    assert "guard_loop_stall" not in run.fault_codes()
    assert run.first("fault_acknowledged") is not None
    assert run.first("start_refused", after=50)["reason"] == "journal_busy"
    assert not run.relay_on_at(59.9) and len(run.events("session_started")) == 1


# -- the start record is durable before the relay closes (random commit delays) ---------------------
class Rig:
    """The daemon as `irlamp simulate` assembles it, stepped by hand on a SimulatedDisk."""

    def __init__(self, state_dir: Path, disk: SimulatedDisk):
        self.cfg = CFG
        self.clock = SimClock(1_767_600_000.0)
        self.world = SimWorld(400.0, 32.0, thermal_model=True, monotonic=self.clock.monotonic)
        self.factory = MockFactory()
        self.hw = build_hardware(
            self.cfg,
            distance_source=SimDistanceSource(self.world),
            skin_source=SimSkinSource(self.world),
            monotonic=self.clock.monotonic,
            pin_factory=self.factory,
            edges_on_clock=True,
        )
        self.world.lamp_on = self.hw.output.is_on
        self.events: list[tuple[float, str, dict]] = []
        self.daemon = Daemon(
            self.cfg,
            self.hw,
            self.clock,
            Journal(state_dir, "boot-1"),
            status_path=None,
            boot_id="boot-1",
            disk=disk,
            emit=lambda name, **f: self.events.append((self.clock.monotonic(), name, f)),
        )
        self.button = self.factory.pin(self.cfg.gpio.button_pin)
        self.relay = self.factory.pin(self.cfg.gpio.relay_pin)

    def tick(self, check=None) -> None:
        """One loop period: samples, the guard's check, commits due, a step."""
        t = self.clock.monotonic() + STEP_S
        self.clock.advance_to(t)
        self.hw.distance.step()
        self.hw.skin.step()
        self.hw.guard.tick(t, STEP_S)  # as the guard's own thread does
        self.daemon.writer.pump()
        self.daemon.step()
        if check is not None:
            check()

    def stall(self, seconds: float, actions: dict[float, str]) -> None:
        """The loop stalls for `seconds` (the samplers and the guard keep running); `actions`
        drives the button ('press' / 'release') at offsets into the stall."""
        start = self.clock.monotonic()
        times = sorted({*actions, *(i * DIST_PERIOD_S for i in range(1, int(seconds / DIST_PERIOD_S) + 1))})
        for offset_s in [t for t in times if t <= seconds]:
            self.clock.advance_to(start + offset_s)
            self.hw.distance.step()
            self.hw.skin.step()
            self.hw.guard.tick(self.clock.monotonic(), DIST_PERIOD_S)
            if offset_s in actions:
                (self.button.drive_low if actions[offset_s] == "press" else self.button.drive_high)()
        self.clock.advance_to(start + seconds)

    def run(self, seconds: float, check=None) -> None:
        end = self.clock.monotonic() + seconds
        while self.clock.monotonic() < end - 1e-9:
            self.tick(check)

    def names(self) -> list[str]:
        return [name for _, name, _ in self.events]

    def close(self) -> None:
        self.daemon.shutdown("test")
        self.hw.close()


@settings(max_examples=25, deadline=None, derandomize=True, database=None)
@given(
    delays=st.lists(st.sampled_from([0.0, 0.01, 0.3, 0.9, 1.7, 3.0]), min_size=1, max_size=12),
    press_at=st.floats(0.5, 1.5),
    stop_after=st.one_of(st.none(), st.floats(0.0, 4.0)),
)
def test_relay_is_never_on_before_the_start_record_is_committed(delays, press_at, stop_after):
    draws = iter(delays * 50)
    with tempfile.TemporaryDirectory() as tmp:
        rig = Rig(Path(tmp), SimulatedDisk(lambda _record: next(draws)))
        reader = None
        try:

            def lamp_only_with_a_durable_session():
                if rig.relay.state:  # the relay pin is closed: the journal must hold the open session
                    open_sessions = [s for s in reader.recent_sessions() if s.end_wall is None]
                    assert len(open_sessions) == 1, (rig.clock.monotonic(), rig.names())

            rig.run(0.2)
            reader = JournalReader(Path(tmp))
            rig.run(press_at)
            rig.button.drive_low()
            rig.run(0.1)
            rig.button.drive_high()
            rig.run(0.2, lamp_only_with_a_durable_session)
            assert "session_started" in rig.names()
            if stop_after is not None:
                rig.run(stop_after, lamp_only_with_a_durable_session)
                rig.button.drive_low()
                rig.run(0.1, lamp_only_with_a_durable_session)
                rig.button.drive_high()
            rig.run(6.0, lamp_only_with_a_durable_session)
            lit = any(name == "relay" and f["on"] for _, name, f in rig.events)
            if stop_after is None:  # every delay is below the stall bound: the lamp must come on
                assert lit and rig.daemon.controller.state == "running", rig.names()
        finally:
            if reader is not None:
                reader.close()
            rig.close()


# -- the status counts a session once its start is durable ----------------------------------------
def test_the_status_counts_a_session_as_soon_as_its_lamp_is_on_with_a_slow_journal(tmp_path):
    """With a commit slower than a loop step, the allowance recomputed right after the start
    still saw the journal without the new session. The status (and the MQTT state built from it)
    must not show the lamp on with 'sessions today' 0 until the next periodic refresh: once the
    start record is durable the session is counted."""
    rig = Rig(tmp_path, SimulatedDisk(0.3))
    lit: list[dict] = []

    def counted_while_lit():
        status = rig.daemon.status_snapshot()
        if status["lamp_on"]:
            lit.append(status)
            assert status["sessions_today"] == 1, (rig.clock.monotonic(), status)

    try:
        rig.run(1.0)
        rig.button.drive_low()
        rig.run(0.1)
        rig.button.drive_high()
        rig.run(2.0, counted_while_lit)
        assert lit and lit[-1]["state"] == "running", rig.names()
    finally:
        rig.close()


# -- no press is lost while the loop is late ------------------------------------------------------
def test_a_100ms_press_entirely_inside_a_1s_loop_stall_is_seen(tmp_path):
    rig = Rig(tmp_path, SimulatedDisk())
    try:
        rig.run(1.0)
        rig.stall(1.0, {0.4: "press", 0.5: "release"})
        rig.daemon.step()  # the first step after the stall
        assert rig.names().count("session_started") == 1
        rig.run(0.2)
        assert rig.relay.state and rig.daemon.controller.state == "running"
    finally:
        rig.close()


def test_a_stop_press_inside_a_loop_stall_stops_the_session(tmp_path):
    rig = Rig(tmp_path, SimulatedDisk())
    try:
        rig.run(1.0)
        rig.button.drive_low()
        rig.run(0.1)
        rig.button.drive_high()
        rig.run(1.0)
        assert rig.relay.state
        rig.stall(0.45, {0.1: "press", 0.2: "release"})  # within the guard's 0.5 s deadline
        rig.daemon.step()
        assert not rig.relay.state and rig.daemon.controller.state == "idle"
        (ended,) = [f for _, name, f in rig.events if name == "session_ended"]
        assert ended["reason"] == "stopped_by_button"
        assert rig.hw.guard.tripped is None
    finally:
        rig.close()


# -- a clean stop writes the backlog ----------------------------------------------------------------
def test_a_clean_stop_with_a_backlog_drains_it(tmp_path):
    rig = Rig(tmp_path, SimulatedDisk(0.0))
    rig.run(1.0)
    rig.button.drive_low()
    rig.run(0.1)
    rig.button.drive_high()
    rig.run(1.0)
    rig.daemon.writer.disk.set_commit_s(8.0)  # slow, yet within the stall bound
    rig.run(2 * CFG.loop.checkpoint_s + 0.5)
    on_s = rig.daemon.controller.session.on_s
    assert rig.daemon.writer.backlog >= 1  # a checkpoint is waiting
    rig.close()  # ends the session: one more record
    assert rig.daemon.writer.backlog == 0 and rig.daemon.writer.lost == 0
    (session,), _ = _session_rows(tmp_path)
    assert session.end_reason == "daemon_stopped" and session.on_s == pytest.approx(on_s, abs=0.01)


class SlowJournal:
    """A journal whose writes take `delay_s` of real time or block until `release` is set."""

    def __init__(self, journal: Journal, delay_s: float = 0.0, release: threading.Event | None = None):
        self._journal, self.delay_s, self.release = journal, delay_s, release
        self.written: list[str] = []

    def _slow(self, name):
        def call(*args, **kwargs):
            if self.release is not None:
                self.release.wait()
            elif self.delay_s:
                threading.Event().wait(self.delay_s)  # the injected disk delay, on the writer's thread
            result = getattr(self._journal, name)(*args, **kwargs)
            self.written.append(name)
            return result

        return call

    def __getattr__(self, name):
        if name in ("start_session", "checkpoint", "end_session", "record_fault", "acknowledge_faults"):
            return self._slow(name)
        return getattr(self._journal, name)


def test_the_writer_thread_drains_its_backlog_on_close(tmp_path):
    import time

    slow = SlowJournal(Journal(tmp_path, "boot-1"), delay_s=0.02)
    writer = JournalWriter(slow, time.monotonic)
    tickets = [writer.submit(records.StartSession(1.0e9, 1.0, 400.0, 32.0))]
    tickets += [writer.submit(records.Fault(f"code_{i}", "x", 1.0e9, 1.0 + i)) for i in range(10)]
    tickets.append(writer.submit(records.EndSession(3.0, "completed", 33.0, 400.0, 1.0e9 + 5, 6.0)))
    assert writer.close(timeout_s=30.0)
    assert all(writer.committed(t) for t in tickets) and writer.backlog == 0
    assert slow.written == ["start_session"] + ["record_fault"] * 10 + ["end_session"]
    with JournalReader(tmp_path) as reader:
        assert reader.recent_sessions()[0].end_reason == "completed"
        assert len(reader.unacknowledged_faults()) == 10


def test_a_stuck_writer_thread_never_blocks_submit_and_close_is_bounded(tmp_path):
    import time

    release = threading.Event()
    slow = SlowJournal(Journal(tmp_path, "boot-1"), release=release)
    writer = JournalWriter(slow, time.monotonic)
    try:
        first = writer.submit(records.StartSession(1.0e9, 1.0, 400.0, 32.0))
        for i in range(40):  # returns at once while the disk hangs
            writer.submit(records.Fault(f"code_{i}", "x", 1.0e9, 2.0))
        assert not writer.committed(first) and writer.full
        assert writer.stalled_s(time.monotonic() + JOURNAL_STALL_S + 1) > JOURNAL_STALL_S
        assert writer.close(timeout_s=0.2) is False and writer.lost == 41
    finally:
        release.set()


# -- the decision: journal health is an input, like the allowance ---------------------------------
@pytest.mark.parametrize(
    "health",
    [
        JournalHealth(full=True),
        JournalHealth(limits_current=False),
        JournalHealth(stalled_s=JOURNAL_BUSY_S + 0.1),
        JournalHealth(write_error="journal x: the disk is full"),
    ],
    ids=["queue_full", "limits_not_read_back", "writer_stuck", "write_failed"],
)
def test_a_start_is_refused_while_the_journal_is_busy(health):
    bench = Bench(default_config(), journal=health)
    bench.settle()
    bench.press(0.2)
    assert bench.ctl.state == "idle" and not bench.lamp_on()
    assert bench.fields_of("start_refused") == [{"reason": "journal_busy"}]
    bench.journal = JournalHealth(stalled_s=JOURNAL_BUSY_S)  # slow but committing: allowed
    bench.press(0.2)
    assert bench.ctl.state == "running"


def test_a_session_stays_starting_lamp_off_until_its_start_is_recorded():
    bench = Bench(default_config(), journal=JournalHealth(start_needs_commit=True, start_recorded=False))
    bench.settle()
    bench.press(0.2)
    bench.run(3.0)
    assert bench.ctl.state == "starting" and bench.on_times() == []
    assert bench.last_decision.reason == "starting" and bench.ctl.session.on_s == 0.0
    bench.journal = JournalHealth(start_needs_commit=True, start_recorded=True)
    bench.run(0.1)
    assert bench.ctl.state == "running" and bench.lamp_on()


def test_journal_stalled_latches_only_while_a_session_exists():
    bench = Bench(default_config(), journal=JournalHealth(stalled_s=JOURNAL_STALL_S + 1))
    bench.settle()
    assert bench.fault_codes() == []  # idle: starts are refused instead
    bench.journal = JournalHealth()
    bench.start_session()
    bench.journal = JournalHealth(stalled_s=JOURNAL_STALL_S + 0.01)
    bench.step(bench.now + 0.01)
    assert not bench.lamp_on() and bench.fault_codes() == ["journal_stalled"]
    assert bench.fields_of("session_ended")[-1]["reason"] == "fault"


def test_a_failed_journal_write_ends_the_session_at_once_with_the_disk_s_words():
    bench = Bench(default_config())
    bench.start_session()
    bench.journal = JournalHealth(write_error="journal /var/lib/irlamp/journal.sqlite3: the disk is full")
    bench.step(bench.now + 0.01)
    assert not bench.lamp_on() and bench.fault_codes() == ["journal_stalled"]
    assert bench.fields_of("fault")[0]["detail"].startswith("records cannot be written: journal /var/lib")


@pytest.mark.parametrize("slow_from_s,commit_s", [(0.0, 0.8), (5.0, 1.5)])
def test_the_issue_s_slow_disk_trials_run_a_full_20_minute_session_without_a_fault(tmp_path, slow_from_s, commit_s):
    """The trials that used to end in guard_loop_stall within seconds (0.8 s fsyncs from the
    start; 1.5 s fsyncs from 5 s into the session) now complete the session."""
    cap_s = CFG.session.max_on_minutes * 60.0
    run = run_sim(
        tmp_path,
        scenario([press(1), {"at": slow_from_s, "journal_commit_s": commit_s}], cap_s + 30, thermal_model=True),
    )
    assert run.fault_codes() == []
    (ended,) = run.events("session_ended")
    assert ended["reason"] == "completed" and cap_s <= ended["on_s"] <= cap_s + STEP_S


# -- end to end: the real daemon, its real fsyncs delayed (LD_PRELOAD shim, no root needed) ------
SHIM_SOURCE = Path(__file__).resolve().parent / "native" / "slow_fsync.c"


def _build_shim(directory: Path) -> Path:
    import shutil
    import subprocess

    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        pytest.skip("no C compiler (gcc/cc) to build the fsync-delaying LD_PRELOAD shim")
    shim = directory / "slow_fsync.so"
    built = subprocess.run(
        [gcc, "-shared", "-fPIC", "-O2", "-o", str(shim), str(SHIM_SOURCE), "-ldl"], capture_output=True, text=True
    )
    if built.returncode != 0:
        pytest.skip(f"could not build the LD_PRELOAD shim: {built.stderr.strip()[:200]}")
    return shim


def test_end_to_end_fsyncs_delayed_1s_keep_the_session_running_and_a_press_stops_it(tmp_path):
    import signal

    from scenario_helpers import RunningDaemon, history_json

    shim = _build_shim(tmp_path)
    state_dir = tmp_path / "state"
    daemon = RunningDaemon(
        tmp_path,
        extra_env={"LD_PRELOAD": str(shim), "IRLAMP_SLOW_FSYNC_MS": "1000", "IRLAMP_SLOW_FSYNC_DIR": str(state_dir)},
    )
    try:
        daemon.wait_message("READY=1", timeout_s=20.0)
        daemon.wait_status(lambda s: s["state"] == "idle", what="idle")
        daemon.keys("space")
        daemon.wait_status(lambda s: s["lamp_on"] is True, timeout_s=15.0, what="lamp on")
        # past a checkpoint, committed through a 1 s fsync on the writer's thread
        status = daemon.wait_status(
            lambda s: (s["on_s"] or 0) >= CFG.loop.checkpoint_s + 1.5 or s["fault_latched"],
            timeout_s=30.0,
            what="a checkpoint",
        )
        assert status["lamp_on"] is True and not status["fault_latched"], status
        daemon.keys("space")
        daemon.wait_status(lambda s: s["state"] == "idle" and s["lamp_on"] is False, what="stopped")
        assert daemon.stop(signal.SIGTERM, timeout_s=30.0) == 0
        (session,) = history_json(state_dir)["sessions"]
        assert session["end_reason"] == "stopped_by_button"
        assert session["on_s"] >= CFG.loop.checkpoint_s
        assert "guard_loop_stall" not in daemon.stderr() and "FAULT" not in daemon.stderr()
    finally:
        daemon.close()


def test_journal_commit_s_in_a_scenario_is_a_number_or_never_and_named_with_its_line(tmp_path):
    from controller.sim.scenario import ScenarioError, load_scenario
    from scenario_helpers import write_scenario

    good = load_scenario(
        write_scenario(
            tmp_path, scenario([{"at": 1, "journal_commit_s": "never"}, {"at": 2, "journal_commit_s": 0.5}], 5)
        )
    )
    assert [e.actions["journal_commit_s"] for e in good.events] == [None, 0.5]
    for bad in (-1, "sometimes"):
        path = write_scenario(tmp_path, scenario([{"at": 1, "journal_commit_s": bad}], 5), name="bad.yaml")
        with pytest.raises(ScenarioError, match=r"bad\.yaml:\d+: event 1: journal_commit_s"):
            load_scenario(path)


def test_a_newer_checkpoint_replaces_a_waiting_one_and_inherits_its_wait(tmp_path):
    clock = SimClock(1.0e9)
    writer = JournalWriter(Journal(tmp_path, "boot-1"), clock.monotonic, disk=SimulatedDisk(8.0))
    start = writer.submit(records.StartSession(clock.wall(), 0.0, 400.0, 32.0))
    clock.advance_to(5.0)
    first = writer.submit(records.Checkpoint(5.0, 33.0, 400.0, clock.wall(), 5.0))
    clock.advance_to(7.0)
    assert writer.submit(records.Checkpoint(7.0, 34.0, 390.0, clock.wall(), 7.0)) == first
    assert writer.backlog == 2
    clock.advance_to(9.0)
    assert writer.pump() == 1 and writer.committed(start) and not writer.committed(first)
    assert writer.stalled_s(9.0) == pytest.approx(4.0)  # waiting since 5.0, not 7.0
    clock.advance_to(16.0)
    assert writer.pump() == 1 and writer.committed(first)
    writer.close(1.0)
    with JournalReader(tmp_path) as reader:
        (session,) = reader.recent_sessions()
    assert session.on_s == 7.0 and session.max_skin_c == 34.0
