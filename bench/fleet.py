"""Fleet: `python -m simulator fleet` against the one local mosquitto, state dirs on the real disk
(every gateway's round is an fsync, as on the Pis).

Two figures. A day: 20 gateways through 24 virtual hours, timed from exec to exit (issue 4 wants it
under a minute), which gives the simulated gateway-hours per wall second. Scale: one virtual hour
per try, growing the fleet until a gateway loses a reading, the backlog does not drain, or the next
try would not fit in the time budget.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import proc
from bench.net import Broker
from bench.table import MET, SHORT, SKIP, Row, info, judged

REPO = Path(__file__).resolve().parent.parent
GOAL = 1000
DAY_GATEWAYS, DAY_HOURS, DAY_GOAL_S = 20, 24.0, 60.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Run:
    """One `simulator fleet` command: its summary (None if it did not finish in time) and cost."""

    summary: dict[str, Any] | None
    wall_s: float  # exec to exit, what a person waiting for it sees
    cpu_s: float  # the simulator's processes (parent and workers), user + system
    broker_cpu_s: float

    @property
    def ok(self) -> bool:
        s = self.summary
        return (
            s is not None and s["totals"]["lost"] == 0 and s["drained"] and s["collector_complete"]
        )

    def verdict(self) -> str:
        if self.summary is None:
            return f"not finished in {self.wall_s:.0f} s"
        totals = self.summary["totals"]
        said = f"{totals['lost']:,} lost"
        if totals["dropped_by_bound"]:
            said += f", {totals['dropped_by_bound']:,} dropped by the bound (counted)"
        if not self.summary["drained"] or not self.summary["collector_complete"]:
            said += f", {totals['backlog_end']:,} not delivered in time"
        return said


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_fleet(broker: Broker, root: Path, gateways: int, hours: float, timeout_s: float) -> Run:
    """Run the fleet command; the simulator chooses its worker processes (it knows how many
    gateways one process can hold: paho's select() sees no descriptor past 1023)."""
    name = f"g{gateways}x{hours:g}h"
    command = [sys.executable, "-m", "simulator", "fleet", "--gateways", str(gateways),
               "--hours", str(hours), "--broker", broker.url(), "--topic-prefix", f"bench/{name}",
               "--state-root", str(root / name), "--log-level", "warning"]  # fmt: skip
    broker_before, cpu_before = proc.sample(broker.proc.pid), _children_cpu_s()
    started = time.monotonic()
    # Its own session: on timeout the whole group goes, the simulator's worker processes with it.
    # The agents' warnings (disconnects, backoffs) go to a file beside the state dirs, for --keep.
    log = root / f"{name}.log"
    root.mkdir(parents=True, exist_ok=True)
    with log.open("w") as err:
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, text=True,
                                 cwd=REPO, start_new_session=True)  # fmt: skip
        summary: dict[str, Any] | None = None
        try:
            out, _ = child.communicate(timeout=max(1.0, timeout_s))
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.communicate()
        else:
            if child.returncode not in (0, 1):
                raise RuntimeError(f"fleet of {gateways} failed; see {log}")
            summary = json.loads(out)
    wall = time.monotonic() - started
    return Run(
        summary=summary,
        wall_s=wall,
        cpu_s=_children_cpu_s() - cpu_before,
        broker_cpu_s=proc.cpu_between(broker_before, proc.sample(broker.proc.pid)),
    )


def _day(broker: Broker, root: Path, *, quick: bool) -> list[Row]:
    label = f"fleet: {DAY_GATEWAYS} gateways x {DAY_HOURS:g} virtual hours, exec to exit"
    if quick:
        return [Row(metric=label, value="full run only (about 45 s)", status=SKIP)]
    run = run_fleet(broker, root, DAY_GATEWAYS, DAY_HOURS, timeout_s=DAY_GOAL_S * 5)
    rate = DAY_GATEWAYS * DAY_HOURS / run.wall_s
    day = f"{DAY_GATEWAYS} x {DAY_HOURS:g} h"
    rows = [
        judged(label, run.wall_s, "s", at_most=DAY_GOAL_S),
        info(f"fleet: simulated gateway-hours per wall second ({day})", rate),
    ]
    simulate = f", simulating {run.summary['simulate_s']:.0f} s" if run.summary else ""
    rows.append(
        info(
            f"  fleet: {day}",
            f"{run.verdict()}{simulate}; CPU {run.cpu_s:.0f} s, broker {run.broker_cpu_s:.0f} s",
        )
    )
    return rows


def _scale(broker: Broker, root: Path, *, quick: bool) -> list[Row]:
    hours = 1.0
    sizes = [25, 100] if quick else [500, 1000, 2000]
    budget_s = 60.0 if quick else 420.0
    started = time.monotonic()
    best, tried = 0, []
    rate = 0.0  # gateway-hours per wall second of the last try that finished
    for size in sizes:
        left = budget_s - (time.monotonic() - started)
        # Time grows about linearly with the fleet: skip a try that would be cut off anyway.
        expected = size * hours / rate if rate else 0.0
        if expected > left:
            tried.append(f"{size}: not tried (about {expected:.0f} s, {left:.0f} s of budget left)")
            break
        run = run_fleet(broker, root, size, hours, left)
        tried.append(
            f"{size}: {run.verdict()}, {run.wall_s:.0f} s, CPU {run.cpu_s:.0f} + {run.broker_cpu_s:.0f} s"
        )
        if not run.ok:
            break
        rate, best = size * hours / run.wall_s, size
    largest = f"{best:,} gateways" + (" (the largest tried)" if best == sizes[-1] else "")
    return [
        Row(
            metric="fleet: largest with 0 lost in one virtual hour",
            value=largest,
            goal=f">= {GOAL:,} gateways",
            status=MET if best >= GOAL else SHORT,
        ),
        info("  fleet: tries (1 virtual hour; wall, CPU simulator + broker)", "; ".join(tried)),
    ]


def measure(broker: Broker, root: Path, *, quick: bool) -> list[Row]:
    return _day(broker, root, quick=quick) + _scale(broker, root, quick=quick)
