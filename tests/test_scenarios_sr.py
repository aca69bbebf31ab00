"""Safety requirements SR-3..SR-7, SR-10 and SR-12, each shown through `irlamp simulate`.

Every bound below is derived from the bundled default config (or the scenario's override):
a distance sample every timing_budget_ms, a skin sample every period_ms, and a control
step at loop.rate_hz (judging every sample since the previous one, each at its own instant)
and at once when a sampler cut the relay for a hazard.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from scenario_helpers import (
    ROUNDING_S,
    SimRun,
    default_config,
    press,
    run_cli,
    run_sim,
    scenario,
    simulate_cli,
    write_scenario,
)

CFG = default_config()
DIST_PERIOD_S = CFG.distance.timing_budget_ms / 1000.0
SKIN_PERIOD_S = CFG.skin.period_ms / 1000.0
STEP_S = 1.0 / CFG.loop.rate_hz
EPS_S = ROUNDING_S + 1e-6
BOUNCE_S = CFG.button.bounce_ms / 1000.0
MAX_ON_S = CFG.session.max_on_minutes * 60.0
LONG_HELD_S = CFG.button.long_press_s + 0.5
SHORT_HELD_S = 0.2
# A start request is the release of a short press, confirmed after the debounce time.
START_LATENCY_S = SHORT_HELD_S + BOUNCE_S + DIST_PERIOD_S + EPS_S
SHORT_GAP = {"session": {"min_gap_minutes": 30}}
GAP_S = 30 * 60.0
IN_BAND_MM = 400
TOO_CLOSE_MM = 290  # 7 noise sigmas below the 304.8 mm floor


def started(run: SimRun, press_at: float) -> dict:
    record = run.first("session_started", after=press_at)
    assert record is not None, f"no session started after the press at {press_at}: {run.events('start_refused')}"
    assert record["t"] <= press_at + START_LATENCY_S
    return record


def refusal(run: SimRun, press_at: float) -> str:
    record = run.first("start_refused", after=press_at)
    assert record is not None and record["t"] <= press_at + START_LATENCY_S, f"no refusal for the press at {press_at}"
    assert (
        run.first("session_started", after=press_at) is None
        or run.first("session_started", after=press_at)["t"] > record["t"] + 1.0
    )
    return record["reason"]


# -- SR-3 start ----------------------------------------------------------------------------


def test_sr3_nothing_starts_without_a_press_not_even_after_a_restart(tmp_path):
    events = [{"at": 5, "restart": True}, press(20), {"at": 30, "restart": True}]
    run = run_sim(tmp_path, scenario(events, 60))
    started(run, 20)
    relay = run.relay()
    assert [r["on"] for r in relay] == [True, False], "the lamp came on without a press"
    assert relay[1]["t"] == pytest.approx(30) and relay[1]["reason"] == "restart"
    assert run.first("session_started", after=21) is None


@pytest.mark.parametrize(
    "setup, reason",
    [
        ({"distance_mm": 300}, "too_close"),  # below min_mm + hysteresis
        ({"distance_mm": 320}, "too_close"),  # in the hysteresis band
        ({"distance_mm": 500}, "out_of_band"),  # beyond max_mm
        ({"distance_mm": 8190}, "out_of_band"),  # nobody there
        ({"skin_c": 43.5}, "skin_too_warm"),  # already at/above the limit
    ],
)
def test_sr3_start_refused_by_distance_or_skin(tmp_path, setup, reason):
    run = run_sim(tmp_path, scenario([{"at": 1, **setup}, press(2)], 5))
    assert refusal(run, 2) == reason
    assert run.relay() == [] and run.fault_codes() == []


def test_sr3_refusals_for_cooldown_daily_limit_fault_and_unhealthy_sensor(tmp_path):
    # An unhealthy (in doubt, not yet latched) sensor at the moment of the start request: the
    # press edge switches the samplers to the full rate and the skin is read at once (bad);
    # it is good again by the next skin read, after the start was decided.
    press_at, held_s = 2.6, 0.15
    assert held_s + BOUNCE_S < SKIN_PERIOD_S
    events = [
        {"at": press_at - 0.05, "fault": {"sensor": "skin", "kind": "io_error"}},
        press(press_at, held_s),
        {"at": press_at + 0.1, "fault": {"sensor": "skin", "kind": "clear"}},
        press(5),
        press(8),  # a session, stopped
        press(10),  # cool-down
        {"at": 20, "skin_c": 43.5},
        press(21),  # skin too warm (no fault while idle)
        {"at": 22, "skin_c": 32.0},
        {"at": 25, "fault": {"sensor": "distance", "kind": "nan"}},
        {"at": 26, "fault": {"sensor": "distance", "kind": "clear"}},
        press(27),  # fault latched
    ]
    run = run_sim(tmp_path, scenario(events, 30, config={"session": {"sessions_per_day": 2}}))
    assert refusal(run, press_at) == "sensor_unhealthy"
    started(run, 5)
    assert refusal(run, 10) == "cooldown"
    assert refusal(run, 21) == "skin_too_warm"
    assert refusal(run, 27) == "fault_latched"
    assert run.fault_codes()[0] == "distance_nan"
    assert run.summary["sessions"] == 1

    daily = run_sim(tmp_path, scenario([press(1), press(3), press(5)], 8, config={"session": {"sessions_per_day": 1}}))
    assert refusal(daily, 5) == "daily_limit"


def test_sr3_refusal_reasons_read_in_the_timeline(tmp_path):
    path = write_scenario(tmp_path, scenario([{"at": 1, "distance_mm": 500}, press(2)], 4))
    proc, _ = simulate_cli(path, as_json=False)
    assert proc.returncode == 0
    line = next(line for line in proc.stdout.splitlines() if "start refused" in line)
    assert "out of band" in line and "amber blinks" in line


# -- SR-4 distance -------------------------------------------------------------------------


@pytest.mark.parametrize("phase_s", [0.0, 0.011, 0.022, DIST_PERIOD_S - 0.001])
@pytest.mark.parametrize("close_mm", [TOO_CLOSE_MM, 200, 0])
def test_sr4_too_close_is_off_within_one_distance_sample(tmp_path, phase_s, close_mm):
    at = round(10 + phase_s, 6)
    run = run_sim(tmp_path, scenario([press(1), {"at": at, "distance_mm": close_mm}], at + 1))
    off = run.first("relay", after=at)
    assert off is not None and off["on"] is False and off["reason"] == "too_close"
    assert off["t"] - at <= DIST_PERIOD_S + EPS_S
    assert run.first("paused", after=at)["reason"] == "too_close"


def test_sr4_raised_minimum_from_config(tmp_path):
    run = run_sim(
        tmp_path,
        scenario(
            [press(1), {"at": 10, "distance_mm": 340}],
            12,
            config={"distance": {"min_mm": 350, "max_mm": 480}},
            start={"distance_mm": 420},
        ),
    )
    off = run.first("relay", after=10)
    assert off["on"] is False and off["t"] - 10 <= DIST_PERIOD_S + EPS_S


def test_sr4_pause_resume_after_time_in_band_and_hysteresis(tmp_path):
    resume_s = CFG.distance.resume_after_s
    hysteresis_mm = CFG.distance.min_mm + CFG.distance.hysteresis_mm
    events = [
        press(1),
        {"at": 10, "distance_mm": TOO_CLOSE_MM},
        {"at": 12, "distance_mm": round(hysteresis_mm - 10)},  # above the floor, not yet back
        {"at": 20, "distance_mm": IN_BAND_MM},
        {"at": 20 + resume_s / 2, "distance_mm": TOO_CLOSE_MM},  # leaves again: timer restarts
        {"at": 25, "distance_mm": IN_BAND_MM},
    ]
    run = run_sim(tmp_path, scenario(events, 40))
    assert [r["on"] for r in run.relay()] == [True, False, True, False]
    (resumed,) = run.events("resumed")
    # decided at the sample that completes resume_after_s, lit at the loop's next tick
    assert 25 + resume_s <= resumed["t"] <= 25 + resume_s + DIST_PERIOD_S + STEP_S + EPS_S
    assert run.relay()[2]["t"] == resumed["t"]
    assert run.events("paused") == [run.first("paused")]  # one pause, the same reason throughout


def test_sr4_paused_too_long_ends_the_session(tmp_path):
    run = run_sim(
        tmp_path, scenario([press(1), {"at": 10, "distance_mm": TOO_CLOSE_MM}], 10 + CFG.distance.max_pause_s + 5)
    )
    (ended,) = run.events("session_ended")
    assert ended["reason"] == "too_close_too_long"
    paused = run.first("paused")
    assert CFG.distance.max_pause_s <= ended["t"] - paused["t"] <= CFG.distance.max_pause_s + STEP_S + EPS_S
    assert [r["on"] for r in run.relay()] == [True, False]


@pytest.mark.parametrize("away_mm", [8190, 1200])
def test_sr4_nobody_there_pauses_and_ends(tmp_path, away_mm):
    run = run_sim(
        tmp_path, scenario([press(1), {"at": 10, "distance_mm": away_mm}], 10 + CFG.distance.absent_end_s + 5)
    )
    off = run.first("relay", after=10)
    assert off["on"] is False and off["reason"] == "nobody_there" and off["t"] - 10 <= DIST_PERIOD_S + EPS_S
    (ended,) = run.events("session_ended")
    assert ended["reason"] == "nobody_there"
    assert CFG.distance.absent_end_s <= ended["t"] - off["t"] <= CFG.distance.absent_end_s + STEP_S + EPS_S


# -- SR-5 skin temperature -----------------------------------------------------------------


@pytest.mark.parametrize("skin_c", [CFG.skin.limit_c + 0.2, 50.0])
def test_sr5_overheat_turns_off_ends_and_latches(tmp_path, skin_c):
    at = 30.1
    run = run_sim(tmp_path, scenario([press(1), {"at": at, "skin_c": skin_c}], 40))
    off = run.first("relay", after=at)
    assert off["on"] is False and off["t"] - at <= SKIN_PERIOD_S + EPS_S
    assert run.fault_codes() == ["skin_overheat"]
    (ended,) = run.events("session_ended")
    assert ended["reason"] == "overheat" and ended["max_skin_c"] >= CFG.skin.limit_c


def test_sr5_warning_band_keeps_the_lamp_on_and_is_signalled(tmp_path):
    warm_c = CFG.skin.limit_c - CFG.skin.warning_margin_c / 2
    run = run_sim(
        tmp_path, scenario([press(1), {"at": 10, "skin_c": warm_c}], 15, config={"skin": {"comfort_c": None}})
    )  # no servo: the lamp stays on
    warning = run.first("skin_warning", on=True)
    assert warning is not None and warning["t"] - 10 <= SKIN_PERIOD_S + EPS_S
    assert run.relay_on_at(14.9) and run.fault_codes() == []


def test_sr5_skin_not_heating_is_a_fault(tmp_path):
    run = run_sim(tmp_path, scenario([press(1)], CFG.skin.heating_check_s + 10, thermal_model=False))
    assert run.fault_codes() == ["skin_not_heating"]
    (ended,) = run.events("session_ended")
    assert ended["reason"] == "fault"
    assert CFG.skin.heating_check_s <= ended["on_s"] <= CFG.skin.heating_check_s + STEP_S
    assert not run.relay_on_at(CFG.skin.heating_check_s + 5)


def test_sr5_heated_skin_passes_the_heating_check(tmp_path):
    minutes = 4
    run = run_sim(
        tmp_path,
        scenario([press(1)], minutes * 60 + 10, thermal_model=True, config={"session": {"max_on_minutes": minutes}}),
    )
    assert run.fault_codes() == []
    (ended,) = run.events("session_ended")
    assert ended["reason"] == "completed"


@pytest.mark.parametrize("state", ["idle", "running"])
def test_sr5_sensor_body_cooking_is_a_fault(tmp_path, state):
    events = [{"at": 10, "ambient_c": CFG.skin.sensor_body_max_c + 5}] + ([press(1)] if state == "running" else [])
    run = run_sim(tmp_path, scenario(events, 12))
    assert run.fault_codes() == ["skin_sensor_hot"]
    assert run.first("fault")["t"] - 10 <= SKIN_PERIOD_S + EPS_S
    assert not run.relay_on_at(10 + SKIN_PERIOD_S + EPS_S)


@pytest.mark.parametrize("skin_c", [CFG.skin.plausible_min_c - 5, CFG.skin.plausible_max_c + 5])
def test_sr5_implausible_skin_reading_is_a_fault(tmp_path, skin_c):
    run = run_sim(tmp_path, scenario([press(1), {"at": 10, "skin_c": skin_c}], 12))
    assert not run.relay_on_at(10 + SKIN_PERIOD_S + EPS_S)
    codes = run.fault_codes()
    assert codes and codes[0] in ("skin_out_of_range", "skin_overheat")
    if skin_c < CFG.skin.limit_c:
        assert codes[0] == "skin_out_of_range"


# -- SR-6 exposure time --------------------------------------------------------------------


@pytest.mark.parametrize("max_on_minutes", [CFG.session.max_on_minutes, 15])
def test_sr6_on_time_cap(tmp_path, max_on_minutes):
    cap_s = max_on_minutes * 60.0
    config = {"session": {"max_on_minutes": max_on_minutes}}
    run = run_sim(tmp_path, scenario([press(1)], cap_s + 60, thermal_model=True, config=config))
    # the loop wakes at the instant the cap runs out (not up to a loop period after it)
    assert cap_s <= run.summary["lamp_on_s"] <= cap_s + EPS_S
    (ended,) = run.events("session_ended")
    assert ended["reason"] == "completed" and ended["on_s"] <= cap_s + EPS_S
    assert [r["on"] for r in run.relay()] == [True, False]


def test_sr6_the_hard_ceiling_cannot_be_raised(tmp_path, capsys):
    from controller.cli import main

    path = write_scenario(tmp_path, scenario([press(1)], 10, config={"session": {"max_on_minutes": 21}}))
    assert main(["simulate", str(path), "--json"]) == 2
    assert "max_on_minutes" in capsys.readouterr().err


def test_sr6_paused_time_does_not_count(tmp_path):
    minutes, pause_s = 3, 100.0
    events = [press(1), {"at": 60, "distance_mm": TOO_CLOSE_MM}, {"at": 60 + pause_s, "distance_mm": IN_BAND_MM}]
    run = run_sim(tmp_path, scenario(events, 400, thermal_model=True, config={"session": {"max_on_minutes": minutes}}))
    (ended,) = run.events("session_ended")
    assert ended["reason"] == "completed"
    assert ended["on_s"] == pytest.approx(minutes * 60, abs=STEP_S)
    assert ended["elapsed_s"] >= minutes * 60 + pause_s + CFG.distance.resume_after_s - DIST_PERIOD_S
    assert run.summary["lamp_on_s"] == pytest.approx(minutes * 60, abs=STEP_S)


def test_sr6_wall_time_cap_ends_a_long_paused_session(tmp_path):
    config = {"session": {"max_on_minutes": 10, "max_wall_minutes": 12}, "distance": {"max_pause_s": 300}}
    events = [press(1), {"at": 60, "distance_mm": TOO_CLOSE_MM}, {"at": 260, "distance_mm": IN_BAND_MM}]
    run = run_sim(tmp_path, scenario(events, 900, thermal_model=True, config=config))
    (ended,) = run.events("session_ended")
    assert ended["reason"] == "wall_time_cap"
    assert 12 * 60 <= ended["elapsed_s"] <= 12 * 60 + STEP_S
    assert ended["on_s"] < 10 * 60
    assert not run.relay_on_at(ended["t"])


# -- SR-7 daily limits ---------------------------------------------------------------------


def test_sr7_fourth_session_refused_and_wall_clock_jumps_never_add_one(tmp_path):
    per_day = CFG.session.sessions_per_day
    assert per_day == 3
    starts = [1 + i * (GAP_S + 10) for i in range(per_day)]
    events = []
    for at in starts:
        events += [press(at), press(at + 5)]
    fourth = starts[-1] + GAP_S + 10
    events += [
        press(fourth),
        {"at": fourth + 10, "wall_clock_jump_s": 86400},
        press(fourth + 20),  # tomorrow?
        {"at": fourth + 30, "wall_clock_jump_s": -2 * 86400},
        press(fourth + 40),  # yesterday?
        {"at": fourth + 50, "restart": True},
        press(fourth + 60),
    ]  # after a restart
    run = run_sim(
        tmp_path, scenario(events, fourth + 65, config=SHORT_GAP, start={"wall_clock": "2026-01-05T09:00:00"})
    )
    for at in starts:
        started(run, at)
    for at in (fourth, fourth + 20, fourth + 40, fourth + 60):
        assert refusal(run, at) == "daily_limit", at
    assert run.summary["sessions"] == per_day


def test_sr7_gap_enforced_across_a_restart_and_a_forward_clock_jump(tmp_path):
    events = [
        press(1),
        press(6),
        {"at": 10, "restart": True},
        press(20),
        {"at": 30, "wall_clock_jump_s": 2 * 3600},
        press(40),
        press(6 + GAP_S - 5),
        press(6 + GAP_S + 5),
    ]
    run = run_sim(tmp_path, scenario(events, 6 + GAP_S + 10, config=SHORT_GAP))
    for at in (20, 40, 6 + GAP_S - 5):
        assert refusal(run, at) == "cooldown", at
    started(run, 6 + GAP_S + 5)
    assert run.summary["sessions"] == 2


# -- SR-10 stop and acknowledge ------------------------------------------------------------


@pytest.mark.parametrize("held_s", [0.1, 1.0, LONG_HELD_S])
def test_sr10_any_press_stops_at_once(tmp_path, held_s):
    at = 20.005
    run = run_sim(tmp_path, scenario([press(1), press(at, held_s)], at + held_s + 2))
    off = run.first("relay", after=at)
    assert off["on"] is False and off["t"] - at <= BOUNCE_S + DIST_PERIOD_S + EPS_S
    (ended,) = run.events("session_ended")
    assert ended["reason"] == "stopped_by_button" and ended["t"] == off["t"]
    assert run.first("session_started", after=at) is None, "the release of the stop press started a session"


def test_sr10_a_press_while_paused_ends_the_session(tmp_path):
    at = 20.005
    events = [press(1), {"at": 10, "distance_mm": TOO_CLOSE_MM}, press(at), {"at": 21, "distance_mm": IN_BAND_MM}]
    run = run_sim(tmp_path, scenario(events, 30))
    (ended,) = run.events("session_ended")
    assert ended["reason"] == "stopped_by_button"
    assert ended["t"] - at <= BOUNCE_S + DIST_PERIOD_S + EPS_S
    assert [r["on"] for r in run.relay()] == [True, False], "the lamp came back after the stop"


def test_sr10_fault_survives_restart_until_long_press(tmp_path):
    events = [
        press(1),
        {"at": 10, "skin_c": 44.0},
        {"at": 12, "skin_c": 32.0},
        {"at": 15, "restart": True},
        press(20),
        {"at": 25, "restart": True},
        press(30),
        press(35, 1.5),  # a press shorter than the long press does not acknowledge
        press(40, LONG_HELD_S),
        press(50),
    ]
    run = run_sim(tmp_path, scenario(events, 55, config=SHORT_GAP))
    restored = run.events("faults_restored")
    assert [r["codes"] for r in restored] == [["skin_overheat"], ["skin_overheat"]]
    assert refusal(run, 20) == "fault_latched"
    assert refusal(run, 30) == "fault_latched"
    assert run.first("fault_acknowledged", after=35)["t"] >= 40
    ack = run.first("fault_acknowledged", after=40)
    assert ack["codes"] == ["skin_overheat"]
    assert ack["t"] == pytest.approx(40 + CFG.button.long_press_s, abs=BOUNCE_S + DIST_PERIOD_S + EPS_S)
    assert refusal(run, 50) == "cooldown"
    assert [r["on"] for r in run.relay()] == [True, False]


def test_sr10_button_held_at_start_up_or_far_too_long_is_stuck(tmp_path):
    held_through_restart = run_sim(tmp_path, scenario([press(8, 5.0), {"at": 10, "restart": True}], 15))
    assert held_through_restart.fault_codes() == ["button_stuck"]
    assert held_through_restart.relay() == []
    held_long = run_sim(tmp_path, scenario([press(2, CFG.button.stuck_s + 2)], CFG.button.stuck_s + 6))
    (fault,) = held_long.events("fault")
    assert fault["code"] == "button_stuck"
    assert fault["t"] == pytest.approx(2 + CFG.button.stuck_s, abs=BOUNCE_S + DIST_PERIOD_S + EPS_S)
    assert held_long.relay() == [] and held_long.first("session_started") is None


# -- SR-12 records -------------------------------------------------------------------------


def test_sr12_state_dir_is_kept_and_history_shows_the_sessions(tmp_path):
    state = tmp_path / "state"
    wall_start = (dt.datetime.now() - dt.timedelta(hours=3)).replace(microsecond=0)
    events = [
        press(1),
        press(30),  # stopped_by_button
        press(30 + GAP_S + 10),
        {"at": 30 + GAP_S + 40, "skin_c": 44.0},  # overheat
        {"at": 30 + GAP_S + 50, "skin_c": 32.0},
        press(30 + GAP_S + 60, LONG_HELD_S),
    ]
    doc = scenario(events, 30 + GAP_S + 70, config=SHORT_GAP, start={"wall_clock": wall_start.isoformat()})
    proc, run = simulate_cli(write_scenario(tmp_path, doc), "--state-dir", str(state))
    assert proc.returncode == 0, proc.stderr
    assert (state / "journal.sqlite3").is_file()
    hist = run_cli("history", "--state-dir", str(state), "--json")
    assert hist.returncode == 0, hist.stderr
    data = json.loads(hist.stdout)
    sessions = sorted(data["sessions"], key=lambda s: s["id"])
    assert [s["end_reason"] for s in sessions] == ["stopped_by_button", "overheat"]
    ended = run.events("session_ended")
    for record, event in zip(sessions, ended, strict=True):
        assert record["on_s"] == pytest.approx(event["on_s"], abs=ROUNDING_S)
        assert record["max_skin_c"] == pytest.approx(event["max_skin_c"])
        assert record["min_distance_mm"] == pytest.approx(event["min_distance_mm"])
    assert sessions[1]["max_skin_c"] >= CFG.skin.limit_c
    assert [f["code"] for f in data["faults"]] == ["skin_overheat"]
    assert data["faults"][0]["acknowledged"] is True
    text = run_cli("history", "--state-dir", str(state))
    assert text.returncode == 0 and "skin too hot" in text.stdout and "stopped with the button" in text.stdout


def test_sr10_relay_off_reason_names_the_button_stop(tmp_path):
    run = run_sim(tmp_path, scenario([press(1), press(10)], 12))
    off = run.first("relay", after=10)
    assert off["on"] is False and off["reason"] == "stopped_by_button"


def test_sr5_warning_band_does_not_flicker_on_sensor_noise(tmp_path):
    # Skin sitting exactly at the start of the warning band: the reading's noise crosses the
    # threshold all the time; the warning must come on once and stay on.
    cfg = default_config()
    edge_c = cfg.skin.limit_c - cfg.skin.warning_margin_c
    run = run_sim(tmp_path, scenario([], 30, start={"skin_c": edge_c}))
    assert [e["on"] for e in run.events("skin_warning")] == [True]
