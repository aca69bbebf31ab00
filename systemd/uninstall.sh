#!/bin/sh
# Remove irlamp from a Raspberry Pi:
#
#     sudo make uninstall      (runs: sh systemd/uninstall.sh)
#
# Stops and disables the service (its ExecStopPost drives the relay off),
# then removes the unit, the venv in /opt/irlamp, the `irlamp` command link
# and the irlamp user.
#
# It KEEPS, on purpose:
#   /var/lib/irlamp   the session journal: the record of past sessions and
#                     faults, and what counts today's sessions if you
#                     reinstall (the daily limits must survive a reinstall);
#   /etc/irlamp       your configuration, possibly edited.
# and the I2C lines in the boot config (harmless without irlamp).
# Delete those two directories yourself if you want them gone.
#
# DESTDIR=/some/dir works as for install.sh: paths are prefixed, and
# systemctl/userdel are only printed.

set -eu

DESTDIR=${DESTDIR:-}
VENV_PARENT=/opt/irlamp
UNIT_FILE=/etc/systemd/system/irlamp.service
BRIDGE_UNIT_FILE=/etc/systemd/system/irlamp-bridge.service
BRIDGE_USER=irlamp-bridge
UNIT_WANTS_LINK=/etc/systemd/system/multi-user.target.wants/irlamp.service
CLI_LINK=/usr/local/bin/irlamp
CONFIG_DIR=/etc/irlamp
STATE_DIR=/var/lib/irlamp
SERVICE_USER=irlamp

SCRIPT_NAME=uninstall
. "$(cd "$(dirname "$0")" && pwd)/common.sh"

require_root_or_destdir
if [ -n "$DESTDIR" ]; then
    [ -d "$DESTDIR" ] || die "DESTDIR=$DESTDIR does not exist"
    DESTDIR=$(cd "$DESTDIR" && pwd)
fi

# Stop first, while the venv still exists: stopping runs ExecStopPost
# (`irlamp failsafe`), which needs it to drive the relay off.
if [ -n "$DESTDIR" ]; then
    system systemctl disable --now irlamp.service
elif command -v systemctl >/dev/null 2>&1 && [ -e "$UNIT_FILE" ]; then
    systemctl disable --now irlamp.service \
        || say "WARNING: could not stop/disable irlamp.service; check: systemctl status irlamp"
fi

# The MQTT bridge (it only reads what the daemon writes; the daemon stopped first).
if [ -n "$DESTDIR" ]; then
    system systemctl disable --now irlamp-bridge.service
elif command -v systemctl >/dev/null 2>&1 && [ -e "$BRIDGE_UNIT_FILE" ]; then
    systemctl disable --now irlamp-bridge.service \
        || say "WARNING: could not stop/disable irlamp-bridge.service"
fi
rm -f "$DESTDIR/etc/systemd/system/multi-user.target.wants/irlamp-bridge.service"
if [ -e "$DESTDIR$BRIDGE_UNIT_FILE" ]; then
    rm -f "$DESTDIR$BRIDGE_UNIT_FILE"
    say "removed $BRIDGE_UNIT_FILE"
fi

rm -f "$DESTDIR$UNIT_WANTS_LINK"
if [ -e "$DESTDIR$UNIT_FILE" ]; then
    rm -f "$DESTDIR$UNIT_FILE"
    say "removed $UNIT_FILE"
fi
if [ -n "$DESTDIR" ]; then
    system systemctl daemon-reload
    system systemctl reset-failed irlamp.service
elif command -v systemctl >/dev/null 2>&1; then
    systemctl daemon-reload
    systemctl reset-failed irlamp.service 2>/dev/null || true
fi

if [ -d "$DESTDIR$VENV_PARENT" ]; then
    rm -rf "$DESTDIR$VENV_PARENT/venv"
    rmdir "$DESTDIR$VENV_PARENT" 2>/dev/null || say "left $VENV_PARENT: it holds files irlamp did not put there"
    say "removed the venv in $VENV_PARENT"
fi

# Only our own link to the venv, never some other `irlamp`.
link_path="$DESTDIR$CLI_LINK"
if [ -L "$link_path" ] && [ "$(readlink "$link_path")" = "$VENV_PARENT/venv/bin/irlamp" ]; then
    rm -f "$link_path"
    say "removed $CLI_LINK"
fi

for user in "$BRIDGE_USER" "$SERVICE_USER"; do
    if [ -n "$DESTDIR" ]; then
        system userdel "$user"
    elif getent passwd "$user" >/dev/null 2>&1; then
        userdel "$user" || say "WARNING: could not remove user $user (is a process still running as it?)"
        say "removed user $user"
    fi
done

echo
say "done. KEPT on purpose:"
say "  $STATE_DIR   the session journal (history; today's session count if you reinstall)"
say "  /var/lib/irlamp-bridge   which journal events the MQTT broker already has"
say "  $CONFIG_DIR        your configuration"
say "To remove them too:  sudo rm -r $STATE_DIR /var/lib/irlamp-bridge $CONFIG_DIR"
say "The gpio/i2c groups and the I2C lines in the boot config were left in place."
