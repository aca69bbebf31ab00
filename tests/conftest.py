"""Fixtures shared by several test files."""

from __future__ import annotations

import pytest
from test_daemon_exceptions import Rig


@pytest.fixture
def rig(tmp_path):
    """A daemon on simulated sensors and mock pins, stepped by hand (test_daemon_exceptions.Rig)."""
    r = Rig(tmp_path)
    yield r
    r.hw.close()
    r.journal.close()
