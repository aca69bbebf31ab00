"""SR-13, the bridge's parts without a broker: its config, the live state it derives from the
status file (stale -> "not running"), at-least-once events through the cursor, reading the
daemon's journal as a user who cannot write its directory, and `irlamp bridge --print`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from nobody_helpers import directory_for_nobody, run_python_as_nobody, why_nobody_was_denied
from scenario_helpers import REPO, run_cli

from controller.bridge.config import ConfigError, load_bridge_config, read_password
from controller.bridge.live_state import state_payload
from controller.bridge.publisher import Bridge
from controller.service.journal import Journal

BUNDLED = REPO / "config" / "bridge.yaml"
NOW = 1_800_000_000.0


def write(tmp_path: Path, text: str, name: str = "bridge.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_bundled_config_loads_with_safe_defaults():
    cfg = load_bridge_config(BUNDLED)
    assert cfg.broker.port == 1883 and cfg.topics.discovery and cfg.daemon.stale_after_s == 3.0
    assert cfg.daemon.runtime_dir == "/run/irlamp" and cfg.bridge.state_dir == "/var/lib/irlamp-bridge"


@pytest.mark.parametrize(
    "text, message",
    [
        ("broker:\n  port: 70000\n", ":2: broker.port: must be at most 65535, got 70000"),
        ("broker:\n  hostname: x\n", ":2: broker.hostname: unknown key (did you mean 'broker.host'?)"),
        ("lamp:\n  id: a/b\n", ":2: lamp.id: must be letters, digits"),
        ("topics:\n  prefix: 'irlamp/#'\n", ":2: topics.prefix: must be topic levels"),
        ("broker:\n  ca_file: /etc/ca.pem\n", ":2: broker.ca_file: is set but broker.tls is false"),
        ("broker:\n  password_file: /etc/pw\n", ":2: broker.password_file: needs broker.username"),
        ("daemon:\n  stale_after_s: 60\n", ":2: daemon.stale_after_s: must be at most 30, got 60"),
    ],
)
def test_bad_bridge_config_is_one_line_with_file_line_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as refused:
        load_bridge_config(path)
    assert refused.value.message.startswith(str(path)) and message in refused.value.message


def test_reconnect_backoff_may_not_end_below_where_it_starts(tmp_path):
    """The cross-field rule of bridge.yaml at its bound (accepted) and one step past (refused),
    blamed on the key written last."""
    at_bound = load_bridge_config(write(tmp_path, "broker:\n  reconnect_min_s: 30\n  reconnect_max_s: 30\n"))
    assert (at_bound.broker.reconnect_min_s, at_bound.broker.reconnect_max_s) == (30, 30)
    path = write(tmp_path, "broker:\n  reconnect_min_s: 30\n  reconnect_max_s: 29.9\n")
    with pytest.raises(ConfigError) as refused:
        load_bridge_config(path)
    assert refused.value.message == (
        f"{path}:3: broker.reconnect_max_s: must be at least broker.reconnect_min_s = 30, got 29.9"
    )
    path = write(tmp_path, "broker:\n  reconnect_max_s: 29.9\n  reconnect_min_s: 30\n")
    with pytest.raises(ConfigError) as refused:
        load_bridge_config(path)
    assert refused.value.message == (
        f"{path}:3: broker.reconnect_min_s: broker.reconnect_max_s (29.9) must be at least broker.reconnect_min_s = 30"
    )


def test_password_file_readable_by_others_is_refused(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("hunter2\n")
    path = write(tmp_path, f"broker:\n  username: lamp\n  password_file: {secret}\n")
    secret.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        read_password(load_bridge_config(path))
    secret.chmod(0o600)
    assert read_password(load_bridge_config(path)) == "hunter2"


def status(state: str = "running", age_s: float = 0.5, **extra) -> dict:
    return {
        "state": state,
        "lamp_on": state == "running",
        "time_left_s": 600.4,
        "distance_mm": 400.2,
        "skin_c": 34.25,
        "sessions_today": 1,
        "sessions_per_day": 3,
        "heartbeat_wall": NOW - age_s,
        "pid": os.getpid(),
        "last_fault": None,
        "fault_latched": False,
        **extra,
    }


def payload(st) -> dict:
    return state_payload(st, stale_after_s=3.0, now_wall=NOW, boot_id=None)


def test_fresh_status_is_published_as_it_is():
    live = payload(status())
    assert live["state"] == "running" and live["daemon_ok"] and live["lamp_on"]
    assert (live["time_left_s"], live["distance_mm"], live["skin_c"]) == (600, 400, 34.25)


@pytest.mark.parametrize("case", ["stale", "stopped", "dead_pid", "missing", "future"])
def test_a_daemon_that_is_not_there_is_never_published_as_running(case):
    st = {
        "stale": status(age_s=3.2),
        "stopped": status("stopped"),
        "missing": None,
        "dead_pid": status(pid=2**22 + 12345),
        "future": status(age_s=-10),
    }[case]
    live = payload(st)
    assert live["state"] == "not running" and live["daemon_ok"] is False
    assert live["lamp_on"] is False and live["time_left_s"] is None and live["skin_c"] is None


class FakeHandle:
    def __init__(self):
        self.acked = False

    def is_published(self) -> bool:
        return self.acked


class FakeLink:
    """Stands in for MqttLink: records what is published, acknowledges on demand."""

    def __init__(self):
        self.generation, self.connected = 1, True
        self.sent: list[tuple[str, dict, FakeHandle]] = []
        import threading

        self.ha_online = threading.Event()

    def publish(self, topic, payload, *, retain, qos=1):
        handle = FakeHandle()
        self.sent.append((topic, json.loads(payload) if payload.startswith("{") else payload, handle))
        return handle

    def events(self):
        return [(p, h) for t, p, h in self.sent if t.endswith("/event")]


def bridge_for(tmp_path, **bridge_section) -> Bridge:
    section = "".join(f"  {k}: {v}\n" for k, v in bridge_section.items())
    cfg = load_bridge_config(
        write(
            tmp_path,
            f"""lamp: {{id: u1}}
