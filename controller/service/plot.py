"""`irlamp plot [SESSION] -o FILE.png|.svg`: one session as a picture a caregiver can read.

Two panels over the minutes since the session started, read from the journal's trace of the
session (about one row a second, see controller/service/daemon.py):
  - skin temperature, with the comfort set point, the warning band and the limit drawn and
    labelled where they are (no legend to hunt for);
  - the person's distance, with the 12 in floor and the start band.
Lamp-on time is shaded orange in both, pauses grey, cooling at the set point blue; faults are
red vertical lines with their code. The title says date, duration, heat time, how it ended,
peak skin and heat dose.

matplotlib is an optional extra (`pip install 'irlamp[plot]'`) imported here, inside
`draw_session`, and nowhere else: the daemon never loads it (tests/test_plot.py checks).
Reads the journal read-only. Exit codes: 0 written, 2 bad argument (unknown session, no trace,
wrong file type) or matplotlib missing, 3 no journal, 4 journal unreadable.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import TextIO

from controller.service.history import EXIT_BAD_ARGUMENT, end_reason_words, read_journal
from controller.service.journal import FaultRecord, SessionRecord, TracePoint, journal_path

EXIT_OK = 0
SUFFIXES = (".png", ".svg")
MM_PER_INCH = 25.4
FIGURE_IN = (10.0, 6.2)
DPI = 80
LAMP_COLOUR, PAUSE_COLOUR, COOLING_COLOUR = "#ffcc80", "#d9d9d9", "#bbdefb"
MISSING_EXTRA = (
    "irlamp plot needs matplotlib, an optional extra the lamp itself never uses: "
    "pip install 'irlamp[plot]' (in the irlamp venv)"
)


def _spans(trace: list[TracePoint], match) -> list[tuple[float, float]]:
    """(start_min, end_min) of the stretches where `match(point)` holds; a stretch lasts until
    the next row."""
    spans: list[tuple[float, float]] = []
    start = None
    for point, following in zip(trace, [*trace[1:], None], strict=True):
        if match(point) and start is None:
            start = point.t_s
        if start is not None and (following is None or not match(following)):
            end = following.t_s if following is not None else point.t_s
            spans.append((start / 60.0, end / 60.0))
            start = None
    return spans


def title_lines(session: SessionRecord, tz: dt.tzinfo | None = None) -> str:
    """The picture's title: what a caregiver needs without reading the axes."""
    start = dt.datetime.fromtimestamp(session.start_wall, tz)
    minutes = ((session.end_wall or session.start_wall) - session.start_wall) / 60.0
    peak = "-" if session.max_skin_c is None else f"{session.max_skin_c:.1f} °C"
    dose = "-" if session.dose_cem43 is None else f"{session.dose_cem43:.2f} CEM43 min"
    return (
        f"Session {session.id}, {start:%a %d %b %Y %H:%M}: {minutes:.0f} min, "
        f"{session.on_s / 60.0:.1f} min of heat\n"
        f"ended: {end_reason_words(session.end_reason)} · peak skin {peak} · heat dose {dose}"
    )


