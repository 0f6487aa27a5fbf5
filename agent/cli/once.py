"""`village-agent once`: measure one round and print it; nothing is stored or sent (Telegraf's
`--test`). With `--publish` the round goes through the buffer to the broker (`agent.cli.deliver`)."""

from __future__ import annotations

import argparse
import json
import sys
import time

from agent import logs
from agent.cli.deliver import publish_round
from agent.cli.exits import EX_CONFIG, EX_OK, EX_SOFTWARE
from agent.cli.messages import choose_lang, text
from agent.cli.units import reading_value
from agent.clock import SystemClock
from agent.config.schema import Config
from agent.daemon.compose import Sources, build_probes, speedtest_probe
from agent.daemon.rounds import measure
from agent.probes.base import ProbeError


def cmd_once(args: argparse.Namespace, config: Config) -> int:
    """Measure a baseline, wait a second, measure again and print (or publish) the second round."""
    lang = choose_lang(args.lang)

    def say(key: str, **values: object) -> None:
        print(text(key, lang, **values), file=sys.stderr if key != "once.published" else sys.stdout)

    if args.speedtest and config.speedtest.url_download is None:
        # Said before measuring: otherwise the round's 9 s pass before anyone learns why.
        say("once.speedtest_no_url", file=args.config)
        return EX_CONFIG
    logs.configure(config.log.level)
    clock = SystemClock()
    # The scheduled speed test never runs here: it costs metered bytes, so only --speedtest asks.
    sources = Sources(clock=clock)
    probes = [p for p in build_probes(config, sources) if p.name != "speedtest"]
    # Counters need two reads to make a rate: take a baseline, wait a second, then the real round.
    measure(probes)
    time.sleep(1.0)
    if args.publish:
        return publish_round(config, probes, clock=clock, timeout_s=args.timeout_s, say=say)
    samples, _failed = measure(probes)
    if args.speedtest:
        try:
            config.state_dir.mkdir(parents=True, exist_ok=True)
            samples += speedtest_probe(config, sources).run(trigger="manual")
        except (OSError, ProbeError) as err:
            say("once.speedtest_failed", error=str(err))
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
            print(f"{sample.metric:32} {reading_value(sample.metric, sample.value):>14}  {tags}")
    return EX_OK
