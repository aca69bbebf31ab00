#!/bin/sh
# Install irlamp on a Raspberry Pi (Raspberry Pi OS Bookworm or later):
#
#     sudo make install        (runs: sh systemd/install.sh)
#
# What it does, in order:
#   1. checks it runs as root and that python3 is >= 3.11;
#   2. creates the system user and group "irlamp" (no login shell, no home)
#      and puts it in the "gpio" and "i2c" groups (creating them if missing);
#   3. builds /opt/irlamp/venv and pip-installs irlamp from this checkout;
#   4. puts the default config at /etc/irlamp/lamp.yaml - but never over an
#      existing one: the new default then goes beside it as lamp.yaml.new;
#   5. creates /var/lib/irlamp (the session journal), owned by irlamp, 0750:
#      the irlamp group reads it (caregivers: see IRLAMP_CAREGIVERS below),
#      and /var/lib/irlamp/gpio, 0700, for lgpio's button FIFO (no group);
#   6. enables I2C and limits the bus to 50 kHz for the MLX90614 in the
#      boot config (a reboot is needed when that changes);
#   7. installs /etc/systemd/system/irlamp.service and enables it (it starts
#      at the next boot; start it now yourself after `irlamp selftest`).
#   8. lays down the MQTT bridge (README, "Home Assistant and remote
#      monitoring"): user "irlamp-bridge", /etc/irlamp/bridge.yaml and
#      /etc/systemd/system/irlamp-bridge.service - enabled and started only
#      when asked: IRLAMP_ENABLE_BRIDGE=1 sudo -E make install
#      (or later: sudo systemctl enable --now irlamp-bridge).
#
# Running it again upgrades irlamp in place and changes nothing you edited.
#
# For tests and staging:
#   DESTDIR=/some/dir     every path written is prefixed with DESTDIR, and
#                         nothing outside it is changed: useradd, chown,
#                         systemctl, raspi-config and apt-get are only printed.
#                         (The venv it makes there is not relocatable.)
#   IRLAMP_INSTALL_SKIP_PIP=1
#                         create the venv but do not pip-install into it
#                         (offline and fast; every other file is laid down).
#   PYTHON=/path/python3  the interpreter to build the venv from.
#   IRLAMP_CAREGIVERS="alice bob"
#                         add these login users to the irlamp group, which
#                         reads the journal (irlamp history without sudo) and
#                         can change nothing.
#                         Later: sudo usermod -aG irlamp NAME (then log in again).
#   IRLAMP_ENABLE_BRIDGE=1
#                         also enable and start the MQTT bridge (edit
#                         /etc/irlamp/bridge.yaml first: broker, lamp name).

set -eu
# Everything installed must be readable by the irlamp user and caregivers,
# whatever umask root's shell has.
umask 022

SOURCE_DIR=$(cd "$(dirname "$0")/.." && pwd)
DESTDIR=${DESTDIR:-}
SKIP_PIP=${IRLAMP_INSTALL_SKIP_PIP:-0}
PYTHON=${PYTHON:-python3}
ENABLE_BRIDGE=${IRLAMP_ENABLE_BRIDGE:-0}

VENV_DIR=/opt/irlamp/venv
CONFIG_DIR=/etc/irlamp
STATE_DIR=/var/lib/irlamp
UNIT_FILE=/etc/systemd/system/irlamp.service
BRIDGE_UNIT_FILE=/etc/systemd/system/irlamp-bridge.service
BRIDGE_USER=irlamp-bridge
CLI_LINK=/usr/local/bin/irlamp
SERVICE_USER=irlamp
# The MLX90614 cannot keep up with the Pi's default 100 kHz (it stretches the
# clock, which the Pi's I2C controller handles badly): run the bus at 50 kHz.
I2C_MAX_BAUD=50000

SCRIPT_NAME=install
. "$SOURCE_DIR/systemd/common.sh"

# --- 1. preconditions ----------------------------------------------------
require_root_or_destdir
command -v "$PYTHON" >/dev/null 2>&1 \
    || die "$PYTHON not found; irlamp needs Python >= 3.11 (sudo apt install python3)"
if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
    die "irlamp needs Python >= 3.11, but $PYTHON is $("$PYTHON" -V 2>&1 || echo 'unusable')"
fi
[ -f "$SOURCE_DIR/config/lamp.yaml" ] || die "no $SOURCE_DIR/config/lamp.yaml: run this from an irlamp checkout"
[ -f "$SOURCE_DIR/systemd/irlamp.service" ] || die "no $SOURCE_DIR/systemd/irlamp.service: run this from an irlamp checkout"

if [ -n "$DESTDIR" ]; then
    mkdir -p "$DESTDIR"
    DESTDIR=$(cd "$DESTDIR" && pwd)
    say "installing into DESTDIR=$DESTDIR"
