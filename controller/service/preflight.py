"""Start-up checks that need no hardware, shared by `irlamp run`, `selftest`, `simulate` and
`check-config`, so that `check-config` says OK only for a file `run` accepts (SR-2, SR-11).

Today that is the config itself (`load_config`) and the relay wiring against the Pi's
power-on pulls (`drivers.hardware.check_wiring`). A refusal is a `ConfigError` naming
file:line: key of the setting to change.
"""

from __future__ import annotations

from controller.service.config import Config, load_config, refusal
from drivers.hardware import check_wiring
from drivers.relay import WiringError


def check_startup(cfg: Config) -> None:
    """Raise ConfigError for a loaded config that the daemon would still refuse at start."""
    try:
        check_wiring(cfg.gpio)
    except WiringError as error:
        raise refusal(cfg, error.keys, str(error)) from None


def load_checked_config(path=None, **overrides) -> Config:
    """`load_config` plus `check_startup`: the config exactly as `irlamp run` accepts it."""
    cfg = load_config(path, **overrides)
    check_startup(cfg)
    return cfg
