"""`village-agent once`: measure one round and print it; nothing is stored or sent (Telegraf's
`--test`)."""

from __future__ import annotations

import argparse
import json
import sys
import time

from agent import logs
from agent.cli.exits import EX_OK, EX_SOFTWARE
from agent.clock import SystemClock
from agent.config.schema import Config
from agent.daemon.compose import Sources, build_probes, speedtest_probe
from agent.daemon.rounds import measure
from agent.probes.base import ProbeError


def cmd_once(args: argparse.Namespace, config: Config) -> int:
    """Measure a baseline, wait a second, measure again and print the second round."""
    logs.configure(config.log.level)
    clock = SystemClock()
    # The scheduled speed test never runs here: it costs metered bytes, so only --speedtest asks.
    sources = Sources(clock=clock)
    probes = [p for p in build_probes(config, sources) if p.name != "speedtest"]
    # Counters need two reads to make a rate: take a baseline, wait a second, then the real round.
    measure(probes)
    time.sleep(1.0)
    samples, _failed = measure(probes)
    if args.speedtest:
        try:
            config.state_dir.mkdir(parents=True, exist_ok=True)
            samples += speedtest_probe(config, sources).run(trigger="manual")
        except (OSError, ProbeError) as err:
            print(f"speed test not run: {err}", file=sys.stderr)
            return EX_SOFTWARE
    now_ms = round(clock.wall() * 1000)
    for sample in samples:
        if args.json:
            record = {
                "metric": sample.metric,
                "value": sample.value,
                "tags": dict(sample.tags),
                "ts": now_ms,
            }
            print(json.dumps(record, separators=(",", ":")))
        else:
            tags = ",".join(f"{k}={v}" for k, v in sorted(sample.tags.items()))
            print(f"{sample.metric:32} {sample.value:>14g}  {tags}")
    return EX_OK
