"""The daemon at rest and at work: start-up time, RSS, CPU per hour, bytes per reading on MQTT,
on the wire and on disk. Two runs of the real `python -m agent run`:

- start: a fresh state dir and a one-hour interval, so after its first round the daemon only idles:
  exec -> READY is the time to the first committed reading, and the idle window gives the CPU the
  loop costs between rounds (it wakes at least once a second).
- work: rounds every `interval_s` through a counting relay. CPU per round is the window's CPU less
  the idle rate; an hour at the default 60 s interval is then 60 rounds plus 3600 s of idling.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from bench import proc
from bench.child import PREFIX, Daemon, buffer_counts, telemetry_readings, write_config
from bench.net import Broker, Counter, Relay
from bench.table import Row, info, judged

DEFAULT_INTERVAL_S = 60.0
ROUNDS_PER_DAY = 86400 / DEFAULT_INTERVAL_S


@dataclass(frozen=True, slots=True, kw_only=True)
class Steady:
    rows: list[Row]
    payloads: list[tuple[str, bytes]]  # telemetry messages seen, for the layout experiment
    readings_per_round: float


def _idle(broker: Broker, root: Path, logs: Path, idle_s: float) -> tuple[float, float, int]:
    """(seconds to READY, idle CPU seconds per second, RSS kB when idle)."""
    state = root / "start" / "state"
    config = write_config(
        root / "start",
        broker_url=broker.url(),
        interval_s=3600,
        state_dir=state,
        status_dir=logs / "status-start",
    )
    daemon = Daemon(config, state, logs / "agent-start.log")
    try:
        ready_s = daemon.wait_ready()
        time.sleep(2.0)  # the first publish and its acknowledgement
        first = proc.sample(daemon.pid)
        time.sleep(idle_s)
        last = proc.sample(daemon.pid)
    finally:
        daemon.stop()
    return ready_s, proc.cpu_between(first, last) / idle_s, last.rss_kb


def measure(broker: Broker, root: Path, logs: Path, *, quick: bool) -> Steady:
    idle_s, window_s, interval_s = (10.0, 30.0, 2.0) if quick else (20.0, 120.0, 2.0)
    ready_s, idle_rate, idle_rss = _idle(broker, root, logs, idle_s)

    relay = Relay(broker.port)
    counter = Counter(broker.port, f"{PREFIX}/#", telemetry_readings)
    state = root / "work" / "state"
    config = write_config(
        root / "work",
        broker_url=broker.url(relay.port),
        interval_s=interval_s,
        state_dir=state,
        status_dir=logs / "status-work",
    )
    daemon = Daemon(config, state, logs / "agent-work.log")
    try:
        daemon.wait_ready()
        time.sleep(interval_s * 2 + 0.5)  # past the first rounds and their publishes
        rounds_seen: set[float] = set()
        first, wire0, mqtt0 = proc.sample(daemon.pid), relay.wire(), counter.snapshot()
        seq0 = buffer_counts(state)[1]
        started = time.monotonic()
        peak_rss = 0
        while time.monotonic() - started < window_s:
            time.sleep(0.25)
            peak_rss = max(peak_rss, proc.sample(daemon.pid).rss_kb)
            rounds_seen.add(daemon.status().get("last_round_at") or 0.0)
        elapsed = time.monotonic() - started
        last, wire1, mqtt1 = proc.sample(daemon.pid), relay.wire(), counter.snapshot()
        seq1 = buffer_counts(state)[1]
        topic_bytes = counter.topic_bytes
        payloads = list(counter.samples)
    finally:
        daemon.stop()
        counter.close()
        relay.close()

    rounds = max(1, len(rounds_seen) - 1)  # the first value seen belongs to the round before
    committed = seq1 - seq0
    per_round = committed / rounds
    cpu_round = max(0.0, proc.cpu_between(first, last) - idle_rate * elapsed) / rounds
    cpu_hour = cpu_round * 3600 / DEFAULT_INTERVAL_S + idle_rate * 3600
    messages, mqtt_bytes, delivered = (b - a for a, b in zip(mqtt0, mqtt1, strict=True))
    wire = wire1 - wire0
    disk_per_reading = (last.write_bytes - first.write_bytes) / max(1, committed)
    topic_share = topic_bytes / max(1, counter.messages)
    rows = [
        judged("RSS, steady (work run)", last.rss_kb / 1024, "MB", at_most=25),
        info(
            "RSS, peak in the work window / idle",
            f"{peak_rss / 1024:.1f} / {idle_rss / 1024:.1f}",
            "MB",
        ),
        judged("CPU per hour at interval 60 s (scaled)", cpu_hour, "CPU-s", at_most=3, digits=2),
        info(
            "  CPU per round / idle CPU per s",
            f"{cpu_round * 1000:.1f} ms / {idle_rate * 1000:.2f} ms",
            "",
        ),
        info("time from exec to first committed reading (READY)", ready_s, "s", digits=2),
        info("readings per round", per_round, "", digits=1),
        judged(
            "MQTT bytes per reading (payload + topic)",
            mqtt_bytes / max(1, delivered),
            "B",
            at_most=10,
        ),
        info("  topic bytes per message / messages", f"{topic_share:.0f} B / {messages}", ""),
        info(
            "loopback wire bytes per reading (TCP payload + 52 B/segment)",
            wire.total / max(1, delivered),
            "B",
        ),
        info(
            "  wire: up / down / segments", f"{wire.up:,} / {wire.down:,} / {wire.segments:,}", ""
        ),
        judged(
            "disk bytes written per reading (/proc/PID/io)",
            disk_per_reading,
            "B",
            at_most=150,
            digits=0,
        ),
        info(
            "SD wear per day at interval 60 s",
            disk_per_reading * per_round * ROUNDS_PER_DAY / 2**20,
            "MiB/day",
        ),
    ]
    return Steady(rows=rows, payloads=payloads, readings_per_round=per_round)
