"""`irlamp` command line. Exit codes: 0 ok, 1 failure, 2 bad input (config, scenario, wiring).

Every user error is one clear line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path


class JournalFormatter(logging.Formatter):
    """Under systemd (JOURNAL_STREAM set) each line starts with its syslog priority, `<3>` for
    errors, so `journalctl -p err -u irlamp` shows exactly the faults."""

    PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))

    def format(self, record: logging.LogRecord) -> str:
        priority = next((p for level, p in self.PRIORITIES if record.levelno >= level), 7)
        text = f"{record.name}: {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return "\n".join(f"<{priority}>{line}" for line in text.splitlines())


GPIO_COMMANDS = ("run", "failsafe", "selftest")


def make_lgpio_dir_private(directory: Path) -> None:
    """lgpio's button-edge FIFO is group-writable and world-readable: whoever can reach it can
    fake or steal button presses. Keep its directory (LG_WD, set by the service) 0700, so that
    read access to the state directory (the caregivers' group) gives no access to it."""
    try:
        directory.mkdir(mode=0o700, exist_ok=True)
        info = directory.stat()
        if info.st_uid == os.geteuid() and info.st_mode & 0o077:
            directory.chmod(0o700)
    except OSError as exc:   # lgpio then reports the directory itself; the lamp stays off
        logging.getLogger("irlamp").warning("cannot make %s private: %s", directory, exc)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="irlamp", description="Infrared heat lamp safety daemon")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the daemon (real hardware, or --simulate)")
    run.add_argument("--config", help="config file (default: /etc/irlamp/lamp.yaml or the bundled one)")
    run.add_argument("--state-dir", help="journal directory (overrides paths.state_dir)")
    run.add_argument("--runtime-dir", help="status file directory (overrides paths.runtime_dir)")
    run.add_argument("--simulate", action="store_true",
                     help="simulated sensors and mock pins in real time, driven from the keyboard")
    run.add_argument("--verbose", action="store_true", help="log every event")

    sim = sub.add_parser("simulate", help="run a scenario file in accelerated simulated time")
    sim.add_argument("scenario")
    sim.add_argument("--json", action="store_true", help="one JSON object per line")
    sim.add_argument("--config", help="base config the scenario's `config:` is merged over")
    sim.add_argument("--state-dir", help="keep the journal here (default: a temporary directory)")
    sim.add_argument("--verbose", action="store_true", help="also print the daemon's log on stderr")

    chk = sub.add_parser("check-config", help="validate a config file and print the effective values")
    chk.add_argument("path", nargs="?")

    st = sub.add_parser("status", help="what the lamp is doing now (read-only)")
    st.add_argument("--json", action="store_true")
    st.add_argument("--config")
    st.add_argument("--state-dir")
    st.add_argument("--runtime-dir")

    hi = sub.add_parser("history", help="recent sessions and faults from the journal")
    hi.add_argument("--days", type=float, default=7.0)
    hi.add_argument("--json", action="store_true")
    hi.add_argument("--config")
    hi.add_argument("--state-dir")

    jo = sub.add_parser("journal", help="journal maintenance (stop the daemon first)")
    jo_sub = jo.add_subparsers(dest="journal_command", required=True, metavar="ACTION")
    rec = jo_sub.add_parser("recover", help="put a damaged journal aside and start a new one that "
                                            "counts the rest of today as used up")
    rec.add_argument("--config")
    rec.add_argument("--state-dir")

    fs = sub.add_parser("failsafe", help="drive the relay pins off and exit (systemd ExecStopPost)")
    fs.add_argument("--config")

    se = sub.add_parser("selftest", help="bring up real hardware: sensors, LEDs, relay (asks first)")
    se.add_argument("--config")
    se.add_argument("--seconds", type=float, default=5.0, help="how long to print live readings")
    return p


def _config(path):
    from controller.config import load_config
    return load_config(path)


def _dirs(args, cfg) -> tuple[Path, Path]:
    state = Path(getattr(args, "state_dir", None) or cfg.paths.state_dir)
    runtime = Path(getattr(args, "runtime_dir", None) or cfg.paths.runtime_dir)
    return state, runtime