daemon: {{state_dir: {tmp_path / "state"}, runtime_dir: {tmp_path / "run"}}}
bridge:
  state_dir: {tmp_path / "bridge"}
{section}""",
        )
    )
    (tmp_path / "bridge").mkdir(exist_ok=True)
    bridge = Bridge(cfg, "u1")
    bridge.link = FakeLink()
    return bridge


def test_events_are_resent_until_acknowledged_and_the_cursor_survives_a_restart(tmp_path):
    journal = Journal(tmp_path / "state", "boot-a")
    first = journal.record_fault("skin_overheat", "skin 43.1 C", NOW, 10.0)
    sid = journal.start_session(NOW + 1, 11.0)
    journal.end_session(sid, 60.0, "stopped_remotely", 35.0, 400.0, NOW + 61, 71.0)
    bridge = bridge_for(tmp_path)
    bridge.round(0.0)
    sent = bridge.link.events()
    assert [p["id"] for p, _ in sent] == ["u1-fault-1", "u1-session-1"]
    assert sent[0][0]["advice"].startswith("let the skin cool") and sent[0][0]["code"] == "skin_overheat"
    bridge.round(1.0)  # not acknowledged: nothing new, cursor unmoved
    assert len(bridge.link.events()) == 2 and bridge.events.cursor.fault_id == 0
    bridge.link.generation += 1  # reconnected before the PUBACKs: send again
    bridge.round(2.0)
    again = bridge.link.events()[2:]
    assert [p["id"] for p, _ in again] == ["u1-fault-1", "u1-session-1"]
    for _, handle in again:
        handle.acked = True
    bridge.round(3.0)
    assert (bridge.events.cursor.fault_id, bridge.events.cursor.session_id) == (first, sid)
    journal.record_fault("distance_io_error", "x", NOW + 100, 110.0)
    bridge.close()
    restarted = bridge_for(tmp_path)  # a new bridge process: cursor from disk
    restarted.round(0.0)
    assert [p["id"] for p, _ in restarted.link.events()] == ["u1-fault-2"]
    restarted.close()
    journal.close()


def test_events_come_in_bounded_batches_in_order(tmp_path):
    journal = Journal(tmp_path / "state", "boot-a")
    for index in range(7):
        journal.record_fault("control_exception", f"#{index}", NOW + index, float(index))
    bridge = bridge_for(tmp_path, backlog_per_round=3, first_start_backlog=1000)
    seen = []
    for step in range(6):
        bridge.round(float(step))
        for payload_, handle in bridge.link.events():
            if not handle.acked:
                seen.append(payload_["detail"])
                handle.acked = True
    assert seen == [f"#{i}" for i in range(7)]
    bridge.close()
    journal.close()


READER = """
import json, sys
from controller.bridge.events import JournalEvents
events = JournalEvents(sys.argv[1], sys.argv[2], "x", 100, read_only=True)
print(json.dumps([e.event_id for e in events.pending(50)]))
"""


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="needs root and setpriv to read as a user who cannot write the state dir",
)
def test_journal_read_by_a_user_who_cannot_write_its_directory():
    """The bridge's user may read, not write, /var/lib/irlamp: no -shm of its own. SQLite reads
    the WAL journal while the daemon has it open, and `immutable` once the daemon closed it."""
    with directory_for_nobody("irlamp-readonly-") as directory:  # pytest's tmp is root-only
        _read_as_nobody_while_open_and_after_close(directory)


def _read_as_nobody_while_open_and_after_close(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o755)
    journal = Journal(state, "boot-a")
    journal.record_fault("skin_overheat", "a", NOW, 1.0)

    def read_as_nobody() -> list[str]:
        proc = run_python_as_nobody(READER, str(state), str(tmp_path / "nobody-bridge"))
        assert proc.returncode == 0, proc.stderr + why_nobody_was_denied(state)
        return json.loads(proc.stdout)

    assert read_as_nobody() == ["x-fault-1"]
    journal.record_fault("skin_overheat", "b", NOW + 1, 2.0)
    assert read_as_nobody() == ["x-fault-1", "x-fault-2"]
    journal.close()  # the daemon stopped: -wal and -shm are gone
    assert not Path(str(state / "journal.sqlite3") + "-wal").exists()
    assert read_as_nobody() == ["x-fault-1", "x-fault-2"]


def test_bridge_print_shows_what_it_would_publish_without_a_broker(tmp_path):
    cfg = write(
        tmp_path,
        f"""lamp: {{id: demo, name: Demo lamp}}
