"""`python -m bench.ingest`: the collector's sustained ingest rate, readings per second, into
PostgreSQL and into SQLite, through real MQTT messages.

A test-owned mosquitto on loopback, the real collector as its own process (`python -m collector run`),
and a publisher sending schema 2 payloads as the agents do: one round of 47 readings per message (a
province in steady state) and 500-reading messages (gateways draining a backlog after an outage). The
rate is readings stored (committed, so acknowledged) divided by the time from the first publish to
the last row in the database. PostgreSQL is a cluster of the benchmark's own with its default
durability (fsync on); SQLite runs with synchronous=FULL as the collector sets it.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

if __package__ in (None, ""):  # `python bench/ingest.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.contract.telemetry import encode_telemetry
from agent.reading import Reading
from bench.net import HOST, Broker
from bench.table import Row, info, judged, render
from collector.store import open_database

# The tests' own PostgreSQL cluster and collector process: one owner for each.
from tests.support.collector_proc import PREFIX, CollectorProcess, write_config
from tests.support.pg_server import PostgresServer

GOAL_PG = 20_000.0
_LATENCY = ("rtt_min_ms", "rtt_avg_ms", "rtt_max_ms", "jitter_ms", "loss_percent")
_THROUGHPUT = ("rx_bytes", "tx_bytes", "rx_bps", "tx_bps", "rx_packets", "tx_packets",
               "rx_errors", "tx_errors", "rx_drops", "tx_drops")  # fmt: skip
_SYSTEM = ("cpu_percent", "memory_used_bytes", "load_1m", "load_5m", "disk_used_bytes",
           "temperature_celsius")  # fmt: skip
SERIES = [
    *(f"latency.{m}" for m in _LATENCY),
    *(f"throughput.{m}" for m in _THROUGHPUT),
    *(f"system.{m}" for m in _SYSTEM),
    "uptime.system_s",
    "uptime.agent_s",
    "uptime.backhaul_up",
]


def _series() -> list[tuple[str, dict[str, str]]]:
    out: list[tuple[str, dict[str, str]]] = []
    for metric in SERIES:
        family = metric.split(".")[0]
        if family == "latency":
            out += [(metric, {"target": t, "method": "icmp-raw"}) for t in ("gateway", "1.1.1.1")]
        elif family == "throughput":
            out += [(metric, {"iface": i}) for i in ("eth0", "wlan0")]
        else:
            out.append((metric, {}))
    return out[:47]


def payloads(sites: int, per_message: int, total: int) -> Iterator[tuple[str, bytes]]:
    """(topic, payload) carrying `total` readings, `per_message` each, spread over `sites`."""
    series = _series()
    seqs = dict.fromkeys(range(sites), 0)
    sent, site, start = 0, 0, 1_800_000_000_000
    while sent < total:
        readings = []
        for j in range(per_message):
            seqs[site] += 1
            seq = seqs[site]
            metric, tags = series[(seq - 1) % len(series)]
            round_no = (seq - 1) // len(series)
            readings.append(Reading(seq=seq, metric=metric, value=round(seq * 1.37 + j, 3),
                                    tags=tags, ts_ms=start + round_no * 60_000,
                                    mono_ms=round_no * 60_000, boot_id="b", synced=True))  # fmt: skip
        name = f"bench-{site:04d}"
        yield f"{PREFIX}/{name}/telemetry", encode_telemetry(name, readings)
        sent += per_message
        site = (site + 1) % sites


def stored(url: str) -> int:
    db = open_database(url)
    try:
        return int(db.execute("SELECT count(*) FROM readings")[0][0])
    finally:
        db.close()


def measure(broker: Broker, url: str, workdir: Path, per_message: int, total: int) -> float:
    """Readings per second from the first publish to the last committed row."""
    messages = list(payloads(1000 if per_message < 100 else 200, per_message, total))
    expected = len(messages) * per_message
    config = write_config(workdir, broker_url=broker.url(), database_url=url,
                          client_id=f"bench-{per_message}")  # fmt: skip
    collector = CollectorProcess(config).start()
    try:
        publisher = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        publisher.max_inflight_messages_set(200)
        publisher.max_queued_messages_set(0)
        publisher.connect(HOST, broker.port)
        publisher.loop_start()
        started = time.monotonic()
        done = threading.Event()

        def publish() -> None:
            for topic, payload in messages:
                publisher.publish(topic, payload, qos=1)
            done.set()

        threading.Thread(target=publish, daemon=True).start()
        while stored(url) < expected:
            if time.monotonic() - started > 600:
                raise RuntimeError(f"only {stored(url)} of {expected} readings stored in 600 s")
            time.sleep(0.2)
        elapsed = time.monotonic() - started
        publisher.loop_stop()
        publisher.disconnect()
        collector.terminate()
    finally:
        collector.__exit__()
    return expected / elapsed


def main() -> int:
    total = int(os.environ.get("BENCH_INGEST_READINGS", "200000"))
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        root = Path(tmp)
        broker = Broker(root / "broker")
        postgres = PostgresServer(durable=True).start()
        try:
            for per_message in (47, 500):
                with_pg = measure(broker, postgres.create_database(f"bench_{per_message}"),
                                  root / f"pg-{per_message}", per_message, total)  # fmt: skip
                rows.append(judged(f"PostgreSQL, {per_message} readings/message", with_pg,
                                   "readings/s", at_least=GOAL_PG, digits=0))  # fmt: skip
                url = f"sqlite://{root}/sqlite-{per_message}/collector.sqlite"
                with_sqlite = measure(broker, url, root / f"sqlite-{per_message}", per_message,
                                      total)  # fmt: skip
                rows.append(info(f"SQLite, {per_message} readings/message", with_sqlite,
                                 "readings/s", digits=0))  # fmt: skip
            rows.append(info("readings per run", total, "", digits=0))
        finally:
            postgres.stop()
            broker.stop()
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(render(rows, machine))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
