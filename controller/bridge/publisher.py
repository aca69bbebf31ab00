"""The bridge's main loop: status file and journal in, MQTT out. `irlamp bridge [--print]`.

Every `poll_s` (0.25 s): after each (re)connect or Home Assistant's `online`, publish the
discovery configs; publish the state (retained) when it changed or every `heartbeat_s`; send
the next bounded batch of journal events and move the cursor once the broker acknowledged all
of them. A daemon whose status is older than `stale_after_s` is published as "not running".
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller.bridge.config import BridgeConfig, lamp_id as configured_lamp_id, read_password
from controller.bridge.discovery import discovery_messages
from controller.bridge.events import JournalEvents
from controller.bridge.live_state import StatusWatcher
from controller.bridge.topics import ONLINE, Topics
from controller.service.remote_stop import stop_socket_path

log = logging.getLogger("irlamp.bridge")

INFLIGHT_TIMEOUT_S = 30.0


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("irlamp")
    except Exception:  # not installed (running from a checkout): any version string will do
        return "dev"


def _json(payload: dict) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"))


@dataclass
class _Done:
    """A publish that needs no acknowledgement (the --print sink)."""

    def is_published(self) -> bool:
        return True


class PrintLink:
    """Stands in for the broker in `irlamp bridge --print`: prints every message."""

    generation = 1
    connected = True

    def __init__(self, topics: Topics, out):
        self.out = out
        self.ha_online = threading.Event()
        print(f"{topics.availability} (retained) {ONLINE}", file=out)

    def publish(self, topic: str, payload, *, retain: bool, qos: int = 1):
        print(f"{topic}{' (retained)' if retain else ''} {payload}", file=self.out)
        return _Done()


class Bridge:
    def __init__(self, cfg: BridgeConfig, lamp_id: str, *, read_only_cursor: bool = False):
        self.cfg = cfg
        self.lamp_id = lamp_id
        self.topics = Topics(lamp_id, cfg.topics.prefix, cfg.topics.discovery_prefix)
        self.status = StatusWatcher(cfg.daemon.runtime_dir, cfg.daemon.state_dir, cfg.daemon.stale_after_s)
        self.events = JournalEvents(
            cfg.daemon.state_dir,
            cfg.bridge.state_dir,
            lamp_id,
            cfg.bridge.first_start_backlog,
            read_only=read_only_cursor,
        )
        self.version = _version()
        self.link: Any = None  # MqttLink or PrintLink, set by run_bridge / print_bridge
        self._generation = 0
        self._last_state: dict | None = None
        self._last_state_s = float("-inf")
        self._inflight: tuple[list, list, int, float] | None = None

    def round(self, now_s: float) -> None:
        link = self.link
        if not link.connected:
            return
        if link.generation != self._generation or link.ha_online.is_set():
            link.ha_online.clear()
            self._generation = link.generation
            self._publish_discovery()
            self._last_state = None
        self._publish_state(now_s)
        self._publish_events(now_s)

    def _publish_discovery(self) -> None:
        if not self.cfg.topics.discovery:
            return
        for topic, payload in discovery_messages(self.topics, self.cfg.lamp.name, self.version):
            self.link.publish(topic, _json(payload), retain=True)

    def state_message(self) -> dict:
        return {**self.status.payload(), "name": self.cfg.lamp.name, "lamp_id": self.lamp_id}

    def _publish_state(self, now_s: float) -> None:
        state = self.state_message()
        if state == self._last_state and now_s - self._last_state_s < self.cfg.bridge.heartbeat_s:
            return
        self.link.publish(self.topics.state, _json({**state, "seen": round(time.time(), 1)}), retain=True)
        self._last_state, self._last_state_s = state, now_s

    def _publish_events(self, now_s: float) -> None:
        if self._inflight is not None:
            batch, handles, generation, since_s = self._inflight
            if all(handle.is_published() for handle in handles):
                self.events.advance(batch)
                self._inflight = None
            elif generation != self.link.generation or now_s - since_s > INFLIGHT_TIMEOUT_S:
                self._inflight = None  # not acknowledged: read from the cursor and send again
            else:
                return
        batch = self.events.pending(self.cfg.bridge.backlog_per_round)
        if batch:
            handles = [self.link.publish(self.topics.event, _json(e.payload), retain=False) for e in batch]
            self._inflight = (batch, handles, self.link.generation, now_s)

    def close(self) -> None:
        self.events.close()


def run_bridge(cfg: BridgeConfig) -> int:
    """`irlamp bridge`: runs until SIGTERM/SIGINT."""
    from controller.bridge.mqtt_link import MqttLink

    lamp = configured_lamp_id(cfg)
    Path(cfg.bridge.state_dir).mkdir(parents=True, exist_ok=True)
    bridge = Bridge(cfg, lamp)
    link = MqttLink(
        cfg.broker,
        bridge.topics,
        stop_socket_path(cfg.daemon.runtime_dir),
        read_password(cfg),
        client_id=f"irlamp-bridge-{lamp}",
    )
    bridge.link = link
    stop = threading.Event()

    def on_signal(_signum, _frame):
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    log.info("irlamp bridge for lamp %s (%s) -> %s:%s", lamp, cfg.lamp.name, cfg.broker.host, cfg.broker.port)
    link.start()
    try:
        while not stop.is_set():
            bridge.round(time.monotonic())
            stop.wait(cfg.bridge.poll_s)
    finally:
        link.stop()
        bridge.close()
    return 0


def print_bridge(cfg: BridgeConfig, out=None) -> int:
    """`irlamp bridge --print`: what the bridge would publish now, without a broker (the cursor
    is read, never written)."""
    out = out or sys.stdout
    lamp = configured_lamp_id(cfg)
    bridge = Bridge(cfg, lamp, read_only_cursor=True)
    bridge.link = PrintLink(bridge.topics, out)
    try:
        bridge.round(time.monotonic())
    finally:
        bridge.close()
    return 0
