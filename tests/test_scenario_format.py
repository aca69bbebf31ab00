"""`irlamp simulate`: the scenario format, the JSON output contract, text mode, refusals.

The format and the output are specified in requirements.md, "Simulation". Behaviour per
safety requirement is in test_scenarios_sr.py; the fault kinds in depth in test_fault_matrix.py.
"""

from __future__ import annotations

import datetime as dt
import subprocess

import pytest
from scenario_helpers import (
    DEFAULT_CONFIG,
    ROUNDING_S,
    SimRun,
    default_config,
    press,
    run_sim,
    scenario,
    simulate_cli,
    write_scenario,
)

from controller.core.sampling import idle_periods_s
from controller.service.journal import JournalReader

CFG = default_config()
DIST_PERIOD_S = CFG.distance.timing_budget_ms / 1000.0
BUTTON_DEBOUNCE_S = CFG.button.bounce_ms / 1000.0
# A press is a start request when it is released: release + debounce + one distance sample.
START_LATENCY_S = BUTTON_DEBOUNCE_S + DIST_PERIOD_S + ROUNDING_S


def started_after(run: SimRun, press_at: float, held_s: float) -> dict:
    started = run.first("session_started", after=press_at)
    assert started is not None, f"no session started after the press at {press_at}"
    assert started["t"] <= press_at + held_s + START_LATENCY_S
    return started


# -- the JSON output contract ------------------------------------------------------------------


def check_output_contract(run: SimRun, until_s: float) -> None:
    """Everything requirements.md promises about the --json lines of any run."""
    for record in run.records:
        assert isinstance(record.get("t"), float), record
        assert isinstance(record.get("event"), str) and record["event"], record
    times = [r["t"] for r in run.records]
    assert times == sorted(times), "records are not in time order"
    relay = run.relay()
    for i, record in enumerate(relay):
        assert set(record) == {"t", "event", "on", "reason"}, record
        assert isinstance(record["on"], bool) and isinstance(record["reason"], str) and record["reason"]
        assert record["on"] == (i % 2 == 0), f"relay events do not alternate on/off starting with on: {relay}"
    for fault in run.events("fault"):
        assert isinstance(fault["code"], str) and fault["code"]
    summary = run.summary
    assert run.records.count(summary) == 1 and run.events("summary") == [summary]
    assert summary["t"] == pytest.approx(until_s, abs=ROUNDING_S)
    intervals = run.on_intervals()
    assert summary["lamp_on_s"] == pytest.approx(
        sum(off - on for on, off in intervals), abs=ROUNDING_S * (len(intervals) + 1)
    )
    assert summary["sessions"] == len(run.events("session_started"))
    assert summary["faults"] == run.fault_codes()
    assert isinstance(summary["lamp_on_s"], float) and isinstance(summary["sessions"], int)


def test_json_contract_on_a_busy_scenario(tmp_path):
    """Sessions, pauses, a fault, a restart and an acknowledgement: every line obeys the contract,
    and the lamp-on time the relay events add up to is the on-time the sessions recorded."""
    events = [
        press(1),
        {"at": 40, "distance_mm": 250},
        {"at": 45, "distance_mm": 400},
        press(70),
        press(75),  # stop, then a start refused (cool-down)
        {"at": 80, "restart": True},
        {"at": 90, "fault": {"sensor": "skin", "kind": "io_error"}},
        {"at": 92, "fault": {"sensor": "skin", "kind": "clear"}},
        press(95, 3.5),
    ]
    run = run_sim(tmp_path, scenario(events, 110))
    check_output_contract(run, 110)
    assert [r["on"] for r in run.relay()] == [True, False, True, False], run.records
    ended = run.events("session_ended")
    assert [e["reason"] for e in ended] == ["stopped_by_button"]
    assert run.summary["lamp_on_s"] == pytest.approx(sum(e["on_s"] for e in ended), abs=0.05)
    # the 2 s of failed reads (idle) latch io_error at the second one; stale only if they last
    # longer than the idle-rate stale bound (skin_stale_s scaled by the idle rate: 4 s)
    _, idle_skin_s = idle_periods_s(CFG)
    stale_idle_s = CFG.faults.skin_stale_s * idle_skin_s / (CFG.skin.period_ms / 1000.0)
    assert run.summary["faults"] == ["skin_io_error"] + (["skin_stale"] if stale_idle_s < 2.0 else [])
    assert run.first("fault_acknowledged") is not None
    assert run.first("start_refused")["reason"] == "cooldown"


