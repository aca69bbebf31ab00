"""systemd/install.sh and uninstall.sh, run into a temporary root (DESTDIR).

With DESTDIR set the scripts change nothing outside it (no useradd, chown,
systemctl, raspi-config: they are printed), and IRLAMP_INSTALL_SKIP_PIP=1
makes the venv without pip-installing into it, so this runs offline in a
second or two.

The scripts run from a scratch copy of the checkout (systemd/ and the
default config) so that the test never depends on build state in the
repository.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VENV = "opt/irlamp/venv"
UNIT = "etc/systemd/system/irlamp.service"
CONFIG = "etc/irlamp/lamp.yaml"
STATE = "var/lib/irlamp"
CLI_LINK = "usr/local/bin/irlamp"
BAUD_LINE = "dtparam=i2c_arm_baudrate=50000"

# Shaped like Raspberry Pi OS Bookworm's default: I2C commented out, an
# overlay in the middle, model filters at the end.
BOOKWORM_CONFIG_TXT = """\
# For more options and information see
# http://rptl.io/configtxt

# Uncomment some or all of these to enable the optional hardware interfaces
#dtparam=i2c_arm=on
#dtparam=i2s=on
#dtparam=spi=on

# Enable audio (loads snd_bcm2835)
dtparam=audio=on

camera_auto_detect=1
display_auto_detect=1

# Enable DRM VC4 V3D driver
dtoverlay=vc4-kms-v3d
max_framebuffers=2

[cm5]
dtoverlay=dwc2,dr_mode=host

[all]
"""


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A scratch checkout: the real systemd/ files and the default config."""
    root = tmp_path / "checkout"
    shutil.copytree(REPO / "systemd", root / "systemd")
    (root / "config").mkdir()
    default_config = REPO / "config" / "lamp.yaml"
    if default_config.exists():
        shutil.copy2(default_config, root / "config" / "lamp.yaml")
    else:  # written by another part of the project; any file proves the copy
        (root / "config" / "lamp.yaml").write_text("# stand-in default config\nrelay: {pin: 17}\n")
    shutil.copy2(REPO / "config" / "bridge.yaml", root / "config" / "bridge.yaml")
    return root


@pytest.fixture
def destdir(tmp_path: Path) -> Path:
    path = tmp_path / "root"
    path.mkdir()
    return path


