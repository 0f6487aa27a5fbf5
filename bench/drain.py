"""Backlog drain: a buffer filled with 100,000 realistic readings (as after days offline), then the
real daemon started against the local mosquitto; readings per second until the buffer is empty,
and the daemon's peak RSS meanwhile."""

from __future__ import annotations

import time
from pathlib import Path

from agent.buffer.store import Buffer
from bench import proc, samples
from bench.child import PREFIX, SITE, Daemon, buffer_counts, telemetry_readings, write_config
from bench.net import Broker, Counter
from bench.table import Row, info, judged

BACKLOG = 100_000


def fill(state: Path, base: list[samples.Sample], target: int) -> tuple[int, float]:
    """Append rounds until the buffer holds `target` readings; (readings, seconds taken)."""
    started = time.monotonic()
    buffer = Buffer.open(state / "buffer.sqlite", site=SITE, max_readings=1_000_000)
    try:
        count = 0
        start_ms = int(time.time() * 1000) - 86_400_000 * 3
        for stamp, round_samples in samples.rounds(base, target, start_ms=start_ms):
            take = round_samples[: target - count]
            buffer.append(stamp, take)
            count += len(take)
            if count >= target:
                break
    finally:
        buffer.close()
    return count, time.monotonic() - started


def measure(broker: Broker, root: Path, logs: Path, *, quick: bool) -> list[Row]:
    state = root / "state"
    base = samples.template(root / "template")
    filled, fill_s = fill(state, base, BACKLOG)
    config = write_config(
        root, broker_url=broker.url(), interval_s=3600, state_dir=state, status_dir=logs / "status"
    )
    counter = Counter(broker.port, f"{PREFIX}/#", telemetry_readings)
    daemon = Daemon(config, state, logs / "agent-drain.log")
    peak = 0
    timeout_s = 120 if quick else 300
    try:
        daemon.wait_ready()
        deadline = time.monotonic() + timeout_s
        # Done when the subscriber has the whole backlog (the daemon's own first round, ~50
        # readings, may count towards it). The file itself keeps the last acknowledged message
        # until the next round's commit deletes it, so "file empty" would wait for that round.
        while counter.snapshot()[2] < filled and time.monotonic() < deadline:
            time.sleep(0.05)
            peak = max(peak, proc.sample(daemon.pid).rss_kb)
        emptied = time.monotonic()
        backlog = buffer_counts(state)[0]
        last = proc.sample(daemon.pid)
    finally:
        daemon.stop()
        counter.close()
    first = counter.first_at or emptied
    _, _, delivered = counter.snapshot()
    rate = delivered / max(1e-6, emptied - first)
    mqtt_per_reading = counter.bytes / max(1, delivered)
    rows = [
        judged(f"drain: readings/s, {filled:,} backlog", rate, "/s", at_least=20_000, digits=0),
        info(
            "  drain: took / delivered / rows left in the file (acked, deleted next round)",
            f"{emptied - first:.1f} s / {delivered:,} / {backlog:,}",
            "",
        ),
        judged("  drain: peak RSS (VmHWM)", max(peak, last.hwm_kb) / 1024, "MB", at_most=25),
        info("  drain: MQTT bytes per reading (500-reading batches)", mqtt_per_reading, "B"),
        info("  buffer fill, one append per round", filled / fill_s, "readings/s", digits=0),
    ]
    return rows