def test_summary_counts_an_open_session_to_the_end(tmp_path):
    """A session still running at `until`: the daemon stops, the relay goes off at `until`."""
    run = run_sim(tmp_path, scenario([press(1)], 30))
    check_output_contract(run, 30)
    last_relay = run.relay()[-1]
    assert last_relay["on"] is False and last_relay["t"] == pytest.approx(30)
    assert run.summary["lamp_on_s"] == pytest.approx(30 - run.relay()[0]["t"], abs=ROUNDING_S)
    assert run.events("session_ended")[-1]["reason"] == "daemon_stopped"


def test_cli_json_is_one_object_per_line_and_deterministic(tmp_path):
    """Through the real command line; the same scenario twice gives byte-identical output."""
    path = write_scenario(
        tmp_path, scenario([press(1), {"at": 5, "distance_mm": 280}, {"at": 6, "distance_mm": 410}, press(20)], 25)
    )
    first, run = simulate_cli(path)
    second, _ = simulate_cli(path)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    check_output_contract(run, 25)
    assert run.events("paused", reason="too_close") and run.events("resumed")


def test_hang_and_clear_scenario_is_deterministic(tmp_path):
    """A hung read runs on a real thread; its release must still land at the same simulated instant."""
    events = [
        press(1),
        {"at": 5, "fault": {"sensor": "skin", "kind": "hang"}},
        {"at": 5.3, "fault": {"sensor": "skin", "kind": "clear"}},
        {"at": 8, "fault": {"sensor": "distance", "kind": "hang"}},
        {"at": 8.1, "fault": {"sensor": "distance", "kind": "clear"}},
    ]
    runs = [run_sim(tmp_path, scenario(events, 12)).records for _ in range(3)]
    assert runs[0] == runs[1] == runs[2]


def test_twenty_minute_session_runs_in_simulated_time(tmp_path):
    run = run_sim(tmp_path, scenario([press(1)], 1300, thermal_model=True))
    check_output_contract(run, 1300)
    ended = run.events("session_ended")
    assert [e["reason"] for e in ended] == ["completed"]
    assert ended[0]["on_s"] == pytest.approx(CFG.session.max_on_minutes * 60, abs=0.1)


# -- every event kind and top-level key ------------------------------------------------------


def test_start_values_and_press(tmp_path):
    run = run_sim(tmp_path, scenario([press(2, 0.5)], 10, start={"distance_mm": 420, "skin_c": 33.0}))
    started = started_after(run, 2, 0.5)
    assert started["t"] >= 2.5, "a start request is the release of the press"
    assert started["distance_mm"] == pytest.approx(420, abs=10)
    assert started["skin_c"] == pytest.approx(33.0, abs=0.2)


def test_distance_event_pauses_and_resumes(tmp_path):
    run = run_sim(tmp_path, scenario([press(1), {"at": 10, "distance_mm": 200}, {"at": 20, "distance_mm": 400}], 40))
    assert run.first("paused", after=10)["reason"] == "too_close"
    resumed = run.first("resumed", after=20)
    assert resumed["t"] == pytest.approx(20 + CFG.distance.resume_after_s, abs=2 * DIST_PERIOD_S)


def test_skin_event_in_a_session_is_an_overheat(tmp_path):
    run = run_sim(tmp_path, scenario([press(1), {"at": 10, "skin_c": 44.0}], 20))
    assert run.fault_codes() == ["skin_overheat"]
    assert run.first("fault")["t"] == pytest.approx(10, abs=CFG.skin.period_ms / 1000.0 + ROUNDING_S)


def test_ambient_event_and_start_value(tmp_path):
    hot = run_sim(tmp_path, scenario([{"at": 5, "ambient_c": 75.0}], 10))
    assert hot.fault_codes() == ["skin_sensor_hot"]
    already_hot = run_sim(tmp_path, scenario([], 5, start={"ambient_c": 70.0}))
    assert already_hot.fault_codes() == ["skin_sensor_hot"]


