"""Under systemd the daemon's log lines carry syslog priorities journald understands."""

from __future__ import annotations

import logging

from controller.cli import JournalFormatter


def _line(level: int, message: str, exc_info=None) -> str:
    record = logging.LogRecord("irlamp", level, __file__, 1, message, None, exc_info)
    return JournalFormatter().format(record)


def test_each_level_gets_its_syslog_priority():
    assert _line(logging.ERROR, "FAULT skin_overheat") == "<3>irlamp: FAULT skin_overheat"
    assert _line(logging.WARNING, "w").startswith("<4>")
    assert _line(logging.INFO, "i").startswith("<6>")
    assert _line(logging.CRITICAL, "c").startswith("<2>")
    assert _line(logging.DEBUG, "d").startswith("<7>")


def test_every_line_of_a_traceback_keeps_the_priority():
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        text = _line(logging.ERROR, "exception in the control loop", sys.exc_info())
    lines = text.splitlines()
    assert len(lines) > 2 and all(line.startswith("<3>") for line in lines)
