"""A real MQTT broker on a free loopback port, a client playing Home Assistant, and
`irlamp bridge` as a subprocess, for tests/test_bridge_mqtt.py.

Which broker: mosquitto (Debian package `mosquitto`; `.ci/run` installs it) when it is on the
machine, else amqtt (a Python broker from the test extras). IRLAMP_TEST_BROKER=mosquitto|amqtt
forces one. `make test` prints which one ran.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from scenario_helpers import REPO, cli_env, wait_for

MOSQUITTO_PATHS = ("mosquitto", "/usr/sbin/mosquitto")
START_TIMEOUT_S = 15.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def terminate(proc: subprocess.Popen) -> None:
    """SIGTERM this process (only it), SIGKILL it if it is still there after 10 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def choose_broker() -> tuple[str | None, str]:
    """(kind, why): kind is 'mosquitto', 'amqtt' or None (then `why` is the skip reason)."""
    forced = os.environ.get("IRLAMP_TEST_BROKER")
    mosquitto = next((p for p in map(shutil.which, MOSQUITTO_PATHS) if p), None)
    try:
        import amqtt  # noqa: F401

        has_amqtt = True
    except ImportError:
        has_amqtt = False
    if forced == "mosquitto" or (forced is None and mosquitto):
        return ("mosquitto", mosquitto) if mosquitto else (None, "IRLAMP_TEST_BROKER=mosquitto but it is not installed")
    if forced in ("amqtt", None) and has_amqtt:
        return "amqtt", "amqtt (Python broker from the test extras)"
    return None, "no MQTT broker: install mosquitto (apt-get install mosquitto) or `pip install amqtt`"


class TestBroker:
    """Starts, stops and restarts one broker on one port; its data persists across restarts
    (mosquitto: `persistence true`), so a client's session survives a restart."""

    __test__ = False

    def __init__(self, kind: str, base: Path):
        self.kind, self.base = kind, Path(base)
        self.base.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.keeps_sessions = kind == "mosquitto"

    def _command(self) -> list[str]:
        if self.kind == "mosquitto":
            conf = self.base / "mosquitto.conf"
            # Started as root, mosquitto drops to the user `mosquitto`, which can neither enter
            # pytest's root-only (0700) temporary directories nor write there: it then fails to save
            # its database at exit ("Error saving in-memory database ... Permission denied" in its
            # log) and every session and queued message is lost across a restart. `user root` keeps
            # it as the user that made the directory (only this loopback test broker).
            run_as = "user root\n" if os.geteuid() == 0 else ""
            conf.write_text(
                f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                f"persistence true\npersistence_location {self.base}/\n"
                f"log_dest stderr\n{run_as}"
            )
            return [next(p for p in map(shutil.which, MOSQUITTO_PATHS) if p), "-c", str(conf)]
        conf = self.base / "amqtt.yaml"
        conf.write_text(
            yaml.safe_dump(
                {
                    "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
                    "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
                }
            )
        )
        return [str(Path(sys.executable).with_name("amqtt")), "-c", str(conf)]

    def start(self) -> None:
        log = open(self.base / f"broker-{self.starts}.log", "w")
        self.starts += 1
        self.proc = subprocess.Popen(self._command(), stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()

        def accepting() -> bool:
            assert self.proc.poll() is None, f"broker exited: {self.log()}"
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.5):
                return True
            return False

        wait_for(accepting, START_TIMEOUT_S, what=f"{self.kind} accepting on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc)
            if self.keeps_sessions:
                self._check_saved()
        self.proc = None

    def _check_saved(self) -> None:
        """A test that relies on sessions surviving a restart must not pass or fail by luck."""
        log = self.log()
        assert "Error saving" not in log and self.database.exists(), (
            f"mosquitto did not save its sessions at exit, they will not survive the restart:\n{log}"
        )

    @property
    def database(self) -> Path:
        return self.base / "mosquitto.db"

    def restart(self, forget: bool = False) -> None:
        """Stop and start again; `forget`: start with nothing stored (no retained messages, no
        sessions), as a broker without persistence (amqtt) does."""
        self.stop()
        if forget:
            self.database.unlink(missing_ok=True)
        self.start()

    def log(self) -> str:
        return "\n".join(p.read_text()[-2000:] for p in sorted(self.base.glob("broker-*.log")))


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool
    at_wall: float

    def json(self):
        return json.loads(self.payload)


@dataclass
class HaClient:
    """A test client acting as Home Assistant: subscribes to everything, records every message."""

    port: int
    client_id: str = ""
    persistent: bool = False
    messages: list[Received] = field(default_factory=list)

    def __post_init__(self):
        import paho.mqtt.client as mqtt

        self.lock = threading.Lock()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=not self.persistent
        )
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *_: c.subscribe([("homeassistant/#", 1), ("irlamp/#", 1)])
        self.client.reconnect_delay_set(0.2, 1)
        self.client.connect("127.0.0.1", self.port, 10)
        self.client.loop_start()

    def _on_message(self, _client, _userdata, message) -> None:
        with self.lock:
            self.messages.append(Received(message.topic, message.payload, bool(message.retain), time.time()))

    def received(self, topic: str | None = None) -> list[Received]:
        with self.lock:
            return [m for m in self.messages if topic is None or m.topic == topic]

    def wait(self, predicate, timeout_s: float = 10.0, what: str = "message", since: int = 0) -> Received:
        """The first message (index >= since) matching predicate, polling up to timeout_s."""

        def find():
            with self.lock:
                return next((m for m in self.messages[since:] if predicate(m)), None)

        return wait_for(find, timeout_s, what=what)

    def publish(self, topic: str, payload, qos: int = 0):
        return self.client.publish(topic, payload, qos=qos)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class RunningBridge:
    """`python -m controller.cli bridge --config <generated>` against the test broker."""

    def __init__(
        self, base: Path, port: int, daemon_state: Path, daemon_runtime: Path, lamp_id: str = "t1", **sections
    ):
        self.base = Path(base)
        self.config = self.base / "bridge.yaml"
        self.state_dir = self.base / "bridge-state"
        doc = {
            "broker": {
                "host": "127.0.0.1",
                "port": port,
                "keepalive_s": 5,
                "reconnect_min_s": 0.2,
                "reconnect_max_s": 1.0,
            },
            "lamp": {"id": lamp_id, "name": f"Test lamp {lamp_id}"},
            "daemon": {"state_dir": str(daemon_state), "runtime_dir": str(daemon_runtime)},
            "bridge": {"state_dir": str(self.state_dir)},
        }
        for name, values in sections.items():
            doc.setdefault(name, {}).update(values)
        self.config.write_text(yaml.safe_dump(doc))
        self.topics = f"irlamp/{lamp_id}"
        self.stderr_path = self.base / f"bridge-{len(list(self.base.glob('bridge-*.log')))}.log"
        self._stderr = open(self.stderr_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "controller.cli", "bridge", "--config", str(self.config), "--verbose"],
            cwd=REPO,
            env=cli_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )

    def stderr(self) -> str:
        self._stderr.flush()
        return self.stderr_path.read_text()

    def close(self) -> None:
        terminate(self.proc)
        self._stderr.close()
