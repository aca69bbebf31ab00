"""SR-14 in `irlamp simulate` with the thermal model: config/scenarios/comfort.yaml puts a person
12.5 in from the lamp, where the simulated skin would settle above the 43 C limit. The servo must
hold it near the comfort set point for the whole session, with no fault and bounded switching;
without the servo the same scenario trips the overheat limit."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from scenario_helpers import REPO, default_config, run_sim

CFG = default_config()
SCENARIO = REPO / "config" / "scenarios" / "comfort.yaml"


def comfort_scenario(**config) -> dict:
    doc = yaml.safe_load(SCENARIO.read_text(encoding="utf-8"))
    for section, values in config.items():
        doc["config"].setdefault(section, {}).update(values)
    return doc


def test_the_equilibrium_at_12_5_in_is_above_the_limit_so_without_the_servo_it_trips(tmp_path: Path):
    run = run_sim(tmp_path, comfort_scenario(skin={"comfort_c": None}))
    assert run.fault_codes() == ["skin_overheat"]
    assert [e["reason"] for e in run.events("session_ended")] == ["overheat"]


def test_the_servo_holds_the_skin_near_comfort_for_a_whole_session_without_a_fault(tmp_path: Path):
    run = run_sim(tmp_path, comfort_scenario())
    assert run.fault_codes() == []
    (ended,) = run.events("session_ended")
    assert ended["reason"] == "completed"
    assert ended["on_s"] >= CFG.session.max_on_minutes * 60 - 0.1
    assert ended["max_skin_c"] < CFG.skin.comfort_c + 0.2  # never far above the set point
    assert 10 <= ended["switches"] <= CFG.session.max_switches  # it did cycle, and boundedly
    assert ended["doubt_switches"] == 0
    ons = [r for r in run.relay() if r["on"]]
    assert len(ons) == ended["switches"]  # every relay switch-on counted
    coolings = run.events("cooling")
    assert len(coolings) == ended["switches"] - 1
    # after it first reached the set point the skin stays within the hysteresis band and the
    # cooling of min_off_s (the thermal model falls about 1.4 C in 30 s at 41 C)
    first_cooling_t = coolings[0]["t"]
    held = [r["skin_c"] for r in run.events("progress") if r["t"] > first_cooling_t and r["skin_c"]]
    assert held and min(held) > CFG.skin.comfort_c - 2.0 and max(held) < CFG.skin.comfort_c + 0.2
    offs = [r for r in run.relay() if not r["on"] and r["reason"] == "comfort"]
    gaps = [on["t"] - off["t"] for off, on in zip(offs, ons[1:], strict=False)]
    assert gaps and min(gaps) >= CFG.session.min_off_s - 0.001


def test_a_small_switch_budget_ends_the_session_as_comfort_cycling_not_a_fault(tmp_path: Path):
    run = run_sim(tmp_path, comfort_scenario(session={"max_switches": 5}))
    (ended,) = run.events("session_ended")
    assert ended["reason"] == "comfort_cycling" and ended["switches"] == 5
    assert run.fault_codes() == []
    assert len([r for r in run.relay() if r["on"]]) == 5


def test_the_dose_is_journaled_shown_in_history_and_the_daily_cap_refuses_the_next_start(tmp_path: Path):
    import io
    import json

    from controller.service.history import history_command
    from controller.service.journal import JournalReader

    doc = comfort_scenario(session={"max_daily_dose_cem43": 0.5, "min_gap_minutes": 30})
    doc["events"].append({"at": 1742 + 1801 + 60, "press": 0.3})  # after the cool-down gap
    doc["until"] = 3700
    state = tmp_path / "state"
    run = run_sim(tmp_path, doc, state_dir=state)
    (ended,) = run.events("session_ended")
    # about 20 min between 39.6 and 41 C plus the warm-up: 1/16 CEM43 a minute at 41 C at most
    assert 0.5 < ended["dose_cem43"] < 20 / 16
    assert [r["reason"] for r in run.events("start_refused")] == ["daily_dose"]
    with JournalReader(state) as reader:
        (session,) = reader.recent_sessions(1)
    assert session.dose_cem43 == ended["dose_cem43"] and session.switches == ended["switches"]
    out, err = io.StringIO(), io.StringIO()
    assert history_command(state, 3650, True, now_wall=session.end_wall, out=out, err=err) == 0
    data = json.loads(out.getvalue())
    assert data["sessions"][0]["dose_cem43"] == ended["dose_cem43"]
    assert data["days"][0]["dose_cem43"] == round(ended["dose_cem43"], 4)


def test_status_shows_the_running_sessions_dose_and_switch_ons(tmp_path: Path, monkeypatch):
    from controller.service.daemon import Daemon
    from controller.service.status_reader import format_status

    snapshots = []
    original = Daemon.status_snapshot
    monkeypatch.setattr(Daemon, "status_snapshot", lambda self: snapshots.append(original(self)) or snapshots[-1])
    doc = comfort_scenario()
    doc["until"] = 400
    run_sim(tmp_path, doc, state_dir=tmp_path / "state")
    during = [s for s in snapshots if s["state"] in ("running", "cooling")]
    doses = [s["dose_cem43"] for s in during]
    assert doses == sorted(doses) and 0.01 < doses[-1] < 1.0  # it only grows
    assert during[-1]["switches"] >= 2
    text = "\n".join(format_status(during[-1], during[-1]["heartbeat_wall"]))
    assert f"Heat dose:      {doses[-1]:.2f} CEM43 min this session" in text


def test_the_thermal_model_settles_by_the_inverse_square_of_the_distance_and_cools_when_off():
    from drivers.sim_sensors import THERMAL_RISE_AT_400MM_C, SimWorld

    clock = {"t": 0.0, "on": True}
    world = SimWorld(317.5, 33.5, thermal_model=True, lamp_on=lambda: clock["on"], monotonic=lambda: clock["t"])
    for _ in range(200):  # 2000 s with the lamp on: 13 time constants
        clock["t"] += 10.0
        world.update()
    equilibrium_c = 33.5 + THERMAL_RISE_AT_400MM_C * (400.0 / 317.5) ** 2
    assert world.skin_c == pytest.approx(equilibrium_c, abs=0.01) and equilibrium_c > CFG.skin.limit_c
    world.distance_mm = 400.0
    for _ in range(200):
        clock["t"] += 10.0
        world.update()
    assert world.skin_c == pytest.approx(33.5 + THERMAL_RISE_AT_400MM_C, abs=0.01)  # farther: cooler
    clock["on"] = False
    for _ in range(200):
        clock["t"] += 10.0
        world.update()
    assert world.skin_c == pytest.approx(33.5, abs=0.01)  # off: back to skin
