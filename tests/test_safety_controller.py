"""Example tests for `SafetyController`: one behaviour of SR-3, SR-4, SR-5, SR-6 and SR-10 each.

The bench (tests/helpers_core.py) publishes samples on each sensor's period and steps the
controller after every sample, like the daemon. Times are simulated; nothing sleeps.
"""

from __future__ import annotations

import math

import pytest

from controller.core.indicators import REFUSAL_SHOW_S
from controller.core.readings import NO_TARGET_MM, Sample
from controller.core.safety import (
    AMBIENT_WARN_EVERY_S,
    JOURNAL_BUSY_S,
    JOURNAL_STALL_S,
    Decision,
    JournalHealth,
    hazard_checks,
    journal_refusal,
)
from helpers_core import (
    COOLDOWN,
    DAILY_LIMIT,
    TIGHT_OVERRIDES,
    Bench,
    config_with,
    default_config,
    distance_period_s,
    skin_period_s,
)

CFG = default_config()
D, S, SES, BTN = CFG.distance, CFG.skin, CFG.session, CFG.button
IN_BAND_MM = 400.0
BOUNCE_S = BTN.bounce_ms / 1000.0


def running_bench(cfg=CFG, **run_kwargs) -> Bench:
    bench = Bench(cfg)
    bench.start_session(**run_kwargs)
    assert bench.lamp_on()
    return bench


def refusal_of(bench: Bench) -> str:
    refused = bench.fields_of("start_refused")
    assert refused, f"no refusal; events {bench.names()}"
    return refused[-1]["reason"]


def warming(bench: Bench, rate_c_per_s: float = 0.02, start_c: float = 33.0, most_c: float = 6.0):
    """Skin that warms steadily from now on, as under a working lamp (passes the heating check),
    by at most `most_c`."""
    t0 = bench.now
    return lambda _elapsed_s: start_c + min(most_c, rate_c_per_s * (bench.now - t0))


# -- SR-3: only a good short press starts, and each refusal says why ---------------------------
def test_short_press_starts_a_session_with_its_readings():
    bench = Bench(CFG)
    bench.settle()
    assert bench.ctl.state == "idle" and not bench.lamp_on()
    bench.press(0.2)
    started = bench.fields_of("session_started")
    assert len(started) == 1 and bench.lamp_on() and bench.ctl.state == "running"
    assert started[0]["distance_mm"] == pytest.approx(IN_BAND_MM, abs=1.0)
    assert started[0]["skin_c"] == pytest.approx(33.0, abs=0.1)
    press_time = bench.first_time("session_started")
    assert all(not d.lamp_on for t, d in bench.decisions if t < press_time)


def test_session_starts_on_release_not_on_press():
    bench = Bench(CFG)
    bench.settle()
    bench.button = True
    bench.run(1.0)
    assert not bench.lamp_on() and "session_started" not in bench.names()
    bench.button = False
    bench.run(0.2)
    assert bench.lamp_on()


def test_nothing_starts_without_a_press():
    bench = Bench(CFG)
    bench.run(120.0)
    assert not any(d.lamp_on for _, d in bench.decisions)
    assert "session_started" not in bench.names()


def _refuse_by_distance(distance_mm):
    def setup(bench: Bench) -> dict:
        bench.settle(distance_mm=distance_mm)
        return {"distance_mm": distance_mm}

    return setup


def _refuse_by_skin(bench: Bench) -> dict:
    bench.settle(skin_c=S.limit_c, noise=False)
    return {"skin_c": S.limit_c, "noise": False}


def _refuse_by_allowance(allowance):
    def setup(bench: Bench) -> dict:
        bench.allowance = allowance
        bench.settle()
        return {}

    return setup


def _refuse_by_doubt(bench: Bench) -> dict:
    bench.settle()
    bench.publish("skin", None, error="io_error")  # one failed read: doubt, not yet a fault
    bench.step(bench.now + 0.001)
    return {"skin_c": None}


def _refuse_by_fault(bench: Bench) -> dict:
    bench.settle()
    bench.run(0.1, distance_error="io_error")  # two bad reads in a row latch
    assert bench.ctl.latched == ["distance_io_error"]
    bench.settle()  # the sensor recovers; the fault stays
    return {}


@pytest.mark.parametrize(
    "setup, reason",
    [
        (_refuse_by_distance(D.min_mm + D.hysteresis_mm - 1.0), "too_close"),
        (_refuse_by_distance(D.min_mm - 50.0), "too_close"),
        (_refuse_by_distance(D.max_mm + 1.0), "out_of_band"),
        (_refuse_by_distance(8190.0), "out_of_band"),
        (_refuse_by_skin, "skin_too_warm"),
        (_refuse_by_allowance(DAILY_LIMIT), "daily_limit"),
        (_refuse_by_allowance(COOLDOWN), "cooldown"),
        (_refuse_by_doubt, "sensor_unhealthy"),
        (_refuse_by_fault, "fault_latched"),
    ],
    ids=["hysteresis", "too_close", "beyond_max", "no_target", "skin", "daily_limit", "cooldown", "doubt", "fault"],
)
def test_each_start_refusal_reason(setup, reason):
    bench = Bench(CFG)
    run_kwargs = setup(bench)
    latched_before = list(bench.ctl.latched)
    bench.button = True
    bench.run(0.2, **run_kwargs)
    bench.button = False
    bench.run(BOUNCE_S + 0.07, **run_kwargs)
    assert refusal_of(bench) == reason
    assert bench.readout.refused[0] == reason and bench.readout.refused[1] > bench.now
    assert bench.ctl.session is None and not any(d.lamp_on for _, d in bench.decisions)
    assert bench.ctl.latched == latched_before, "a refusal latches nothing"


def test_start_allowed_at_the_edges_of_the_band():
    for distance_mm in (D.min_mm + D.hysteresis_mm, D.max_mm):
        bench = Bench(CFG)
        bench.settle(distance_mm=distance_mm, noise=False)
        bench.press(0.2, distance_mm=distance_mm, noise=False)
        assert bench.lamp_on(), (distance_mm, bench.names())


def test_distance_offset_is_subtracted_before_judging():
    cfg = config_with({"distance": {"offset_mm": 100.0}})
    bench = Bench(cfg)
    reading = D.min_mm + D.hysteresis_mm + 50.0  # in the band as read, too close once offset
    bench.settle(distance_mm=reading)
    bench.press(0.2, distance_mm=reading)
    assert refusal_of(bench) == "too_close"


def test_start_refused_before_sensors_have_delivered():
    bench = Bench(CFG)
    bench.button = False
    bench.step(bench.now + 0.01)
    bench.button = True
    bench.run(0.2, distance_mm=None, skin_c=None)
    bench.button = False
    bench.run(0.1, distance_mm=None, skin_c=None)
    assert refusal_of(bench) == "sensor_unhealthy"


def test_refusal_leaves_the_lamp_off_and_a_later_press_can_start():
    bench = Bench(CFG)
    bench.settle(distance_mm=250.0)
    bench.press(0.2, distance_mm=250.0)
    assert refusal_of(bench) == "too_close"
    bench.settle()
    bench.press(0.2)
    assert bench.lamp_on() and bench.readout.refused is None


# -- SR-4: distance -------------------------------------------------------------------------
def test_too_close_turns_the_lamp_off_at_the_first_sample():
    bench = running_bench()
    bench.publish("distance", D.min_mm - 0.01)
    decision = bench.step(bench.now + distance_period_s(CFG))
    assert not decision.lamp_on and decision.reason == "too_close"
    assert ("paused", {"reason": "too_close"}) in decision.events
    assert bench.ctl.state == "paused" and bench.ctl.session is not None


def test_exactly_at_min_mm_is_allowed_while_running():
    bench = running_bench()
    bench.run(1.0, distance_mm=D.min_mm, noise=False)
    assert bench.lamp_on() and bench.ctl.state == "running"


