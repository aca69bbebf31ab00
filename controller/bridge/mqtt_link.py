"""The bridge's MQTT connection (paho-mqtt >= 2, VERSION2 callbacks).

Connects in the background and reconnects with exponential backoff (paho's own loop thread);
a broker that is down only delays publishing, and the daemon never notices. The retained last
will on the availability topic says `offline` when the bridge dies; `online` is published on
every connect. Callbacks only set flags and forward STOP: the bridge's main loop does the rest.
"""

from __future__ import annotations

import logging
import ssl
import threading

import paho.mqtt.client as mqtt

from controller.bridge.topics import HA_ONLINE, OFFLINE, ONLINE, STOP_PAYLOAD, Topics
from controller.service.remote_stop import IgnoredInputs, send_stop_request

log = logging.getLogger("irlamp.bridge")


class MqttLink:
    def __init__(self, broker, topics: Topics, stop_socket, password: str | None, client_id: str):
        self.topics = topics
        self.stop_socket = stop_socket
        self.generation = 0  # +1 at every successful connect
        self.ha_online = threading.Event()
        self.connected = False
        self.stops_forwarded = 0
        self.ignored = IgnoredInputs(f"MQTT topic {topics.stop}", log)
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
        client.will_set(topics.availability, OFFLINE, qos=1, retain=True)
        if broker.username is not None:
            client.username_pw_set(broker.username, password)
        if broker.tls:
            client.tls_set(
                ca_certs=broker.ca_file,
                certfile=broker.client_cert_file,
                keyfile=broker.client_key_file,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        client.reconnect_delay_set(broker.reconnect_min_s, broker.reconnect_max_s)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self.client = client
        self.broker = broker

    def start(self) -> None:
        self.client.connect_async(self.broker.host, self.broker.port, self.broker.keepalive_s)
        self.client.loop_start()

    def publish(self, topic: str, payload: str | bytes, *, retain: bool, qos: int = 1):
        return self.client.publish(topic, payload, qos=qos, retain=retain)

    def stop(self) -> None:
        """Say `offline` (retained) and disconnect cleanly."""
        if self.connected:
            info = self.client.publish(self.topics.availability, OFFLINE, qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=2.0)
            except (RuntimeError, ValueError) as exc:
                log.warning("could not say offline before leaving: %s", exc)
        self.client.disconnect()
        self.client.loop_stop()

    # -- paho callbacks (paho's thread) --------------------------------------------------
    def _on_connect(self, client, _userdata, _flags, reason_code, _properties) -> None:
        if reason_code.is_failure:
            log.warning("broker %s:%s refused the connection: %s", self.broker.host, self.broker.port, reason_code)
            return
        log.info("connected to %s:%s", self.broker.host, self.broker.port)
        client.publish(self.topics.availability, ONLINE, qos=1, retain=True)
        client.subscribe([(self.topics.stop, 1), (self.topics.ha_status, 1)])
        self.connected = True
        self.generation += 1

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, _properties) -> None:
        if self.connected:
            log.warning("disconnected from the broker (%s); reconnecting with backoff", reason_code)
        self.connected = False

    def _on_message(self, _client, _userdata, message) -> None:
        if message.topic == self.topics.ha_status:
            if message.payload == HA_ONLINE:
                self.ha_online.set()
            return
        if message.topic != self.topics.stop:
            return
        if message.payload != STOP_PAYLOAD or message.retain:
            # a retained STOP would stop every session after each reconnect: not a press
            self.ignored.add()
            return
        try:
            send_stop_request(self.stop_socket)
            self.stops_forwarded += 1
            log.warning("remote STOP forwarded to the daemon")
        except OSError as exc:
            log.warning("remote STOP not delivered (is the daemon running?): %s", exc.strerror or exc)
