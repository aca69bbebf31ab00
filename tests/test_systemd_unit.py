"""The systemd unit: the safety-relevant lines are there, and systemd accepts it.

Two layers:
- the unit is parsed (sections, repeated keys) and the lines SR-2/SR-9 and the
  deployment section depend on are checked: these run everywhere;
- where `systemd-analyze` exists, `verify` must report nothing about the unit
  and `security --offline=yes` must rate its exposure at <= 2.0.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
UNIT_PATH = REPO / "systemd" / "irlamp.service"
VENV_IRLAMP = "/opt/irlamp/venv/bin/irlamp"
CONFIG = "/etc/irlamp/lamp.yaml"
MAX_EXPOSURE = 2.0


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Parse a systemd unit file into {section: {key: [values in order]}}.

    Follows systemd's syntax: '#' and ';' start comment lines, a trailing
    backslash continues a line, and a key may repeat (each occurrence kept).
    """
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    pending = ""
    for raw_line in text.splitlines():
        line = pending + raw_line.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"key outside any section: {line!r}"
        assert "=" in line, f"not a key=value line: {line!r}"
        key, value = line.split("=", 1)
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


@pytest.fixture(scope="module")
def unit() -> dict[str, dict[str, list[str]]]:
    return parse_unit(UNIT_PATH.read_text(encoding="utf-8"))


def only(unit, section: str, key: str) -> str:
    """The single value of section/key; fails if it is missing or repeated."""
    values = unit.get(section, {}).get(key)
    assert values, f"[{section}] {key}= is missing from {UNIT_PATH.name}"
    assert len(values) == 1, f"[{section}] {key}= is set {len(values)} times: {values}"
    return values[0]


def words(unit, section: str, key: str) -> list[str]:
    """All space-separated words of every occurrence of section/key."""
    return [w for value in unit.get(section, {}).get(key, []) for w in value.split()]


def seconds(value: str) -> float:
    """A systemd time span such as '5', '5s', '500ms', '1min 30s', in seconds."""
    units = {"": 1.0, "s": 1.0, "sec": 1.0, "ms": 0.001, "min": 60.0, "m": 60.0}
    total = 0.0
    for number, unit_name in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value):
        assert unit_name in units, f"unexpected time unit in {value!r}"
        total += float(number) * units[unit_name]
    return total


# --- the lines the safety case depends on ------------------------------------


def test_parser_handles_repeats_comments_and_continuations():
    parsed = parse_unit("# c\n[A]\nX=1\n; c\nX=2\\\n  3\n[B]\nY=\n")
    assert parsed == {"A": {"X": ["1", "2 3"]}, "B": {"Y": [""]}}


def test_is_a_notify_service_with_a_watchdog(unit):
    assert only(unit, "Service", "Type") == "notify"
    assert only(unit, "Service", "NotifyAccess") == "main"
    watchdog_s = seconds(only(unit, "Service", "WatchdogSec"))
    # The daemon pings every WatchdogSec/4; a hang is caught within this bound.
    assert 1.0 <= watchdog_s <= 10.0, f"WatchdogSec={watchdog_s}s"


def test_restarts_on_failure_within_a_start_limit(unit):
    assert only(unit, "Service", "Restart") == "on-failure"
    assert seconds(only(unit, "Service", "RestartSec")) >= 1.0
    # The start limit belongs in [Unit]; in [Service] systemd ignores it.
    assert "StartLimitIntervalSec" not in unit["Service"]
    assert "StartLimitBurst" not in unit["Service"]
    assert seconds(only(unit, "Unit", "StartLimitIntervalSec")) > 0
    assert 1 <= int(only(unit, "Unit", "StartLimitBurst")) <= 10
    # A bad config or unsafe wiring (exit 2) cannot be fixed by restarting.
    assert "2" in words(unit, "Service", "RestartPreventExitStatus")


def test_runs_the_daemon_after_checking_the_config(unit):
    assert only(unit, "Service", "ExecStart").split() == [
        VENV_IRLAMP,
        "run",
        "--config",
        CONFIG,
        "--state-dir",
        "/var/lib/irlamp",
        "--runtime-dir",
        "/run/irlamp",
    ]
    assert only(unit, "Service", "ExecStartPre").split() == [VENV_IRLAMP, "check-config", CONFIG]


def test_fail_safe_drives_the_relay_off_after_every_stop(unit):
    exec_stop_post = only(unit, "Service", "ExecStopPost")
    # No "-" (or other) prefix: a failing fail-safe must mark the unit failed.
    # It reads the pins the daemon recorded where the daemon keeps its status file (the same
    # directories as ExecStart), before the config.
    assert exec_stop_post.split() == [
        VENV_IRLAMP,
        "failsafe",
        "--config",
        CONFIG,
        "--runtime-dir",
        "/run/irlamp",
        "--state-dir",
        "/var/lib/irlamp",
    ]
    assert only(unit, "Service", "KillSignal") == "SIGTERM"
    assert 0 < seconds(only(unit, "Service", "TimeoutStopSec")) <= 30


