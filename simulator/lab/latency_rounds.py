"""Run the real latency probe and backhaul tracker in rounds on the real clock, printing each reading
as a JSON line: the lab runs this inside its gateway namespace to check outage events end to end.

    python -m simulator.lab.latency_rounds --target 10.77.0.2 --interval 0.5

It prints `ready` after the first round and stops cleanly on SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from types import FrameType

from agent.clock import SystemClock
from agent.config.schema import LatencyConfig
from agent.probes.latency import LatencyProbe
from agent.probes.uptime import BackhaulTracker


class _Stopped(Exception):
    pass


def _stop(signum: int, frame: FrameType | None) -> None:
    raise _Stopped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--target", action="append", required=True)
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between rounds")
    parser.add_argument("--count", type=int, default=3, help="probes per target per round")
    parser.add_argument("--timeout", type=float, default=0.2, help="seconds before a probe is lost")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _stop)
    clock = SystemClock()
    config = LatencyConfig(
        targets=tuple(args.target),
        count=args.count,
        interval_s=0.02,
        timeout_s=args.timeout,
        method="icmp",
    )
    probe = LatencyProbe(config)
    tracker = BackhaulTracker(clock)
    next_round = clock.monotonic()
    first = True
    try:
        while True:
            mono = clock.monotonic()
            samples = probe.collect()
            samples += tracker.update(samples)
            for sample in samples:
                record = {"mono": mono, "metric": sample.metric, "value": sample.value}
                sys.stdout.write(json.dumps(record) + "\n")
            if first:
                sys.stdout.write("ready\n")
                first = False
            sys.stdout.flush()
            next_round += args.interval
            time.sleep(max(0.0, next_round - clock.monotonic()))
    except _Stopped:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