def test_resume_only_after_resume_after_s_beyond_the_hysteresis():
    bench = running_bench()
    bench.run(1.0, distance_mm=250.0)
    assert bench.ctl.state == "paused"
    bench.run(10.0, distance_mm=D.min_mm + D.hysteresis_mm - 1.0)  # above min, inside hysteresis
    assert bench.ctl.state == "paused" and not bench.lamp_on()
    back = bench.now
    bench.run(D.resume_after_s + 0.5, distance_mm=D.min_mm + D.hysteresis_mm + 5.0)
    resumed_at = bench.first_time("resumed")
    assert resumed_at is not None and bench.lamp_on()
    first_in_band = back + distance_period_s(CFG)
    assert resumed_at - first_in_band == pytest.approx(D.resume_after_s, abs=distance_period_s(CFG) + 1e-6)
    assert not any(d.lamp_on for t, d in bench.decisions if back <= t < resumed_at)


def test_a_dip_into_the_hysteresis_restarts_the_resume_wait():
    bench = running_bench()
    bench.run(1.0, distance_mm=250.0)
    bench.run(D.resume_after_s - 0.5)
    bench.run(0.1, distance_mm=D.min_mm + 10.0)
    dip_end = bench.now
    bench.run(D.resume_after_s - 0.2)
    assert bench.ctl.state == "paused", "resumed although the person was not continuously in the band"
    bench.run(0.5)
    assert bench.ctl.state == "running" and bench.first_time("resumed") >= dip_end + D.resume_after_s - 1e-6


def test_a_reading_in_doubt_restarts_the_resume_wait():
    """'Continuously in the band' must be seen: a failed read during the wait is not proof."""
    bench = running_bench()
    bench.run(1.0, distance_mm=250.0)
    bench.run(D.resume_after_s - 0.5)
    bench.publish("distance", None, error="io_error")  # one glitch: doubt, below the retry bound
    bench.step(bench.now + 0.001)
    glitch_at = bench.now
    bench.run(D.resume_after_s - 0.2)
    assert not bench.ctl.latched
    assert bench.ctl.state == "paused", "resumed across a reading the controller could not trust"
    bench.run(0.5)
    assert bench.ctl.state == "running" and bench.first_time("resumed") >= glitch_at + D.resume_after_s


def test_a_one_sample_glare_doubt_judged_a_tick_late_is_not_a_gap_in_the_band():
    """The loop steps on its own tick, up to a loop period after a sample arrived. A single
    doubted sample between two good ones (the glare case) pauses for that sample only: the
    gap between good samples is measured between the samples, not to the later step, so the
    resume is not restarted (which would cost resume_after_s of heat at every doubt)."""
    bench = running_bench()
    bench.run(D.resume_after_s + 1.0)  # in the band for longer than the resume wait
    period_s, tick_s = CFG.distance.timing_budget_ms / 1000.0, 1.0 / CFG.loop.rate_hz
    t0 = bench.now
    bench.publish("distance", 400.0, t_s=t0 + period_s)
    bench.step(t0 + period_s + tick_s)
    bench.publish("distance", 400.0, error="unreliable", t_s=t0 + 2 * period_s)
    assert not bench.step(t0 + 2 * period_s + tick_s).lamp_on
    bench.publish("distance", 401.0, t_s=t0 + 3 * period_s)
    decision = bench.step(t0 + 3 * period_s + tick_s)
    assert decision.lamp_on and bench.ctl.state == "running"


def test_paused_too_long_ends_the_session():
    bench = running_bench()
    bench.run(1.0)
    paused_from = bench.now + distance_period_s(CFG)
    bench.run(D.max_pause_s + 1.0, distance_mm=250.0)
    ended = bench.fields_of("session_ended")
    assert [e["reason"] for e in ended] == ["too_close_too_long"]
    end_t = bench.first_time("session_ended")
    assert end_t - paused_from == pytest.approx(D.max_pause_s, abs=distance_period_s(CFG) + 1e-6)
    assert bench.ctl.state == "idle" and not bench.lamp_on()
    assert ended[0]["min_distance_mm"] == pytest.approx(250.0, abs=1.0)


@pytest.mark.parametrize("distance_mm", [8190.0, D.absent_mm, D.absent_mm + 300.0])
def test_nobody_there_pauses_and_ends_after_absent_end_s(distance_mm):
    bench = running_bench()
    bench.run(1.0)
    gone_from = bench.now + distance_period_s(CFG)
    bench.run(1.0, distance_mm=distance_mm)
    assert bench.ctl.state == "paused" and bench.ctl.session.pause_reason == "nobody_there"
    assert not bench.lamp_on()
    bench.run(D.absent_end_s, distance_mm=distance_mm)
    assert [e["reason"] for e in bench.fields_of("session_ended")] == ["nobody_there"]
    assert bench.first_time("session_ended") - gone_from == pytest.approx(
        D.absent_end_s, abs=distance_period_s(CFG) + 1e-6
    )


def test_between_max_and_absent_the_lamp_stays_on():
    bench = running_bench()
    bench.run(5.0, distance_mm=(D.max_mm + D.absent_mm) / 2)
    assert bench.lamp_on() and bench.ctl.state == "running"


def test_paused_time_does_not_count_as_on_time():
    bench = running_bench()
    bench.run(10.0)
    bench.run(30.0, distance_mm=250.0)
    bench.run(10.0)
    on_s = bench.ctl.session.on_s
    assert on_s == pytest.approx(10.0 + 10.0 - D.resume_after_s, abs=0.2)


# -- SR-5: skin ------------------------------------------------------------------------------
def test_overheat_turns_off_ends_the_session_and_latches():
    bench = running_bench()
    bench.run(2.0)
    bench.publish("skin", S.limit_c, ambient_c=30.0)
    decision = bench.step(bench.now + 0.01)
    assert not decision.lamp_on and decision.reason == "skin_overheat"
    assert bench.ctl.latched == ["skin_overheat"]
    assert [e["reason"] for e in bench.fields_of("session_ended")] == ["overheat"]
    assert bench.fields_of("session_ended")[0]["max_skin_c"] == S.limit_c
    bench.run(300.0)  # skin cools; the fault does not clear
    assert bench.ctl.state == "fault" and not bench.lamp_on()


def test_warning_band_is_shown_and_cleared():
    bench = running_bench(config_with({"skin": {"comfort_c": None}}))  # the servo would switch off at 41
    warm = S.limit_c - S.warning_margin_c
    bench.run(1.0, skin_c=warm - 0.05, noise=False)
    assert not bench.last_decision.warning
    bench.run(1.0, skin_c=warm, noise=False)
    assert bench.last_decision.warning and bench.lamp_on()
    assert bench.fields_of("skin_warning") == [{"on": True}]
    bench.run(1.0, skin_c=warm - 0.5)
    assert not bench.last_decision.warning
    assert bench.fields_of("skin_warning") == [{"on": True}, {"on": False}]


def test_skin_that_does_not_warm_is_a_not_heating_fault():
    bench = running_bench()
    bench.run(S.heating_check_s + 1.0, skin_c=33.0)
    assert "skin_not_heating" in bench.ctl.latched and not bench.lamp_on()
    fault_t = bench.first_time("fault")
    assert fault_t - bench.first_time("session_started") == pytest.approx(
        S.heating_check_s, abs=distance_period_s(CFG) + 0.01
    )


def test_skin_that_warms_passes_the_heating_check():
    bench = running_bench()
    bench.run(S.heating_check_s + 30.0, skin_c=warming(bench))
    assert bench.lamp_on() and not bench.ctl.latched


def rising_to(bench: Bench, rise_c: float, start_c: float = 33.0, rate_c_per_s: float = 0.02):
    """Skin that warms at `rate_c_per_s` from now until it has risen exactly `rise_c`, then
    wobbles a little below that peak (never above it), so the session's largest rise is `rise_c`."""
    t0 = bench.now
    peak_c = start_c + rise_c

    def skin_c(_elapsed_s: float) -> float:
        warmed_c = start_c + rate_c_per_s * (bench.now - t0)
        if warmed_c < peak_c:
            return warmed_c
        return peak_c if warmed_c - peak_c < 0.01 else peak_c - (0.02 if round(bench.now * 4) % 2 else 0.03)

    return skin_c


def wobbling_distance(bench: Bench, distance_mm: float = IN_BAND_MM):
    """A person lying still in the band: the reading wobbles by half a millimetre."""
    return lambda _elapsed_s: distance_mm + (0.5 if round(bench.now / distance_period_s(bench.cfg)) % 2 else 0.0)