fi

# --- 2. user and groups --------------------------------------------------
ensure_group() {
    if [ -z "$DESTDIR" ] && getent group "$1" >/dev/null 2>&1; then
        return 0
    fi
    system groupadd --system "$1"
    if [ -z "$DESTDIR" ]; then
        say "created group $1. Raspberry Pi OS gives it /dev/gpiochip* or /dev/i2c-*"
        say "  through udev rules; on another OS make sure those devices belong to it."
    fi
}
ensure_group gpio
ensure_group i2c

if [ -n "$DESTDIR" ] || ! getent passwd "$SERVICE_USER" >/dev/null 2>&1; then
    NOLOGIN=$(command -v nologin 2>/dev/null || echo /usr/sbin/nologin)
    if [ -z "$DESTDIR" ] && getent group "$SERVICE_USER" >/dev/null 2>&1; then
        user_group_option="--gid $SERVICE_USER"      # left over from an old install
    else
        user_group_option="--user-group"
    fi
    # shellcheck disable=SC2086  # the option is two words on purpose
    system useradd --system $user_group_option --no-create-home \
        --home-dir /nonexistent --shell "$NOLOGIN" \
        --comment "irlamp heat lamp controller" "$SERVICE_USER"
fi
system usermod --append --groups gpio,i2c "$SERVICE_USER"
# The MQTT bridge's own user: no GPIO, no I2C. Its unit adds the irlamp group
# (read the journal, write the STOP socket) while it runs.
if [ -n "$DESTDIR" ] || ! getent passwd "$BRIDGE_USER" >/dev/null 2>&1; then
    system useradd --system --user-group --no-create-home --home-dir /nonexistent \
        --shell "$(command -v nologin 2>/dev/null || echo /usr/sbin/nologin)" \
        --comment "irlamp MQTT bridge" "$BRIDGE_USER"
fi

# --- 3. the venv ---------------------------------------------------------
# --system-site-packages: lgpio and libgpiod's Python bindings come from
# Raspberry Pi OS (python3-lgpio, python3-libgpiod); they are not on PyPI as
# wheels for the Pi. Everything irlamp lists itself is installed in the venv.
venv_path="$DESTDIR$VENV_DIR"
mkdir -p "$(dirname "$venv_path")"
if [ "$SKIP_PIP" = 1 ]; then
    "$PYTHON" -m venv --system-site-packages --without-pip "$venv_path"
    say "created $VENV_DIR without installing irlamp into it (IRLAMP_INSTALL_SKIP_PIP=1)"
else
    if ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
        # Debian splits venv's pip bootstrap into its own package.
        if [ -z "$DESTDIR" ] && command -v apt-get >/dev/null 2>&1; then
            say "installing python3-venv (needed to build the venv)"
            apt-get install -y python3-venv || die "could not install python3-venv: sudo apt install python3-venv"
        else
            die "$PYTHON cannot build a venv with pip: install python3-venv (sudo apt install python3-venv)"
        fi
    fi
    "$PYTHON" -m venv --system-site-packages "$venv_path"
    # Build from a copy: pip builds in the source tree, and as root it would
    # leave root-owned build/ and *.egg-info files in your checkout.
    build_copy=$(mktemp -d)
    trap 'rm -rf "$build_copy"' EXIT
    (cd "$SOURCE_DIR" && tar --exclude=./.venv --exclude=./.git --exclude=./build \
        --exclude='./*.egg-info' -cf - .) | (cd "$build_copy" && tar -xf -)
    say "installing irlamp and its dependencies into $VENV_DIR (needs the network)"
    "$venv_path/bin/python" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
        --no-cache-dir --upgrade "$build_copy[bridge]"
    rm -rf "$build_copy"
    trap - EXIT
    if [ -z "$DESTDIR" ] && ! "$venv_path/bin/python" -c 'import lgpio, gpiod' 2>/dev/null; then
        if command -v apt-get >/dev/null 2>&1; then
            say "installing the Pi's GPIO bindings: apt-get install python3-lgpio python3-libgpiod"
            apt-get install -y python3-lgpio python3-libgpiod \
                || say "WARNING: apt-get failed; install python3-lgpio and python3-libgpiod yourself"
        else
            say "WARNING: python modules lgpio and gpiod are missing; irlamp cannot drive GPIO without them"
        fi
    fi
fi

# A link so that `irlamp status` works from any shell. Never replace a file
# that is not our own link.
link_path="$DESTDIR$CLI_LINK"
mkdir -p "$(dirname "$link_path")"
if [ -L "$link_path" ] || [ ! -e "$link_path" ]; then
    ln -sfn "$VENV_DIR/bin/irlamp" "$link_path"
