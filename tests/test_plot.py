"""`irlamp plot`: one session as a picture, from a real simulated session's journal; clear errors;
matplotlib is an optional extra that the daemon never imports."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from controller.service.plot import DPI, FIGURE_IN, MISSING_EXTRA, plot_command
from scenario_helpers import REPO, cli_env, default_config, run_sim

CFG = default_config()


@pytest.fixture(scope="module")
def state(tmp_path_factory) -> Path:
    """The comfort scenario (session 1) cut short, then an overheat session (session 2)."""
    import yaml

    base = tmp_path_factory.mktemp("plot")
    doc = yaml.safe_load((REPO / "config" / "scenarios" / "comfort.yaml").read_text())
    doc["config"]["session"] = {"min_gap_minutes": 30}
    doc["events"] += [
        {"at": 600, "press": 0.3},
        {"at": 2500, "press": 0.3},
        {"at": 2560, "skin_c": 43.4},
        {"at": 2570, "press": 3.5},
    ]
    doc["until"] = 2600
    run = run_sim(base, doc, state_dir=base / "state")
    assert [e["reason"] for e in run.events("session_ended")] == ["stopped_by_button", "overheat"]
    return base / "state"


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_a_real_simulated_session_is_drawn_as_a_png_of_the_expected_size(state, tmp_path):
    out = tmp_path / "session.png"
    err = io.StringIO()
    assert plot_command(state, 1, str(out), CFG, err=err) == 0, err.getvalue()
    assert png_size(out) == (round(FIGURE_IN[0] * DPI), round(FIGURE_IN[1] * DPI))
    assert 20_000 < out.stat().st_size < 300_000  # a drawing, not an empty canvas


def test_the_newest_session_by_default_and_svg_with_the_caregivers_title(state, tmp_path):
    out = tmp_path / "newest.svg"
    assert plot_command(state, None, str(out), CFG) == 0
    text = out.read_text(encoding="utf-8")
    ET.fromstring(text)  # well-formed SVG
    for words in (
        "Session 2",
        "skin too hot",
        "peak skin 43.4",
        "heat dose",
        "FAULT skin_overheat",
        "comfort 41",
        "limit 43",
        "closer is too close",
    ):
        assert words in text, words


def test_an_unknown_session_is_a_clear_error(state, tmp_path):
    err = io.StringIO()
    assert plot_command(state, 42, str(tmp_path / "x.png"), CFG, err=err) == 2
    assert "no session 42" in err.getvalue() and "the newest is 2" in err.getvalue()
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("name", ["x.jpg", "x"])
def test_only_png_or_svg(state, tmp_path, name):
    err = io.StringIO()
    assert plot_command(state, 1, str(tmp_path / name), CFG, err=err) == 2
    assert "must end in .png or .svg" in err.getvalue()


def test_no_journal_is_a_clear_error(tmp_path):
    err = io.StringIO()
    assert plot_command(tmp_path / "empty", None, str(tmp_path / "x.png"), CFG, err=err) == 3
    assert "no journal at" in err.getvalue()


def test_a_missing_extra_says_how_to_install_it(state, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what `import matplotlib` sees without it
    err = io.StringIO()
    assert plot_command(state, 1, str(tmp_path / "x.png"), CFG, err=err) == 2
    assert err.getvalue().strip() == MISSING_EXTRA and "irlamp[plot]" in MISSING_EXTRA


def test_the_cli_draws_and_refuses_with_exit_codes(state, tmp_path):
    out = tmp_path / "cli.png"
    ok = subprocess.run(
        [sys.executable, "-m", "controller.cli", "plot", "1", "-o", str(out), "--state-dir", str(state)],
        cwd=REPO,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0 and out.exists(), ok.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "controller.cli", "plot", "9", "-o", str(out), "--state-dir", str(state)],
        cwd=REPO,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "no session 9" in bad.stderr and "Traceback" not in bad.stderr


def test_the_daemon_and_the_simulator_never_import_matplotlib(tmp_path):
    code = (
        "import sys, io\n"
        "import controller.cli, controller.service.run, controller.service.daemon, controller.sim.simulate\n"
        "from controller.sim.scenario import load_scenario\n"
        "from controller.sim.simulate import run_scenario\n"
        f"run_scenario(load_scenario({str(REPO / 'config' / 'scenarios' / 'comfort.yaml')!r}), as_json=True,\n"
        f"             out=io.StringIO(), state_dir={str(tmp_path / 'state')!r})\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib')\n"
        "print(loaded)\n"
        "sys.exit(1 if loaded else 0)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
