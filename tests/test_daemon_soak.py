"""SR-12 / SR-2 / SR-3 / SR-7 / SR-10: the real daemon, SIGKILLed at seeded random instants in
every state (tests/daemon_soak.py), restarted on the same state directory each time.

`make test` runs IRLAMP_SOAK_KILLS (default 60) kills, about 50 s; `make soak` runs 1000
(docs/soak.md has the measured result).
"""

from __future__ import annotations

import os

from daemon_soak import STATES, soak

SEED = 20260105
KILLS = int(os.environ.get("IRLAMP_SOAK_KILLS", "60"))


def test_real_daemon_survives_sigkill_in_every_state(tmp_path):
    report = soak(tmp_path, KILLS, SEED)
    print(f"\nsoak: {report.line()}")
    assert sum(report.kills.values()) == KILLS
    # every state was hit, each often enough to mean something
    assert set(report.kills) == {state.name for state in STATES}, report.kills
    assert min(report.kills.values()) >= KILLS // 10, report.kills
