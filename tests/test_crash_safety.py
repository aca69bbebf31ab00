"""SR-12: the journal survives SIGKILL at any instant; a reader runs beside the writer.

A child process (tests/crash_child.py) writes sessions and checkpoints the way the daemon
does and reports each returned call on stdout. We SIGKILL it at seeded random moments
(IRLAMP_KILL_POINTS times, default 200; `make soak` sets 1000), restart it on the same state
directory (sometimes as a new boot), and after every kill check that the journal opens,
passes PRAGMA integrity_check, closes the cut-off session, and lost nothing it had reported.
"""

from __future__ import annotations

import io
import json
import os
import random
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from controller.service.history import history_command
from controller.service.journal import Journal, JournalReader

CHILD = Path(__file__).with_name("crash_child.py")
CHECKPOINT_S = 5.0
SEED = 20260105


@dataclass
class Reported:
    """What the child said about one session before it died."""

    started: bool = False
    true_on_s: float = 0.0  # lower bound on the lamp-on time when the child died
    checkpointed_on_s: float = 0.0
    ended_on_s: float | None = None


def spawn(state_dir: Path, boot_id: str, mono_base: float, seed: int, stderr_path: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(CHILD), str(state_dir), boot_id, str(mono_base), str(seed), str(CHECKPOINT_S)],
        stdout=subprocess.PIPE,
        stderr=stderr_path.open("w"),
        text=True,
        bufsize=1,
    )


def apply(lines: list[str], reported: dict[int, Reported]) -> None:
    for line in lines:
        if not line.endswith("\n"):
            continue  # cannot happen for short pipe writes, but never trust half a line
        word, *rest = line.split()
        if word == "ready":
            continue
        sid, on_s = int(rest[0]), float(rest[1])
        r = reported.setdefault(sid, Reported())
        if word == "started":
            r.started = True
        elif word == "true":
            r.true_on_s = max(r.true_on_s, on_s)
        elif word == "ckpt":
            r.checkpointed_on_s = max(r.checkpointed_on_s, on_s)
        elif word == "ended":
            r.ended_on_s = on_s
        else:
            raise AssertionError(f"unexpected child output {line!r}")


def verify_after_kill(state_dir: Path, reported: dict[int, Reported], lifetimes: int) -> None:
    with Journal(state_dir, "verifier") as journal:
        assert journal.integrity_check() == "ok"
        journal.close_interrupted(CHECKPOINT_S)
        rows = {s.id: s for s in journal.sessions_for_limits(count=10**9)}
    for sid, r in reported.items():
        assert sid in rows, f"session {sid} was reported started but is missing"
        s = rows[sid]
        assert s.end_wall is not None and s.end_reason in ("completed", "interrupted")
        assert s.on_s >= r.checkpointed_on_s, f"session {sid}: a returned checkpoint was lost"
        assert s.on_s >= r.true_on_s - CHECKPOINT_S, f"session {sid}: on-time under-counted"
        assert s.on_s <= r.true_on_s, f"session {sid}: more on-time than ever happened"
        if r.ended_on_s is not None:
            assert (s.end_reason, s.on_s) == ("completed", r.ended_on_s)
    unreported = [s for sid, s in rows.items() if sid not in reported]
    # only a start whose commit returned just before the kill can be unreported
    assert len(unreported) <= lifetimes
    assert all(s.on_s == 0.0 and s.end_reason == "interrupted" for s in unreported)


def test_journal_survives_sigkill_at_random_instants(tmp_path):
    kill_points = int(os.environ.get("IRLAMP_KILL_POINTS", "200"))
    rng = random.Random(SEED)
    state_dir, stderr_path = tmp_path / "state", tmp_path / "child-stderr.txt"
    reported: dict[int, Reported] = {}
    boot_id = "boot-0"
    for lifetime in range(kill_points):
        if rng.random() < 0.2:
            boot_id = f"boot-{lifetime}"  # a reboot between two lives
        child = spawn(state_dir, boot_id, lifetime * 100_000.0, rng.randrange(10**9), stderr_path)
        # kill right away (during start-up, opening or close_interrupted) or after some output
        lines_before_kill = 0 if rng.random() < 0.1 else rng.randint(1, 150)
        lines = []
        while len(lines) < lines_before_kill:
            line = child.stdout.readline()
            assert line, f"child died on its own: {stderr_path.read_text()[-2000:]}"
            lines.append(line)
        child.send_signal(signal.SIGKILL)
        lines += child.stdout.readlines()  # everything it wrote before it died
        child.stdout.close()
        assert child.wait() == -signal.SIGKILL, stderr_path.read_text()[-2000:]
        apply(lines, reported)
        verify_after_kill(state_dir, reported, lifetime + 1)
    assert sum(r.ended_on_s is not None for r in reported.values()) > kill_points / 10
    assert sum(r.ended_on_s is None for r in reported.values()) > kill_points / 10


def test_history_reader_runs_beside_the_writing_daemon(tmp_path):
    state_dir, stderr_path = tmp_path / "state", tmp_path / "child-stderr.txt"
    child = spawn(state_dir, "boot-0", 0.0, SEED, stderr_path)
    try:
        assert child.stdout.readline().startswith("ready"), stderr_path.read_text()
        seen_on_s: dict[int, float] = {}
        newest_seen = []
        for _ in range(150):
            for _ in range(10):  # keep the pipe drained so the writer never stalls on it
                assert child.stdout.readline(), stderr_path.read_text()
            out, err = io.StringIO(), io.StringIO()
            assert history_command(state_dir, 3650.0, True, 2e9, out=out, err=err) == 0, err.getvalue()
            sessions = json.loads(out.getvalue())["sessions"]
            for s in sessions:  # every snapshot is consistent and never goes backwards
                assert s["on_s"] >= seen_on_s.get(s["id"], 0.0)
                seen_on_s[s["id"]] = s["on_s"]
            newest_seen.append(max((s["id"] for s in sessions), default=0))
        assert newest_seen[-1] > newest_seen[0] + 5  # the writer kept going meanwhile
    finally:
        child.kill()
        child.stdout.close()
        child.wait()
    with JournalReader(state_dir) as reader:
        assert reader.integrity_check() == "ok"
