"""`irlamp` command line. Exit codes: 0 ok, 1 failure, 2 bad input (config, scenario, wiring).

Every user error is one clear line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import stat
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
        if info.st_mode & stat.S_ISVTX:  # /tmp and the like: narrowing it would lock out everyone else
            logging.getLogger("irlamp").warning(
                "LG_WD=%s is a shared directory (sticky, like /tmp): not made private; "
                "give irlamp a directory of its own (the service uses /var/lib/irlamp/gpio)",
                directory,
            )
            return
        if info.st_uid == os.geteuid() and info.st_mode & 0o077:
            directory.chmod(0o700)
    except OSError as exc:  # lgpio then reports the directory itself; the lamp stays off
        logging.getLogger("irlamp").warning("cannot make %s private: %s", directory, exc)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="irlamp", description="Infrared heat lamp safety daemon")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the daemon (real hardware, or --simulate)")
    run.add_argument("--config", help="config file (default: /etc/irlamp/lamp.yaml or the bundled one)")
    run.add_argument("--state-dir", help="journal directory (overrides paths.state_dir)")
    run.add_argument("--runtime-dir", help="status file directory (overrides paths.runtime_dir)")
    run.add_argument(
        "--simulate", action="store_true", help="simulated sensors and mock pins in real time, driven from the keyboard"
    )
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

    pl = sub.add_parser("plot", help="draw one session as a picture (needs the irlamp[plot] extra)")
    pl.add_argument("session", nargs="?", type=int, help="session id (default: the newest; see `irlamp history`)")
    pl.add_argument("-o", "--output", required=True, help="picture file, .png or .svg")
    pl.add_argument("--config")
    pl.add_argument("--state-dir")

    jo = sub.add_parser("journal", help="journal maintenance (stop the daemon first)")
    jo_sub = jo.add_subparsers(dest="journal_command", required=True, metavar="ACTION")
    rec = jo_sub.add_parser(
        "recover", help="put a damaged journal aside and start a new one that counts the rest of today as used up"
    )
    rec.add_argument("--config")
    rec.add_argument("--state-dir")

    fs = sub.add_parser("failsafe", help="drive the relay pins off and exit (systemd ExecStopPost)")
    fs.add_argument("--config")
    fs.add_argument("--runtime-dir", help="where the daemon recorded the pins it drives (default /run/irlamp)")
    fs.add_argument("--state-dir", help="the same when the runtime directory was not writable")

    br = sub.add_parser("bridge", help="MQTT bridge: Home Assistant discovery, state, events, remote STOP")
    br.add_argument("--config", help="bridge config (default: /etc/irlamp/bridge.yaml or the bundled one)")
    br.add_argument(
        "--print", action="store_true", dest="print_only", help="print what would be published now, without a broker"
    )
    br.add_argument("--verbose", action="store_true", help="log every connect and forwarded STOP")

    fl = sub.add_parser("fleet", help="every lamp on an MQTT broker (read-only)")
    fl.add_argument("--broker", required=True, metavar="HOST[:PORT]")
    fl.add_argument("--prefix", default="irlamp", help="the bridges' topic prefix (default irlamp)")
    fl.add_argument("--json", action="store_true", help="one JSON list of the lamps, then exit")
    fl.add_argument("--once", action="store_true", help="print the table once instead of refreshing it")
    fl.add_argument("--wait", type=float, default=1.5, help="seconds to collect retained states first")

    se = sub.add_parser("selftest", help="bring up real hardware: sensors, LEDs, relay (asks first)")
    se.add_argument("--config")
    se.add_argument("--seconds", type=float, default=5.0, help="how long to print live readings")
    return p


def _config(path):
    from controller.service.config import load_config

    return load_config(path)


def _dirs(args, cfg) -> tuple[Path, Path]:
    state = Path(getattr(args, "state_dir", None) or cfg.paths.state_dir)
    runtime = Path(getattr(args, "runtime_dir", None) or cfg.paths.runtime_dir)
    return state, runtime


def _cmd_simulate(args) -> int:
    # imported here, not in main(): only `simulate` needs the scenario parser (start-up time)
    from controller.sim.scenario import ScenarioError, load_scenario
    from controller.sim.simulate import run_scenario

    try:
        scenario = load_scenario(args.scenario)
        run_scenario(scenario, as_json=args.json, out=sys.stdout, state_dir=args.state_dir, config_path=args.config)
    except ScenarioError as exc:
        print(f"irlamp: {exc.message}", file=sys.stderr)
        return 2
    return 0


def _cmd_status(args) -> int:
    from controller.service.status_reader import find_status_file, status_command

    state, runtime = _dirs(args, _config_or_default(args.config))
    return status_command(find_status_file(runtime, state), args.json)


def _cmd_history(args) -> int:
    from controller.service.history import history_command

    state, _ = _dirs(args, _config_or_default(args.config))
    return history_command(state, args.days, args.json)


def _cmd_plot(args) -> int:
    from controller.service.plot import plot_command  # the only importer of matplotlib

    cfg = _config_or_default(args.config)
    state, _ = _dirs(args, cfg)
    return plot_command(state, args.session, args.output, cfg)


def _cmd_journal(args) -> int:
    from controller.service.recovery import recover_journal
    from controller.service.clock import ClockSync, boot_id

    state, _ = _dirs(args, _config_or_default(args.config))
    return recover_journal(state, boot_id=boot_id(), clock_synced=ClockSync()())


def _config_or_default(path):
    """Status/history only need paths: fall back to defaults if the config is unreadable to this user."""
    from controller.service.config import BUNDLED_CONFIG_PATH, ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError:
        if path:
            raise
        return load_config(BUNDLED_CONFIG_PATH)


def check_config_command(path: str | None) -> int:
    """`irlamp check-config [PATH]`: 'OK: <path>' and the effective config on stdout -> 0,
    or the one-line error on stderr -> 2."""
    from controller.service.config import ConfigError, format_config
    from controller.service.preflight import load_checked_config

    try:
        cfg = load_checked_config(path)  # also the start-up wiring check `irlamp run` makes
    except ConfigError as error:
        print(error.message, file=sys.stderr)
        return 2
    print(f"OK: {cfg.source}")
    print(format_config(cfg), end="")
    return 0


def _cmd_failsafe(args) -> int:
    # It must switch the lamp off whatever the config holds (it runs after every stop, also
    # after a start refused for a bad config): it reads the daemon's own record of its pins first.
    from controller.service.failsafe import failsafe_command

    return failsafe_command(args.config, args.runtime_dir, args.state_dir)


def _cmd_run(args) -> int:
    from controller.service.run import run_daemon

    return run_daemon(_config(args.config), args)


def _cmd_selftest(args) -> int:
    from controller.service.run import selftest

    return selftest(_config(args.config), args.seconds)


def _needs_paho(command: str) -> bool:
    """True if paho-mqtt is importable; else says how to get it (one line)."""
    try:
        import paho.mqtt.client  # noqa: F401
    except ImportError:
        print(f"irlamp {command}: needs paho-mqtt >= 2: pip install 'irlamp[bridge]'", file=sys.stderr)
        return False
    return True


def _cmd_bridge(args) -> int:
    from controller.bridge.config import load_bridge_config
    from controller.bridge.publisher import print_bridge, run_bridge

    cfg = load_bridge_config(args.config)
    if args.print_only:
        return print_bridge(cfg)
    return run_bridge(cfg) if _needs_paho("bridge") else 1


def _cmd_fleet(args) -> int:
    if not _needs_paho("fleet"):
        return 1
    from controller.bridge.fleet import fleet_command

    return fleet_command(
        args.broker, args.prefix, args.json, args.wait, live=not (args.once or args.json) and sys.stdout.isatty()
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # lgpio creates its notification pipe in the working directory unless LG_WD says where.
    # Only for the commands that use GPIO: a default set here is inherited by every process
    # started afterwards, which would take it for an explicit LG_WD.
    if args.command in GPIO_COMMANDS:
        explicit_lg_wd = os.environ.get("LG_WD")
        os.environ.setdefault("LG_WD", tempfile.gettempdir())
        if explicit_lg_wd:
            make_lgpio_dir_private(Path(explicit_lg_wd))
    quiet = logging.CRITICAL if args.command == "simulate" else logging.WARNING
    log_handler = logging.StreamHandler(sys.stderr)
    log_handler.setFormatter(
        JournalFormatter()
        if os.environ.get("JOURNAL_STREAM")
        else logging.Formatter("%(levelname)s %(name)s: %(message)s")
    )
    logging.basicConfig(
        level=logging.INFO if getattr(args, "verbose", False) or args.command == "run" else quiet,
        handlers=[log_handler],
    )
    if args.command in ("bridge", "fleet"):
        logging.getLogger("paho").setLevel(logging.WARNING)
    from controller.service.config import ConfigError
    from controller.service.dirlock import DirectoryBusy
    from controller.service.storage import StorageError
    from drivers.relay import WiringError

    try:
        if args.command == "check-config":
            return check_config_command(args.path)
        command = {
            "simulate": _cmd_simulate,
            "status": _cmd_status,
            "history": _cmd_history,
            "plot": _cmd_plot,
            "failsafe": _cmd_failsafe,
            "run": _cmd_run,
            "selftest": _cmd_selftest,
            "journal": _cmd_journal,
            "bridge": _cmd_bridge,
            "fleet": _cmd_fleet,
        }[args.command]
        return command(args)
    except (ConfigError, WiringError) as exc:
        print(f"irlamp: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 2
    except DirectoryBusy as exc:  # another daemon runs this lamp: touch nothing
        print(f"irlamp: {exc}", file=sys.stderr)
        return 2
    except StorageError as exc:  # the lamp never started: nothing can be recorded
        print(f"irlamp: {exc}", file=sys.stderr)
        return 2 if exc.needs_a_person else 1  # 2: systemd does not retry what needs a person
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `irlamp simulate x.yaml | head`: the reader left
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:
        from gpiozero.exc import GPIOZeroError

        if isinstance(exc, GPIOZeroError):
            print(
                f"irlamp: cannot use the GPIO pins ({exc}); is this a Raspberry Pi with the gpio group? "
                f"Without one, try `irlamp run --simulate`.",
                file=sys.stderr,
            )
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
