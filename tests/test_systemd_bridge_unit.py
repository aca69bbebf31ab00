"""SR-13 deployment: the bridge's unit keeps the bridge an unprivileged, sandboxed process with
network but no devices; the daemon's unit stays off the network. `systemd-analyze security`
must rate the bridge's exposure at <= 2.5; the installer lays it down but does not enable it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from test_install import checkout, destdir, install  # noqa: F401 (fixtures)
from test_systemd_unit import needs_systemd_analyze, parse_unit, systemd_version, verify_complaints

REPO = Path(__file__).resolve().parents[1]
BRIDGE_UNIT = REPO / "systemd" / "irlamp-bridge.service"
DAEMON_UNIT = REPO / "systemd" / "irlamp.service"
MAX_EXPOSURE = 2.5


def only(unit, key: str) -> str:
    values = unit["Service"].get(key)
    assert values is not None and len(values) == 1, (key, values)
    return values[0]


def test_bridge_runs_as_its_own_user_without_devices_with_network():
    unit = parse_unit(BRIDGE_UNIT.read_text())
    assert only(unit, "User") == "irlamp-bridge" and only(unit, "Group") == "irlamp-bridge"
    assert only(unit, "SupplementaryGroups") == "irlamp"  # journal (read) and STOP socket
    assert only(unit, "ExecStart") == "/opt/irlamp/venv/bin/irlamp bridge --config /etc/irlamp/bridge.yaml"
    assert only(unit, "PrivateDevices") == "yes" and "DeviceAllow" not in unit["Service"]
    assert "gpio" not in only(unit, "SupplementaryGroups") and "i2c" not in only(unit, "SupplementaryGroups")
    assert "PrivateNetwork" not in unit["Service"]
    assert set(only(unit, "RestrictAddressFamilies").split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}
    assert only(unit, "ProtectSystem") == "strict" and only(unit, "NoNewPrivileges") == "yes"
    assert only(unit, "CapabilityBoundingSet") == ""


def test_daemon_stays_off_the_network_but_keeps_unix_sockets():
    unit = parse_unit(DAEMON_UNIT.read_text())
    assert only(unit, "PrivateNetwork") == "yes" and only(unit, "IPAddressDeny") == "any"
    assert only(unit, "RestrictAddressFamilies") == "AF_UNIX"  # sd_notify and the STOP socket
    assert only(unit, "RuntimeDirectory") == "irlamp"


def _runnable_copy(tmp_path: Path) -> Path:
    stub = tmp_path / "irlamp"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    copy = tmp_path / "irlamp-bridge.service"
    copy.write_text(BRIDGE_UNIT.read_text().replace("/opt/irlamp/venv/bin/irlamp", str(stub)))
    return copy


@needs_systemd_analyze
def test_bridge_unit_verifies_clean(tmp_path):
    returncode, about_us, output = verify_complaints(_runnable_copy(tmp_path))
    assert returncode == 0 and not about_us, output


@needs_systemd_analyze
def test_bridge_security_exposure_is_at_most_2_5(tmp_path):
    if systemd_version() < 250:
        pytest.skip("systemd-analyze security --offline needs systemd >= 250")
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", str(_runnable_copy(tmp_path))],
        capture_output=True,
        text=True,
    )
    table = result.stdout + result.stderr
    match = re.search(r"Overall exposure level for \S+:\s*(\d+(?:\.\d+)?)", table)
    assert match, table
    exposure = float(match.group(1))
    print(f"systemd-analyze security irlamp-bridge.service: overall exposure {exposure}")
    assert exposure <= MAX_EXPOSURE, table


def test_installer_lays_the_bridge_down_but_does_not_enable_it(checkout, destdir):  # noqa: F811 (fixtures)
    result = install(checkout, destdir)
    unit = destdir / "etc/systemd/system/irlamp-bridge.service"
    assert unit.read_bytes() == BRIDGE_UNIT.read_bytes()
    assert (destdir / "etc/irlamp/bridge.yaml").read_bytes() == (REPO / "config" / "bridge.yaml").read_bytes()
    printed = result.stdout
    assert "useradd" in printed and "irlamp-bridge" in printed
    assert "enable --now irlamp-bridge.service" not in printed
    assert "sudo systemctl enable --now irlamp-bridge" in printed