def _cmd_simulate(args) -> int:
    # imported here, not in main(): only `simulate` needs the scenario parser (start-up time)
    from controller.scenario import ScenarioError, load_scenario
    from controller.simulate import run_scenario
    try:
        scenario = load_scenario(args.scenario)
        run_scenario(scenario, as_json=args.json, out=sys.stdout, state_dir=args.state_dir,
                     config_path=args.config)
    except ScenarioError as exc:
        print(f"irlamp: {exc.message}", file=sys.stderr)
        return 2
    return 0


def _cmd_status(args) -> int:
    from controller.status import find_status_file, status_command
    state, runtime = _dirs(args, _config_or_default(args.config))
    return status_command(find_status_file(runtime, state), args.json)


def _cmd_history(args) -> int:
    from controller.history import history_command
    state, _ = _dirs(args, _config_or_default(args.config))
    return history_command(state, args.days, args.json)


def _cmd_journal(args) -> int:
    from controller.recovery import recover_journal
    from controller.run import ClockSync, boot_id
    state, _ = _dirs(args, _config_or_default(args.config))
    return recover_journal(state, boot_id=boot_id(), clock_synced=ClockSync()())


def _config_or_default(path):
    """Status/history only need paths: fall back to defaults if the config is unreadable to this user."""
    from controller.config import ConfigError, load_config
    try:
        return load_config(path)
    except ConfigError:
        if path:
            raise
        return load_config(Path(__file__).resolve().parent.parent / "config" / "lamp.yaml")


def _cmd_failsafe(args) -> int:
    from controller.run import failsafe, failsafe_pins_from_raw
    from controller.config import ConfigError
    try:
        return failsafe(_config(args.config).gpio)
    except ConfigError as exc:
        # The fail-safe must still switch the lamp off when the config is broken (it runs
        # after every stop, also after a start refused for a bad config).
        print(f"irlamp failsafe: {exc.message}; using the relay pins as written in the file", file=sys.stderr)
        return failsafe(failsafe_pins_from_raw(args.config))


def _cmd_run(args) -> int:
    from controller.run import run_daemon
    return run_daemon(_config(args.config), args)


def _cmd_selftest(args) -> int:
    from controller.run import selftest
    return selftest(_config(args.config), args.seconds)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # lgpio creates its notification pipe in the working directory unless LG_WD says where.
    explicit_lg_wd = os.environ.get("LG_WD")
    os.environ.setdefault("LG_WD", tempfile.gettempdir())
    if explicit_lg_wd and args.command in GPIO_COMMANDS:
        make_lgpio_dir_private(Path(explicit_lg_wd))
    quiet = logging.CRITICAL if args.command == "simulate" else logging.WARNING
    log_handler = logging.StreamHandler(sys.stderr)
    log_handler.setFormatter(JournalFormatter() if os.environ.get("JOURNAL_STREAM")
                             else logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO if getattr(args, "verbose", False) or args.command == "run"
                        else quiet, handlers=[log_handler])
    from controller.config import ConfigError, check_config_command
    from controller.dirlock import DirectoryBusy
    from controller.storage import StorageError
    from drivers.relay import WiringError
    try:
        if args.command == "check-config":
            return check_config_command(args.path)
        command = {"simulate": _cmd_simulate, "status": _cmd_status, "history": _cmd_history,
                   "failsafe": _cmd_failsafe, "run": _cmd_run, "selftest": _cmd_selftest,
                   "journal": _cmd_journal}[args.command]
        return command(args)
    except (ConfigError, WiringError) as exc:
        print(f"irlamp: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 2
    except DirectoryBusy as exc:      # another daemon runs this lamp: touch nothing
        print(f"irlamp: {exc}", file=sys.stderr)
        return 2
    except StorageError as exc:       # the lamp never started: nothing can be recorded
        print(f"irlamp: {exc}", file=sys.stderr)
        return 2 if exc.needs_a_person else 1   # 2: systemd does not retry what needs a person
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:          # e.g. `irlamp simulate x.yaml | head`: the reader left
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:
        from gpiozero.exc import GPIOZeroError
        if isinstance(exc, GPIOZeroError):
            print(f"irlamp: cannot use the GPIO pins ({exc}); is this a Raspberry Pi with the gpio group? "
                  f"Without one, try `irlamp run --simulate`.", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
