"""`irlamp history`: recent sessions and faults from the journal, newest first.

Opens the journal read-only (`file:...?mode=ro`): it never creates, migrates, locks for
writing or alters the daemon's database. Exit codes: 0 shown, 2 bad argument, 3 no journal,
4 journal unreadable.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import sys
import time
from pathlib import Path
from typing import TextIO

from controller.service.journal import FaultRecord, JournalError, ReadOnlyJournal, SessionRecord, journal_path
from controller.service.status_reader import local_time

EXIT_OK, EXIT_BAD_ARGUMENT, EXIT_NO_JOURNAL, EXIT_UNREADABLE = 0, 2, 3, 4
MM_PER_INCH = 25.4

END_REASON_WORDS = {
    "completed": "time limit reached",
    "stopped_by_button": "stopped with the button",
    "stopped_remotely": "stopped remotely (STOP from the MQTT bridge)",
    "too_close_too_long": "too close for too long",
    "nobody_there": "nobody there for too long",
    "overheat": "skin too hot",
    "fault": "a fault",
    "wall_time_cap": "session lasted too long overall",
    "interrupted": "cut off (crash or power loss)",
    "daemon_stopped": "service stopped",
    "distance_doubt_too_long": "distance untrustworthy too long",
    "journal_recovered": "journal lost: day counted as used up",
    "comfort_cycling": "comfort set point needed too many switch-ons",
    "switching_limit": "too many lamp switch-ons",
    None: "not ended yet (running, or cut off just now)",
}


def end_reason_words(reason: str | None) -> str:
    """Human words for an end reason; an unknown reason is shown as it is."""
    return END_REASON_WORDS.get(reason, str(reason))


def _local(wall: float | None, tz: dt.tzinfo | None, fmt: str) -> str:
    return local_time(wall, tz, fmt, missing="-")


def _distance(mm: float | None) -> str:
    return "-" if mm is None else f"{mm:.0f} mm ({mm / MM_PER_INCH:.1f} in)"


def session_row(s: SessionRecord, tz: dt.tzinfo | None = None) -> dict:
    """One session as a JSON-ready dict (times as epoch seconds and as local text)."""
    return {
        "id": s.id,
        "boot_id": s.boot_id,
        "start_wall": s.start_wall,
        "start_local": _local(s.start_wall, tz, "%Y-%m-%d %H:%M:%S"),
        "end_wall": s.end_wall,
        "on_s": s.on_s,
        "heat_minutes": round(s.on_s / 60.0, 1),
        "end_reason": s.end_reason,
        "ended_by": end_reason_words(s.end_reason),
        "max_skin_c": s.max_skin_c,
        "min_distance_mm": s.min_distance_mm,
        "min_signal_mcps": s.min_signal_mcps,
        "max_signal_mcps": s.max_signal_mcps,
        "min_ambient_mcps": s.min_ambient_mcps,
        "max_ambient_mcps": s.max_ambient_mcps,
        "distance_samples": s.distance_samples,
        "distance_doubts": s.distance_doubts,
        "dose_cem43": s.dose_cem43,
        "switches": s.switches,
        "doubt_switches": s.doubt_switches,
    }


def _dose(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def daily_doses(sessions: list[SessionRecord], tz: dt.tzinfo | None = None) -> list[dict]:
    """Heat dose per local day (by session start), newest first; days with no recorded dose
    (sessions from before doses were recorded) show None, never a made-up 0."""
    days: dict[str, list[float | None]] = {}
    for s in sessions:
        days.setdefault(_local(s.start_wall, tz, "%Y-%m-%d"), []).append(s.dose_cem43)
    return [
        {
            "date": day,
            "sessions": len(doses),
            "dose_cem43": None if all(d is None for d in doses) else round(sum(d or 0.0 for d in doses), 4),
        }
        for day, doses in sorted(days.items(), reverse=True)
    ]


def _light(s: SessionRecord) -> str:
    """The distance sensor's ambient light over a session and its doubted share, or '-'."""
    if s.max_ambient_mcps is None:
        return "-"
    doubted = ""
    if s.distance_samples:
        doubted = f", {100 * (s.distance_doubts or 0) / s.distance_samples:.1f} % doubted"
    return f"{s.min_ambient_mcps:.2f}-{s.max_ambient_mcps:.2f} Mcps{doubted}"


def _switches(s: SessionRecord) -> str:
    if s.switches is None:
        return "-"
    return f"{s.switches}" + (f" ({s.doubt_switches} doubt)" if s.doubt_switches else "")