@pytest.mark.parametrize("sensor", ["distance", "skin"])
@pytest.mark.parametrize("kind", ["io_error", "timeout", "out_of_range", "nan", "frozen", "hang"])
def test_fault_event_every_kind_and_clear(tmp_path, sensor, kind):
    """Each kind latches `<sensor>_<kind>` first; after `clear` and a long press the sensor is
    healthy again and a start works."""
    # idle: the samplers read at their idle rate and 'frozen' takes as many samples as at the
    # full rate (distance ~45 s, skin 60 s), so the clear comes after the slowest idle frozen bound
    idle_d_s, idle_s_s = idle_periods_s(CFG)
    frozen_idle_s = max(
        CFG.faults.distance_frozen_s * idle_d_s / (CFG.distance.timing_budget_ms / 1000.0),
        CFG.faults.skin_frozen_s * idle_s_s / (CFG.skin.period_ms / 1000.0),
    )
    clear_at = round(2 + frozen_idle_s + 4)
    events = [
        {"at": 2, "fault": {"sensor": sensor, "kind": kind}},
        {"at": clear_at, "fault": {"sensor": sensor, "kind": "clear"}},
        press(clear_at + 1, 3.5),
        press(clear_at + 10),
    ]
    run = run_sim(tmp_path, scenario(events, clear_at + 13))
    assert run.fault_codes()[0] == f"{sensor}_{kind}"
    assert run.first("fault_acknowledged", after=clear_at + 1) is not None
    started_after(run, clear_at + 10, 0.2)
    assert all(f["t"] < clear_at + 1 for f in run.events("fault")), "a fault latched after the clear"


def test_restart_event_keeps_state_and_never_starts_the_lamp(tmp_path):
    state = tmp_path / "state"
    run = run_sim(tmp_path, scenario([press(1), {"at": 10, "restart": True}], 30), state_dir=state)
    relay = run.relay()
    assert [r["on"] for r in relay] == [True, False]
    assert relay[1]["t"] == pytest.approx(10)
    assert run.events("session_ended")[0]["reason"] == "daemon_stopped"
    assert [s.end_reason for s in journal_sessions(state)] == ["daemon_stopped"]


def journal_sessions(state_dir):
    with JournalReader(state_dir) as reader:
        sessions, _ = reader.history(100000, 0)
    return sessions


@pytest.mark.parametrize("jump_s", [0.0, 5 * 3600.0, -7200.0])
def test_wall_clock_start_and_jump_reach_the_journal(tmp_path, jump_s):
    """The scenario's wall clock (local time) and its jumps are what the journal records."""
    state = tmp_path / "state"
    start = dt.datetime(2026, 3, 2, 7, 30, 0)
    events = [press(2)] + ([{"at": 1, "wall_clock_jump_s": jump_s}] if jump_s else [])
    run = run_sim(tmp_path, scenario(events, 10, start={"wall_clock": start.isoformat()}), state_dir=state)
    (session,) = journal_sessions(state)
    expected = start.timestamp() + jump_s + run.first("session_started")["t"]
    assert session.start_wall == pytest.approx(expected, abs=ROUNDING_S)
    assert session.end_wall == pytest.approx(expected - run.first("session_started")["t"] + 10, abs=ROUNDING_S)


def test_thermal_model_true_warms_the_skin_false_keeps_it(tmp_path):
    heated = run_sim(tmp_path, scenario([press(1)], 200, thermal_model=True))
    constant = run_sim(tmp_path, scenario([press(1)], 200, thermal_model=False))
    assert heated.fault_codes() == []
    assert heated.events("session_ended")[0]["max_skin_c"] > 32.0 + CFG.skin.heating_min_rise_c
    assert constant.fault_codes() == ["skin_not_heating"]


def test_config_override_and_until(tmp_path):
    run = run_sim(tmp_path, scenario([press(1)], 100, config={"session": {"max_on_minutes": 1}}))
    (ended,) = run.events("session_ended")
    assert ended["reason"] == "completed" and ended["on_s"] == pytest.approx(60, abs=0.1)
    assert run.summary["t"] == 100.0


def test_numbers_in_plain_decimal_with_exponents_are_read_as_written(tmp_path):
    from controller.sim.scenario import load_scenario

    path = write_scenario(
        tmp_path,
        "start: {distance_mm: 4e2, skin_c: +32.5}\nseed: 7\n"
        "events:\n  - {at: 1e0, press: 2E-1}\n  - {at: 1.5e1, skin_c: 33.}\n"
        "until: 3e1\n",
    )
    loaded = load_scenario(path)
    assert (loaded.distance_mm, loaded.skin_c, loaded.seed, loaded.until_s) == (400.0, 32.5, 7, 30.0)
    assert [(e.at_s, e.actions) for e in loaded.events] == [(1.0, {"press": 0.2}), (15.0, {"skin_c": 33.0})]