else
    say "WARNING: $CLI_LINK exists and is not irlamp's link; left alone (use $VENV_DIR/bin/irlamp)"
fi

# --- 4. configuration ------------------------------------------------------
# install_config NAME: config/NAME to /etc/irlamp/NAME, never over an edited one.
install_config() {
    default_config="$SOURCE_DIR/config/$1"
    config_path="$DESTDIR$CONFIG_DIR/$1"
    if [ ! -e "$config_path" ]; then
        install -m 0644 "$default_config" "$config_path"
        say "installed the default config as $CONFIG_DIR/$1"
    elif cmp -s "$default_config" "$config_path"; then
        say "$CONFIG_DIR/$1 is already the current default; left as it is"
    else
        install -m 0644 "$default_config" "$config_path.new"
        say "KEPT your $CONFIG_DIR/$1 (it differs from the default)."
        say "  The new default is beside it as $CONFIG_DIR/$1.new; compare them with:"
        say "  diff $CONFIG_DIR/$1 $CONFIG_DIR/$1.new"
    fi
}
install -d -m 0755 "$DESTDIR$CONFIG_DIR"
install_config lamp.yaml
install_config bridge.yaml
if [ -z "$DESTDIR" ] && [ -x "$VENV_DIR/bin/irlamp" ]; then
    if ! "$VENV_DIR/bin/irlamp" check-config "$CONFIG_DIR/lamp.yaml"; then
        say "WARNING: $CONFIG_DIR/lamp.yaml does not pass check-config; irlamp will refuse to start until it does"
    fi
fi

# --- 5. state directory ----------------------------------------------------
# systemd's StateDirectory= also creates and owns it; doing it here as well
# lets `irlamp history` work before the first start.
install -d -m 0750 "$DESTDIR$STATE_DIR"
install -d -m 0700 "$DESTDIR$STATE_DIR/gpio"
system chown "$SERVICE_USER:$SERVICE_USER" "$STATE_DIR" "$STATE_DIR/gpio"
# Caregivers: read-only through the irlamp group. The group can change
# nothing: the state dir is 0750 and its files 0644 (0600 for the locks),
# lgpio's button FIFO lives in the 0700 gpio directory, and the daemon obeys
# the STOP socket (0660) only from the bridge's user (SO_PASSCRED).
for caregiver in ${IRLAMP_CAREGIVERS:-}; do
    if [ -n "$DESTDIR" ] || getent passwd "$caregiver" >/dev/null 2>&1; then
        system usermod --append --groups "$SERVICE_USER" "$caregiver"
        say "$caregiver may now read the history (irlamp history) after logging in again"
    else
        say "WARNING: no user $caregiver; not added to the irlamp group"
    fi
done

# --- 6. I2C on, at 50 kHz ----------------------------------------------------
# Bookworm keeps the boot config in /boot/firmware; older releases in /boot.
boot_config=""
for candidate in /boot/firmware/config.txt /boot/config.txt; do
    if [ -f "$DESTDIR$candidate" ]; then
        boot_config=$candidate
        break
    fi
done

# Edit a config.txt (path $1) in place so that:
#  - I2C is enabled (an active dtparam i2c_arm=on / i2c=on), and
#  - every active i2c_arm_baudrate / i2c_baudrate is <= I2C_MAX_BAUD, adding
#    dtparam=i2c_arm_baudrate=I2C_MAX_BAUD if none is set.
# New lines go before the first dtoverlay= line or [section] filter: a dtparam
# after a dtoverlay= line is taken as a parameter of that overlay, and one
# after a filter such as [pi4] applies only to that model.
# Prints "changed" or "unchanged".
tune_boot_config() {
    tuned=$(mktemp)
    awk -v max_baud="$I2C_MAX_BAUD" '
        { line[NR] = $0 }
        END {
            insert_at = NR + 1
            for (i = 1; i <= NR; i++) {
                if (insert_at == NR + 1 && line[i] ~ /^[ \t]*(dtoverlay=|\[)/) insert_at = i
                if (line[i] !~ /^[ \t]*dtparam=/) continue
                prefix = line[i]; sub(/dtparam=.*/, "dtparam=", prefix)
                rest = line[i]; sub(/^[ \t]*dtparam=/, "", rest)
                n = split(rest, token, ",")
                rebuilt = ""
                for (t = 1; t <= n; t++) {
                    name = token[t]; value = ""
                    if (index(name, "=") > 0) {
                        value = substr(name, index(name, "=") + 1)
                        name = substr(name, 1, index(name, "=") - 1)
                    }
                    if ((name == "i2c_arm" || name == "i2c") && (value == "" || value == "on")) i2c_on = 1
                    if (name == "i2c_arm_baudrate" || name == "i2c_baudrate") {
                        has_baud = 1
                        if (value !~ /^[0-9]+$/ || value + 0 > max_baud + 0) {
                            token[t] = name "=" max_baud; changed = 1
                        }
                    }
                    rebuilt = rebuilt (t > 1 ? "," : "") token[t]
                }
                line[i] = prefix rebuilt
            }
            for (i = 1; i <= NR + 1; i++) {
                if (i == insert_at) {
                    if (!i2c_on) { print "dtparam=i2c_arm=on"; changed = 1 }
                    if (!has_baud) {
                        print "# irlamp: the MLX90614 needs the I2C bus at <= 50 kHz"
                        print "dtparam=i2c_arm_baudrate=" max_baud
                        changed = 1
                    }
                }
                if (i <= NR) print line[i]
            }
            exit (changed ? 10 : 0)
        }' "$1" >"$tuned" && awk_status=0 || awk_status=$?
    case $awk_status in
        0) rm -f "$tuned"; echo unchanged ;;
        10) cp -p "$1" "$1.irlamp-backup"
            cat "$tuned" >"$1"
            rm -f "$tuned"
            echo changed ;;
        *) rm -f "$tuned"; die "could not read $1" ;;
    esac
}

