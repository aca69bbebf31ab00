"""Issue 13: each session's trace (about one row a second: time, lamp, distance, skin, state) in
the journal, handed to the writer with the checkpoints, pruned after the retention limit, and a
kill -9 loses at most the last checkpoint interval of it."""

from __future__ import annotations

import random
from itertools import pairwise
import signal
import time
from pathlib import Path

import yaml

from controller.core.sampling import lamp_on_loop_period_s
from controller.service.daemon import TRACE_INTERVAL_S
from controller.service.journal import Journal, JournalReader, TracePoint
from scenario_helpers import REPO, RunningDaemon, default_config, run_sim

CFG = default_config()
COMFORT = REPO / "config" / "scenarios" / "comfort.yaml"


def comfort_doc(until: float) -> dict:
    doc = yaml.safe_load(COMFORT.read_text(encoding="utf-8"))
    doc["until"] = until
    return doc


def test_a_simulated_session_leaves_a_trace_of_about_one_row_a_second_with_its_states(tmp_path: Path):
    state = tmp_path / "state"
    run = run_sim(tmp_path, comfort_doc(400), state_dir=state)
    with JournalReader(state) as reader:
        (session,) = reader.recent_sessions(1)
        trace = reader.trace(session.id)
    elapsed_s = run.events("session_ended")[0]["elapsed_s"]
    times = [p.t_s for p in trace]
    assert times == sorted(times) and times[0] < 1.0
    step_s = lamp_on_loop_period_s(CFG)  # a row is kept at the first loop tick once it is due
    assert max(b - a for a, b in pairwise(times)) <= TRACE_INTERVAL_S + step_s + 1e-6
    assert elapsed_s - CFG.loop.checkpoint_s <= times[-1] <= elapsed_s
    assert {p.state for p in trace} >= {"running", "cooling"}
    assert all(not p.lamp_on for p in trace if p.state == "cooling")
    assert all(p.skin_c is not None and p.distance_mm is not None for p in trace[2:])
    # every relay change is in it: lamp on/off flips at the times the relay did
    flips = [p.t_s for a, p in pairwise(trace) if a.lamp_on != p.lamp_on]
    assert len(flips) == len(run.relay()) - 1  # the last relay change is the session's end


def test_traces_older_than_the_retention_are_pruned_when_a_session_ends(tmp_path: Path):
    state = tmp_path / "state"
    doc = comfort_doc(120)
    wall = yaml.safe_load(COMFORT.read_text())["start"]["wall_clock"]
    import datetime as dt

    start_wall = dt.datetime.fromisoformat(wall).timestamp()
    for age_days in (CFG.records.trace_retention_days + 5, CFG.records.trace_retention_days - 5):
        at = start_wall - age_days * 86400
        with Journal(state, f"boot-{age_days}-days-ago") as j:  # its clock was synchronised
            j.note_clock_synced(at, 100.0)
            sid = j.start_session(at, 100.0)
            j.end_session(
                sid,
                60.0,
                "completed",
                38.0,
                400.0,
                at + 60,
                160.0,
                trace=tuple(TracePoint(float(t), True, 400.0, 36.0, "running") for t in range(60)),
            )
    run_sim(tmp_path, doc, state_dir=state)
    with JournalReader(state) as reader:
        old, recent, new = reader.sessions_for_limits()
        assert reader.trace(old.id) == []  # beyond the retention: pruned
        assert len(reader.trace(recent.id)) == 60  # within it: kept
        assert reader.trace(new.id)
        assert old.on_s == 60.0  # the session record itself stays


def test_sigkill_mid_session_loses_at_most_the_last_checkpoint_interval_of_the_trace(tmp_path: Path):
    kill_after_s = round(
        random.Random(20261203).uniform(2 * CFG.loop.checkpoint_s + 0.5, 3 * CFG.loop.checkpoint_s - 0.5), 3
    )
    daemon = RunningDaemon(tmp_path)
    try:
        daemon.wait_message("READY=1", timeout_s=10.0)
        daemon.wait_status(lambda s: s["state"] == "idle", what="idle")
        daemon.keys("space")
        daemon.wait_status(lambda s: s["lamp_on"] is True, what="lamp on")
        seen_on_at = time.monotonic()
        time.sleep(kill_after_s)
        daemon.proc.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        assert daemon.proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        daemon.close()
    with JournalReader(daemon.state_dir) as reader:
        (session,) = reader.recent_sessions(1)
        trace = reader.trace(session.id)
    lost_s = (killed_at - seen_on_at) - trace[-1].t_s  # at least this much is missing
    tolerance_s = 0.5  # scheduling, the commit in flight
    assert lost_s <= CFG.loop.checkpoint_s + TRACE_INTERVAL_S + tolerance_s, (lost_s, trace[-3:])
    times = [p.t_s for p in trace]
    assert max(b - a for a, b in pairwise(times)) <= TRACE_INTERVAL_S + tolerance_s