def test_runs_as_its_own_user_with_gpio_and_i2c(unit):
    assert only(unit, "Service", "User") == "irlamp"
    assert only(unit, "Service", "Group") == "irlamp"
    assert {"gpio", "i2c"} <= set(words(unit, "Service", "SupplementaryGroups"))


def test_directories(unit):
    assert only(unit, "Service", "StateDirectory") == "irlamp"
    assert only(unit, "Service", "StateDirectoryMode") == "0750"
    assert only(unit, "Service", "RuntimeDirectory") == "irlamp"
    # Caregivers read /run/irlamp/status.json without root.
    assert only(unit, "Service", "RuntimeDirectoryMode") == "0755"
    assert only(unit, "Service", "ConfigurationDirectory") == "irlamp"


def test_lgpio_fifo_lives_in_a_private_writable_directory(unit):
    # lgpio makes its edge-notification FIFO in $LG_WD or the working
    # directory. In / it fails (read-only); in world-readable /run/irlamp
    # another user could read the FIFO and steal button presses; in the state
    # dir, caregivers of the irlamp group (read access) could fake them.
    assert only(unit, "Service", "WorkingDirectory") == "/var/lib/irlamp"
    assert "LG_WD=/var/lib/irlamp/gpio" in words(unit, "Service", "Environment")


