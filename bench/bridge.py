"""`make bench` phase 4 (runs alone too: `make bench-bridge`, or `python -m bench.bridge`):
the MQTT bridge's own cost and speed, against a real broker.

A real `irlamp run --simulate` daemon, `irlamp bridge` and a broker (mosquitto, else amqtt,
as in the tests) on loopback. Measured from outside the bridge's process: CPU (utime + stime
of all its threads per wall second, /proc/<pid>/stat) with the lamp idle and with a session
running, each the median of 10 s windows as for irlamp (`procstats.cpu_over`; every window and
the span's mean are kept in `cpu_windows`), and its resident memory (VmRSS at the end, VmHWM
peak).
Change -> publish latency: the bench polls the daemon's status file every 5 ms; for each new
status it takes the daemon's `heartbeat_wall` (when the daemon wrote it) and the arrival, at
a subscriber on the same machine, of the bridge's state message carrying that status's values.
Writes bench/bridge_results.json (git-ignored) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
for path in (REPO, REPO / "tests"):  # the tests' broker, daemon and bridge launchers
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from bench import report  # noqa: E402
from bench.procstats import cpu_over, status_field_kb  # noqa: E402

TARGET_CPU_PERCENT = 0.5
TARGET_RSS_MB = 35.0


def _key(values: dict) -> tuple:
    """What identifies one status write in the bridge's message (the values it derives)."""
    from controller.bridge.live_state import state_payload

    derived = state_payload(values, stale_after_s=1e9, now_wall=values["heartbeat_wall"])
    return derived["state"], derived["time_left_s"], derived["distance_mm"], derived["skin_c"]


class StatusPoller:
    """First sight of every status the daemon writes: {key: heartbeat_wall}."""

    def __init__(self, path: Path):
        self.path, self.seen, self._stop = path, {}, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last = None
        while not self._stop.wait(0.005):
            try:
                text = self.path.read_text()
                if text == last:
                    continue
                last = text
                status = json.loads(text)
            except (OSError, ValueError):
                continue
            self.seen.setdefault(_key(status), status["heartbeat_wall"])

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


def run_bridge_bench(idle_s: float, running_s: float, out_path: Path | None, log=print) -> dict:
    from mqtt_helpers import HaClient, RunningBridge, TestBroker, choose_broker
    from scenario_helpers import RunningDaemon

    kind, why = choose_broker()
    if kind is None:
        return {"errors": [f"no broker: {why}"]}
    with tempfile.TemporaryDirectory(prefix="irlamp-bridge-bench-") as scratch:
        base = Path(scratch)
        broker = TestBroker(kind, base / "broker")
        broker.start()
        daemon = RunningDaemon(base / "lamp")
        ha = bridge = poller = None
        try:
            daemon.wait_message("READY=1", timeout_s=20)
            ha = HaClient(broker.port)
            bridge = RunningBridge(base / "lamp", broker.port, daemon.state_dir, daemon.runtime_dir, lamp_id="bench")
            ha.wait(
                lambda m: m.topic == "irlamp/bench/state" and m.json()["state"] == "idle", 20, what="bridge publishing"
            )
            time.sleep(2.0)  # start-up imports settle
            log(f"bridge bench: idle window {idle_s:.0f} s (broker {kind})")
            idle_windows = cpu_over(bridge.proc.pid, idle_s)
            poller = StatusPoller(daemon.status_file)
            daemon.keys("space")
            daemon.wait_status(lambda s: s["lamp_on"], what="session running")
            log(f"bridge bench: session window {running_s:.0f} s")
            running_windows = cpu_over(bridge.proc.pid, running_s)
            rss_mb = round(status_field_kb(bridge.proc.pid, "VmRSS") / 1024.0, 1)
            hwm_mb = round(status_field_kb(bridge.proc.pid, "VmHWM") / 1024.0, 1)
            poller.stop()
            latencies = []
            for message in ha.received("irlamp/bench/state"):
                written = poller.seen.get(
                    _key(
                        {**message.json(), "heartbeat_wall": 0, "next_start_allowed_wall": None, "pid": daemon.proc.pid}
                    )
                )
                if written is not None and message.json()["state"] == "running":
                    latencies.append(1000.0 * (message.at_wall - written))
        finally:
            for part in (poller, bridge, ha):
                if part is not None:
                    (part.stop if isinstance(part, StatusPoller) else part.close)()
            daemon.close()
            broker.stop()
    cpu = {"idle": idle_windows["cpu_percent"], "running": running_windows["cpu_percent"]}
    results = {
        "broker": kind,
        "idle_s": idle_s,
        "running_s": running_s,
        "cpu_percent": cpu,
        "cpu_windows": {"idle": idle_windows, "running": running_windows},
        "rss_mb": rss_mb,
        "rss_peak_mb": hwm_mb,
        "change_to_publish_ms": {**report.summarize(latencies), "n": len(latencies)},
        "targets": {
            "cpu_percent_max": TARGET_CPU_PERCENT,
            "rss_mb_max": TARGET_RSS_MB,
            "met": max(cpu["idle"], cpu["running"]) <= TARGET_CPU_PERCENT and hwm_mb <= TARGET_RSS_MB,
        },
        "errors": [] if latencies else ["no state message matched a status write"],
    }
    if out_path is not None:
        out_path.write_text(json.dumps(results, indent=2) + "\n")
    return results


def table(results: dict) -> str:
    if "cpu_percent" not in results:
        return "bridge bench: " + "; ".join(results["errors"])
    lat, cpu = results["change_to_publish_ms"], results["cpu_percent"]
    windows = results.get("cpu_windows", {})  # results written before stop 21 have none
    rows = [
        (f"MQTT bridge (broker {results['broker']})", "measured", "target"),
        (f"CPU idle, % of one core ({results['idle_s']:.0f} s)", f"{cpu['idle']:.2f}", f"<= {TARGET_CPU_PERCENT}"),
        (f"  {report.spread_text(windows.get('idle', {}))}", "", ""),
        (
            f"CPU in a session, % of one core ({results['running_s']:.0f} s)",
            f"{cpu['running']:.2f}",
            f"<= {TARGET_CPU_PERCENT}",
        ),
        (f"  {report.spread_text(windows.get('running', {}))}", "", ""),
        ("RSS now / peak, MB", f"{results['rss_mb']:.1f} / {results['rss_peak_mb']:.1f}", f"<= {TARGET_RSS_MB:.0f}"),
        (
            f"status change -> on the broker, p50 / p99 / max ms [n={lat['n']}]",
            f"{lat.get('p50', 0):.0f} / {lat.get('p99', 0):.0f} / {lat.get('max', 0):.0f}",
            "<= 1500",
        ),
    ]
    return "\n".join(f"{a:<58}  {b:<14}  {c}".rstrip() for a, b, c in rows if a.strip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bridge", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 s windows instead of 30 s")
    parser.add_argument("--out", default=str(REPO / "bench" / "bridge_results.json"))
    args = parser.parse_args(argv)
    window_s = 3.0 if args.quick else 30.0
    results = run_bridge_bench(
        window_s, window_s, Path(args.out), log=lambda msg: print(msg, file=sys.stderr, flush=True)
    )
    print(table(results))
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