def test_a_rise_just_short_of_heating_min_rise_is_a_not_heating_fault():
    """The heating check must see the whole configured rise: 95 % of it (or 0.1 C less, or
    half) is not enough."""
    bench = running_bench(noise=False)
    bench.run(
        S.heating_check_s + 1.0,
        skin_c=rising_to(bench, S.heating_min_rise_c - 0.05),
        distance_mm=wobbling_distance(bench),
        noise=False,
    )
    assert bench.ctl.latched == ["skin_not_heating"] and not bench.lamp_on()


def test_a_rise_of_exactly_heating_min_rise_passes_the_heating_check():
    bench = running_bench(noise=False)
    bench.run(
        S.heating_check_s + 1.0,
        skin_c=rising_to(bench, S.heating_min_rise_c),
        distance_mm=wobbling_distance(bench),
        noise=False,
    )
    assert bench.ctl.session.heating_seen and not bench.ctl.latched and bench.lamp_on()


def test_heating_check_counts_lamp_on_time_not_pauses():
    bench = running_bench()
    bench.run(S.heating_check_s / 2, skin_c=33.0)
    bench.run(60.0, distance_mm=250.0, skin_c=33.0)  # paused for a minute: no heat, no fault
    assert not bench.ctl.latched
    bench.run(S.heating_check_s / 2 + D.resume_after_s + 1.0, skin_c=33.0)
    assert bench.ctl.latched == ["skin_not_heating"]


def test_hot_sensor_body_is_a_fault():
    bench = running_bench()
    bench.run(1.0, ambient_c=S.sensor_body_max_c)
    assert "skin_sensor_hot" in bench.ctl.latched and not bench.lamp_on()
    assert [e["reason"] for e in bench.fields_of("session_ended")] == ["fault"]


@pytest.mark.parametrize("skin_c", [S.plausible_min_c - 0.1, S.plausible_max_c + 0.1, -300.0, math.inf])
def test_implausible_skin_readings_are_faults(skin_c):
    bench = running_bench()
    bench.run(1.0, skin_c=skin_c, noise=False)
    assert bench.ctl.latched[0] == "skin_out_of_range" and not bench.lamp_on()


@pytest.mark.parametrize("distance_mm", [-1.0, 9000.0, math.inf])
def test_implausible_distance_readings_are_faults(distance_mm):
    bench = running_bench()
    bench.run(1.0, distance_mm=distance_mm, noise=False)
    assert bench.ctl.latched[0] == "distance_out_of_range" and not bench.lamp_on()


# -- SR-6: exposure time ---------------------------------------------------------------------
def test_on_time_cap_counts_only_lamp_on_time():
    bench = running_bench(skin_c=33.0)
    skin = warming(bench)
    bench.run(60.0, skin_c=skin)
    bench.run(90.0, distance_mm=250.0, skin_c=skin)  # 90 s paused (under max_pause_s)
    bench.run(SES.max_on_minutes * 60.0, skin_c=skin)
    ended = bench.fields_of("session_ended")
    assert [e["reason"] for e in ended] == ["completed"]
    step_s = distance_period_s(CFG)
    cap_s = SES.max_on_minutes * 60.0
    assert cap_s <= ended[0]["on_s"] <= cap_s + step_s + 1e-3
    assert ended[0]["elapsed_s"] >= cap_s + 90.0
    lit = bench.on_times()
    assert lit[-1] - lit[0] > cap_s, "paused time should have stretched the session"
    assert not bench.lamp_on() and bench.ctl.state == "idle"


def test_wall_time_cap_ends_a_session_with_long_pauses():
    cfg = config_with({"session": {"max_on_minutes": 3.0, "max_wall_minutes": 4.0}})
    bench = running_bench(cfg, skin_c=33.0)
    skin = warming(bench)
    for _ in range(3):
        bench.run(30.0, skin_c=skin)
        bench.run(60.0, distance_mm=250.0, skin_c=skin)
    bench.run(60.0, skin_c=skin)
    ended = bench.fields_of("session_ended")
    assert [e["reason"] for e in ended] == ["wall_time_cap"]
    assert ended[0]["elapsed_s"] == pytest.approx(240.0, abs=distance_period_s(cfg) + 1e-3)
    assert ended[0]["on_s"] < 180.0


def test_a_clock_that_goes_backwards_never_reduces_on_time():
    bench = running_bench()
    bench.run(5.0)
    on_before = bench.ctl.session.on_s
    bench.step(bench.now - 3.0)
    assert bench.ctl.session.on_s >= on_before


# -- SR-10: the button ------------------------------------------------------------------------
def test_any_press_stops_at_once_and_its_release_does_not_restart():
    bench = running_bench()
    bench.run(5.0)
    bench.button = True
    bench.step(bench.now + 0.001)
    pressed_at = bench.now
    bench.run(0.5)
    stop_t = bench.first_time("session_ended")
    assert stop_t is not None and stop_t - pressed_at <= BOUNCE_S + distance_period_s(CFG) + 1e-6
    assert [e["reason"] for e in bench.fields_of("session_ended")] == ["stopped_by_button"]
    assert not any(d.lamp_on for t, d in bench.decisions if t >= stop_t)
    bench.button = False
    bench.run(2.0)
    assert len(bench.fields_of("session_started")) == 1 and not bench.lamp_on()


def test_a_press_begun_during_a_session_never_starts_one_even_if_the_session_ended_first():
    """The press was meant to stop the lamp: if the session ends by itself (here at its on-time
    cap) while that press is still being debounced, releasing it must not start a new one."""
    cfg = config_with({"session": {"max_on_minutes": 1.0, "max_wall_minutes": 1.0}})
    bench = running_bench(cfg)
    skin = warming(bench)
    cap_s = 60.0
    bench.run(cap_s - 1.0, skin_c=skin)

    def tick(seconds: float) -> None:
        bench.publish("distance", IN_BAND_MM + (bench.now * 1000.0) % 3.0)
        bench.publish("skin", skin(0.0), ambient_c=25.0)
        bench.step(bench.now + seconds)

    while bench.ctl.session.on_s < cap_s - BOUNCE_S / 3:
        tick(0.005)
    bench.button = True  # pressed just before the cap
    tick(0.005)
    for _ in range(40):  # the cap ends it, then the press confirms
        tick(0.005)
    bench.button = False
    bench.run(1.0, skin_c=skin)
    assert [e["reason"] for e in bench.fields_of("session_ended")] == ["completed"]
    assert len(bench.fields_of("session_started")) == 1, "the stopping press started a new session"
    assert not bench.lamp_on()


def test_press_stops_a_paused_session_too():
    bench = running_bench()
    bench.run(1.0, distance_mm=250.0)
    bench.press(0.3, distance_mm=250.0)
    assert [e["reason"] for e in bench.fields_of("session_ended")] == ["stopped_by_button"]


def test_long_press_acknowledges_and_sensors_must_prove_themselves_again():
    bench = Bench(CFG)
    bench.settle()
    bench.run(0.1, distance_error="io_error")
    assert bench.ctl.state == "fault"
    bench.settle()
    assert bench.ctl.state == "fault", "a fault must never clear by itself"
    bench.button = True
    bench.run(BTN.long_press_s - 0.2)
    assert bench.ctl.state == "fault"
    bench.run(0.4)
    acks = bench.fields_of("fault_acknowledged")
    assert acks == [{"codes": ["distance_io_error"]}] and bench.ctl.state == "idle"
    bench.button = False
    bench.run(0.5)
    assert "session_started" not in bench.names(), "the acknowledging press must not start a session"
    bench.press(0.2)
    assert bench.lamp_on()


def test_long_press_without_a_fault_starts_nothing():
    bench = Bench(CFG)
    bench.settle()
    bench.press(BTN.long_press_s + 0.5)
    assert "session_started" not in bench.names() and "fault_acknowledged" not in bench.names()


def test_button_held_at_start_up_is_a_stuck_fault():
    bench = Bench(CFG)
    bench.button = True
    bench.run(1.0)
    assert bench.ctl.latched == ["button_stuck"]
    bench.button = False
    bench.run(1.0)
    assert bench.ctl.state == "fault" and "session_started" not in bench.names()


