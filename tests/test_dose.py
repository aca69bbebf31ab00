"""CEM43 heat dose (controller/dose.py): known values computed by hand, gap capping."""

from __future__ import annotations

import pytest

from controller.core.dose import MAX_STEP_S, DoseMeter, cem43_minutes


@pytest.mark.parametrize(
    "skin_c,minutes,expected",
    [
        (43.0, 1.0, 1.0),  # the definition
        (44.0, 1.0, 2.0),  # 0.5 ** -1
        (45.0, 2.0, 8.0),  # 2 min * 0.5 ** -2
        (42.0, 1.0, 0.25),  # 0.25 ** 1
        (41.0, 20.0, 1.25),  # a whole session at 41 C: 20 / 16
        (40.0, 20.0, 0.3125),  # 20 / 64
        (37.0, 60.0, 60 / 4**6),  # an hour at body temperature: 0.0146
    ],
)
def test_known_values(skin_c, minutes, expected):
    assert cem43_minutes(skin_c, minutes * 60.0) == pytest.approx(expected, rel=1e-12)


def test_samples_every_quarter_second_add_up_to_the_hand_computed_dose():
    meter = DoseMeter()
    t = 0.0
    for _ in range(4 * 60 + 1):  # 60 s at 43 C, then 60 s at 41 C
        meter.add(t, 43.0)
        t += 0.25
    for _ in range(4 * 60):
        meter.add(t, 41.0)
        t += 0.25
    assert meter.cem43 == pytest.approx(1.0 + 1.0 / 16, rel=1e-9)


def test_a_gap_between_samples_counts_only_the_cap():
    meter = DoseMeter()
    meter.add(0.0, 43.0)
    meter.add(30.0, 43.0)  # the thermometer was silent for 30 s
    assert meter.cem43 == pytest.approx(MAX_STEP_S / 60.0)


def test_the_same_sample_seen_twice_counts_once():
    meter = DoseMeter()
    meter.add(0.0, 43.0)
    meter.add(0.25, 43.0)
    meter.add(0.25, 43.0)
    meter.add(0.1, 43.0)
    assert meter.cem43 == pytest.approx(0.25 / 60.0)
