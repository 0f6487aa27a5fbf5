"""Ping accuracy through the namespace lab: the error of each measured round trip against the delay
the lab's responder injects, on an idle machine and with both cores kept busy.

The error can never be negative (the responder's delay is a true lower bound and the pinger
measures from the kernel's stamps): a negative minimum here is a defect, and so marked.
"""

from __future__ import annotations

import json
import multiprocessing
import statistics
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from bench.table import SHORT, Row, info
from simulator.lab.netlab import Lab, netns_available

DELAYS_MS = (2, 50, 300, 600)
_PINGER = """
import json, sys
from agent.probes.ping.engine import ping_round
kwargs = json.loads(sys.argv[1])
[result] = ping_round(**kwargs)
print(json.dumps({"method": result.method, "rtts_ms": result.rtts_ms, "sent": result.sent}))
"""


def _spin() -> None:
    while True:
        pass


@contextmanager
def _busy(cores: int) -> Iterator[None]:
    """Keep `cores` processes spinning, as another job on a shared machine would."""
    spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(cores)]
    for spinner in spinners:
        spinner.start()
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.join()


def _errors(lab: Lab, delay_ms: int, count: int) -> list[float]:
    kwargs = {"targets": [lab.far_addr], "count": count, "interval_s": 0.01, "timeout_s": 2.0}
    with lab.start_responder(delay_ms):
        done = lab.run("gw", [sys.executable, "-c", _PINGER, json.dumps(kwargs)], timeout=120)
    measured = json.loads(done.stdout)
    return [rtt - delay_ms for rtt in measured["rtts_ms"]]


def measure(*, quick: bool) -> list[Row]:
    available, why = netns_available()
    if not available:
        return [info("ping accuracy", f"skipped: {why}")]
    count = 50 if quick else 200
    rows: list[Row] = []
    with Lab() as lab:
        for load, cores in (("idle", 0), ("2 cores busy", 2)):
            for delay_ms in DELAYS_MS:
                with _busy(cores):
                    errors = _errors(lab, delay_ms, count)
                worst_low = min(errors)
                row = info(
                    f"ping error at {delay_ms} ms, {load} ({len(errors)} probes): "
                    "mean / median / worst / min",
                    f"{statistics.fmean(errors):.3f} / {statistics.median(errors):.3f} / "
                    f"{max(errors):.3f} / {worst_low:.3f}",
                    "ms",
                )
                if worst_low < 0:  # shorter than the path: physically impossible
                    row = Row(metric=row.metric, value=row.value, goal=">= 0 min", status=SHORT)
                rows.append(row)
    return rows
