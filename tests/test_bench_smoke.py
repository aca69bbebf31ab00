"""Smoke test of `make bench`: every measurement runs with tiny trial counts and yields
well-formed figures. Nothing here asserts speed: how fast irlamp is, is what the bench
reports, not something a test on a shared build machine may demand.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import report  # noqa: E402
from bench.run import QUICK, run_bench  # noqa: E402

PROGRAMS = ("irlamp", "baseline_busy", "baseline_sleeping")


def finite_non_negative(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "results.json"
    results = run_bench(QUICK, out, log=lambda message: None)
    return results, out


def test_the_json_file_holds_what_the_run_returned_and_nothing_failed(quick):
    results, out = quick
    assert json.loads(out.read_text()) == json.loads(json.dumps(results))
    assert results["errors"] == []
    assert results["machine"]["cpus_usable"] >= 1 and results["machine"]["cpu_model"]


def test_every_hazard_trial_switched_the_relay_off_with_ordered_figures(quick):
    results, _ = quick
    for program in PROGRAMS:
        for kind in ("distance", "overheat") + (("distance_loaded",) if program != "baseline_busy" else ()):
            figures = results[program]["hazard_to_off_ms"][kind]
            assert figures["trials"] == 2 and figures["not_off"] == 0, (program, kind)
            for field in ("sample_to_off", "onset_to_off", "onset_to_sample"):
                s = figures[field]
                assert s["n"] == 2 and s["missing"] == 0, (program, kind, field)
                assert all(finite_non_negative(s[k]) for k in ("min", "p50", "p99", "max"))
                assert s["min"] <= s["p50"] <= s["p99"] <= s["max"]
            # the hazard shows up in a sample only after the world changed, and the relay after that
            assert figures["onset_to_off"]["min"] >= figures["sample_to_off"]["min"]
    distance = results["irlamp"]["hazard_to_off_ms"]["distance"]
    assert distance["ready_to_off"]["n"] == 2  # the emulated chip's data-ready was seen
    assert 0 <= distance["cut_by_sampler"] <= 2  # and the path was profiled


def test_irlamp_cuts_every_stall_and_hang_and_the_baseline_never_does(quick):
    results, _ = quick
    irlamp = results["irlamp"]["stall_to_off_ms"]
    for name in ("loop_frozen", "loop_frozen_deadline_0.4", "read_hangs", "bus_stuck"):
        assert irlamp[name]["trials"] == 1 and irlamp[name]["not_off"] == 0, name
        assert finite_non_negative(irlamp[name]["onset_to_off"]["max"]), name
    assert irlamp["loop_frozen"]["faults_latched"] == ["guard_loop_stall"]
    assert finite_non_negative(irlamp["loop_frozen"]["last_confirm_to_off"]["max"])
    assert "distance_hang" in irlamp["read_hangs"]["faults_latched"]
    for name in ("baseline_busy", "baseline_sleeping"):
        baseline = results[name]["stall_to_off_ms"]
        assert baseline["loop_frozen"]["not_off"] == 1 and baseline["bus_stuck"]["not_off"] == 1
    assert results["ratios"]["vs_sleeping"]["stall_to_off"] == "baseline never"


def test_cpu_memory_and_start_up_are_measured_for_both_programs(quick):
    results, _ = quick
    for program in PROGRAMS:
        figures = results[program]
        assert finite_non_negative(figures["cpu_percent"]["idle"]), program
        assert finite_non_negative(figures["cpu_percent"]["running"]), program
        assert figures["rss_mb"] > 5.0, program  # an interpreter with gpiozero loaded
        assert figures["startup_s"]["n"] == QUICK.startups and figures["startup_s"]["max"] > 0
    assert finite_non_negative(results["irlamp"]["cpu_percent"]["daemon_threads_in_distance_trials"])


def test_targets_ratios_estimates_and_table_are_complete(quick):
    results, _ = quick
    assert len(results["targets"]) >= 10
    assert all(t["met"] in (True, False) for t in results["targets"]), results["targets"]
    for versus in ("vs_sleeping", "vs_busy"):
        for name, ratio in results["ratios"][versus].items():
            assert ratio is None or ratio == "baseline never" or finite_non_negative(ratio), (name, ratio)
    for model in report.PI_MODELS:
        estimate = results["pi_estimate"][model]
        assert finite_non_negative(estimate["distance_onset_to_off_p99_ms"])
        assert finite_non_negative(estimate["distance_sample_to_off_p99_ms_loaded"])
        assert finite_non_negative(estimate["startup_s_warm_cache"])
    text = report.table(results)
    for needle in (
        "sample -> off",
        "loaded machine",
        "last confirmation",
        "CPU in a session",
        "sleeping baseline",
        "peak RSS",
        "start-up",
        "Raspberry Pi 4",
    ):
        assert needle in text


def test_percentile_interpolates_between_closest_ranks():
    assert report.percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert report.percentile([float(v) for v in range(1, 201)], 99) == pytest.approx(198.01)
    summary = report.summarize([None, 3.0, 1.0])
    assert (summary["n"], summary["missing"], summary["p50"], summary["max"]) == (2, 1, 2.0, 3.0)


def test_i2c_wire_time_is_nine_clocks_a_byte_plus_the_address():
    # interrupt clear: address + register + value = 3 bytes = 27 clocks, plus start and stop
    assert report.i2c_transfer_s(2, 0) == pytest.approx(29 / 50_000 + report.I2C_MESSAGE_OVERHEAD_S)


def test_a_bad_trial_plan_is_one_clear_line():
    done = subprocess.run(
        [sys.executable, "-m", "bench.trials", "dinner=3"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "dinner=3" in done.stderr


def test_the_slow_disk_phase_stops_inside_a_commit_stall_without_a_guard_trip(quick):
    results, _ = quick
    disk = results["slow_disk"]["figures"]["commit_1s"]
    assert disk["trials"] == 1 and disk["guard_trips"] == 0 and disk["faults"] == []
    assert disk["stops_inside_a_commit_stall"] == 1
    assert disk["loop_step_p99_ms_worst"] is not None


def test_the_session_figure_is_split_into_the_emulated_chips_and_the_readers_alone(quick):
    results, _ = quick
    parts = results["irlamp"]["cpu_percent"]["session_parts"]
    share = parts["chip_share_run"]
    assert finite_non_negative(parts["emulated_chips"]) and parts["emulated_chips"] <= share["cpu_percent"]
    readers = parts["readers_only"]
    assert finite_non_negative(readers["cpu_percent"])
    assert readers["distance_reads_per_s"] > 0 and readers["skin_reads_per_s"] > 0
    table = report.table(results)
    assert "emulated chips' own code" in table and "the readers alone" in table


def test_the_status_file_goes_to_the_scratch_directory_when_there_is_no_tmpfs(tmp_path, monkeypatch):
    from bench import procstats

    monkeypatch.setattr(procstats, "TMPFS", tmp_path / "no-such-tmpfs")
    assert not procstats.runtime_on_tmpfs()
    assert procstats.runtime_dir(tmp_path) == tmp_path / "run" and (tmp_path / "run").is_dir()
    assert not (tmp_path / procstats.TMPFS_MARKER).exists()


def test_a_runtime_directory_left_by_a_killed_bench_is_swept_and_a_live_ones_kept(tmp_path, monkeypatch):
    from bench import procstats

    tmpfs = tmp_path / "shm"
    tmpfs.mkdir()
    monkeypatch.setattr(procstats, "TMPFS", tmpfs)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = tmpfs / f"{procstats.TMPFS_PREFIX}{int(gone.stdout)}-abc"
    (dead / "sub").mkdir(parents=True)
    live = procstats.runtime_dir(tmp_path)  # this process's, on the (fake) tmpfs
    assert live.parent == tmpfs
    assert procstats.sweep_runtime_dirs() == [dead]
    assert not dead.exists() and live.is_dir()


def test_cpu_windows_headline_is_the_median_window_and_the_mean_is_kept():
    from bench.procstats import summarize_windows

    # (wall s, CPU s, voluntary switches): four 10 s windows at 1.0, 1.2, 3.0 (a burst) and 1.1 % of a core
    marks = [(0.0, 0.0, 0), (10.0, 0.10, 500), (20.0, 0.22, 1000), (30.0, 0.52, 1500), (40.0, 0.63, 2000)]
    figures = summarize_windows(marks)
    assert figures["windows_percent"] == [1.0, 1.2, 3.0, 1.1]
    assert figures["cpu_percent"] == 1.15  # the burst does not decide it
    assert figures["mean_percent"] == 1.575
    assert figures["wall_s"] == 40.0 and figures["cpu_s"] == 0.63
    assert figures["wakeups_per_s"] == 50.0


def test_cpu_windows_need_one_window():
    from bench.procstats import summarize_windows

    assert summarize_windows([(0.0, 0.0, 0), (2.0, 0.01, 3)])["cpu_percent"] == 0.5
    with pytest.raises(ValueError, match="at least two marks"):
        summarize_windows([(0.0, 0.0, 0)])


def test_cpu_spread_text_names_the_windows_and_the_mean():
    figures = {"windows_percent": [0.9, 1.4, 1.1], "mean_percent": 1.18, "cpu_percent": 1.1}
    assert report.spread_text(figures) == "median of 3 windows, 0.9..1.4, whole-span mean 1.18"
    assert report.spread_text({}) == ""


def test_the_bridge_table_shows_its_cpu_windows_and_reads_older_results():
    from bench.bridge import table

    results = {
        "broker": "mosquitto",
        "idle_s": 30.0,
        "running_s": 30.0,
        "cpu_percent": {"idle": 0.33, "running": 0.3},
        "cpu_windows": {
            "idle": {"windows_percent": [0.3, 0.33, 0.4], "mean_percent": 0.343},
            "running": {"windows_percent": [0.27, 0.3, 0.31], "mean_percent": 0.293},
        },
        "rss_mb": 31.9,
        "rss_peak_mb": 32.0,
        "change_to_publish_ms": {"p50": 170.0, "p99": 231.0, "max": 240.0, "n": 29},
    }
    text = table(results)
    assert "median of 3 windows, 0.3..0.4, whole-span mean 0.343" in text
    assert "median of 3 windows, 0.27..0.31, whole-span mean 0.293" in text
    del results["cpu_windows"]  # a results file written before the bridge took windows
    older = table(results)
    assert "median of" not in older and "0.33" in older and "170 / 231 / 240" in older


def test_the_chip_share_is_labelled_with_the_mean_it_is_a_share_of(quick):
    results, _ = quick
    parts = results["irlamp"]["cpu_percent"]["session_parts"]
    lines = [line for line in report.table(results).splitlines() if "emulated chips' own code" in line]
    assert len(lines) == 1
    assert f"whole-span mean was {report._fmt(parts['chip_share_run']['mean_percent'])} %" in lines[0]