def test_button_held_far_too_long_is_a_stuck_fault():
    bench = Bench(CFG)
    bench.settle()
    bench.button = True
    bench.run(BTN.stuck_s - 1.0)
    assert "button_stuck" not in bench.ctl.latched
    bench.run(1.5)
    assert "button_stuck" in bench.ctl.latched
    bench.button = False
    bench.run(1.0)
    assert "session_started" not in bench.names()


def chatter(bench: Bench, level: bool, gaps_s: list[float]) -> None:
    """Toggle the raw level at each gap (all shorter than the debounce), ending at `level`."""
    raw = level
    for gap in gaps_s:
        bench.button = raw
        bench.step(bench.now + gap)
        raw = not raw
    bench.button = level
    bench.step(bench.now + 0.001)


def test_contact_chatter_never_toggles_twice():
    bench = Bench(CFG)
    bench.settle()
    gaps = [0.003, 0.007, 0.002, 0.011, 0.004]
    chatter(bench, True, gaps)
    bench.run(0.3)
    chatter(bench, False, gaps)
    bench.run(1.0)
    assert len(bench.fields_of("session_started")) == 1 and bench.lamp_on()
    chatter(bench, True, gaps)
    bench.run(0.3)
    chatter(bench, False, gaps)
    bench.run(1.0)
    assert len(bench.fields_of("session_started")) == 1
    assert [e["reason"] for e in bench.fields_of("session_ended")] == ["stopped_by_button"]
    assert not bench.lamp_on()


def test_a_tap_shorter_than_the_debounce_is_ignored():
    bench = Bench(CFG)
    bench.settle()
    bench.button = True
    bench.step(bench.now + 0.001)
    bench.step(bench.now + BOUNCE_S / 2)
    bench.button = False
    bench.step(bench.now + 0.001)
    bench.run(1.0)
    assert "session_started" not in bench.names() and "start_refused" not in bench.names()


# -- faults from outside the decision ---------------------------------------------------------
def test_guard_fault_latches_and_ends_the_session():
    bench = running_bench()
    bench.guard_fault = "guard_loop_stall"
    decision = bench.step(bench.now + 0.01)
    assert not decision.lamp_on and bench.ctl.latched == ["guard_loop_stall"]
    assert [e["reason"] for e in bench.fields_of("session_ended")] == ["fault"]


def test_a_sensor_that_never_delivers_is_missing_two_seconds_after_start():
    """SafetyController.STARTUP_GRACE_S is 2 s: no reading at all by then latches '*_missing'."""
    bench = Bench(CFG)
    start = bench.now
    step_s = 0.05
    for k in range(1, 40):  # start + 0.05 .. start + 1.95
        bench.step(start + k * step_s)
    bench.step(start + 2.0)
    assert bench.ctl.latched == [], "a fault before the grace has passed"
    bench.step(start + 2.0 + step_s)
    assert sorted(bench.ctl.latched) == ["distance_missing", "skin_missing"]
    assert not bench.lamp_on()


def test_the_displayed_readings_are_the_last_good_ones_of_each_sensor():
    """What status, the keyboard view and the simulator show: distance from the distance sensor,
    skin and sensor body from the thermometer, never swapped."""
    bench = Bench(CFG)
    assert (bench.readout.distance_mm, bench.readout.skin_c, bench.readout.ambient_c) == (None, None, None)
    bench.settle(distance_mm=420.0, skin_c=34.5, ambient_c=27.0, noise=False)
    assert bench.readout.distance_mm == 420.0
    assert bench.readout.skin_c == 34.5 and bench.readout.ambient_c == 27.0
    bench.publish("distance", None, error="io_error")  # a failed read keeps the last good one
    bench.step(bench.now + 0.001)
    assert bench.readout.distance_mm == 420.0


def test_the_displayed_light_rates_are_the_distance_sensors_newest_even_when_doubted():
    """The status shows the VL53L0X's newest signal and ambient rates, also of a sample the
    decision doubts (the glare is what the caregiver needs to see); a sample without rates
    keeps the previous ones."""
    bench = Bench(CFG)
    bench.settle()
    assert (bench.readout.signal_mcps, bench.readout.ambient_mcps) == (None, None)
    bench.publish("distance", 400.0, signal_rate_mcps=3.5, ambient_rate_mcps=0.4)
    decision = bench.step(bench.now + 0.001)
    assert decision.readings.light.signal_rate_mcps == 3.5
    assert (bench.readout.signal_mcps, bench.readout.ambient_mcps) == (3.5, 0.4)
    glare = D.ambient_doubt_mcps + 1.0
    bench.publish("distance", 400.0, error="unreliable", signal_rate_mcps=1.0, ambient_rate_mcps=glare)
    bench.step(bench.now + 0.001)
    assert (bench.readout.signal_mcps, bench.readout.ambient_mcps) == (1.0, glare)
    assert bench.readout.distance_mm == 400.0, "a doubted distance is not displayed"
    bench.publish("distance", 410.0)
    bench.step(bench.now + 0.001)
    assert bench.readout.distance_mm == 410.0 and bench.readout.ambient_mcps == glare


def test_a_refusal_shows_for_its_time_and_a_start_clears_it():
    bench = Bench(CFG)
    bench.settle(distance_mm=250.0)
    bench.press(0.2, distance_mm=250.0)
    refused_at = bench.first_time("start_refused")
    assert bench.readout.refused == ("too_close", refused_at + REFUSAL_SHOW_S)
    assert bench.readout.refusal_showing(refused_at + REFUSAL_SHOW_S - 0.01)
    assert not bench.readout.refusal_showing(refused_at + REFUSAL_SHOW_S)
    bench.settle()
    bench.press(0.2)
    assert bench.lamp_on() and bench.readout.refused is None


def test_restored_faults_keep_the_lamp_off_after_a_restart():
    bench = Bench(CFG)
    bench.ctl.restore_faults(["skin_overheat"])
    bench.settle()
    bench.press(0.2)
    assert refusal_of(bench) == "fault_latched" and bench.ctl.state == "fault"


def test_external_fault_ends_the_session_with_its_on_time():
    bench = running_bench()
    bench.run(4.0)
    events = bench.ctl.external_fault("control_exception", "boom", bench.now + 0.01)
    names = [name for name, _ in events]
    assert names == ["fault", "session_ended"]
    assert events[1][1]["on_s"] == pytest.approx(4.0 + 0.01, abs=0.05)
    assert bench.step(bench.now + 0.05).lamp_on is False


def test_skin_sample_period_keeps_the_lamp_on_between_samples():
    """Sanity of the bench: skin samples every period_ms keep the lamp on (not in doubt)."""
    bench = running_bench()
    bench.run(3 * skin_period_s(CFG))
    assert all(d.lamp_on for _, d in bench.decisions[-20:])


def test_external_fault_latches_its_code_with_the_detail_and_ends_the_session_as_a_fault():
    bench = running_bench()
    bench.run(2.0)
    events = bench.ctl.external_fault("control_exception", "ZeroDivisionError in step", bench.now + 0.01)
    assert events[0] == ("fault", {"code": "control_exception", "detail": "ZeroDivisionError in step"})
    assert events[1][1]["reason"] == "fault"
    assert bench.ctl.latched == ["control_exception"] and bench.ctl.state == "fault"
    assert bench.ctl.lamp_on is False


def test_stop_session_ends_it_with_its_on_time_rounded_to_the_millisecond():
    """Daemon shutdown: the session ends with the reason given and the lamp-on time up to the
    stop, as the journal records it (seconds, to the millisecond)."""
    bench = running_bench()
    started_at = bench.first_time("session_started")
    bench.run(4.0)
    stop_at = bench.now + 0.0123456
    events = bench.ctl.stop_session("shutdown", stop_at)
    assert [name for name, _ in events] == ["session_ended"]
    ended = events[0][1]
    assert ended["reason"] == "shutdown"
    assert ended["elapsed_s"] == round(stop_at - started_at, 3)
    lit_s = ended["on_s"]
    assert lit_s == round(lit_s, 3) and lit_s == pytest.approx(stop_at - started_at, abs=0.1)
    assert lit_s != round(lit_s), "on_s keeps its milliseconds"
    assert bench.ctl.session is None and bench.ctl.lamp_on is False and bench.ctl.state == "idle"
    assert bench.ctl.stop_session("shutdown", stop_at + 1.0) == [], "nothing left to stop"


