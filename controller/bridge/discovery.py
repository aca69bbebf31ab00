"""Home Assistant MQTT discovery: one device per lamp, its entities, all retained.

Each entity's config goes to `<discovery_prefix>/<component>/irlamp_<lamp id>/<object>/config`
with a stable `unique_id`, the shared `device` block and the bridge's availability topic
(the retained last will says `offline` when the bridge dies).
"""

from __future__ import annotations

from controller.bridge.live_state import STATES
from controller.bridge.topics import OFFLINE, ONLINE, STOP_PAYLOAD, Topics

EVENT_TYPES = ("fault", "session_ended")
SOFTWARE = "irlamp"


def _value(key: str) -> str:
    return f"{{{{ value_json.{key} }}}}"


def _entities(topics: Topics) -> list[tuple[str, str, dict]]:
    """(component, object id, entity-specific keys) of every entity."""
    state = {"state_topic": topics.state}
    return [
        (
            "binary_sensor",
            "lamp_on",
            {
                **state,
                "name": "Lamp",
                "device_class": "heat",
                "value_template": "{{ 'ON' if value_json.lamp_on else 'OFF' }}",
            },
        ),
        (
            "sensor",
            "state",
            {
                **state,
                "name": "State",
                "device_class": "enum",
                "options": list(STATES),
                "value_template": _value("state"),
                "icon": "mdi:heat-wave",
            },
        ),
        (
            "sensor",
            "time_left",
            {
                **state,
                "name": "Time left",
                "device_class": "duration",
                "unit_of_measurement": "s",
                "value_template": _value("time_left_s"),
            },
        ),
        (
            "sensor",
            "distance",
            {
                **state,
                "name": "Distance",
                "device_class": "distance",
                "unit_of_measurement": "mm",
                "state_class": "measurement",
                "value_template": _value("distance_mm"),
            },
        ),
        (
            "sensor",
            "skin_temperature",
            {
                **state,
                "name": "Skin temperature",
                "device_class": "temperature",
                "unit_of_measurement": "°C",
                "state_class": "measurement",
                "value_template": _value("skin_c"),
            },
        ),
        (
            "sensor",
            "sessions_today",
            {**state, "name": "Sessions today", "icon": "mdi:counter", "value_template": _value("sessions_today")},
        ),
        (
            "sensor",
            "next_start_allowed",
            {
                **state,
                "name": "Next start allowed",
                "device_class": "timestamp",
                "value_template": _value("next_start_allowed"),
            },
        ),
        (
            "sensor",
            "last_fault",
            {**state, "name": "Last fault", "icon": "mdi:alert", "value_template": _value("last_fault")},
        ),
        (
            "binary_sensor",
            "daemon_problem",
            {
                **state,
                "name": "Daemon problem",
                "device_class": "problem",
                "value_template": "{{ 'OFF' if value_json.daemon_ok else 'ON' }}",
            },
        ),
        ("event", "events", {"state_topic": topics.event, "name": "Events", "event_types": list(EVENT_TYPES)}),
        (
            "button",
            "stop",
            {
                "command_topic": topics.stop,
                "name": "STOP session",
                "payload_press": STOP_PAYLOAD.decode(),
                "icon": "mdi:stop-circle",
            },
        ),
    ]


def discovery_messages(topics: Topics, lamp_name: str, version: str) -> list[tuple[str, dict]]:
    """[(config topic, config payload)] for every entity of this lamp."""
    device = {
        "identifiers": [topics.node_id],
        "name": lamp_name,
        "manufacturer": SOFTWARE,
        "model": "infrared heat lamp controller",
        "sw_version": version,
    }
    common = {
        "device": device,
        "origin": {"name": f"{SOFTWARE} bridge", "sw_version": version},
        "availability": [{"topic": topics.availability, "payload_available": ONLINE, "payload_not_available": OFFLINE}],
        "qos": 1,
    }
    return [
        (
            topics.discovery(component, object_id),
            {
                **common,
                **keys,
                "unique_id": f"{topics.node_id}_{object_id}",
                "object_id": f"{topics.node_id}_{object_id}",
            },
        )
        for component, object_id, keys in _entities(topics)
    ]