daemon: {{state_dir: {tmp_path / "state"}, runtime_dir: {tmp_path / "run"}}}
bridge: {{state_dir: {tmp_path / "nowhere"}}}
""",
    )
    proc = run_cli("bridge", "--print", "--config", str(cfg))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "irlamp/demo/availability (retained) online"
    assert sum("/config (retained) {" in line for line in lines) == 11
    state = json.loads(next(line for line in lines if line.startswith("irlamp/demo/state")).split(" ", 2)[2])
    assert state["state"] == "not running" and state["name"] == "Demo lamp"
    assert not (tmp_path / "nowhere").exists(), "--print writes nothing"


def test_bad_bridge_config_on_the_command_line_is_exit_2(tmp_path):
    proc = run_cli("bridge", "--print", "--config", str(write(tmp_path, "broker: {port: x}\n")))
    assert proc.returncode == 2 and "broker.port" in proc.stderr and "Traceback" not in proc.stderr


BRIDGE_MAY_IMPORT = {
    "controller",
    "controller.core",
    "controller.service",  # the rooms' packages
    "controller.core.records",  # the journal's session record
    "controller.core.readings",  # the config's VL53L0X timing-budget bounds
    "controller.core.settings",  # the config's dataclasses (plain values)
    "controller.service.clock",  # the boot id the status is judged against
    "controller.service.config",
    "controller.core.faults",
    "controller.service.history",
    "controller.service.journal",
    "controller.service.remote_stop",
    "controller.service.status_reader",  # judging the daemon from its status file
    "controller.service.status_writer",  # the atomic write of the bridge's cursor file
    "controller.service.storage",  # the journal's plain-words error messages
    "controller.service.yaml_numbers",
}  # how config.py reads numbers


def test_the_bridge_reaches_no_hardware_or_decision_module_and_the_daemon_never_imports_it():
    probe = (
        "import sys, controller.bridge.publisher, controller.bridge.fleet, controller.bridge.mqtt_link;"
        "print('\\n'.join(sorted(sys.modules)))"
    )
    proc = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    loaded = set(proc.stdout.split())
    ours = {m for m in loaded if m.split(".")[0] in ("controller", "drivers") and not m.startswith("controller.bridge")}
    assert ours <= BRIDGE_MAY_IMPORT, ours - BRIDGE_MAY_IMPORT
    assert not {m for m in loaded if m.split(".")[0] in ("gpiozero", "board", "busio", "adafruit_vl53l0x")}
    for path in [*(REPO / "controller").rglob("*.py"), *(REPO / "drivers").glob("*.py")]:
        if path.name == "cli.py" or "bridge" in path.parts:  # the CLI dispatches to `irlamp bridge` / `fleet`
            continue
        assert "controller.bridge" not in path.read_text(), f"{path.name} imports the bridge"


def test_only_a_live_exact_stop_message_is_forwarded(tmp_path):
    """The bridge's input filter: exact payload `STOP`, not retained (a retained STOP would stop
    every session after each reconnect); anything else is counted, not forwarded."""
    from types import SimpleNamespace

    from controller.bridge.config import load_bridge_config as load
    from controller.bridge.mqtt_link import MqttLink
    from controller.bridge.topics import Topics
    from controller.service.remote_stop import RemoteStopChannel, stop_socket_path

    channel = RemoteStopChannel(stop_socket_path(tmp_path), frozenset({os.getuid()}))
    try:
        topics = Topics("u1", "irlamp", "homeassistant")
        link = MqttLink(load(BUNDLED).broker, topics, channel.path, None, client_id="t")
        for payload, retain in ((b"STOP", True), (b"stop", False), (b"STOP\n", False), (b"", False)):
            link._on_message(None, None, SimpleNamespace(topic=topics.stop, payload=payload, retain=retain))
        assert channel.take() is False and link.ignored.count == 4 and link.stops_forwarded == 0
        link._on_message(None, None, SimpleNamespace(topic=topics.stop, payload=b"STOP", retain=False))
        assert channel.take() is True and link.stops_forwarded == 1
        link._on_message(None, None, SimpleNamespace(topic=topics.ha_status, payload=b"online", retain=False))
        assert link.ha_online.is_set()
    finally:
        channel.close()


def test_without_mosquitto_or_amqtt_the_broker_tests_say_why_they_skip(monkeypatch):
    import mqtt_helpers

    monkeypatch.delenv("IRLAMP_TEST_BROKER", raising=False)
    monkeypatch.setattr(mqtt_helpers.shutil, "which", lambda name: None)
    assert mqtt_helpers.choose_broker()[0] == "amqtt"  # the Python fallback
    monkeypatch.setitem(sys.modules, "amqtt", None)  # `import amqtt` now fails
    kind, why = mqtt_helpers.choose_broker()
    assert kind is None and "mosquitto" in why and "amqtt" in why
    monkeypatch.setenv("IRLAMP_TEST_BROKER", "mosquitto")
    assert mqtt_helpers.choose_broker() == (None, "IRLAMP_TEST_BROKER=mosquitto but it is not installed")
