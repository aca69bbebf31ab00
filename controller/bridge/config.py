"""The bridge's own YAML file (`/etc/irlamp/bridge.yaml`; commented default `config/bridge.yaml`).

Validated by the same machinery as lamp.yaml (`controller.service.config.load_sections`): unknown keys,
wrong types, out-of-range values and a broken cross-field rule (`backoff_ends_at_or_above_its_start`)
are refused with `file:line: key: problem`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from controller.service.config import (
    BUNDLED_CONFIG_DIR,
    ConfigError,
    Schema,
    bound_of,
    broken_rule,
    load_sections,
    sections_of,
)

SYSTEM_BRIDGE_CONFIG_PATH = Path("/etc/irlamp/bridge.yaml")
MACHINE_ID_PATH = Path("/etc/machine-id")
TOPIC_WORD = (r"[A-Za-z0-9_-]{1,64}", "letters, digits, '_' or '-' (1 to 64 of them)")
PREFIX = (
    r"[A-Za-z0-9_-]{1,64}(/[A-Za-z0-9_-]{1,64}){0,3}",
    "topic levels of letters, digits, '_' or '-' separated by '/', no wildcards",
)


@dataclass(frozen=True)
class BrokerConfig:
    """Where the MQTT broker is and how to log in (TLS optional, password from a file)."""

    host: str = "localhost"
    port: int = 1883
    keepalive_s: int = 30
    tls: bool = False
    ca_file: str | None = None
    client_cert_file: str | None = None
    client_key_file: str | None = None
    username: str | None = None
    password_file: str | None = None
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 60.0


@dataclass(frozen=True)
class LampConfig:
    """Who this lamp is on the broker: a stable id (default: from /etc/machine-id) and a name."""

    id: str | None = None
    name: str = "Heat lamp"


@dataclass(frozen=True)
class TopicsConfig:
    """Topic prefix of the bridge's own topics, and Home Assistant discovery."""

    prefix: str = "irlamp"
    discovery: bool = True
    discovery_prefix: str = "homeassistant"


@dataclass(frozen=True)
class DaemonConfig:
    """Where the safety daemon writes its journal and status file, and when its status is stale."""

    state_dir: str = "/var/lib/irlamp"
    runtime_dir: str = "/run/irlamp"
    stale_after_s: float = 3.0


@dataclass(frozen=True)
class PublishConfig:
    """The bridge's own state (event cursor), how often it looks, and how much backlog per round."""

    state_dir: str = "/var/lib/irlamp-bridge"
    poll_s: float = 0.25
    heartbeat_s: float = 30.0
    backlog_per_round: int = 50
    first_start_backlog: int = 20


@dataclass(frozen=True)
class BridgeConfig:
    broker: BrokerConfig
    lamp: LampConfig
    topics: TopicsConfig
    daemon: DaemonConfig
    bridge: PublishConfig
    source: str
    origins: Mapping[str, object] = dataclasses.field(default_factory=dict, compare=False, repr=False)


def backoff_ends_at_or_above_its_start(cfg: BridgeConfig) -> None:
    """The reconnect back-off grows from reconnect_min_s up to reconnect_max_s."""
    broker = cfg.broker
    bound = bound_of(broker.reconnect_min_s)
    if not broker.reconnect_max_s >= bound:
        keys = ("broker.reconnect_max_s", "broker.reconnect_min_s")
        raise broken_rule(cfg, keys, broker.reconnect_max_s, "at least broker.reconnect_min_s", bound)


BRIDGE_SCHEMA = Schema(
    sections=sections_of(BridgeConfig),
    bounds={
        "broker.port": (1, 65535),
        "broker.keepalive_s": (5, 600),
        "broker.reconnect_min_s": (0.1, 60),
        "broker.reconnect_max_s": (1, 3600),
        "daemon.stale_after_s": (1.5, 30),
        "bridge.poll_s": (0.05, 1.0),
        "bridge.heartbeat_s": (5, 600),
        "bridge.backlog_per_round": (1, 1000),
        "bridge.first_start_backlog": (0, 1000),
    },
    rules=(backoff_ends_at_or_above_its_start,),
    text_patterns={
        "broker.host": (r"[A-Za-z0-9.:_-]{1,253}", "a host name or IP address"),
        "broker.username": (r"[^\x00-\x1f]{1,128}", "a user name without control characters"),
        "lamp.id": TOPIC_WORD,
        "lamp.name": (r"[^\x00-\x1f]{1,64}", "a name of 1 to 64 printable characters"),
        "topics.prefix": PREFIX,
        "topics.discovery_prefix": PREFIX,
    },
)


def _check_tls(values: dict) -> None:
    tls, _ = values["broker.tls"]
    for key in ("broker.ca_file", "broker.client_cert_file", "broker.client_key_file"):
        value, where = values[key]
        if value is not None and not tls:
            raise ConfigError(f"{where}: {key}: is set but broker.tls is false")
    cert, key_file = values["broker.client_cert_file"], values["broker.client_key_file"]
    if (cert[0] is None) != (key_file[0] is None):
        where = max(cert[1], key_file[1], key=lambda w: w.order())
        raise ConfigError(f"{where}: broker.client_cert_file and broker.client_key_file go together")
    if values["broker.password_file"][0] is not None and values["broker.username"][0] is None:
        raise ConfigError(f"{values['broker.password_file'][1]}: broker.password_file: needs broker.username")


def default_bridge_config_path() -> Path:
    """$IRLAMP_BRIDGE_CONFIG, else /etc/irlamp/bridge.yaml if it exists, else the bundled one."""
    if os.environ.get("IRLAMP_BRIDGE_CONFIG"):
        return Path(os.environ["IRLAMP_BRIDGE_CONFIG"])
    if SYSTEM_BRIDGE_CONFIG_PATH.exists():
        return SYSTEM_BRIDGE_CONFIG_PATH
    return BUNDLED_CONFIG_DIR / "bridge.yaml"


def load_bridge_config(path: str | Path | None = None, *, overrides=None) -> BridgeConfig:
    source = str(default_bridge_config_path() if path is None else path)
    return load_sections(
        BRIDGE_SCHEMA,
        source,
        overrides=overrides,
        check=_check_tls,
        build=lambda sections, origins: BridgeConfig(**sections, source=source, origins=origins),
    )


def lamp_id(cfg: BridgeConfig, machine_id_path: Path = MACHINE_ID_PATH) -> str:
    """The configured id, else 12 hex digits of /etc/machine-id (stable across reboots)."""
    if cfg.lamp.id:
        return cfg.lamp.id
    try:
        machine = machine_id_path.read_text().strip()
    except OSError as exc:
        raise ConfigError(
            f"{cfg.source}: lamp.id: not set and {machine_id_path} is unreadable ({exc.strerror or exc}); set lamp.id"
        ) from None
    if len(machine) < 12:
        raise ConfigError(f"{cfg.source}: lamp.id: not set and {machine_id_path} is empty; set lamp.id")
    return machine[:12].lower()


def read_password(cfg: BridgeConfig) -> str | None:
    """The broker password from `broker.password_file`, refusing a file others may read."""
    path = cfg.broker.password_file
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            if mode & 0o077:
                raise ConfigError(
                    f"{path}: password file is readable by others (mode {mode & 0o777:04o}); chmod 600 it"
                )
            return handle.read().strip()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read password file: {exc.strerror or exc}") from None