def fault_row(f: FaultRecord, tz: dt.tzinfo | None = None) -> dict:
    return {
        "id": f.id,
        "wall": f.wall,
        "local": _local(f.wall, tz, "%Y-%m-%d %H:%M:%S"),
        "code": f.code,
        "detail": f.detail,
        "ack_wall": f.ack_wall,
        "acknowledged": f.ack_wall is not None,
    }


def format_history(
    sessions: list[SessionRecord], faults: list[FaultRecord], days: float, tz: dt.tzinfo | None = None
) -> list[str]:
    """The caregiver's table, one string per line."""
    span = f"last {days:g} day{'s' if days != 1 else ''}"
    lines = [f"Sessions, {span}, newest first:"]
    if sessions:
        lines.append(
            f"{'Date':<10}  {'Start':<5}  {'Heat min':>8}  {'How it ended':<32}  "
            f"{'Peak skin':>9}  {'Dose':>5}  {'Switch-ons':<13}  {'Closest':<18}  Ambient light"
        )
        for s in sessions:
            skin = "-" if s.max_skin_c is None else f"{s.max_skin_c:.1f} °C"
            lines.append(
                f"{_local(s.start_wall, tz, '%Y-%m-%d'):<10}  "
                f"{_local(s.start_wall, tz, '%H:%M'):<5}  {s.on_s / 60.0:>8.1f}  "
                f"{end_reason_words(s.end_reason):<32}  {skin:>9}  {_dose(s.dose_cem43):>5}  "
                f"{_switches(s):<13}  {_distance(s.min_distance_mm):<18}  {_light(s)}"
            )
        lines.append("")
        lines.append("Heat dose per day (CEM43: equivalent minutes at 43 °C; see the README):")
        for day in daily_doses(sessions, tz):
            lines.append(
                f"  {day['date']:<10}  {_dose(day['dose_cem43']):>6}  "
                f"({day['sessions']} session{'s' if day['sessions'] != 1 else ''})"
            )
    else:
        lines.append("  none")
    lines.append("")
    lines.append(f"Faults, {span}, newest first:")
    if faults:
        lines.append(f"{'Time':<16}  {'Code':<24}  {'Acknowledged':<16}  Detail")
        for f in faults:
            ack = "NO" if f.ack_wall is None else f"yes {_local(f.ack_wall, tz, '%m-%d %H:%M')}"
            lines.append(f"{_local(f.wall, tz, '%Y-%m-%d %H:%M'):<16}  {f.code:<24}  {ack:<16}  {f.detail}")
    else:
        lines.append("  none")
    return lines


def read_journal(state_dir: Path, command: str, read, err: TextIO):
    """`read(reader)` on the journal opened read-only for one read. Returns (result, None), or
    (None, exit code) after printing the one-line reason (no journal, unreadable) to `err`."""
    try:
        return ReadOnlyJournal(state_dir, keep_open=False).read(read), None
    except FileNotFoundError:
        print(
            f"irlamp {command}: no journal at {journal_path(state_dir)} — the daemon has not "
            f"recorded anything yet, or the state directory is wrong",
            file=err,
        )
        return None, EXIT_NO_JOURNAL
    except JournalError as exc:
        print(f"irlamp {command}: {exc}", file=err)
        return None, EXIT_UNREADABLE


def history_command(
    state_dir: Path,
    days: float,
    as_json: bool,
    now_wall: float | None = None,
    *,
    tz: dt.tzinfo | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """`irlamp history [--days N] [--json]`. Returns the exit code (see module docstring)."""
    out, err = out or sys.stdout, err or sys.stderr
    if isinstance(days, bool) or not isinstance(days, (int, float)) or not math.isfinite(days) or days <= 0:
        print(f"irlamp history: --days must be a number greater than 0, got {days!r}", file=err)
        return EXIT_BAD_ARGUMENT
    now_wall = time.time() if now_wall is None else now_wall
    found, failed = read_journal(state_dir, "history", lambda reader: reader.history(days, now_wall), err)
    if failed is not None:
        return failed
    sessions, faults = found
    if as_json:
        print(
            json.dumps(
                {
                    "sessions": [session_row(s, tz) for s in sessions],
                    "days": daily_doses(sessions, tz),
                    "faults": [fault_row(f, tz) for f in faults],
                }
            ),
            file=out,
        )
    else:
        for line in format_history(sessions, faults, days, tz):
            print(line, file=out)
    return EXIT_OK