def test_the_lgpio_directory_is_made_private_at_start(tmp_path):
    """`irlamp` creates $LG_WD 0700 (or narrows it to 0700) before lgpio is imported."""
    import os
    import stat
    import sys

    lg_wd = tmp_path / "gpio"
    env = {**os.environ, "LG_WD": str(lg_wd), "PYTHONPATH": str(REPO)}
    for _ in range(2):  # created, then narrowed back after someone opened it up
        # (a missing config: refused right after, before any pin)
        subprocess.run(
            [sys.executable, "-m", "controller.cli", "run", "--config", str(tmp_path / "missing.yaml")],
            cwd=REPO,
            env=env,
            capture_output=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert stat.S_IMODE(lg_wd.stat().st_mode) == 0o700
        lg_wd.chmod(0o775)


def test_a_shared_sticky_lg_wd_like_tmp_is_never_narrowed(tmp_path):
    """LG_WD=/tmp (inherited, e.g. from a program that ran irlamp in-process) must not make
    /tmp 0700 as root: that locked every other user out of /tmp on a shared machine."""
    import stat

    from scenario_helpers import run_cli

    shared = tmp_path / "shared-tmp"
    shared.mkdir()
    shared.chmod(0o1777)
    proc = run_cli("run", "--config", str(tmp_path / "missing.yaml"), timeout_s=60.0, env_extra={"LG_WD": str(shared)})
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
    assert f"LG_WD={shared} is a shared directory" in proc.stderr


def test_a_simulation_in_process_leaves_no_lg_wd_behind(tmp_path, monkeypatch):
    """main() sets lgpio's default LG_WD only for the commands that use GPIO; a simulation run
    in-process (tests, tools) must not hand LG_WD=/tmp on to every process it starts later."""
    import os

    from controller.cli import main

    monkeypatch.delenv("LG_WD", raising=False)
    main(["simulate", str(tmp_path / "missing.yaml")])
    assert "LG_WD" not in os.environ


def test_device_access_is_only_gpio_chips_and_i2c(unit):
    service = unit["Service"]
    # PrivateDevices=yes would hide /dev/gpiochip* and /dev/i2c-1.
    assert only(unit, "Service", "DevicePolicy") == "closed"
    assert service.get("PrivateDevices", ["no"])[-1] in ("no", "false", "0")
    allowed = {tuple(value.split()) for value in service["DeviceAllow"]}
    assert allowed == {("char-gpiochip", "rw"), ("char-i2c", "rw")}
    # char-i2c is only resolvable once i2c-dev is loaded.
    assert "modprobe@i2c_dev.service" in words(unit, "Unit", "Wants")
    assert "modprobe@i2c_dev.service" in words(unit, "Unit", "After")


def test_proc_stays_readable_for_boot_id_and_board_detection(unit):
    # ProcSubset=pid hides /proc/sys/kernel/random/boot_id, /proc/cpuinfo and
    # /proc/device-tree, which the daemon, gpiozero and Blinka read.
    assert unit["Service"].get("ProcSubset", ["all"])[-1] == "all"


EXPECTED_HARDENING = {
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateNetwork": "yes",
    "IPAddressDeny": "any",
    "RestrictAddressFamilies": "AF_UNIX",
    "NoNewPrivileges": "yes",
    "CapabilityBoundingSet": "",
    "RestrictNamespaces": "yes",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "ProtectClock": "yes",
    "ProtectHostname": "yes",
    "ProtectProc": "invisible",
    "RestrictRealtime": "yes",
    "RestrictSUIDSGID": "yes",
    "RemoveIPC": "yes",
    "SystemCallArchitectures": "native",
    "UMask": "0022",
}


@pytest.mark.parametrize("key", sorted(EXPECTED_HARDENING))
def test_hardening_setting(unit, key):
    assert only(unit, "Service", key) == EXPECTED_HARDENING[key]


def test_system_call_filter(unit):
    filters = unit["Service"]["SystemCallFilter"]
    assert "@system-service" in filters[0].split()
    denied = {w.lstrip("~") for value in filters if value.startswith("~") for w in value.split()}
    assert {"@privileged", "@resources"} <= denied


def test_enabled_for_the_normal_boot_target(unit):
    assert only(unit, "Install", "WantedBy") == "multi-user.target"


# --- systemd's own checks --------------------------------------------------------


def systemd_version() -> int | None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        return None
    first_line = subprocess.run([tool, "--version"], capture_output=True, text=True).stdout
    match = re.match(r"systemd (\d+)", first_line)
    return int(match.group(1)) if match else None


needs_systemd_analyze = pytest.mark.skipif(systemd_version() is None, reason="systemd-analyze is not installed here")


def unit_copy_with_runnable_commands(unit_text: str, tmp_path: Path) -> Path:
    """A copy of the unit whose Exec*= lines point at an existing stub.

    `systemd-analyze verify` checks that every Exec*= program exists and is
    executable on this machine, and /opt/irlamp/venv/bin/irlamp only exists
    on an installed Pi. `--root=DIR` does not help on systemd 252: it then
    also wants the whole unit tree (sysinit.target, ...) under DIR. So the
    copy names a stub script instead; nothing else in the unit changes.
    """
    stub = tmp_path / "irlamp"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    copy = tmp_path / "irlamp.service"
    copy.write_text(unit_text.replace(VENV_IRLAMP, str(stub)))
    return copy


def verify_complaints(unit_file: Path) -> tuple[int, list[str], str]:
    """Run `systemd-analyze verify`; return (exit code, lines about the unit, all output).

    Unknown keys and bad values only produce warnings with exit code 0, so
    the output matters as much as the exit code. Lines about other units on
    this host (not ours to fix) are not counted.
    """
    result = subprocess.run(["systemd-analyze", "verify", str(unit_file)], capture_output=True, text=True)
    output = result.stdout + result.stderr
    about_us = [line for line in output.splitlines() if unit_file.name in line or str(unit_file) in line]
    return result.returncode, about_us, output


@needs_systemd_analyze
def test_verify_is_clean(tmp_path):
    unit_file = unit_copy_with_runnable_commands(UNIT_PATH.read_text(encoding="utf-8"), tmp_path)
    returncode, about_us, output = verify_complaints(unit_file)
    assert returncode == 0 and not about_us, f"systemd-analyze verify:\n{output}"


@needs_systemd_analyze
def test_verify_check_would_catch_a_mistake(tmp_path):
    broken = re.sub(
        r"^WatchdogSec=", "WatchdogSek=", UNIT_PATH.read_text(encoding="utf-8"), count=1, flags=re.MULTILINE
    )
    assert "\nWatchdogSek=" in broken
    unit_file = unit_copy_with_runnable_commands(broken, tmp_path)
    _returncode, about_us, output = verify_complaints(unit_file)
    assert any("WatchdogSek" in line for line in about_us), output


@needs_systemd_analyze
def test_security_exposure_is_at_most_2(tmp_path):
    if systemd_version() < 250:
        pytest.skip("systemd-analyze security --offline needs systemd >= 250")
    unit_file = unit_copy_with_runnable_commands(UNIT_PATH.read_text(encoding="utf-8"), tmp_path)
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", str(unit_file)],
        capture_output=True,
        text=True,
    )
    table = result.stdout + result.stderr
    match = re.search(r"Overall exposure level for \S+:\s*(\d+(?:\.\d+)?)", table)
    assert match, f"no exposure level in the output:\n{table}"
    exposure = float(match.group(1))
    print(f"systemd-analyze security: overall exposure {exposure}")
    assert exposure <= MAX_EXPOSURE, f"exposure {exposure} > {MAX_EXPOSURE}:\n{table}"