def test_time_left_counts_down_the_on_time_cap_and_stops_at_zero():
    bench = Bench(CFG)
    assert bench.ctl.time_left_s() is None
    bench.start_session()
    bench.run(10.0)
    cap_s = SES.max_on_minutes * 60.0
    assert bench.ctl.time_left_s() == pytest.approx(cap_s - bench.ctl.session.on_s)
    assert bench.ctl.time_left_s() == pytest.approx(cap_s - 10.0, abs=0.2)
    bench.ctl.session.on_s = cap_s + 0.5  # overrun by half a step
    assert bench.ctl.time_left_s() == 0.0


def test_restored_faults_are_latched_once_each_in_order():
    bench = Bench(CFG)
    bench.ctl.restore_faults(["skin_overheat", "guard_loop_stall"])
    bench.ctl.restore_faults(["guard_loop_stall"])
    assert bench.ctl.latched == ["skin_overheat", "guard_loop_stall"] and bench.ctl.state == "fault"


def test_a_new_controller_starts_off_with_no_refusal_shown_and_the_configured_debounce():
    bench = Bench(CFG)
    ctl = bench.ctl
    assert ctl.lamp_on is False and bench.readout.refused is None and ctl.state == "idle"
    assert ctl.button.bounce_s == BTN.bounce_ms / 1000.0
    assert ctl.button.long_press_s == BTN.long_press_s and ctl.button.stuck_s == BTN.stuck_s


@pytest.mark.parametrize("sensor", ["distance", "skin"])
def test_one_failed_read_turns_the_lamp_off_at_once_and_names_it(sensor):
    """A single failed read is doubt, not yet a fault: the lamp goes off at that very step, the
    reason names the sensor and the kind of failure, and the session goes on."""
    bench = running_bench()
    bench.run(1.0)
    bench.publish(sensor, None, error="io_error")
    decision = bench.step(bench.now + 0.001)
    assert not decision.lamp_on and decision.reason == f"{sensor}_io_error"
    assert not bench.ctl.latched and bench.ctl.session is not None


def test_distance_offset_is_subtracted_while_running_and_in_the_start_record():
    cfg = config_with({"distance": {"offset_mm": 100.0}})
    bench = Bench(cfg)
    bench.settle(distance_mm=500.0)
    bench.press(0.2, distance_mm=500.0)
    assert bench.fields_of("session_started")[0]["distance_mm"] == pytest.approx(400.0, abs=1.0)
    bench.run(1.0, distance_mm=D.min_mm + 100.0 - 20.0)  # reads in the band, is 20 mm too close
    assert bench.ctl.state == "paused" and bench.ctl.session.pause_reason == "too_close"
    assert not bench.lamp_on()


def test_exactly_at_absent_mm_nobody_is_there():
    bench = running_bench()
    bench.run(1.0, distance_mm=D.absent_mm, noise=False)
    assert bench.ctl.state == "paused" and bench.ctl.session.pause_reason == "nobody_there"


def test_the_decision_names_why_the_lamp_is_on_or_off():
    """Decision.reason reaches the relay record: started, resumed, and each way a session ends."""
    cfg = config_with({"session": {"max_on_minutes": 1.0, "max_wall_minutes": 2.0}})
    bench = running_bench(cfg)
    started_at = bench.first_time("session_started")
    assert [d.reason for t, d in bench.decisions if t == started_at] == ["session_started"]
    bench.run(5.0, skin_c=warming(bench))
    bench.run(1.0, distance_mm=250.0)
    assert bench.last_decision.reason == "too_close"
    resumed_from = bench.now
    bench.run(D.resume_after_s + 1.0)
    first_on = next(d for t, d in bench.decisions if t > resumed_from and d.lamp_on)
    assert first_on.reason == "resumed"
    bench.run(70.0, skin_c=warming(bench))
    ended_at = bench.first_time("session_ended")
    assert [d.reason for t, d in bench.decisions if t == ended_at] == ["session_completed"]

    bench = running_bench(config_with({"session": {"max_on_minutes": 3.0, "max_wall_minutes": 3.0}}))
    skin = warming(bench)
    bench.run(30.0, skin_c=skin)
    bench.run(100.0, distance_mm=250.0, skin_c=skin)
    bench.run(60.0, skin_c=skin)
    ended_at = bench.first_time("session_ended")
    assert [d.reason for t, d in bench.decisions if t == ended_at] == ["wall_time_cap"]

    bench = running_bench()
    bench.run(D.max_pause_s + 1.0, distance_mm=250.0)
    ended_at = bench.first_time("session_ended")
    assert [d.reason for t, d in bench.decisions if t == ended_at] == ["too_close"]


def test_faults_found_in_a_session_carry_a_detail_and_end_it_as_a_fault():
    bench = running_bench()
    bench.run(S.heating_check_s + 1.0, skin_c=33.0)
    fault = bench.fields_of("fault")[0]
    assert fault["code"] == "skin_not_heating" and fault["detail"].startswith("skin rose 0.0")
    assert [e["reason"] for e in bench.fields_of("session_ended")] == ["fault"]
    ended_at = bench.first_time("session_ended")
    assert [d.reason for t, d in bench.decisions if t == ended_at] == ["skin_not_heating"]

    bench = running_bench()
    bench.publish("skin", S.limit_c + 0.5, ambient_c=30.0)
    bench.step(bench.now + 0.01)
    fault = bench.fields_of("fault")[0]
    assert fault["code"] == "skin_overheat" and str(S.limit_c) in fault["detail"]


# -- limits hit exactly: a binary time grid --------------------------------------------------
# Steps of 1/32 s are exact in binary floating point, so on-time, elapsed and pause times land
# exactly on the configured limits, and a '>=' that became '>' (one step late) shows.
GRID_S = 1.0 / 32
GRID_CFG = config_with(
    {
        "session": {"max_on_minutes": 1.0, "max_wall_minutes": 1.5},
        "skin": {"heating_check_s": 300.0},
        "distance": {"max_pause_s": 10.0, "resume_after_s": 3.0},
    }
)


def tick(bench: Bench, steps: int = 1, distance_mm: float = IN_BAND_MM, skin_c: float = 33.0) -> None:
    """`steps` control steps of GRID_S, each after a fresh sample of both sensors (which wobble
    upwards by a hair, so nothing reads as frozen)."""
    for _ in range(steps):
        bench.now += GRID_S
        wobble = bench._seq["distance"] % 2
        bench.publish("distance", distance_mm + 0.5 * wobble)
        bench.publish("skin", skin_c + 0.01 * wobble, ambient_c=25.0)
        bench.step()


def grid_session(cfg=GRID_CFG) -> Bench:
    bench = Bench(cfg)
    tick(bench, 32)
    bench.button = True
    tick(bench, 8)
    bench.button = False
    tick(bench, 8)
    assert bench.ctl.state == "running" and bench.lamp_on()
    return bench


def ended_when(bench: Bench, **tick_kwargs) -> dict:
    while bench.ctl.session is not None:
        tick(bench, **tick_kwargs)
    return bench.fields_of("session_ended")[-1]


def test_the_on_time_cap_ends_the_session_exactly_at_max_on():
    bench = grid_session()
    ended = ended_when(bench)
    assert ended["reason"] == "completed" and ended["on_s"] == 60.0


def test_the_wall_time_cap_ends_the_session_exactly_at_max_wall():
    bench = grid_session()
    for _ in range(4):  # 4 pauses of 5 s (+3 s to resume)
        tick(bench, 32 * 10)
        tick(bench, 32 * 5, distance_mm=250.0)
    ended = ended_when(bench)
    assert ended["reason"] == "wall_time_cap" and ended["elapsed_s"] == 90.0