def run_script(checkout: Path, name: str, destdir: Path | None, **env_overrides: str):
    env = dict(os.environ)
    env.pop("DESTDIR", None)
    env.update({"IRLAMP_INSTALL_SKIP_PIP": "1", "PYTHON": sys.executable})
    if destdir is not None:
        env["DESTDIR"] = str(destdir)
    env.update(env_overrides)
    return subprocess.run(
        ["sh", str(checkout / "systemd" / name)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def install(checkout: Path, destdir: Path, **env) -> subprocess.CompletedProcess:
    result = run_script(checkout, "install.sh", destdir, **env)
    assert result.returncode == 0, f"install failed:\n{result.stdout}\n{result.stderr}"
    return result


def uninstall(checkout: Path, destdir: Path) -> subprocess.CompletedProcess:
    result = run_script(checkout, "uninstall.sh", destdir)
    assert result.returncode == 0, f"uninstall failed:\n{result.stdout}\n{result.stderr}"
    return result


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def active_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


# --- install --------------------------------------------------------------------


def test_install_lays_down_every_file(checkout, destdir):
    had_user = user_exists("irlamp")
    result = install(checkout, destdir)

    unit = destdir / UNIT
    assert unit.read_bytes() == (checkout / "systemd" / "irlamp.service").read_bytes()
    assert stat.S_IMODE(unit.stat().st_mode) == 0o644

    config = destdir / CONFIG
    assert config.read_bytes() == (checkout / "config" / "lamp.yaml").read_bytes()
    assert stat.S_IMODE(config.stat().st_mode) == 0o644
    assert not (destdir / (CONFIG + ".new")).exists()

    venv = destdir / VENV
    assert (venv / "bin" / "python").exists()
    pyvenv_cfg = (venv / "pyvenv.cfg").read_text()
    # lgpio and gpiod come from Raspberry Pi OS packages, outside the venv.
    assert "include-system-site-packages = true" in pyvenv_cfg

    state = destdir / STATE
    assert state.is_dir()
    assert stat.S_IMODE(state.stat().st_mode) == 0o750

    link = destdir / CLI_LINK
    assert link.is_symlink() and os.readlink(link) == "/" + VENV + "/bin/irlamp"

    # The unit runs the program from the venv the installer made.
    exec_start = [line for line in unit.read_text().splitlines() if line.startswith("ExecStart=")]
    assert len(exec_start) == 1
    program = exec_start[0].split("=", 1)[1].split()[0]
    assert program == "/" + VENV + "/bin/irlamp"

    # With DESTDIR, system changes are printed, not made.
    for command in (
        "useradd",
        "usermod --append --groups gpio,i2c irlamp",
        "chown irlamp:irlamp /var/lib/irlamp",
        "systemctl daemon-reload",
        "systemctl enable irlamp.service",
    ):
        assert any("not run" in line and command in line for line in result.stdout.splitlines()), command
    assert user_exists("irlamp") == had_user
    # No boot config in this root: the user is told what to add.
    assert "no /boot/firmware/config.txt" in result.stdout
    assert "selftest" in result.stdout and "systemctl start irlamp" in result.stdout


def test_install_offers_caregivers_a_read_only_group(checkout, destdir):
    """Caregivers read the journal through the irlamp group (0750 state dir); the group can
    reach nothing writable: lgpio's button FIFO lives in a 0700 directory of its own."""
    hinted = install(checkout, destdir)
    assert "sudo usermod -aG irlamp NAME" in hinted.stdout
    gpio_dir = destdir / STATE / "gpio"
    assert stat.S_IMODE(gpio_dir.stat().st_mode) == 0o700
    unit = (destdir / UNIT).read_text()
    assert "Environment=LG_WD=/var/lib/irlamp/gpio" in unit.splitlines()

    added = install(checkout, destdir, IRLAMP_CAREGIVERS="alice bob")
    for name in ("alice", "bob"):
        assert any(
            "not run" in line and f"usermod --append --groups irlamp {name}" in line
            for line in added.stdout.splitlines()
        ), added.stdout


def test_second_install_keeps_an_edited_config(checkout, destdir):
    install(checkout, destdir)
    config = destdir / CONFIG
    edited = config.read_text() + "\n# edited by the user\n"
    config.write_text(edited)

    result = install(checkout, destdir)

    assert config.read_text() == edited
    new_default = destdir / (CONFIG + ".new")
    assert new_default.read_bytes() == (checkout / "config" / "lamp.yaml").read_bytes()
    assert "lamp.yaml.new" in result.stdout and "KEPT" in result.stdout


def test_second_install_of_an_unedited_config_adds_nothing(checkout, destdir):
    install(checkout, destdir)
    install(checkout, destdir)
    assert not (destdir / (CONFIG + ".new")).exists()
    assert (destdir / CONFIG).read_bytes() == (checkout / "config" / "lamp.yaml").read_bytes()


def test_boot_config_gets_i2c_at_50khz_exactly_once(checkout, destdir):
    boot_config = destdir / "boot" / "firmware" / "config.txt"
    boot_config.parent.mkdir(parents=True)
    boot_config.write_text(BOOKWORM_CONFIG_TXT)

    first = install(checkout, destdir)
    after_first = boot_config.read_text()
    second = install(checkout, destdir)

    assert boot_config.read_text() == after_first
    lines = active_lines(after_first)
    assert lines.count(BAUD_LINE) == 1
    assert lines.count("dtparam=i2c_arm=on") == 1
    # Base-tree parameters must come before any overlay (else they are taken
    # as the overlay's parameters) and before any [model] filter.
    first_overlay = next(i for i, line in enumerate(lines) if line.startswith("dtoverlay="))
    assert lines.index(BAUD_LINE) < first_overlay
    assert lines.index("dtparam=i2c_arm=on") < first_overlay
    # Nothing else was touched.
    assert [line for line in lines if "i2c" not in line] == [
        line for line in active_lines(BOOKWORM_CONFIG_TXT) if "i2c" not in line
    ]
    assert (boot_config.parent / "config.txt.irlamp-backup").read_text() == BOOKWORM_CONFIG_TXT
    assert "REBOOT NEEDED" in first.stdout
    assert "REBOOT NEEDED" not in second.stdout


def test_boot_config_with_a_faster_bus_is_slowed_down(checkout, destdir):
    boot_config = destdir / "boot" / "firmware" / "config.txt"
    boot_config.parent.mkdir(parents=True)
    boot_config.write_text("dtparam=i2c_arm=on,i2c_arm_baudrate=400000\ndtparam=audio=on\n")

    result = install(checkout, destdir)

    assert active_lines(boot_config.read_text()) == [
        "dtparam=i2c_arm=on,i2c_arm_baudrate=50000",
        "dtparam=audio=on",
    ]
    assert "REBOOT NEEDED" in result.stdout


def test_boot_config_already_slow_enough_is_left_alone(checkout, destdir):
    boot_config = destdir / "boot" / "firmware" / "config.txt"
    boot_config.parent.mkdir(parents=True)
    original = "dtparam=i2c_arm=on\ndtparam=i2c_baudrate=10000\n"
    boot_config.write_text(original)

    result = install(checkout, destdir)

    assert boot_config.read_text() == original
    assert "REBOOT NEEDED" not in result.stdout


def test_boot_config_on_an_older_os_is_in_boot(checkout, destdir):
    boot_config = destdir / "boot" / "config.txt"
    boot_config.parent.mkdir(parents=True)
    boot_config.write_text("dtparam=audio=on\n")

    install(checkout, destdir)

    assert active_lines(boot_config.read_text()).count(BAUD_LINE) == 1


# --- refusals --------------------------------------------------------------------


def test_refuses_python_older_than_3_11(checkout, destdir, tmp_path):
    old_python = tmp_path / "python3.9"
    old_python.write_text('#!/bin/sh\ncase "$1" in -V|--version) echo "Python 3.9.2";; *) exit 1;; esac\n')
    old_python.chmod(0o755)

    result = run_script(checkout, "install.sh", destdir, PYTHON=str(old_python))

    assert result.returncode != 0
    assert "Python >= 3.11" in result.stderr and "3.9.2" in result.stderr
    assert list(destdir.iterdir()) == []


@pytest.mark.parametrize("script", ["install.sh", "uninstall.sh"])
def test_refuses_to_run_without_root_or_destdir(checkout, tmp_path, script):
    # A fake `id` says we are an ordinary user. As a second guard, should the
    # root check ever break, install.sh would stop at the missing Python.
    fake_bin = tmp_path / "fake-bin"
    fake_bin.mkdir()
    (fake_bin / "id").write_text("#!/bin/sh\necho 1000\n")
    (fake_bin / "id").chmod(0o755)

    result = run_script(
        checkout,
        script,
        None,
        PATH=f"{fake_bin}{os.pathsep}{os.environ['PATH']}",
        PYTHON="/nonexistent/python3",
    )

    assert result.returncode != 0
    assert "must be run as root" in result.stderr


# --- uninstall ----------------------------------------------------------------------


def test_uninstall_removes_the_program_but_keeps_journal_and_config(checkout, destdir):
    install(checkout, destdir)
    journal = destdir / STATE / "journal.sqlite3"
    journal.write_bytes(b"sessions")
    config = destdir / CONFIG
    config.write_text(config.read_text() + "\n# edited\n")
    edited = config.read_text()

    result = uninstall(checkout, destdir)

    assert not (destdir / UNIT).exists()
    assert not (destdir / VENV).exists()
    assert not (destdir / "opt" / "irlamp").exists()
    assert not (destdir / CLI_LINK).is_symlink()
    assert journal.read_bytes() == b"sessions"
    assert config.read_text() == edited
    assert "KEPT" in result.stdout and "/var/lib/irlamp" in result.stdout and "/etc/irlamp" in result.stdout
    # Stopping comes first (its ExecStopPost needs the venv), then the rest.
    printed = [line for line in result.stdout.splitlines() if "not run" in line]
    assert "systemctl disable --now irlamp.service" in printed[0]
    assert any("userdel irlamp" in line for line in printed)


def test_uninstall_leaves_someone_elses_irlamp_command_alone(checkout, destdir):
    install(checkout, destdir)
    link = destdir / CLI_LINK
    link.unlink()
    link.write_text("#!/bin/sh\necho not ours\n")

    uninstall(checkout, destdir)

    assert link.read_text() == "#!/bin/sh\necho not ours\n"


def test_install_after_uninstall_works(checkout, destdir):
    install(checkout, destdir)
    uninstall(checkout, destdir)
    install(checkout, destdir)
    assert (destdir / UNIT).exists() and (destdir / VENV / "bin" / "python").exists()
