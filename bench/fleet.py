"""Fleet scale: `python -m simulator fleet` against the one local mosquitto, one virtual hour per
try, growing the fleet until a gateway loses a reading or the time budget is spent. State dirs on
the real disk: every gateway's round is an fsync, as on the Pis."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.net import Broker
from bench.table import Row, info, judged

REPO = Path(__file__).resolve().parent.parent
GOAL = 1000
# paho's loop uses select(), which cannot watch descriptors numbered 1024 or above; a gateway holds
# a socket and three SQLite files, so a worker process carries at most a couple of hundred.
PER_WORKER = 200


def run_fleet(
    broker: Broker, root: Path, gateways: int, hours: float, timeout_s: float
) -> dict[str, Any] | None:
    """The simulator's summary, or None if it did not finish within `timeout_s`."""
    workers = max(os.cpu_count() or 1, math.ceil(gateways / PER_WORKER))
    command = [sys.executable, "-m", "simulator", "fleet", "--gateways", str(gateways),
               "--hours", str(hours), "--broker", broker.url(), "--topic-prefix", "bench/fleet",
               "--state-root", str(root / f"g{gateways}"), "--workers", str(workers)]  # fmt: skip
    # Its own session: on timeout the whole group goes, the simulator's worker processes with it.
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             cwd=REPO, start_new_session=True)  # fmt: skip
    try:
        out, err = child.communicate(timeout=max(1.0, timeout_s))
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.communicate()
        return None
    if child.returncode not in (0, 1):
        raise RuntimeError(f"fleet of {gateways} failed: {err[-300:]}")
    summary: dict[str, Any] = json.loads(out)
    return summary


def measure(broker: Broker, root: Path, *, quick: bool) -> list[Row]:
    hours = 1.0
    sizes = [25, 100] if quick else [200, 500, 1000]
    budget_s = 60.0 if quick else 330.0
    started = time.monotonic()
    best, rate, tried = 0, 0.0, []
    for size in sizes:
        left = budget_s - (time.monotonic() - started)
        summary = run_fleet(broker, root, size, hours, left)
        if summary is None:
            tried.append(f"{size}: not finished in the {budget_s:.0f} s budget")
            break
        totals = summary["totals"]
        rate = size * hours / summary["simulate_s"]
        ok = totals["lost"] == 0 and summary["drained"] and summary["collector_complete"]
        verdict = "0 lost" if totals["lost"] == 0 else f"{totals['lost']} lost"
        if not summary["drained"] or not summary["collector_complete"]:
            verdict += ", not all delivered in time"
        tried.append(f"{size}: {verdict}, {summary['wall_s']:.0f} s, {rate:.1f} gw-h/s")
        if not ok:
            break
        best = size
    return [
        info("fleet: simulated gateway-hours per wall second (last try)", rate, "gw-h/s"),
        judged(
            "fleet: largest fleet with 0 lost (1 virtual hour)",
            best,
            "gateways",
            at_least=GOAL,
            digits=0,
        ),
        info("  fleet: tries", "; ".join(tried)),
    ]