def test_the_heating_check_is_made_exactly_at_heating_check_s():
    bench = grid_session(config_with({"skin": {"heating_check_s": 30.0}}))
    ended = ended_when(bench)
    assert bench.ctl.latched == ["skin_not_heating"] and ended["on_s"] == 30.0


def test_a_pause_ends_the_session_exactly_at_max_pause_s():
    bench = grid_session()
    tick(bench, 32)
    ended = ended_when(bench, distance_mm=250.0)
    paused_at = bench.first_time("paused")
    assert ended["reason"] == "too_close_too_long"
    assert bench.first_time("session_ended") - paused_at == 10.0


def test_the_lamp_resumes_exactly_resume_after_s_after_the_person_is_back():
    bench = grid_session()
    tick(bench, 32)
    tick(bench, 33, distance_mm=250.0)
    back_at = bench.now + GRID_S
    tick(bench, 32 * 4)
    resumed_at = bench.first_time("resumed")
    assert resumed_at - back_at == 3.0
    paused_s = resumed_at - bench.first_time("paused")  # 4.03125 s
    assert bench.fields_of("resumed") == [{"paused_s": round(paused_s, 3)}] and paused_s != round(paused_s, 3)


def test_exactly_at_min_mm_plus_hysteresis_counts_as_back_in_the_band():
    bench = grid_session()
    tick(bench, 32, distance_mm=250.0)
    back_at = bench.now + GRID_S
    tick(bench, 32 * 4, distance_mm=D.min_mm + D.hysteresis_mm)  # every other sample exactly at the edge
    assert bench.first_time("resumed") - back_at == 3.0


def test_faults_found_by_the_controller_say_what_was_seen():
    bench = Bench(CFG)
    bench.button = True
    bench.run(0.5)
    assert bench.fields_of("fault") == [{"code": "button_stuck", "detail": "button held at start-up or far too long"}]
    bench = running_bench()
    bench.run(0.5, ambient_c=S.sensor_body_max_c + 1.0)
    hot = bench.fields_of("fault")[0]
    assert hot["code"] == "skin_sensor_hot" and hot["detail"] == f"sensor body {S.sensor_body_max_c + 1.0:.1f} C"
    bench = running_bench()
    bench.guard_fault = "guard_loop_stall"
    bench.step(bench.now + 0.01)
    assert bench.fields_of("fault") == [{"code": "guard_loop_stall", "detail": "independent guard cut the relay"}]
    bench = running_bench()
    bench.run(0.1, distance_error="io_error")
    assert bench.fields_of("fault") == [{"code": "distance_io_error", "detail": "injected io_error"}]


def test_the_warning_ends_only_0_2_c_below_where_it_began():
    bench = running_bench()
    warm = S.limit_c - S.warning_margin_c
    bench.run(1.0, skin_c=warm + 0.05)
    assert bench.last_decision.warning
    bench.run(1.0, skin_c=warm - 0.1)
    assert bench.last_decision.warning, "the warning flickered off inside its hysteresis"
    bench.run(1.0, skin_c=warm - 0.3)
    assert not bench.last_decision.warning


def test_with_no_session_the_decision_says_why():
    bench = Bench(CFG)
    bench.settle()
    assert bench.last_decision.reason == "idle"
    bench = running_bench()
    bench.run(1.0)
    bench.button = True
    bench.run(0.1)
    stopped_at = bench.first_time("session_ended")
    assert [d.reason for t, d in bench.decisions if t == stopped_at] == ["stopped_by_button"]
    bench = Bench(CFG)
    bench.ctl.restore_faults(["skin_overheat", "guard_loop_stall"])
    bench.settle()
    assert bench.last_decision.reason == "skin_overheat" and not bench.lamp_on()


def test_a_press_begun_at_the_very_step_the_session_ends_never_starts_one():
    bench = grid_session(
        config_with({"session": {"max_on_minutes": 1.0, "max_wall_minutes": 2.0}, "skin": {"heating_check_s": 300.0}})
    )
    while bench.ctl.session.on_s < 60.0 - GRID_S:
        tick(bench)
    bench.button = True  # raw level goes down at the ending step
    tick(bench)
    assert bench.ctl.session is None and bench.ctl.last_session_end_s == bench.now
    tick(bench, 8)
    bench.button = False
    tick(bench, 16)
    assert len(bench.fields_of("session_started")) == 1, "the stopping press started a new session"


# -- the hazard rules the samplers cut the relay by (drivers/sampler.py) -------------------------
def _distance_sample(value, *, error=None, ambient_mcps=None) -> Sample:
    return Sample(1, 0.0, value, None, error, "", None if ambient_mcps is None else 1.0, ambient_mcps)


def _skin_sample(value, *, ambient_c=25.0, error=None) -> Sample:
    return Sample(1, 0.0, value, ambient_c, error, "")


def test_the_distance_hazard_names_a_bad_read_a_doubt_too_close_or_nobody_there_and_nothing_else():
    cfg = config_with({"distance": {"offset_mm": 50.0}})
    distance_hazard, _ = hazard_checks(cfg)
    floor_mm = cfg.distance.offset_mm + cfg.distance.min_mm  # the reading at the floor
    assert distance_hazard(_distance_sample(floor_mm)) is None
    assert distance_hazard(_distance_sample(floor_mm - 0.5)) == "too_close"
    assert distance_hazard(_distance_sample(cfg.distance.min_mm)) == "too_close", "the offset is subtracted"
    assert distance_hazard(_distance_sample(400.0, error="io_error")) == "distance_io_error"
    assert distance_hazard(_distance_sample(float("nan"))) == "distance_nan"
    assert distance_hazard(_distance_sample(NO_TARGET_MM + 2)) == "distance_out_of_range"
    assert distance_hazard(_distance_sample(NO_TARGET_MM)) == "nobody_there"
    absent_mm = cfg.distance.offset_mm + cfg.distance.absent_mm  # the reading at absent_mm
    assert distance_hazard(_distance_sample(absent_mm)) == "nobody_there", "the offset is subtracted"
    assert distance_hazard(_distance_sample(absent_mm - 0.5)) is None
    doubt_mcps = cfg.distance.ambient_doubt_mcps
    assert distance_hazard(_distance_sample(400.0, ambient_mcps=doubt_mcps)) == "distance_unreliable"
    assert distance_hazard(_distance_sample(400.0, ambient_mcps=doubt_mcps - 0.01)) is None


def test_the_skin_hazard_names_a_bad_read_the_limit_or_a_hot_sensor_body_and_nothing_else():
    _, skin_hazard = hazard_checks(CFG)
    assert skin_hazard(_skin_sample(S.limit_c - 0.01)) is None
    assert skin_hazard(_skin_sample(S.limit_c)) == "skin_overheat"
    assert skin_hazard(_skin_sample(33.0, ambient_c=S.sensor_body_max_c)) == "skin_sensor_hot"
    assert skin_hazard(_skin_sample(33.0, ambient_c=S.sensor_body_max_c - 0.1)) is None
    assert skin_hazard(_skin_sample(33.0, ambient_c=None)) is None
    assert skin_hazard(_skin_sample(S.limit_c, ambient_c=S.sensor_body_max_c)) == "skin_overheat"
    assert skin_hazard(_skin_sample(None, error="timeout")) == "skin_timeout"
    assert skin_hazard(_skin_sample(S.plausible_max_c + 1.0)) == "skin_out_of_range"


def test_a_session_records_the_range_of_the_light_rates_it_saw_and_nothing_from_before_it():
    bench = Bench(CFG)
    bench.settle()
    bench.publish("distance", 399.0, signal_rate_mcps=99.0, ambient_rate_mcps=0.01)  # before the session
    bench.step(bench.now + 0.001)
    bench.start_session()
    rates = [(3.0, 0.2), (5.0, 0.6), (None, 0.05), (6.0, None), (4.5, 0.3)]  # (6.0, None): no ambient, not kept
    for k, (signal_mcps, ambient_mcps) in enumerate(rates):
        bench.publish("distance", 400.0 + k, signal_rate_mcps=signal_mcps, ambient_rate_mcps=ambient_mcps)
        bench.publish("skin", 33.0 + 0.01 * k)
        bench.step(bench.now + 0.01)
    bench.remote_stop = True
    bench.step(bench.now + 0.01)
    (ended,) = bench.fields_of("session_ended")
    assert (ended["min_signal_mcps"], ended["max_signal_mcps"]) == (3.0, 5.0)
    assert (ended["min_ambient_mcps"], ended["max_ambient_mcps"]) == (0.05, 0.6)


