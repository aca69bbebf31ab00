"""A directory that the user `nobody` can enter, for root tests that run a child through
`setpriv --reuid nobody` (pytest's own tmp_path is 0700 under root).

Such a test can only prove something if `nobody` reaches its files: when a directory on the
way has been narrowed (an irlamp that took LG_WD=/tmp for its own once chmod'ed /tmp 0700),
the test says so instead of failing with a bare "Permission denied".
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

CANDIDATE_BASES = (tempfile.gettempdir(), "/dev/shm", "/var/tmp")


def closed_to_others(directory: Path | str) -> str | None:
    """The first directory from / down to `directory` that others may not enter, as
    '/tmp is 0700', or None when `nobody` can walk the whole way."""
    directory = Path(directory).resolve()
    for step in [*reversed(directory.parents), directory]:
        try:
            mode = step.stat().st_mode
        except OSError as exc:
            return f"{step}: {exc.strerror}"
        if not mode & stat.S_IXOTH:
            return f"{step} is {stat.S_IMODE(mode):04o}"
    return None


def why_nobody_was_denied(directory: Path) -> str:
    """For an assertion message after a child run as `nobody` failed."""
    problem = closed_to_others(directory)
    return f"\n(now {problem}: 'nobody' cannot enter it)" if problem else ""


@contextlib.contextmanager
def directory_for_nobody(prefix: str) -> Iterator[Path]:
    """A fresh 0755 directory under the first candidate base that `nobody` can enter;
    removed afterwards. Fails (never skips) when there is none, naming what is closed."""
    closed = []
    for base in CANDIDATE_BASES:
        problem = closed_to_others(base)
        if problem is None:
            break
        closed.append(problem)
    else:
        raise AssertionError(f"no temporary directory that 'nobody' can enter: {'; '.join(closed)}")
    directory = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    try:
        directory.chmod(0o755)
        yield directory
    finally:
        shutil.rmtree(directory)


def run_python_as_nobody(code: str, *args: str) -> subprocess.CompletedProcess:
    """`python -c code args...` as `nobody` (group nogroup, no other groups), from /, with this
    checkout importable. Skips when this Python lives where `nobody` cannot run it."""
    if not os.access(sys.executable, os.X_OK) or "/root/" in sys.executable:
        pytest.skip("the test's Python lives where 'nobody' cannot run it")
    return subprocess.run(
        ["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups", sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd="/",
    )
