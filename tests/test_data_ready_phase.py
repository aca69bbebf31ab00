"""The VL53L0X reader's data-ready prediction (drivers/data_ready_phase.py), fed exact instants.

A pure model: the test plays a chip whose samples become ready at known instants and answers
each planned look as the chip would (a re-lock's polls bracket the instant to +-1 us).
"""

from __future__ import annotations

import pytest

from drivers.data_ready_phase import AIM_SLACK_S, PERIOD_TOLERANCE, DataReadyPhase

PROGRAMMED_PERIOD_S = 0.0336
BRACKET_HALF_WIDTH_S = 1e-6


def follow(phase: DataReadyPhase, ready_s: list[float]) -> list[float]:
    """Answer every look for the samples ready at `ready_s`; returns how long after
    data-ready each normal look came."""
    after_ready_s = []
    for ready in ready_s:
        look = phase.plan()
        assert look is not None
        if look.relock:
            assert look.at_s < ready  # a re-lock looks before the sample, then polls
            phase.found_by_polling(look, ready - BRACKET_HALF_WIDTH_S, ready + BRACKET_HALF_WIDTH_S)
        else:
            assert look.at_s >= ready  # a normal look finds the sample at once
            after_ready_s.append(look.at_s - ready)
            phase.found_at_first_look(look, look.at_s, look.at_s + 1e-5)
    return after_ready_s


def test_the_period_is_learned_from_the_recent_samples_only():
    """The period steps by 1 us (too little for any look to notice): after more than
    CHAIN_SPAN_MAX samples it is learned exactly, not averaged with the old one (which, over
    900 samples, would be 0.33 us off)."""
    old_period_s, new_period_s = PROGRAMMED_PERIOD_S * 1.01, PROGRAMMED_PERIOD_S * 1.01 + 1e-6
    ready_s = [k * old_period_s for k in range(1, 601)]
    ready_s += [ready_s[-1] + k * new_period_s for k in range(1, 301)]
    phase = DataReadyPhase(PROGRAMMED_PERIOD_S, started_s=0.0)
    after_ready_s = follow(phase, ready_s)
    assert phase.period_s == pytest.approx(new_period_s, abs=2e-8)
    assert max(after_ready_s[-200:]) <= 2 * phase.period_sigma_s * 30 + 2 * BRACKET_HALF_WIDTH_S + AIM_SLACK_S


def test_a_span_that_would_learn_a_period_far_off_the_programmed_one_is_refused():
    """A sample lost unseen (say, its data-ready cleared with the previous one) makes a span of
    two periods count as one: learning 2 x the period would make every look skip a sample."""
    phase = DataReadyPhase(PROGRAMMED_PERIOD_S, started_s=0.0)
    first = phase.plan()
    assert first is not None
    phase.found_by_polling(first, PROGRAMMED_PERIOD_S - 1e-6, PROGRAMMED_PERIOD_S + 1e-6)
    second = phase.plan()
    assert second is not None
    lost_one_s = 3 * PROGRAMMED_PERIOD_S
    phase.found_by_polling(second, lost_one_s - 1e-6, lost_one_s + 1e-6)
    assert phase.period_s == PROGRAMMED_PERIOD_S
    assert phase.period_sigma_s == pytest.approx(PERIOD_TOLERANCE * PROGRAMMED_PERIOD_S)