def test_a_distance_doubt_pause_that_never_clears_ends_the_session_after_max_pause_s():
    """Pairs of doubted samples (two in a row break "continuously in the band") below the doubt
    share that latches a fault: the session stays paused as distance_doubt and ends when the
    pause reaches max_pause_s."""
    cfg = config_with(
        {"distance": {"resume_after_s": 30.0, "max_pause_s": 10.0}, "faults": {"distance_unreliable_share": 0.5}}
    )
    bench = running_bench(cfg)
    d_period, s_period = distance_period_s(cfg), skin_period_s(cfg)
    paused_at = None
    k, next_skin = 0, bench.now + s_period
    while not bench.fields_of("session_ended") and k < 20_000:
        k += 1
        bench.now += d_period
        doubted = k % 6 in (1, 2)
        bench.publish("distance", None if doubted else 400.0 + k % 2, error="unreliable" if doubted else None)
        if bench.now >= next_skin:
            next_skin += s_period
            bench.publish("skin", 33.0 + 0.01 * (k % 2))
        bench.step()
        if paused_at is None and bench.ctl.state == "paused":
            paused_at = bench.now
    (ended,) = bench.fields_of("session_ended")
    assert ended["reason"] == "distance_doubt_too_long" and bench.fault_codes() == []
    assert bench.first_time("session_ended") - paused_at == pytest.approx(10.0, abs=d_period)


# -- the journal's health, a remote stop, the ambient light, the session record -----------------
# (found untested by mutation testing: docs/mutation.md)
def step_at(
    bench: Bench, t_s: float, distance_mm: float | None = IN_BAND_MM, skin_c: float = 33.0, **distance
) -> Decision:
    """Publish one sample of each sensor at exactly `t_s` and step there (`distance`: the
    distance sample's error or light rates)."""
    bench.now = t_s
    bench.publish("distance", distance_mm, **distance)
    bench.publish("skin", skin_c)
    return bench.step()


def advance_to(bench: Bench, t_s: float, **run_kwargs) -> None:
    """Run the sensors up to just before `t_s` and leave the clock exactly there."""
    bench.run(t_s - bench.now - 1e-6, **run_kwargs)
    bench.now = t_s


@pytest.mark.parametrize(
    "health, refusal",
    [
        (JournalHealth(), None),
        (JournalHealth(full=True), "journal_busy"),
        (JournalHealth(limits_current=False), "journal_busy"),
        (JournalHealth(write_error="disk I/O error"), "journal_busy"),
        (JournalHealth(stalled_s=JOURNAL_BUSY_S), None),
        (JournalHealth(stalled_s=JOURNAL_BUSY_S + 0.01), "journal_busy"),
    ],
    ids=["healthy", "full", "limits_not_current", "write_error", "stalled_exactly_busy_s", "stalled_longer"],
)
def test_each_journal_trouble_alone_refuses_a_start_and_a_wait_of_exactly_busy_s_does_not(health, refusal):
    assert journal_refusal(health) == refusal


def test_a_start_with_a_busy_journal_is_refused_as_journal_busy():
    bench = Bench(CFG)
    bench.journal = JournalHealth(full=True)
    bench.settle()
    bench.press(0.2)
    assert refusal_of(bench) == "journal_busy" and bench.ctl.session is None


def test_the_lamp_waits_starting_until_the_session_start_is_durable():
    bench = Bench(CFG)
    bench.journal = JournalHealth(start_needs_commit=True, start_recorded=False)
    bench.settle()
    bench.press(0.2)
    assert bench.fields_of("session_started") and bench.ctl.state == "starting"
    assert not bench.lamp_on() and bench.last_decision.reason == "starting"
    assert not any(d.lamp_on for _, d in bench.decisions)
    bench.journal = JournalHealth(start_needs_commit=True, start_recorded=True)
    bench.run(0.1)
    assert bench.lamp_on() and bench.ctl.state == "running"


def test_a_remote_stop_ends_the_session_and_the_decision_says_so_then_idle():
    bench = running_bench()
    bench.remote_stop = True
    decision = bench.step(bench.now + 0.01)
    assert not decision.lamp_on and decision.reason == "stopped_remotely"
    assert [f["reason"] for f in bench.fields_of("session_ended")] == ["stopped_remotely"]
    bench.remote_stop = False
    assert bench.step(bench.now + 0.01).reason == "idle", "the end reason is said once, at the end"


def test_the_second_session_end_is_named_in_its_decision_too():
    bench = running_bench()
    bench.press(0.2)  # stop
    bench.run(1.0)
    bench.press(0.2)  # start again
    assert bench.lamp_on()
    bench.remote_stop = True
    assert bench.step(bench.now + 0.01).reason == "stopped_remotely"


def test_a_failed_journal_commit_in_a_session_latches_journal_stalled_with_the_error():
    bench = running_bench()
    bench.journal = JournalHealth(write_error="disk I/O error")
    decision = bench.step(bench.now + 0.01)
    assert not decision.lamp_on and decision.reason == "journal_stalled"
    assert bench.fields_of("fault") == [
        {"code": "journal_stalled", "detail": "records cannot be written: disk I/O error"}
    ]
    assert [f["reason"] for f in bench.fields_of("session_ended")] == ["fault"]


def test_a_record_waiting_longer_than_stall_s_latches_journal_stalled_and_exactly_stall_s_does_not():
    bench = running_bench()
    bench.journal = JournalHealth(stalled_s=JOURNAL_STALL_S)
    bench.run(0.1)
    assert bench.lamp_on() and bench.ctl.latched == []
    bench.journal = JournalHealth(stalled_s=JOURNAL_STALL_S + 0.5)
    decision = bench.step(bench.now + 0.01)
    assert not decision.lamp_on and decision.reason == "journal_stalled"
    detail = f"a journal record has waited {JOURNAL_STALL_S + 0.5:.1f} s for its commit"
    assert bench.fields_of("fault") == [{"code": "journal_stalled", "detail": detail}]
    assert [f["reason"] for f in bench.fields_of("session_ended")] == ["fault"]


def test_ambient_light_at_the_warning_level_is_recorded_at_most_once_a_minute():
    bench = Bench(CFG)
    t0 = bench.now
    tick_s = 1 / 32  # exact binary times, so that "exactly a minute on" is exact
    for k in range(1, 5):
        step_at(bench, t0 + tick_s * k)
    step_at(bench, t0 + 5 * tick_s, None, error="unreliable", ambient_rate_mcps=0.5)  # 1 of 6 doubted
    step_at(bench, t0 + 6 * tick_s, ambient_rate_mcps=D.ambient_warn_mcps)  # exactly at the warning level
    first = {"ambient_mcps": D.ambient_warn_mcps, "warn_mcps": D.ambient_warn_mcps}
    first |= {"doubt_mcps": D.ambient_doubt_mcps, "doubt_share": 0.167}
    assert bench.fields_of("ambient_high") == [first]
    warned_at = bench.now
    step_at(bench, warned_at + tick_s, ambient_rate_mcps=5.0)
    advance_to(bench, warned_at + 59.0)
    step_at(bench, warned_at + 59.0, ambient_rate_mcps=5.0)
    assert len(bench.fields_of("ambient_high")) == 1, "again within the minute"
    advance_to(bench, warned_at + AMBIENT_WARN_EVERY_S)
    step_at(bench, warned_at + AMBIENT_WARN_EVERY_S, ambient_rate_mcps=1.23456)  # exactly a minute on
    second = {"ambient_mcps": 1.23, "warn_mcps": D.ambient_warn_mcps, "doubt_mcps": D.ambient_doubt_mcps}
    assert bench.fields_of("ambient_high")[1:] == [second | {"doubt_share": 0.0}]
    advance_to(bench, warned_at + 3 * AMBIENT_WARN_EVERY_S)
    step_at(bench, warned_at + 3 * AMBIENT_WARN_EVERY_S, ambient_rate_mcps=D.ambient_warn_mcps - 0.01)
    assert len(bench.fields_of("ambient_high")) == 2, "light below the warning level is not recorded"