def test_until_defaults_to_a_tail_after_the_last_event(tmp_path):
    run = run_sim(tmp_path, "events:\n  - {at: 5, press: 0.2}\n")
    assert run.summary["t"] > 5.0


def test_seed_changes_the_noise_only(tmp_path):
    a = run_sim(tmp_path, scenario([press(1)], 5, seed=1))
    b = run_sim(tmp_path, scenario([press(1)], 5, seed=2))
    assert [r["event"] for r in a.records] == [r["event"] for r in b.records]
    assert a.records != b.records


# -- text mode ---------------------------------------------------------------------------------


def test_text_mode_is_a_readable_timeline(tmp_path):
    path = write_scenario(tmp_path, scenario([press(1), {"at": 10, "distance_mm": 250}, press(20)], 25))
    proc, _ = simulate_cli(path, as_json=False)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert not any(line.lstrip().startswith("{") for line in lines), "text mode printed JSON"
    text = proc.stdout
    assert "LAMP ON" in text and "LAMP OFF" in text and "session started" in text
    assert "paused" in text and "stopped with the button" in text
    assert lines[-1].split()[1] == "summary:" and "1 session(s) started" in lines[-1]
    assert lines[0].startswith("irlamp simulation of") and "simulated minutes:seconds" in lines[0]
    assert lines[1].split()[0] == "0:01.000"


# -- refusals ----------------------------------------------------------------------------------

BAD_SCENARIOS = {
    "unknown_top_key": ("until: 10\nbogus: 1\n", 2, "bogus"),
    "unknown_event_kind": ("events:\n  - {at: 1, jump: 3}\n", 2, "jump"),
    "at_not_a_number": ("events:\n  - {at: x, press: 0.2}\n", 2, "at must be a number"),
    "press_is_a_list": ("events:\n  - {at: 1, press: [1]}\n", 2, "single value"),
    "press_nan": ("events:\n  - {at: 1, press: .nan}\n", 2, "press"),
    "press_zero": ("events:\n  - {at: 1, press: 0}\n", 2, "press"),
    "unsorted": ("events:\n  - {at: 2, press: 0.2}\n  - {at: 1, press: 0.2}\n", 3, "sorted"),
    "no_at": ("events:\n  - {press: 0.2}\n", 2, "'at'"),
    "no_action": ("events:\n  - {at: 1}\n", 2, "does nothing"),
    "duplicate_key": ("events:\n  - {at: 1, press: 0.2, press: 0.3}\n", 2, "duplicate"),
    "bad_fault_sensor": ("events:\n  - {at: 2, fault: {sensor: heart, kind: io_error}}\n", 2, "heart"),
    "bad_fault_kind": ("events:\n  - {at: 2, fault: {sensor: skin, kind: melt}}\n", 2, "melt"),
    "fault_without_kind": ("events:\n  - {at: 2, fault: {sensor: skin}}\n", 2, "kind"),
    "fault_scalar": ("events:\n  - {at: 2, fault: io_error}\n", 2, "fault"),
    "restart_false": ("events:\n  - {at: 2, restart: false}\n", 2, "restart"),
    "thermal_model_number": ("thermal_model: 3\n", 1, "thermal_model"),
    "until_negative": ("until: -5\n", 1, "until"),
    "seed_fraction": ("seed: 1.5\n", 1, "seed"),
    "event_after_until": ("until: 10\nevents:\n  - {at: 20, press: 0.2}\n", 3, "until"),
    "start_unknown": ("start: {height_mm: 3}\n", 1, "height_mm"),
    "start_wrong_type": ("start: {distance_mm: abc}\n", 1, "distance_mm"),
    "wall_clock_words": ("start: {wall_clock: yesterday}\n", 1, "wall_clock"),
    "wall_clock_bad_date": ("start:\n  wall_clock: 2026-13-01\n", 2, "wall_clock"),
    "python_tag": ("start: {skin_c: !!python/object:os.system ls}\n", 1, "skin_c"),
    "override_over_ceiling": ("config:\n  session: {max_on_minutes: 25}\n", 2, "max_on_minutes"),
    "override_unknown_key": ("config:\n  session: {bogus: 25}\n", 2, "bogus"),
    "override_wrong_type": ("config:\n  skin: {limit_c: hot}\n", 2, "limit_c"),
    "override_not_a_mapping": ("config: 5\n", 1, "config"),
    "override_unsafe_wiring": ("config:\n  gpio: {relay_pin: 4}\n", 2, "GPIO 4"),
    "override_unsafe_polarity": (
        "config:\n  gpio:\n    relay_active_high: false\n",
        3,
        "gpio.relay_active_high: lamp relay on GPIO 17 is active-low",
    ),
    # numbers follow the config's plain-decimal rule (controller/service/yaml_numbers.py)
    "at_base_60": ("events:\n  - {at: 1:05, press: 0.2}\n", 2, "event 1: at: 1:05 is a base-60 number"),
    "start_hexadecimal": ("start: {distance_mm: 0x190}\n", 1, "start.distance_mm: 0x190 is a hexadecimal"),
    "press_leading_zero": ("events:\n  - {at: 1, press: 02}\n", 2, "press: 02 has a leading zero"),
    "until_huge": ("until: " + "9" * 400 + "\n", 1, "until: 99999999999999999999… is far too large"),
    "override_base_60": (
        "config:\n  session:\n    max_on_minutes: 0:15\n",
        3,
        "session.max_on_minutes: 0:15 is a base-60 number",
    ),
    "yaml_syntax": ("events: [\n  {at: 1\n", 3, "YAML"),
    "top_level_list": ("- 1\n- 2\n", 1, "mapping"),
    "events_not_a_list": ("events: 5\n", 1, "events"),
}


