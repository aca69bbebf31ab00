"""The bridge's MQTT topics, all derived from the config and the lamp id."""

from __future__ import annotations

from dataclasses import dataclass

ONLINE, OFFLINE = "online", "offline"
STOP_PAYLOAD = b"STOP"
HA_ONLINE = b"online"


@dataclass(frozen=True)
class Topics:
    lamp_id: str
    prefix: str
    discovery_prefix: str

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.lamp_id}"

    @property
    def state(self) -> str:  # retained JSON: the live state
        return f"{self.base}/state"

    @property
    def event(self) -> str:  # JSON per fault / session end, QoS 1, not retained
        return f"{self.base}/event"

    @property
    def availability(self) -> str:  # retained 'online' / 'offline' (last will)
        return f"{self.base}/availability"

    @property
    def stop(self) -> str:  # the STOP button's command topic (the only input)
        return f"{self.base}/stop"

    @property
    def ha_status(self) -> str:  # Home Assistant's birth / last will
        return f"{self.discovery_prefix}/status"

    @property
    def node_id(self) -> str:
        return f"irlamp_{self.lamp_id}"

    def discovery(self, component: str, object_id: str) -> str:
        return f"{self.discovery_prefix}/{component}/{self.node_id}/{object_id}/config"