def test_the_session_record_counts_only_its_own_distance_samples_and_doubts():
    bench = Bench(CFG)
    bench.settle()
    for _ in range(2):  # doubted samples before the session
        bench.publish("distance", None, error="unreliable")
        bench.step(bench.now + 0.01)
        bench.run(0.5)
    bench.start_session()
    start = next(d for _, d in bench.decisions if ("session_started" in [e.kind for e in d.events]))
    seq_at_start = start.readings.light.seq
    for _ in range(3):  # three doubted samples in the session
        bench.run(0.5)
        bench.publish("distance", None, error="unreliable")
        bench.step(bench.now + 0.01)
    bench.run(0.5)
    bench.remote_stop = True
    bench.step(bench.now + 0.01)
    (ended,) = bench.fields_of("session_ended")
    assert ended["distance_samples"] == bench.ctl.distance.latest.seq - seq_at_start
    assert ended["distance_doubts"] == 3


def test_the_session_record_has_the_heat_dose_to_a_millionth():
    cfg = config_with({"skin": {"comfort_c": None}})
    bench = running_bench(cfg)
    bench.run(31.0, skin_c=42.0)
    dose = bench.ctl.session.dose.cem43
    bench.remote_stop = True
    bench.step(bench.now + 0.01)
    (ended,) = bench.fields_of("session_ended")
    # about 31 s at 42 C: half a minute at a quarter of the rate at 43 C (a hair more: the noise)
    assert ended["dose_cem43"] == pytest.approx(31.0 / 60.0 * 0.25, rel=0.05)
    assert round(dose, 6) != round(dose, 7), "the dose needs more than six decimals for this test"
    assert ended["dose_cem43"] == round(dose, 6)


def test_a_pause_that_ends_on_a_doubted_sample_ends_the_session_as_distance_doubt_too_long():
    bench = running_bench()
    bench.run(0.2, distance_mm=D.min_mm - 50.0)
    paused_at = bench.first_time("paused")
    advance_to(bench, paused_at + D.max_pause_s, distance_mm=D.min_mm - 50.0)
    assert bench.ctl.session is not None
    decision = step_at(bench, paused_at + D.max_pause_s, None, error="unreliable")
    assert [f["reason"] for f in bench.fields_of("paused")] == ["too_close", "distance_doubt"]
    assert [f["reason"] for f in bench.fields_of("session_ended")] == ["distance_doubt_too_long"]
    assert not decision.lamp_on and bench.ctl.latched == []


# -- SR-14 comfort control at its edges -----------------------------------------------------------
def cooling_bench() -> tuple[Bench, float]:
    """A session whose skin reached the comfort set point at an exact time t0 (returned); the
    resume point is comfort_c - 0.5 C = 40.5 C."""
    bench = running_bench(config_with({"skin": {"comfort_hysteresis_c": 0.5}}))
    t0 = float(math.ceil(bench.now) + 1)
    advance_to(bench, t0)
    assert not step_at(bench, t0, skin_c=S.comfort_c).lamp_on
    assert bench.ctl.state == "cooling"
    return bench, t0


def test_comfort_resumes_exactly_at_the_resume_point_after_exactly_min_off_s():
    bench, t0 = cooling_bench()
    advance_to(bench, t0 + SES.min_off_s, skin_c=40.6)
    decision = step_at(bench, t0 + SES.min_off_s, skin_c=40.5)
    assert decision.lamp_on and bench.ctl.state == "running"
    assert bench.fields_of("cooled") == [{"skin_c": 40.5, "off_s": SES.min_off_s}]


def test_comfort_does_not_resume_a_hair_above_the_resume_point():
    bench, t0 = cooling_bench()
    advance_to(bench, t0 + SES.min_off_s + 1.0, skin_c=40.6)
    assert not step_at(bench, t0 + SES.min_off_s + 1.0, skin_c=40.51).lamp_on
    assert bench.fields_of("cooled") == []


def test_the_cooled_event_records_the_off_time_to_the_millisecond():
    bench, t0 = cooling_bench()
    advance_to(bench, t0 + SES.min_off_s + 0.0006, skin_c=40.6)
    assert step_at(bench, t0 + SES.min_off_s + 0.0006, skin_c=40.0).lamp_on
    (cooled,) = bench.fields_of("cooled")
    assert cooled == {"skin_c": 40.0, "off_s": round(SES.min_off_s + 0.001, 3)}


def test_skin_reaching_exactly_the_set_point_proves_heating():
    """A skin held at the set point may never rise heating_min_rise_c above where it started
    (a warm start): reaching comfort_c, to the last bit, is the proof the lamp heats it."""
    cfg = config_with(TIGHT_OVERRIDES)  # comfort 38.5, hysteresis 0.7, heating check 30 s, rise 0.5
    bench = running_bench(cfg, skin_c=38.2)
    bench.run(0.5, skin_c=cfg.skin.comfort_c, noise=False)
    assert bench.ctl.state == "cooling"
    bench.run(cfg.session.min_off_s + 1.0, skin_c=37.7)
    assert bench.lamp_on()
    bench.run(cfg.skin.heating_check_s, skin_c=37.7)  # never again above the start
    assert bench.ctl.session.on_s >= cfg.skin.heating_check_s
    assert bench.lamp_on() and bench.fault_codes() == []


def test_doubt_switch_ons_leave_the_allowance_of_the_other_switch_ons_untouched():
    cfg = config_with({"session": {"max_switches": 2}})
    bench = running_bench(cfg)  # switch-on 1
    for _ in range(3):  # three switch-ons after a one-sample doubt: counted apart
        bench.publish("distance", IN_BAND_MM, error="unreliable")
        assert not bench.step(bench.now + 0.01).lamp_on
        bench.run(cfg.distance.resume_after_s + 0.5)
    bench.run(1.0, distance_mm=cfg.distance.min_mm - 20)  # too close, back: switch-on 2 of 2
    bench.run(cfg.distance.resume_after_s + 0.5)
    assert bench.lamp_on() and bench.fields_of("session_ended") == []
    assert (bench.ctl.session.switches, bench.ctl.session.doubt_switches) == (5, 3)


# -- resuming after a pause: what counts as "continuously in the band" ----------------------------
def test_a_reading_exactly_at_absent_mm_does_not_count_towards_the_resume_wait():
    cfg = config_with(TIGHT_OVERRIDES)  # absent 700 mm, offset 30 mm: read 730 mm
    d = cfg.distance
    bench = running_bench(cfg)
    bench.run(1.0, distance_mm=d.absent_mm + d.offset_mm, noise=False)
    assert bench.ctl.state == "paused"
    back = bench.now
    bench.run(d.resume_after_s + 0.3)
    first_in_band = back + distance_period_s(cfg)
    resumed_at = bench.first_time("resumed")
    assert resumed_at - first_in_band == pytest.approx(d.resume_after_s, abs=1e-6)


def test_a_gap_of_exactly_doubt_s_between_good_readings_keeps_the_resume_wait():
    """One doubted sample between good ones (their gap exactly the judge's doubt_s) does not
    restart the wait for the person to be back in the band."""
    cfg = config_with(TIGHT_OVERRIDES)  # distance period 0.1 s: doubt_s 0.25 s
    d = cfg.distance
    bench = running_bench(cfg)
    doubt_s = bench.ctl.distance.limits.doubt_s
    assert doubt_s == 0.25
    bench.run(1.0, distance_mm=300.0)
    assert bench.ctl.state == "paused"
    tick_s = 0.125  # exact binary times
    t0 = math.ceil(bench.now / tick_s) * tick_s
    back_at = t0 + tick_s
    step_at(bench, t0, 300.0)
    k = 1
    while bench.ctl.state == "paused" and k < 40:
        t = t0 + k * tick_s
        if t == back_at + 0.625:
            step_at(bench, t, None, error="unreliable")  # good readings at +0.5 and +0.75
        else:
            step_at(bench, t, IN_BAND_MM + k % 2)
        k += 1
    assert bench.first_time("resumed") == back_at + d.resume_after_s