if [ -z "$DESTDIR" ] && command -v raspi-config >/dev/null 2>&1; then
    # Also loads i2c-dev now and at every boot (/etc/modules).
    before=$( [ -n "$boot_config" ] && cksum <"$boot_config" || echo none)
    raspi-config nonint do_i2c 0 || say "WARNING: raspi-config nonint do_i2c 0 failed; enable I2C with raspi-config"
    after=$( [ -n "$boot_config" ] && cksum <"$boot_config" || echo none)
    [ "$before" = "$after" ] || reboot_needed=1
elif command -v raspi-config >/dev/null 2>&1; then
    system raspi-config nonint do_i2c 0
fi

if [ -n "$boot_config" ]; then
    boot_config_result=$(tune_boot_config "$DESTDIR$boot_config")
    if [ "$boot_config_result" = changed ]; then
        reboot_needed=1
        say "set I2C on at <= ${I2C_MAX_BAUD} Hz in $boot_config (old file kept as config.txt.irlamp-backup)"
    else
        say "$boot_config already enables I2C at <= ${I2C_MAX_BAUD} Hz"
    fi
else
    say "WARNING: no /boot/firmware/config.txt or /boot/config.txt found. On a Pi, add"
    say "  dtparam=i2c_arm=on and dtparam=i2c_arm_baudrate=$I2C_MAX_BAUD to the boot config."
fi

# --- 7. the systemd unit ---------------------------------------------------
install -d -m 0755 "$(dirname "$DESTDIR$UNIT_FILE")"
install -m 0644 "$SOURCE_DIR/systemd/irlamp.service" "$DESTDIR$UNIT_FILE"
say "installed $UNIT_FILE"
install -m 0644 "$SOURCE_DIR/systemd/irlamp-bridge.service" "$DESTDIR$BRIDGE_UNIT_FILE"
say "installed $BRIDGE_UNIT_FILE"
system systemctl daemon-reload
system systemctl enable irlamp.service
if [ "$ENABLE_BRIDGE" = 1 ]; then
    system systemctl enable --now irlamp-bridge.service
    say "the MQTT bridge is enabled and started (settings: $CONFIG_DIR/bridge.yaml)"
else
    say "the MQTT bridge is installed but NOT enabled. To use it: edit $CONFIG_DIR/bridge.yaml,"
    say "  check it with: irlamp bridge --print --config $CONFIG_DIR/bridge.yaml"
    say "  then: sudo systemctl enable --now irlamp-bridge"
fi

running_old_version=0
if [ -z "$DESTDIR" ] && systemctl is-active --quiet irlamp.service 2>/dev/null; then
    running_old_version=1
fi

echo
say "done."
if [ "${reboot_needed:-0}" = 1 ]; then
    say "REBOOT NEEDED: the I2C settings in the boot config take effect at the next boot (sudo reboot)."
fi
if [ "$running_old_version" = 1 ]; then
    say "irlamp is running the previous version. When nobody is under the lamp:"
    say "  sudo systemctl restart irlamp"
else
    say "irlamp is enabled (it will start at boot) but not started. Next:"
    say "  1. sudo irlamp selftest --config $CONFIG_DIR/lamp.yaml   (check the wiring first)"
    say "  2. sudo systemctl start irlamp"
    say "  3. irlamp status"
fi
if [ -z "${IRLAMP_CAREGIVERS:-}" ]; then
    say "To let a caregiver read the history without sudo (read-only):"
    say "  sudo usermod -aG $SERVICE_USER NAME   (then that user logs in again)"
fi
