"""`irlamp fleet --broker HOST[:PORT] [--json]`: every lamp whose bridge publishes on a broker.

Reads the retained `<prefix>/+/state` and `<prefix>/+/availability` topics; a lamp whose bridge
went offline (its last will) is marked OFFLINE. Read-only: it never publishes anything.
"""

from __future__ import annotations

import json
import sys
import threading
import time

import paho.mqtt.client as mqtt

from controller.service.status_reader import local_time

COLUMNS = ("LAMP", "NAME", "STATE", "LEFT", "SKIN", "TODAY", "LAST FAULT", "LAST SEEN")


def parse_broker(text: str) -> tuple[str, int]:
    """'host' or 'host:port' (default 1883); ValueError with a one-line reason."""
    host, _, port = text.rpartition(":") if text.count(":") == 1 else (text, "", "")
    if not port:
        return text, 1883
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"--broker {text}: the port must be a number 1..65535")
    return host, int(port)


class FleetCollector:
    def __init__(self, prefix: str):
        self.prefix = prefix
        self.lamps: dict[str, dict] = {}
        self.lock = threading.Lock()

    def on_message(self, _client, _userdata, message) -> None:
        parts = message.topic.split("/")
        if len(parts) < 2 or parts[-1] not in ("state", "availability"):
            return
        lamp = parts[-2]
        with self.lock:
            entry = self.lamps.setdefault(lamp, {"lamp_id": lamp, "availability": None, "state": None})
            if parts[-1] == "availability":
                entry["availability"] = message.payload.decode("utf-8", "replace")
                return
            try:
                state = json.loads(message.payload)
            except ValueError:
                return
            if isinstance(state, dict):
                entry["state"] = state

    def rows(self) -> list[dict]:
        with self.lock:
            lamps = [dict(v) for v in self.lamps.values()]
        out = []
        for lamp in sorted(lamps, key=lambda entry: entry["lamp_id"]):
            state = lamp["state"] or {}
            out.append(
                {
                    "lamp_id": lamp["lamp_id"],
                    "name": state.get("name"),
                    "online": lamp["availability"] == "online",
                    "state": state.get("state"),
                    "time_left_s": state.get("time_left_s"),
                    "skin_c": state.get("skin_c"),
                    "sessions_today": state.get("sessions_today"),
                    "last_fault": state.get("last_fault"),
                    "fault_latched": state.get("fault_latched"),
                    "last_seen": state.get("seen"),
                }
            )
        return out


def format_rows(rows: list[dict]) -> list[str]:
    def cell(row):
        left = row["time_left_s"]
        skin = row["skin_c"]
        state = row["state"] or "?"
        return (
            row["lamp_id"],
            row["name"] or "?",
            state if row["online"] else f"OFFLINE (was {state})",
            "—" if left is None else f"{int(left) // 60:02d}:{int(left) % 60:02d}",
            "—" if skin is None else f"{skin:.1f} °C",
            "?" if row["sessions_today"] is None else str(row["sessions_today"]),
            (row["last_fault"] or "none") + (" (LATCHED)" if row["fault_latched"] else ""),
            local_time(row["last_seen"], None, "%H:%M:%S"),
        )

    table = [COLUMNS, *[cell(row) for row in rows]]
    widths = [max(len(str(line[i])) for line in table) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(str(value).ljust(width) for value, width in zip(line, widths, strict=True)).rstrip() for line in table
    ]
    return lines if rows else [*lines, "(no lamps on this broker yet)"]


def fleet_command(broker: str, prefix: str, as_json: bool, wait_s: float, live: bool, out=None, err=None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    try:
        host, port = parse_broker(broker)
    except ValueError as exc:
        print(f"irlamp fleet: {exc}", file=err)
        return 2
    collector = FleetCollector(prefix)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="", clean_session=True)
    client.on_message = collector.on_message
    client.on_connect = lambda c, *_: c.subscribe([(f"{prefix}/+/state", 1), (f"{prefix}/+/availability", 1)])
    try:
        client.connect(host, port, 30)
    except OSError as exc:
        print(f"irlamp fleet: cannot reach the broker {host}:{port}: {exc.strerror or exc}", file=err)
        return 1
    client.loop_start()
    try:
        time.sleep(wait_s)
        if as_json:
            print(json.dumps(collector.rows(), sort_keys=True), file=out)
            return 0
        while True:
            if live:
                out.write("\x1b[H\x1b[2J")
            print("\n".join(format_rows(collector.rows())), file=out, flush=True)
            if not live:
                return 0
            time.sleep(2.0)
    except KeyboardInterrupt:
        return 0
    finally:
        client.disconnect()
        client.loop_stop()
