# Shared by install.sh and uninstall.sh (sourced, not run). Set SCRIPT_NAME first.

say() { printf 'irlamp %s: %s\n' "$SCRIPT_NAME" "$*"; }
die() { printf 'irlamp %s: ERROR: %s\n' "$SCRIPT_NAME" "$*" >&2; exit 1; }

# Run a command that changes the system outside DESTDIR - or, with DESTDIR
# set, only say what would have been run.
system() {
    if [ -n "$DESTDIR" ]; then
        say "(DESTDIR set, not run) $*"
    else
        "$@"
    fi
}

# Root is needed to change the system; with DESTDIR (a staging root) it is not.
require_root_or_destdir() {
    if [ -z "$DESTDIR" ] && [ "$(id -u)" -ne 0 ]; then
        die "must be run as root: sudo make $SCRIPT_NAME"
    fi
}
