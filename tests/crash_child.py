"""Child process for tests/test_crash_safety.py: writes the journal like the daemon, until killed.

usage: crash_child.py STATE_DIR BOOT_ID MONO_BASE SEED CHECKPOINT_S

It opens the journal, closes sessions a previous (killed) child left open, then runs sessions
forever in simulated time (one loop step = one second of lamp-on time, no real waiting),
checkpointing every CHECKPOINT_S seconds of on-time. After each journal call returns, and
after each simulated second, it prints one flushed line:

  ready <ids closed as interrupted>
  started <id> 0
  true <id> <on_s>      the lamp has now been on for on_s (printed before any checkpoint of it)
  ckpt <id> <on_s>
  ended <id> <on_s>

So the parent knows, at any kill, a lower bound on the true on-time and which writes returned.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from controller.service.journal import Journal  # noqa: E402

WALL_BASE = 1_767_600_000.0  # simulated wall = WALL_BASE + simulated monotonic
END_REASON = "completed"


def say(*words: object) -> None:
    print(*words, flush=True)


def main(state_dir: str, boot_id: str, mono_base: str, seed: str, checkpoint_s: str) -> None:
    rng = random.Random(int(seed))
    every_s = float(checkpoint_s)
    mono = float(mono_base)
    journal = Journal(state_dir, boot_id)
    say("ready", *journal.close_interrupted(every_s))
    while True:
        sid = journal.start_session(WALL_BASE + mono, mono)
        say("started", sid, 0)
        on_s, checkpointed_s = 0.0, 0.0
        max_skin_c, min_distance_mm = None, None
        for _ in range(rng.randint(5, 40)):
            mono += 1.0
            on_s += 1.0
            skin_c, distance_mm = rng.uniform(32, 42), rng.uniform(310, 450)
            max_skin_c = skin_c if max_skin_c is None else max(max_skin_c, skin_c)
            min_distance_mm = distance_mm if min_distance_mm is None else min(min_distance_mm, distance_mm)
            say("true", sid, on_s)
            if on_s - checkpointed_s >= every_s:
                journal.checkpoint(sid, on_s, max_skin_c, min_distance_mm, WALL_BASE + mono, mono)
                checkpointed_s = on_s
                say("ckpt", sid, on_s)
        journal.end_session(sid, on_s, END_REASON, max_skin_c, min_distance_mm, WALL_BASE + mono, mono)
        say("ended", sid, on_s)
        mono += 1.0


if __name__ == "__main__":
    main(*sys.argv[1:6])
