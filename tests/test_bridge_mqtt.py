"""SR-13 end to end: `irlamp run --simulate`, `irlamp bridge`, a real MQTT broker (mosquitto, or
amqtt where mosquitto is missing) and a test client acting as Home Assistant.

Every wait is a bounded poll. The only time bounds asserted are the issue's own: state on the
broker within 1.5 s of the status file changing, remote STOP ending a session within 1 s,
"not running" within 3 s of the daemon stopping.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import time
import uuid

import pytest
from mqtt_helpers import HaClient, RunningBridge, TestBroker, choose_broker, free_port
from scenario_helpers import RunningDaemon, history_json, run_cli, wait_for

from controller.service.remote_stop import STOP_REQUEST, stop_socket_path

START_TIMEOUT_S = 15.0
BROKER_KIND, BROKER_WHY = choose_broker()


@pytest.fixture(scope="module")
def broker(request, tmp_path_factory):
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():  # say which broker, also under -q
        print(f"\n[MQTT bridge tests: broker {BROKER_KIND or 'none, skipped'} ({BROKER_WHY})]")
    if BROKER_KIND is None:
        pytest.skip(BROKER_WHY)
    running = TestBroker(BROKER_KIND, tmp_path_factory.mktemp("broker"))
    running.start()
    yield running
    running.stop()


class Lamp:
    """A daemon, its bridge and a Home Assistant stand-in, all on the test broker."""

    def __init__(self, base, broker: TestBroker, persistent_ha: bool = False):
        self.lamp_id = "t" + uuid.uuid4().hex[:8]
        self.daemon = RunningDaemon(base)
        self.daemon.wait_message("READY=1", timeout_s=START_TIMEOUT_S)
        self.ha = HaClient(broker.port, client_id=f"ha-{self.lamp_id}", persistent=persistent_ha)
        self.bridge = RunningBridge(
            base, broker.port, self.daemon.state_dir, self.daemon.runtime_dir, lamp_id=self.lamp_id
        )
        self.base_topic = f"irlamp/{self.lamp_id}"
        self.wait_state(lambda s: s["state"] == "idle", "state idle on the broker")

    def states(self) -> list[dict]:
        return [m.json() for m in self.ha.received(f"{self.base_topic}/state")]

    def wait_state(self, predicate, what: str, timeout_s: float = START_TIMEOUT_S, since: int = 0):
        message = self.ha.wait(
            lambda m: m.topic == f"{self.base_topic}/state" and predicate(m.json()),
            timeout_s,
            what=f"{what}; bridge log: {self.bridge.stderr()[-800:]}",
            since=since,
        )
        return message

    def wait_event(self, predicate, what: str, timeout_s: float = START_TIMEOUT_S):
        return self.ha.wait(
            lambda m: m.topic == f"{self.base_topic}/event" and predicate(m.json()), timeout_s, what=what
        )

    def start_session(self) -> dict:
        self.daemon.keys("space")
        return self.daemon.wait_status(lambda s: s["state"] == "running" and s["lamp_on"], what="session running")

    def close(self) -> None:
        self.bridge.close()
        self.ha.close()
        self.daemon.close()


@pytest.fixture
def lamp(tmp_path, broker):
    made = Lamp(tmp_path, broker)
    yield made
    made.close()


def test_discovery_payloads_are_complete_and_consistent(lamp):
    configs = {
        m.topic: m.json()
        for m in lamp.ha.received()
        if m.topic.startswith("homeassistant/") and m.topic.endswith("/config")
    }
    components = sorted(topic.split("/")[1] for topic in configs)
    assert components == sorted(["binary_sensor", "binary_sensor", "button", "event"] + ["sensor"] * 7)
    our_topics = {f"{lamp.base_topic}/{leaf}" for leaf in ("state", "event", "availability", "stop")}
    unique_ids = [config["unique_id"] for config in configs.values()]
    assert len(set(unique_ids)) == len(unique_ids) and all(lamp.lamp_id in uid for uid in unique_ids)
    for topic, config in configs.items():
        assert topic.split("/")[2] == f"irlamp_{lamp.lamp_id}"
        assert config["device"]["identifiers"] == [f"irlamp_{lamp.lamp_id}"]
        assert config["device"]["name"] == f"Test lamp {lamp.lamp_id}"
        assert config["availability"] == [
            {
                "topic": f"{lamp.base_topic}/availability",
                "payload_available": "online",
                "payload_not_available": "offline",
            }
        ]
        for key in ("state_topic", "command_topic"):
            if key in config:
                assert config[key] in our_topics, (topic, key, config[key])
        if "value_template" in config:
            field_name = config["value_template"].split("value_json.")[1].split()[0]
            assert field_name in lamp.states()[-1], (topic, field_name)
    by_object = {topic.split("/")[3]: config for topic, config in configs.items()}
    assert by_object["events"]["event_types"] == ["fault", "session_ended"]
    assert by_object["stop"]["payload_press"] == "STOP"
    assert set(by_object["state"]["options"]) >= {"idle", "running", "paused", "fault", "not running"}
    availability = lamp.ha.received(f"{lamp.base_topic}/availability")
    assert availability and availability[-1].payload == b"online"
    # Home Assistant restarting announces itself: the bridge publishes its discovery again.
    count = len(lamp.ha.received())
    lamp.ha.publish("homeassistant/status", "online", qos=1)
    lamp.ha.wait(lambda m: m.topic.endswith("/stop/config"), what="discovery again after HA online", since=count)


def test_state_reaches_the_broker_within_1_5_s_of_a_change(lamp):
    before = len(lamp.ha.received())
    lamp.daemon.keys("space")
    changed = lamp.daemon.wait_status(lambda s: s["state"] == "running", what="status running")
    seen = lamp.wait_state(lambda s: s["state"] == "running" and s["lamp_on"], "running on the broker", since=before)
    # heartbeat_wall is when the daemon wrote the first status saying 'running' (or later)
    assert seen.at_wall - changed["heartbeat_wall"] <= 1.5
    state = seen.json()
    assert state["time_left_s"] > 0 and state["distance_mm"] > 0 and state["skin_c"] > 20
    # the lamp is on only once the session's start is durable, so the state counts it
    assert state["daemon_ok"] is True and state["sessions_today"] == 1, state


def test_remote_stop_ends_a_running_session_within_1_s_and_does_nothing_without_one(lamp):
    lamp.start_session()
    sent_wall = time.time()
    lamp.ha.publish(f"{lamp.base_topic}/stop", "STOP", qos=1)
    lamp.daemon.wait_status(lambda s: s["state"] == "idle", what="session ended by remote STOP")
    (session,) = history_json(lamp.daemon.state_dir)["sessions"]
    assert session["end_reason"] == "stopped_remotely"
    assert session["end_wall"] - sent_wall <= 1.0
    ended = lamp.wait_event(lambda e: e["event_type"] == "session_ended", "session end event")
    assert ended.json()["code"] == "stopped_remotely"
    # No session: STOP changes nothing.
    status_before = lamp.daemon.status()
    lamp.ha.publish(f"{lamp.base_topic}/stop", "STOP", qos=1)
    wait_for(lambda: "remote STOP forwarded" in lamp.bridge.stderr(), 10, what="second STOP forwarded")
    later = lamp.daemon.wait_status(
        lambda s: (
            s["heartbeat_wall"] > time.time() - 0.5 and s["heartbeat_wall"] > status_before["heartbeat_wall"] + 1.0
        ),
        what="later status",
    )
    assert later["state"] == "idle" and later["lamp_on"] is False and not later["fault_latched"]
    assert len(history_json(lamp.daemon.state_dir)["sessions"]) == 1


def _flood(lamp, rng: random.Random, payloads: int, datagrams: int) -> None:
    topics = [
        f"{lamp.base_topic}/stop",
        f"{lamp.base_topic}/state",
        f"{lamp.base_topic}/event",
        "homeassistant/status",
        f"homeassistant/button/irlamp_{lamp.lamp_id}/stop/config",
    ]
    words = [b"START", b"start", b"ACK", b"ON", b"PRESS", b"online", b"acknowledge", b'{"start":true}', b"STOP"]
    for index in range(payloads):
        payload = rng.choice(words) if index % 4 == 0 else rng.randbytes(rng.randint(0, 64))
        lamp.ha.publish(rng.choice(topics), payload)
    socket_path = str(stop_socket_path(lamp.daemon.runtime_dir))
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
        for _ in range(datagrams):
            junk = rng.randbytes(rng.randint(0, 80))
            if junk != STOP_REQUEST:
                try:
                    sender.sendto(junk, socket_path)
                except BlockingIOError:
                    time.sleep(0.01)
    marker = lamp.ha.publish(f"{lamp.base_topic}/stop", b"flood done", qos=1)
    marker.wait_for_publish(timeout=30)


def test_random_payloads_and_datagrams_never_start_a_session_or_acknowledge(lamp):
    rng = random.Random(1414)
    _flood(lamp, rng, payloads=5000, datagrams=1000)
    lamp.daemon.keys("f")  # latch a fault, no session
    lamp.daemon.wait_status(lambda s: s["fault_latched"], what="fault latched")
    _flood(lamp, rng, payloads=5000, datagrams=1000)
    wait_for(lambda: "not a stop request" in lamp.daemon.stderr(), 10, what="daemon counted junk")
    time.sleep(1.0)  # let the last datagrams be read
    status = lamp.daemon.wait_status(lambda s: True, what="status")
    assert status["state"] == "fault" and status["fault_latched"] and not status["lamp_on"]
    history = history_json(lamp.daemon.state_dir)
    assert history["sessions"] == []
    assert all(f["ack_wall"] is None for f in history["faults"])
    assert lamp.bridge.proc.poll() is None and lamp.daemon.proc.poll() is None


def fleet(broker, *args: str) -> str:
    proc = run_cli("fleet", "--broker", f"127.0.0.1:{broker.port}", "--wait", "1.0", *args, timeout_s=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def our_row(broker, lamp) -> dict:
    rows = json.loads(fleet(broker, "--json"))
    (row,) = [r for r in rows if r["lamp_id"] == lamp.lamp_id]
    return row


def test_bridge_killed_leaves_offline_via_last_will_and_the_fleet_marks_it(lamp, broker):
    lamp.start_session()
    lamp.wait_state(lambda s: s["state"] == "running", "running")
    row = our_row(broker, lamp)
    assert row["online"] is True and row["state"] == "running" and row["name"] == f"Test lamp {lamp.lamp_id}"
    assert row["time_left_s"] > 0 and row["skin_c"] > 20 and row["sessions_today"] == 1
    table = fleet(broker, "--once")
    assert table.splitlines()[0].split()[:3] == ["LAMP", "NAME", "STATE"]
    assert any(line.startswith(lamp.lamp_id) and "running" in line for line in table.splitlines())
    count = len(lamp.ha.received())
    lamp.bridge.proc.send_signal(signal.SIGKILL)
    lamp.bridge.proc.wait(timeout=10)
    lamp.ha.wait(
        lambda m: m.topic == f"{lamp.base_topic}/availability" and m.payload == b"offline",
        20,
        what="last will 'offline'",
        since=count,
    )
    assert our_row(broker, lamp)["online"] is False
    assert any(line.startswith(lamp.lamp_id) and "OFFLINE" in line for line in fleet(broker, "--once").splitlines())


def test_fleet_names_an_unreachable_broker_in_one_line():
    proc = run_cli("fleet", "--broker", f"127.0.0.1:{free_port()}", "--json", timeout_s=60)
    assert proc.returncode == 1 and "cannot reach the broker" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("fleet", "--broker", "127.0.0.1:notaport", timeout_s=60)
    assert proc.returncode == 2 and "port" in proc.stderr


def test_daemon_stopped_or_frozen_shows_not_running(lamp):
    lamp.start_session()
    lamp.wait_state(lambda s: s["state"] == "running", "running")
    count = len(lamp.ha.received())
    os.kill(lamp.daemon.proc.pid, signal.SIGSTOP)  # frozen: status file ages
    try:
        frozen_at = lamp.daemon.status()["heartbeat_wall"]
        seen = lamp.wait_state(lambda s: s["state"] == "not running", "frozen -> not running", since=count)
        state = seen.json()
        assert state["daemon_ok"] is False and state["lamp_on"] is False and state["time_left_s"] is None
        assert seen.at_wall - frozen_at >= 3.0 - 0.3  # not before the status is 3 s old
        assert not any(
            m.json()["state"] == "running"
            for m in lamp.ha.received(f"{lamp.base_topic}/state")
            if m.at_wall > seen.at_wall
        )
    finally:
        os.kill(lamp.daemon.proc.pid, signal.SIGCONT)
    lamp.wait_state(lambda s: s["daemon_ok"], "alive again (its guard may have latched a stall)", since=count)
    count = len(lamp.ha.received())
    stopped_at = time.time()
    assert lamp.daemon.stop(signal.SIGTERM) == 0
    seen = lamp.wait_state(lambda s: s["state"] == "not running", "stopped -> not running", since=count)
    assert seen.at_wall - stopped_at <= 3.0


def test_fault_event_sent_after_broker_outage_and_bridge_reconnects(tmp_path, broker):
    if not broker.keeps_sessions:
        pytest.skip(f"{broker.kind} keeps no client sessions across a restart; needs mosquitto")
    lamp = Lamp(tmp_path, broker, persistent_ha=True)
    try:
        broker.stop()
        lamp.daemon.keys("f")  # the fault latches while the broker is down
        lamp.daemon.wait_status(lambda s: s["fault_latched"], what="fault latched")
        count = len(lamp.ha.received())
        broker.start()
        event = lamp.wait_event(lambda e: e["event_type"] == "fault", "fault event after the outage", 30)
        fault = event.json()
        assert fault["code"] == "distance_io_error" and fault["id"].startswith(f"{lamp.lamp_id}-fault-")
        assert "hold the button 3 s" in fault["advice"] and fault["blink"] == "red 1 / amber 1"
        # the bridge reconnected and republished: availability, discovery and state, live
        for topic in (f"{lamp.base_topic}/availability", f"{lamp.base_topic}/state"):
            lamp.ha.wait(lambda m, t=topic: m.topic == t and not m.retain, 30, what=f"{topic} again", since=count)
        lamp.ha.wait(lambda m: m.topic.endswith("/config") and not m.retain, 30, what="discovery again", since=count)
        assert lamp.states()[-1]["state"] == "fault"
        cursor = json.loads((lamp.bridge.state_dir / "cursor.json").read_text())
        wait_for(
            lambda: json.loads((lamp.bridge.state_dir / "cursor.json").read_text())["fault_id"] >= 1,
            10,
            what="cursor past the fault",
        )
        assert cursor["session_id"] == 0
    finally:
        lamp.close()


def test_broker_restart_bridge_reconnects_and_republishes(tmp_path, broker):
    """With any broker: after a restart that forgot every retained message (amqtt always does;
    mosquitto is made to), a client that connects afresh finds the lamp online with its discovery
    and state, sent again by the bridge."""
    lamp = Lamp(tmp_path, broker)
    try:
        broker.restart(forget=True)
        fresh = HaClient(broker.port)
        try:
            fresh.wait(
                lambda m: m.topic == f"{lamp.base_topic}/availability" and m.payload == b"online",
                30,
                what="online after the restart",
            )
            fresh.wait(
                lambda m: m.topic == f"{lamp.base_topic}/state" and m.json()["state"] == "idle",
                30,
                what="state after the restart",
            )
            fresh.wait(
                lambda m: m.topic == f"homeassistant/button/irlamp_{lamp.lamp_id}/stop/config",
                30,
                what="discovery after the restart",
            )
        finally:
            fresh.close()
    finally:
        lamp.close()