def draw_session(
    session: SessionRecord,
    trace: list[TracePoint],
    faults: list[FaultRecord],
    cfg,
    output: Path,
    tz: dt.tzinfo | None = None,
) -> None:
    """Write the picture of one session to `output` (.png or .svg). Needs matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    skin, band = cfg.skin, cfg.distance
    minutes = [p.t_s / 60.0 for p in trace]
    fault_min = [(f.wall - session.start_wall) / 60.0 for f in faults]
    end_min = max([minutes[-1], 0.5, *fault_min]) * 1.01
    fig, (top, bottom) = plt.subplots(
        2, 1, sharex=True, figsize=FIGURE_IN, dpi=DPI, gridspec_kw={"height_ratios": [3, 2]}
    )
    fig.suptitle(title_lines(session, tz), fontsize=12, x=0.01, ha="left")
    for axis in (top, bottom):
        for start, stop in _spans(trace, lambda p: p.lamp_on):
            axis.axvspan(start, stop, color=LAMP_COLOUR, lw=0, zorder=0)
        for start, stop in _spans(trace, lambda p: p.state == "paused"):
            axis.axvspan(start, stop, color=PAUSE_COLOUR, lw=0, zorder=0)
        for start, stop in _spans(trace, lambda p: p.state == "cooling"):
            axis.axvspan(start, stop, color=COOLING_COLOUR, lw=0, zorder=0)
        axis.grid(True, color="#eeeeee", zorder=1)
        axis.set_xlim(0, end_min)

    skin_c = [p.skin_c for p in trace]
    top.plot(minutes, skin_c, color="#c62828", lw=2, zorder=3)
    top.set_ylabel("skin °C")
    # (value, colour, words, label on the right): the warning label goes right so that it never
    # covers the comfort label when both sit at 41 °C (the defaults)
    lines = [
        (skin.limit_c, "#b71c1c", f"limit {skin.limit_c:g} °C: lamp trips", False),
        (
            skin.limit_c - skin.warning_margin_c,
            "#ef6c00",
            f"warning band from {skin.limit_c - skin.warning_margin_c:g} °C ",
            True,
        ),
    ]
    if skin.comfort_c is not None:
        lines.append((skin.comfort_c, "#2e7d32", f"comfort {skin.comfort_c:g} °C: lamp pauses", False))
    known = [c for c in skin_c if c is not None]
    low = min([*known, min(line[0] for line in lines)]) - 1.5
    top.set_ylim(low, skin.limit_c + 1.0)
    for value_c, colour, text, right in lines:
        top.axhline(value_c, color=colour, ls="--", lw=1.2, zorder=2)
        top.text(
            0.995 if right else 0.005,
            value_c,
            " " + text,
            transform=top.get_yaxis_transform(),
            color=colour,
            va="bottom",
            ha="right" if right else "left",
            fontsize=9,
            bbox={"facecolor": "white", "alpha": 0.7, "lw": 0, "pad": 1},
        )

    distance_in = [None if p.distance_mm is None else p.distance_mm / MM_PER_INCH for p in trace]
    bottom.plot(minutes, distance_in, color="#1565c0", lw=1.5, zorder=3)
    bottom.set_ylabel("distance, inches")
    bottom.set_xlabel(
        "minutes since the session started   (orange: lamp on · blue: cooling at the comfort set point · grey: paused)"
    )
    floor_in = band.min_mm / MM_PER_INCH
    bottom.axhspan(
        (band.min_mm + band.hysteresis_mm) / MM_PER_INCH,
        band.max_mm / MM_PER_INCH,
        color="#c8e6c9",
        alpha=0.5,
        lw=0,
        zorder=1,
    )
    bottom.axhline(floor_in, color="#b71c1c", ls="--", lw=1.2, zorder=2)
    bottom.text(
        0.005,
        floor_in,
        f" {floor_in:.0f} in: closer is too close",
        color="#b71c1c",
        transform=bottom.get_yaxis_transform(),
        va="top",
        fontsize=9,
    )
    bottom.text(
        0.005,
        band.max_mm / MM_PER_INCH,
        " start band",
        color="#2e7d32",
        transform=bottom.get_yaxis_transform(),
        va="top",
        fontsize=9,
    )
    near = [d for d in distance_in if d is not None]
    bottom.set_ylim(min([*near, floor_in]) - 1.0, max([*near, band.max_mm / MM_PER_INCH]) + 1.0)

    for fault in faults:
        at_min = (fault.wall - session.start_wall) / 60.0
        for axis in (top, bottom):
            axis.axvline(at_min, color="#b71c1c", lw=2, zorder=4)
        top.text(
            at_min,
            skin.limit_c + 0.9,
            f"FAULT {fault.code} ",
            color="#b71c1c",
            va="top",
            ha="right",
            fontsize=10,
            fontweight="bold",
            bbox={"facecolor": "white", "alpha": 0.8, "lw": 0, "pad": 1},
        )
    fig.tight_layout()
    fig.savefig(output, format=output.suffix[1:])
    plt.close(fig)


def plot_command(
    state_dir: Path, session_id: int | None, output: str, cfg, *, tz: dt.tzinfo | None = None, err: TextIO | None = None
) -> int:
    """`irlamp plot [SESSION] -o FILE`. Returns the exit code (see the module docstring)."""
    err = err or sys.stderr
    path = Path(output)
    if path.suffix.lower() not in SUFFIXES:
        print(f"irlamp plot: -o {output}: the file must end in .png or .svg", file=err)
        return EXIT_BAD_ARGUMENT
    try:
        import matplotlib  # noqa: F401  (only to say clearly that the extra is missing)
    except ImportError:
        print(MISSING_EXTRA, file=err)
        return EXIT_BAD_ARGUMENT

    def read(reader):
        newest = reader.recent_sessions(1)
        session = reader.session(session_id) if session_id is not None else (newest[0] if newest else None)
        if session is None:
            return newest, None, [], []
        end_wall = session.end_wall or float("inf")
        return newest, session, reader.trace(session.id), reader.faults_between(session.start_wall, end_wall)

    found, failed = read_journal(state_dir, "plot", read, err)
    if failed is not None:
        return failed
    newest, session, trace, faults = found
    if session is None:
        which = f"no session {session_id}" if session_id is not None else "no session yet"
        more = f" (the newest is {newest[0].id}; `irlamp history` lists them)" if newest else ""
        print(f"irlamp plot: {which} in {journal_path(state_dir)}{more}", file=err)
        return EXIT_BAD_ARGUMENT
    if len(trace) < 2:
        print(
            f"irlamp plot: session {session.id} has no trace to draw (recorded before traces "
            f"existed, or older than records.trace_retention_days and pruned)",
            file=err,
        )
        return EXIT_BAD_ARGUMENT
    try:
        draw_session(session, trace, faults, cfg, path, tz)
    except OSError as exc:
        print(f"irlamp plot: cannot write {path}: {exc.strerror or exc}", file=err)
        return EXIT_BAD_ARGUMENT
    print(f"irlamp plot: session {session.id} drawn to {path}")
    return EXIT_OK
