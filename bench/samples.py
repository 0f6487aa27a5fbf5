"""Realistic rounds for filling a buffer: the real probes measured once on this machine (pinging
127.0.0.1 only), then varied round by round the way counters and round trips vary."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

from agent.clock import SystemClock
from agent.config.load import load_config
from agent.daemon.compose import Sources, build_probes
from agent.daemon.rounds import measure
from agent.reading import Sample, Stamp
from bench.child import write_config

BOOT_ID = "5b0c2a8e-3f7d-4c1a-9e6b-2d4f8a1c7e90"


def template(workdir: Path) -> list[Sample]:
    """One round of the real probes (the speed test left out: it is off by default)."""
    config = load_config(
        write_config(
            workdir, broker_url="mqtt://127.0.0.1:1", interval_s=60, state_dir=workdir / "state"
        )
    )
    probes = [
        p for p in build_probes(config, Sources(clock=SystemClock())) if p.name != "speedtest"
    ]
    measure(probes)  # counters need a baseline to make rates
    samples, _ = measure(probes)
    samples += [
        Sample(metric="buffer.backlog_readings", value=0),
        Sample(metric="buffer.dropped_total", value=0),
        Sample(metric="publisher.rejected_total", value=0),
    ]
    return samples


def rounds(
    base: list[Sample], count: int, *, start_ms: int, interval_ms: int = 60_000, seed: int = 1
) -> Iterator[tuple[Stamp, list[Sample]]]:
    """`count` rounds a minute apart: integer counters grow, fractional values wander by a few
    per cent, as a real site's do."""
    rng = random.Random(seed)
    values = [s.value for s in base]
    for index in range(count):
        stamp = Stamp(
            ts_ms=start_ms + index * interval_ms,
            mono_ms=3_600_000 + index * interval_ms,
            boot_id=BOOT_ID,
            synced=True,
        )
        samples = []
        for position, sample in enumerate(base):
            value = values[position]
            if value == int(value) and value > 1000:
                value += rng.randint(0, 50_000)  # a counter
            elif value != int(value):
                value = round(value * rng.uniform(0.95, 1.05), 3)
            values[position] = value
            samples.append(Sample(metric=sample.metric, value=value, tags=sample.tags))
        yield stamp, samples
