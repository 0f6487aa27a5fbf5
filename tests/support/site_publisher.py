"""Publishes like a gateway: real encoded telemetry (`encode_telemetry`) and retained status messages,
to the tests' own mosquitto, for sites the test names."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping

import paho.mqtt.client as mqtt

from agent.contract.telemetry import encode_telemetry
from agent.contract.topics import topic
from agent.reading import Reading


def round_readings(seq: int, ts_ms: int, *, rtt: float = 620.0, up: bool = True) -> list[Reading]:
    """One measuring round of a gateway, seqs from `seq` on."""
    figures: list[tuple[str, float, Mapping[str, str]]] = [
        ("latency.rtt_avg_ms", rtt if up else 0.0, {"target": "1.1.1.1", "method": "icmp-raw"}),
        ("latency.loss_percent", 1.0 if up else 100.0, {"target": "1.1.1.1", "method": "icmp-raw"}),
        ("latency.rtt_avg_ms", 2.0, {"target": "gateway", "method": "icmp-raw", "hop": "first"}),
        ("throughput.rx_bps", 1_500_000.0, {"iface": "wwan0"}),
        ("throughput.tx_bps", 250_000.0, {"iface": "wwan0"}),
        ("throughput.rx_bps", 9_000_000.0, {"iface": "wlan0"}),
        ("clients.neighbours_count", 4.0, {"iface": "wlan0"}),
        ("uptime.backhaul_up", 1.0 if up else 0.0, {}),
        ("buffer.backlog_readings", 3.0, {}),
        ("buffer.dropped_total", 0.0, {}),
        ("system.undervoltage_now_bool", 0.0, {}),
        ("system.temperature_celsius", 51.0, {"zone": "cpu"}),
    ]
    return [
        Reading(seq=seq + i, metric=m, value=v, tags=dict(t), ts_ms=ts_ms, mono_ms=ts_ms,
                boot_id="boot-1", synced=True)
        for i, (m, v, t) in enumerate(figures)
    ]  # fmt: skip


class SitePublisher:
    """One MQTT connection publishing for several sites; `start` sends a round per site every
    `interval_s` for the sites in `active` until `stop`."""

    def __init__(self, host: str, port: int, prefix: str, sites: list[str]) -> None:
        self._prefix = prefix
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self._client.connect(host, port)
        self._client.loop_start()
        self.active = set(sites)
        self._seq = dict.fromkeys(sites, 1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def status(self, site: str, state: str) -> None:
        body = {"state": state, "version": "0.9.0", "config": "cfg-" + site[-2:],
                "ts": int(time.time() * 1000)}  # fmt: skip
        info = self._client.publish(
            topic(self._prefix, site, "status"), json.dumps(body), qos=1, retain=True
        )
        info.wait_for_publish(10)

    def publish_round(self, site: str, **kwargs: float | bool) -> None:
        seq = self._seq[site]
        readings = round_readings(seq, int(time.time() * 1000), **kwargs)  # type: ignore[arg-type]
        self._seq[site] = seq + len(readings)
        payload = encode_telemetry(site, readings)
        info = self._client.publish(topic(self._prefix, site, "telemetry"), payload, qos=1)
        info.wait_for_publish(10)

    def _loop(self, interval_s: float = 0.5) -> None:
        while not self._stop.wait(interval_s):
            for site in sorted(self.active):
                self.publish_round(site)

    def start(self) -> SitePublisher:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self._client.loop_stop()
        self._client.disconnect()