def simulate_in_process(capsys, path, *extra: str):
    """`irlamp simulate PATH --json EXTRA` through `controller.cli.main` in this process."""
    from controller.cli import main

    capsys.readouterr()
    code = main(["simulate", str(path), "--json", *extra])
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["irlamp"], code, out, err)


def assert_refused(proc, where: str, words: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got: {proc.stderr!r}"
    assert "Traceback" not in proc.stderr
    assert where in lines[0], lines[0]
    assert words.lower() in lines[0].lower(), lines[0]
    assert "relay" not in proc.stdout and "session_started" not in proc.stdout and "LAMP" not in proc.stdout


@pytest.mark.parametrize("name", sorted(BAD_SCENARIOS))
def test_bad_scenario_is_one_clear_line_and_exit_2(tmp_path, capsys, name):
    text, line, words = BAD_SCENARIOS[name]
    path = write_scenario(tmp_path, text, f"{name}.yaml")
    assert_refused(simulate_in_process(capsys, path), f"{path}:{line}:", words)


@pytest.mark.parametrize("name", ["yaml_syntax", "unsorted", "override_over_ceiling"])
def test_bad_scenario_through_the_real_command(tmp_path, name):
    text, line, words = BAD_SCENARIOS[name]
    path = write_scenario(tmp_path, text, f"{name}.yaml")
    proc, _ = simulate_cli(path)
    assert_refused(proc, f"{path}:{line}:", words)


def test_bad_base_config_is_refused(tmp_path, capsys):
    config = tmp_path / "lamp.yaml"
    config.write_text(DEFAULT_CONFIG.read_text().replace("limit_c: 43.0", "limit_c: 47.0"))
    path = write_scenario(tmp_path, scenario([press(1)], 5))
    assert_refused(simulate_in_process(capsys, path, "--config", str(config)), str(config), "limit_c")


@pytest.mark.parametrize(
    "name, content",
    [
        ("missing", None),
        ("empty", b""),
        ("comments_only", b"# nothing\n"),
        ("not_utf8", b"\xff\xfe until: 5\n"),
        ("directory", "dir"),
    ],
)
def test_unreadable_or_empty_scenario(tmp_path, capsys, name, content):
    path = tmp_path / f"{name}.yaml"
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    assert_refused(simulate_in_process(capsys, path), str(path), "")


def test_missing_scenario_through_the_real_command(tmp_path):
    proc, _ = simulate_cli(tmp_path / "nope.yaml")
    assert_refused(proc, str(tmp_path / "nope.yaml"), "cannot read")


@pytest.mark.parametrize("where", ["a_file", "under_a_file"])
def test_unusable_state_dir_is_one_clear_line(tmp_path, capsys, where):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("x")
    state = blocker if where == "a_file" else blocker / "state"
    path = write_scenario(tmp_path, scenario([press(1)], 5))
    assert_refused(simulate_in_process(capsys, path, "--state-dir", str(state)), str(state), "")


def test_a_press_at_the_boot_instant_is_a_press_not_a_stuck_button(tmp_path):
    # The daemon boots at t=0; a scenario that presses at t=0 means "press right away".
    run = run_sim(tmp_path, scenario([press(0.0)], until=5))
    assert run.fault_codes() == []
    assert run.summary["sessions"] == 1 and run.relay_on_at(1.0)
