"""SR-1: an exception anywhere in the control path turns the lamp off and is recorded.

The daemon is assembled exactly as `irlamp simulate` assembles it (simulated sensors,
MockFactory pins, simulated clock) and stepped by hand, so a failure can be injected at a
precise point of a running session.
"""

from __future__ import annotations

import pytest
from gpiozero.pins.mock import MockFactory

from controller.service.clock import SimClock
from controller.service.config import load_config
from controller.service.daemon import MAX_EXCEPTION_STREAK, Daemon, FatalLoopError
from controller.service.journal import Journal, JournalError, JournalReader
from drivers.hardware import build_hardware
from drivers.sim_sensors import SimDistanceSource, SimSkinSource, SimWorld

STEP_S = 0.033


class Rig:
    def __init__(self, tmp_path):
        self.cfg = load_config()
        self.clock = SimClock(1_767_600_000.0)
        self.world = SimWorld(400.0, 32.0, thermal_model=True, monotonic=self.clock.monotonic)
        self.factory = MockFactory()
        self.hw = build_hardware(
            self.cfg,
            distance_source=SimDistanceSource(self.world),
            skin_source=SimSkinSource(self.world),
            monotonic=self.clock.monotonic,
            pin_factory=self.factory,
        )
        self.world.lamp_on = self.hw.output.is_on
        self.events: list[tuple[str, dict]] = []
        self.journal = Journal(tmp_path, "boot-1")
        self.daemon = Daemon(
            self.cfg,
            self.hw,
            self.clock,
            self.journal,
            status_path=tmp_path / "status.json",
            boot_id="boot-1",
            emit=lambda name, **f: self.events.append((name, f)),
        )
        self.tmp_path = tmp_path

    def relay_pin_on(self) -> bool:
        return bool(self.factory.pin(self.cfg.gpio.relay_pin).state)

    def run(self, seconds: float) -> None:
        end = self.clock.monotonic() + seconds
        while self.clock.monotonic() < end:
            self.clock.advance_to(self.clock.monotonic() + STEP_S)
            self.hw.distance.step()
            self.hw.skin.step()
            self.hw.guard.tick(self.clock.monotonic(), STEP_S)  # as the guard's own thread does
            self.daemon.writer.pump()
            self.daemon.step()

    def start_session(self) -> None:
        self.run(0.5)
        button = self.factory.pin(self.cfg.gpio.button_pin)
        button.drive_low()
        self.run(0.2)
        button.drive_high()
        self.run(0.2)
        assert self.relay_pin_on(), self.events


def test_exception_in_a_step_turns_the_lamp_off_and_latches(rig, monkeypatch):
    rig.start_session()

    def broken(_inputs):
        raise ZeroDivisionError("injected")

    monkeypatch.setattr(rig.daemon.controller, "step", broken)
    rig.run(STEP_S)
    assert not rig.relay_pin_on()
    monkeypatch.undo()
    rig.run(1.0)
    assert not rig.relay_pin_on()  # stays off: the fault is latched
    assert rig.daemon.controller.latched == ["control_exception"]
    faults = JournalReader(rig.tmp_path).unacknowledged_faults()
    assert [f.code for f in faults] == ["control_exception"] and "ZeroDivisionError" in faults[0].detail
    session = JournalReader(rig.tmp_path).recent_sessions()[0]
    assert session.end_reason == "fault" and session.on_s > 0


def test_a_journal_that_fails_mid_session_turns_the_lamp_off(rig, monkeypatch):
    """A failing journal write fails on the writer's thread (never on the loop); the loop ends
    the session at its next step with journal_stalled, naming the failure."""
    rig.start_session()

    def disk_full(*_args, **_kwargs):
        raise JournalError("database or disk is full")

    monkeypatch.setattr(rig.journal, "checkpoint", disk_full)
    rig.run(rig.cfg.loop.checkpoint_s - 0.5)
    assert rig.relay_pin_on() and not rig.daemon.controller.latched  # no checkpoint written yet
    rig.run(1.0)
    assert not rig.relay_pin_on()
    assert rig.daemon.controller.latched == ["journal_stalled"]
    assert "disk is full" in rig.daemon.writer.last_error
    assert "records cannot be written" in rig.daemon.last_fault["detail"]


def test_a_loop_that_keeps_failing_gives_up_with_the_lamp_off(rig, monkeypatch):
    rig.start_session()
    monkeypatch.setattr(rig.daemon.controller, "step", lambda _inputs: 1 / 0)
    with pytest.raises(FatalLoopError):
        for _ in range(MAX_EXCEPTION_STREAK):
            rig.daemon.step()
    assert not rig.relay_pin_on()
    assert not rig.daemon.healthy  # and so no WATCHDOG=1 ping is sent


def test_a_guard_whose_check_raises_latches_guard_failed_in_the_daemon_until_a_long_press(rig, monkeypatch):
    rig.start_session()
    with monkeypatch.context() as patch:  # the guard's own check breaks for one round
        patch.setattr(rig.hw.guard, "check", lambda _now_s: {}["injected into the guard"])
        rig.run(STEP_S)
        assert not rig.relay_pin_on()
    rig.run(1.0)  # it works again: the fault stays latched
    assert not rig.relay_pin_on()
    assert rig.daemon.controller.latched == ["guard_failed"]
    assert ("fault", {"code": "guard_failed", "detail": "independent guard cut the relay"}) in rig.events
    assert [f.code for f in JournalReader(rig.tmp_path).unacknowledged_faults()] == ["guard_failed"]
    button = rig.factory.pin(rig.cfg.gpio.button_pin)
    button.drive_low()  # a short press cannot start a session
    rig.run(0.2)
    button.drive_high()
    rig.run(0.5)
    assert not rig.relay_pin_on()
    button.drive_low()  # the long press acknowledges
    rig.run(rig.cfg.button.long_press_s + 0.2)
    button.drive_high()
    rig.run(0.2)
    assert rig.daemon.controller.latched == [] and rig.hw.guard.tripped is None
