"""Turns raw trial records into the figures, checks them against the targets, scales them to a Pi.

Percentiles use linear interpolation between closest ranks (numpy's default), so p99 of
200 trials lies between the 198th and 199th smallest value.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import platform
import sys
import time
from pathlib import Path

from bench.procstats import runtime_on_tmpfs

# -- statistics -------------------------------------------------------------------------------


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        raise ValueError("percentile of no values")
    pos = (len(sorted_values) - 1) * q / 100.0
    low, high = math.floor(pos), math.ceil(pos)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (pos - low)


def summarize(values: list[float | None]) -> dict:
    """n, p50, p99, max, min, mean of the numbers; `missing` counts None (never happened)."""
    numbers = sorted(v for v in values if v is not None)
    out: dict = {"n": len(numbers), "missing": sum(v is None for v in values)}
    if numbers:
        out.update(
            p50=round(percentile(numbers, 50), 3),
            p99=round(percentile(numbers, 99), 3),
            max=round(numbers[-1], 3),
            min=round(numbers[0], 3),
            mean=round(sum(numbers) / len(numbers), 3),
        )
    return out


def latency_figures(trials: list[dict], kind: str) -> dict:
    """Summaries of every *_ms field of the trials of one kind."""
    mine = [t for t in trials if t["kind"] == kind]
    fields = sorted({k for t in mine for k in t if k.endswith("_ms")})
    figures = {field[:-3]: summarize([t.get(field) for t in mine]) for field in fields}
    figures["trials"] = len(mine)
    figures["not_off"] = sum(not t["off"] for t in mine)
    figures["anomalies"] = [t["note"] for t in mine if "note" in t]
    cuts = [t["cut_by_sampler"] for t in mine if "cut_by_sampler" in t]
    if cuts:
        figures["cut_by_sampler"] = sum(cuts)
    faults = sorted(
        {code for t in mine for code in t.get("faults", [])} | {t["guard_trip"] for t in mine if t.get("guard_trip")}
    )
    if faults:
        figures["faults_latched"] = faults
    return figures


# -- the machine ------------------------------------------------------------------------------


def machine_facts() -> dict:
    model = "unknown"
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model == "unknown":
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = line
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    return {
        "cpu_model": model,
        "cpus_online": os.cpu_count(),
        "cpus_usable": usable,
        "virtualised": " hypervisor" in flags,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "kernel": platform.release(),
        "arch": platform.machine(),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
        "status_file_on_tmpfs": runtime_on_tmpfs(),  # as on a Pi (/run/irlamp): bench/procstats.py
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "executable": sys.executable,
    }


class LoadMeter:
    """CPU the whole machine used over an interval, and how much of it was not ours
    (other users of a shared build machine disturb real-time figures; this says how much)."""

    def __init__(self) -> None:
        self.start = self._snapshot()

    @staticmethod
    def _snapshot() -> tuple[float, float, float]:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        ticks = [int(x) for x in fields]
        idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
        busy_s = (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")  # user..steal
        t = os.times()
        ours_s = t.user + t.system + t.children_user + t.children_system
        return busy_s, ours_s, time.monotonic()

    def read(self) -> dict:
        """Averages since construction, in % of one core. Call when our children have exited."""
        busy0, ours0, wall0 = self.start
        busy1, ours1, wall1 = self._snapshot()
        wall = max(wall1 - wall0, 1e-9)
        return {
            "wall_s": round(wall, 1),
            "machine_busy_percent": round(100 * (busy1 - busy0) / wall, 1),
            "bench_percent": round(100 * (ours1 - ours0) / wall, 1),
            "others_percent": round(100 * max(0.0, (busy1 - busy0) - (ours1 - ours0)) / wall, 1),
        }


# -- targets ----------------------------------------------------------------------------------


def _spread(program: dict, window: str) -> str:
    return spread_text(program["cpu_percent"].get("windows", {}).get(window, {}))


def spread_text(figures: dict) -> str:
    """How the median CPU window (`procstats.summarize_windows`) sits among the others:
    'median of N windows, a..b, whole-span mean m'; '' without windows."""
    windows = figures.get("windows_percent")
    if not windows:
        return ""
    return (
        f"median of {len(windows)} windows, {_fmt(min(windows))}..{_fmt(max(windows))},"
        f" whole-span mean {_fmt(figures.get('mean_percent'))}"
    )


def check_targets(results: dict) -> list[dict]:
    """The issue's targets first (irlamp on its real readers over emulated chips), then the
    earlier ones the bench keeps watching. Measured value, met or not (True/False)."""
    irl, sleeping = results["irlamp"], results["baseline_sleeping"]
    period_ms = results["config"]["distance_period_ms"]
    hz = irl["hazard_to_off_ms"]
    rows = []

    def add(name: str, target: str, measured, limit: float | None, note: str = "") -> None:
        met = None if measured is None or limit is None else measured <= limit
        rows.append({"figure": name, "target": target, "measured": measured, "met": met, "note": note})

    idle, base_idle = irl["cpu_percent"]["idle"], sleeping["cpu_percent"]["idle"]
    add("CPU idle, % of one core", "<= 0.3 %", idle, 0.3, _spread(irl, "idle"))
    add(
        "CPU idle, irlamp minus the sleeping baseline, % of one core",
        "<= 0 (not above the baseline's)",
        None if idle is None or base_idle is None else round(idle - base_idle, 3),
        0.0,
    )
    parts = irl["cpu_percent"].get("session_parts") or {}
    readers = (parts.get("readers_only") or {}).get("cpu_percent")
    add(
        "CPU in a session, % of one core",
        "<= 1.0 %",
        irl["cpu_percent"]["running"],
        1.0,
        "; ".join(
            part
            for part in (
                _spread(irl, "running"),
                f"of which emulated chips {_fmt(parts.get('emulated_chips'))} %",
                f"the readers alone {_fmt(readers)} %",
            )
            if part
        ),
    )
    add(
        "distance: sample -> off, p99 ms, quiet machine",
        "<= 1 ms",
        hz["distance"].get("sample_to_off", {}).get("p99"),
        1.0,
    )
    add(
        "distance: sample -> off, p99 ms, loaded machine",
        "<= 2 ms",
        hz["distance" + "_loaded"].get("sample_to_off", {}).get("p99"),
        2.0,
    )
    stall = irl["stall_to_off_ms"]
    add(
        "loop's last confirmation -> off, max ms",
        "<= 500 ms",
        stall["loop_frozen"].get("last_confirm_to_off", {}).get("max"),
        500.0,
    )
    add("peak RSS, MB", "<= 30 MB", irl["rss_mb"], 30.0)
    add("start-up to READY=1 on real readers, s (max of runs)", "<= 0.5 s", irl["startup_s"].get("max"), 0.5)
    # watched since earlier issues
    add(
        "overheat: sample -> off, p99 ms",
        "<= 2 ms",
        hz["overheat"].get("sample_to_off", {}).get("p99"),
        2.0,
        "earlier target",
    )
    add(
        "distance: physical onset -> off, p99 ms",
        f"<= one period + 2 ms = {period_ms + 2:.1f} ms",
        hz["distance"].get("onset_to_off", {}).get("p99"),
        period_ms + 2.0,
        "earlier target",
    )
    tight = stall.get("loop_frozen_deadline_0.4", {})
    if tight.get("trials"):
        add(
            "  loop frozen with loop.guard_deadline_s 0.4, max ms from the last confirmation",
            "<= 500 ms",
            tight.get("last_confirm_to_off", {}).get("max"),
            500.0,
            "what-if, not the default config",
        )
    for name in ("read_hangs", "bus_stuck"):
        add(
            f"{name.replace('_', ' ')} -> off, max ms",
            "<= 500 ms",
            stall[name].get("onset_to_off", {}).get("max"),
            500.0,
            "earlier target",
        )
    disk = (results.get("slow_disk") or {}).get("figures")
    if disk:
        slow, never = disk["commit_1s"], disk["commit_never"]
        add("slow disk (1 s per commit): guard trips", "0", slow["guard_trips"] if slow["trials"] else None, 0)
        add(
            "slow disk (1 s per commit): loop step p99, ms (worst session)",
            "<= 5 ms",
            slow["loop_step_p99_ms_worst"],
            5.0,
        )
        if never["trials"]:
            add(
                "stuck disk -> journal_stalled, max s",
                f"<= {never['bound_s']:g} s (checkpoint + stall bound)",
                never["stuck_to_journal_stalled_s"].get("max"),
                never["bound_s"],
            )
    return rows


def slow_disk_lines(disk: dict) -> list[str]:
    """The slow-disk phase (bench/slow_disk.py) in a few lines."""
    slow, never = disk["commit_1s"], disk["commit_never"]
    stuck = never["stuck_to_journal_stalled_s"]
    press, start = slow["press_to_off_ms"], slow["start_press_to_on_ms"]
    return [
        f"slow disk, every journal commit +{disk['commit_delay_s']:g} s  [n={slow['trials']}, longest session "
        f"{_fmt(slow['session_s_longest'])} s]: loop step p99 {_fmt(slow['loop_step_p99_ms_worst'])} ms "
        f"(max {_fmt(slow['loop_step_max_ms_worst'])} ms), guard trips {slow['guard_trips']}, faults "
        f"{', '.join(slow['faults']) or 'none'}",
        f"  STOP pressed 100 ms inside a commit stall: {slow['stops_inside_a_commit_stall']}/{slow['trials']} "
        f"stopped, press -> off p50/max {_fmt(press.get('p50'))} / {_fmt(press.get('max'))} ms; "
        f"start press -> lamp on p50 {_fmt(start.get('p50'))} ms (includes the start's commit)",
        f"stuck disk (a commit never returns)  [n={never['trials']}]: stuck -> journal_stalled, lamp off "
        f"p50/max {_fmt(stuck.get('p50'))} / {_fmt(stuck.get('max'))} s (bound {_fmt(never['bound_s'])} s), "
        f"guard trips {never['guard_trips']}, then a start is refused: {', '.join(never['start_refused']) or '-'}",
    ]


# -- a Raspberry Pi -----------------------------------------------------------------------------
# How much slower one core runs CPython than one core of the build machine. These are
# assumptions, not measurements (see bench/README.md for the reasoning); running `make bench`
# on the Pi itself replaces every estimate by a measurement.
PI_MODELS = {
    "pi4": {"name": "Raspberry Pi 4 (Cortex-A72 @ 1.5 GHz)", "cpu_factor": 4.0, "range": [3.0, 6.0]},
    "pi_zero_2w": {"name": "Raspberry Pi Zero 2 W (Cortex-A53 @ 1.0 GHz)", "cpu_factor": 12.0, "range": [9.0, 18.0]},
}
I2C_HZ = 50_000  # the MLX90614 needs the Pi's bus at <= 50 kHz (drivers/mlx90614.py)
I2C_MESSAGE_OVERHEAD_S = 50e-6  # i2c-dev ioctl + controller interrupt per transfer (assumed)


def i2c_transfer_s(write_bytes: int, read_bytes: int) -> float:
    """Wire time of one transfer: 9 clocks per byte incl. ACK, address byte per (re)start."""
    phases = (1 if write_bytes else 0) + (1 if read_bytes else 0)
    clocks = 9 * (write_bytes + read_bytes + phases) + 2 * phases
    return clocks / I2C_HZ + I2C_MESSAGE_OVERHEAD_S


def vl53l0x_after_ready_s() -> dict:
    """From the chip's data-ready to the sample published, on a real bus (drivers/vl53l0x.py):
    worst case the rise just misses a poll, so one poll interval, then the poll that sees it,
    the 12-byte result block and the interrupt clear. An MLX90614 read (two words) may hold
    the shared bus at that moment."""
    from drivers.vl53l0x import POLL_INTERVAL_S, RESULT_BLOCK_LENGTH

    poll = i2c_transfer_s(1, 1)
    result = i2c_transfer_s(1, RESULT_BLOCK_LENGTH)
    clear = i2c_transfer_s(2, 0)
    skin_read = 2 * i2c_transfer_s(1, 3)
    return {
        "poll_s": poll,
        "result_s": result,
        "clear_s": clear,
        "skin_read_s": skin_read,
        "worst_s": POLL_INTERVAL_S + 2 * poll + result + clear + skin_read,
        "typical_s": POLL_INTERVAL_S / 2 + poll + result + clear,
    }


def pi_estimates(results: dict) -> dict:
    """Scale CPU-bound parts by the factor; keep timer-bound parts; add I2C wire time."""
    irl = results["irlamp"]
    hz = irl["hazard_to_off_ms"]
    bus = vl53l0x_after_ready_s()
    dist = hz["distance"]
    out = {
        "assumptions": {
            "i2c_hz": I2C_HZ,
            "i2c_message_overhead_us": I2C_MESSAGE_OVERHEAD_S * 1e6,
            "vl53l0x_ready_to_sample_ms": {k: round(v * 1000, 3) for k, v in bus.items()},
        }
    }
    for key, model in PI_MODELS.items():
        f = model["cpu_factor"]
        est: dict = {"name": model["name"], "cpu_factor": f, "cpu_factor_range": model["range"]}

        def scaled(value, factor=f):
            return None if value is None else round(value * factor, 3)

        est["distance_sample_to_off_p99_ms"] = scaled(dist.get("sample_to_off", {}).get("p99"))
        est["overheat_sample_to_off_p99_ms"] = scaled(hz["overheat"].get("sample_to_off", {}).get("p99"))
        onset_to_ready = dist.get("onset_to_ready", {}).get("p99")
        if onset_to_ready is not None and est["distance_sample_to_off_p99_ms"] is not None:
            est["distance_onset_to_off_p99_ms"] = round(
                onset_to_ready + bus["worst_s"] * 1000 + est["distance_sample_to_off_p99_ms"], 3
            )
        stall = irl["stall_to_off_ms"]["loop_frozen"].get("last_confirm_to_off", {}).get("max")
        est["stall_to_off_max_ms"] = None if stall is None else round(stall + 2.0 * f, 1)
        est["cpu_percent_idle"] = scaled(irl["cpu_percent"]["idle"])
        est["cpu_percent_running"] = scaled(irl["cpu_percent"]["running"])
        est["cpu_percent_idle_sleeping_baseline"] = scaled(results["baseline_sleeping"]["cpu_percent"]["idle"])
        est["distance_sample_to_off_p99_ms_loaded"] = scaled(hz["distance_loaded"].get("sample_to_off", {}).get("p99"))
        est["rss_mb"] = irl["rss_mb"]
        est["startup_s_warm_cache"] = scaled(irl["startup_s"].get("p50"))
        out[key] = est
    return out


# -- the table ---------------------------------------------------------------------------------


def _wakeups(program: dict, window: str) -> float | None:
    return program["cpu_percent"].get("windows", {}).get(window, {}).get("wakeups_per_s")


def _fmt(value, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return f"{value:.3g}{unit}" if abs(value) < 1000 else f"{value:.0f}{unit}"


def _lat(fig: dict, field: str) -> str:
    s = fig.get(field, {})
    if not s.get("n"):
        never = s.get("missing", 0)
        return f"never ({never}/{never} trials)" if never else "-"
    text = f"{_fmt(s['p50'])} / {_fmt(s['p99'])} / {_fmt(s['max'])}"
    return text + (f" ({s['missing']} never)" if s.get("missing") else "")


def table(results: dict) -> str:
    irl, sleep, busy = results["irlamp"], results["baseline_sleeping"], results["baseline_busy"]
    rs, rb = results["ratios"]["vs_sleeping"], results["ratios"]["vs_busy"]
    m = results["machine"]
    lines = [
        f"irlamp benchmark - {m['date']} - {m['cpu_model']}, {m['cpus_usable']} cores"
        f"{' (VM)' if m['virtualised'] else ''}, Python {m['python']}, kernel {m['kernel']}",
        f"distance sample period {results['config']['distance_period_ms']:.1f} ms (emulated VL53L0X), "
        f"skin period {results['config']['skin_period_ms']:.0f} ms; idle rate periods "
        f"{' / '.join(f'{p * 1000:.0f}' for p in results['config']['idle_periods_s'])} ms",
        "",
    ]
    rows = [
        ("figure (latencies: p50 / p99 / max ms)", "irlamp", "sleeping baseline", "busy baseline", "/sleeping", "/busy")
    ]

    def row(label, key_fn, ratio_key=None):
        rows.append(
            (
                label,
                *(key_fn(p) for p in (irl, sleep, busy)),
                _fmt(rs.get(ratio_key)) if ratio_key else "",
                _fmt(rb.get(ratio_key)) if ratio_key else "",
            )
        )

    for kind, label in (
        ("distance", "distance"),
        ("distance_loaded", "distance, loaded machine"),
        ("overheat", "overheat"),
    ):
        n = "/".join(str(p["hazard_to_off_ms"][kind]["trials"]) for p in (irl, sleep, busy))
        row(
            f"{label}: sample -> off  [n={n}]",
            lambda p, k=kind: _lat(p["hazard_to_off_ms"][k], "sample_to_off"),
            f"{kind}_sample_to_off_p99",
        )
        row(
            f"{label}: onset -> off",
            lambda p, k=kind: _lat(p["hazard_to_off_ms"][k], "onset_to_off"),
            f"{kind}_onset_to_off_p99",
        )
    cuts = irl["hazard_to_off_ms"]["distance"].get("cut_by_sampler")
    if cuts is not None:
        rows.append(
            (
                f"  cut by the sampler itself (not a loop step): {cuts} of "
                f"{irl['hazard_to_off_ms']['distance']['trials']}",
                "",
                "",
                "",
                "",
                "",
            )
        )
    row(
        "distance: chip data-ready -> off",
        lambda p: _lat(p["hazard_to_off_ms"]["distance"], "ready_to_off"),
        "distance_ready_to_off_p99",
    )
    st = irl["stall_to_off_ms"]
    row(
        f"loop frozen -> off, from the freeze  [n={st['loop_frozen']['trials']}]",
        lambda p: _lat(p["stall_to_off_ms"]["loop_frozen"], "onset_to_off"),
        "stall_to_off",
    )
    rows.append(("  from the loop's last confirmation", _lat(st["loop_frozen"], "last_confirm_to_off"), "", "", "", ""))
    tight = st.get("loop_frozen_deadline_0.4", {})
    if tight.get("trials"):
        rows.append(
            (
                f"  what-if guard_deadline_s 0.4, from the last confirmation  [n={tight['trials']}]",
                _lat(tight, "last_confirm_to_off"),
                "",
                "",
                "",
                "",
            )
        )
    rows.append(
        (
            f"distance read hangs -> off  [n={st['read_hangs']['trials']}]",
            _lat(st["read_hangs"], "onset_to_off"),
            "",
            "",
            "",
            "",
        )
    )
    row(
        f"I2C bus stuck -> off  [n={st['bus_stuck']['trials']}]",
        lambda p: _lat(p["stall_to_off_ms"]["bus_stuck"], "onset_to_off"),
        "hang_to_off",
    )
    row("CPU idle, % of one core", lambda p: _fmt(p["cpu_percent"]["idle"]), "cpu_idle")
    row("CPU in a session, % of one core", lambda p: _fmt(p["cpu_percent"]["running"]), "cpu_running")
    row(
        "  wake-ups per second (voluntary switches), idle / session",
        lambda p: f"{_fmt(_wakeups(p, 'idle'))} / {_fmt(_wakeups(p, 'running'))}",
        None,
    )
    parts = irl["cpu_percent"].get("session_parts") or {}
    if parts.get("emulated_chips") is not None:
        share = parts["chip_share_run"]
        rows.append(
            (
                f"  of a session: the emulated chips' own code (a run of its own, whose whole-span mean was "
                f"{_fmt(share['mean_percent'])} %)",
                _fmt(parts["emulated_chips"]),
                "",
                "",
                "",
                "",
            )
        )
    if parts.get("readers_only"):
        rows.append(
            (
                "  the readers alone at a session's rates (one thread)",
                _fmt(parts["readers_only"]["cpu_percent"]),
                "",
                "",
                "",
                "",
            )
        )
    loop = irl.get("loop") or {}
    if loop.get("steps_per_s") and loop.get("step_ms", {}).get("n"):
        sm = loop["step_ms"]
        rows.append(
            (
                f"  irlamp loop in a session: {loop['steps_per_s']:.0f} steps/s, step ms",
                f"{_fmt(sm['p50'])} / {_fmt(sm['p99'])} / {_fmt(sm['max'])}",
                "",
                "",
                "",
                "",
            )
        )
    row("peak RSS (VmHWM), MB", lambda p: _fmt(p["rss_mb"]), "rss")
    row(
        f"start-up to READY=1, s (p50 / max of {irl['startup_s'].get('n', 0)})",
        lambda p: f"{_fmt(p['startup_s'].get('p50'))} / {_fmt(p['startup_s'].get('max'))}",
        "startup",
    )
    wake = results["platform"]["thread_wake_ms"]
    if wake.get("n"):
        rows.append(
            (
                f"platform: thread wake-up (Event.set -> waiter)  [n={wake['n']}]",
                f"{_fmt(wake['p50'])} / {_fmt(wake['p99'])} / {_fmt(wake['max'])}",
                "",
                "",
                "",
                "",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    for i, cells in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[j]) for j, cell in enumerate(cells)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    load = results["platform"]["load"]
    lines.append(
        "machine load, % of one core (whole machine / this bench / others): "
        + "; ".join(
            f"{name.split('_', 1)[0]} {v['machine_busy_percent']:.0f}/"
            f"{v['bench_percent']:.0f}/{v['others_percent']:.0f}"
            for name, v in load.items()
        )
    )
    if (results.get("slow_disk") or {}).get("figures"):
        lines += [""] + slow_disk_lines(results["slow_disk"]["figures"])
    lines += ["", "targets (this machine; irlamp on its real readers over emulated chips):"]
    for t in results["targets"]:
        mark = {True: "met ", False: "MISS", None: "n/a "}[t["met"]]
        lines.append(
            f"  [{mark}] {t['figure']}: {_fmt(t['measured'])} (target {t['target']})"
            + (f" - {t['note']}" if t["note"] else "")
        )
    lines += ["", "Raspberry Pi estimates (scaled, not measured; see bench/README.md):"]
    pi = results["pi_estimate"]
    for key in PI_MODELS:
        e = pi[key]
        lines.append(f"  {e['name']}: CPU x{e['cpu_factor']:g} slower per core")
        lines.append(
            f"    sample -> off p99 {_fmt(e['distance_sample_to_off_p99_ms'])} ms (distance; "
            f"{_fmt(e['distance_sample_to_off_p99_ms_loaded'])} ms loaded), "
            f"{_fmt(e['overheat_sample_to_off_p99_ms'])} ms (skin); distance onset -> off p99 "
            f"{_fmt(e.get('distance_onset_to_off_p99_ms'))} ms incl. I2C at {I2C_HZ // 1000} kHz"
        )
        lines.append(
            f"    last confirmation -> off max {_fmt(e['stall_to_off_max_ms'])} ms; CPU idle "
            f"{_fmt(e['cpu_percent_idle'])} % (sleeping baseline "
            f"{_fmt(e['cpu_percent_idle_sleeping_baseline'])} %), "
            f"in a session {_fmt(e['cpu_percent_running'])} %; "
            f"RSS ~{_fmt(e['rss_mb'])} MB; start-up ~{_fmt(e['startup_s_warm_cache'])} s (warm cache)"
        )
    if results.get("errors"):
        lines += ["", "ERRORS:"] + [f"  {e}" for e in results["errors"]]
    return "\n".join(lines)
