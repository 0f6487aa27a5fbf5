"""`python -m bench.fleet_collector`: a simulated fleet through the real collector into a database.

`python -m simulator fleet --collector-db URL` (the collector is `python -m collector run`, its own
process) on a mosquitto of the benchmark's own, gateways' state on tmpfs. Per database: readings
committed by the gateways, stored, lost (committed seqs missing from `readings`, checked again here
with a direct count), and the sustained rate: readings stored divided by the run's wall time from
the collector's start to the last reading stored. Everything shares this machine's cores: the
simulated gateways, the broker, the collector and the database.

The issue's goal is 1,000 gateways through a virtual day. The fleet costs about 0.15 CPU-s per
gateway-hour here, so that day (24,000 gateway-hours) takes about half an hour of two cores; the
default run is what fits in a few minutes (BENCH_FLEET_GATEWAYS x BENCH_FLEET_HOURS, default 200 x 6;
BENCH_FLEET_PG=0 skips PostgreSQL).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python bench/fleet_collector.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.net import Broker
from bench.table import SKIP, Row, info, judged, render
from collector.store import open_database

# The tests' own PostgreSQL cluster: one owner for it.
from tests.support.pg_server import PostgresServer, PostgresUnavailable

REPO = Path(__file__).resolve().parent.parent
GOAL_GATEWAYS, GOAL_HOURS = 1000, 24.0


def _stored_count(url: str) -> int:
    db = open_database(url)
    try:
        ((count,),) = db.execute("SELECT count(*) FROM readings")
    finally:
        db.close()
    return int(count)


def run(broker: Broker, root: Path, url: str, gateways: int, hours: float) -> dict[str, Any]:
    """One fleet through the collector into `url`; its summary, with the exec-to-exit time."""
    state = Path(tempfile.mkdtemp(prefix="bench-fleet-", dir="/dev/shm" if Path("/dev/shm").is_dir()
                                  else root))  # fmt: skip
    root.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "simulator", "fleet", "--gateways", str(gateways),
               "--hours", str(hours), "--broker", broker.url(), "--topic-prefix", "bench/fleetdb",
               "--state-root", str(state), "--run-dir", str(root), "--log-level", "warning",
               "--collector-db", url, "--collect-s", "900"]  # fmt: skip
    started = time.monotonic()
    try:
        with (root / "simulator.log").open("w") as err:
            done = subprocess.run(command, stdout=subprocess.PIPE, stderr=err, text=True,
                                  cwd=REPO, check=False)  # fmt: skip
    finally:
        shutil.rmtree(state, ignore_errors=True)
    if done.returncode not in (0, 1):
        raise RuntimeError(f"the fleet failed ({done.returncode}); see {root}/simulator.log")
    summary: dict[str, Any] = json.loads(done.stdout)
    summary["exec_s"] = time.monotonic() - started
    summary["stored_direct"] = _stored_count(url)
    return summary


def rows_for(engine: str, summary: dict[str, Any], gateways: int, hours: float) -> list[Row]:
    totals = summary["totals"]
    label = f"{engine}: {gateways:,} gateways x {hours:g} virtual h"
    stored = summary["stored_direct"]
    return [
        judged(f"{label}, lost", totals["lost"], "readings", at_most=0, digits=0),
        info(
            f"  {engine}: committed / stored (direct count) / dropped by the bound",
            f"{totals['committed']:,} / {stored:,} / {totals['dropped_by_bound']:,}",
        ),
        info(
            f"  {engine}: readings stored per wall second, sustained",
            stored / summary["complete_s"],
            "readings/s",
            digits=0,
        ),
        info(
            f"  {engine}: wall (collector start to last row; simulating alone)",
            f"{summary['complete_s']:.0f} s; {summary['simulate_s']:.0f} s",
        ),
    ]


def main() -> int:
    gateways = int(os.environ.get("BENCH_FLEET_GATEWAYS", "200"))
    hours = float(os.environ.get("BENCH_FLEET_HOURS", "6"))
    with_pg = os.environ.get("BENCH_FLEET_PG", "1") != "0"
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-fleet-collector-") as tmp:
        root = Path(tmp)
        broker = Broker(root / "broker")
        try:
            url = f"sqlite://{root}/sqlite/collector.sqlite"
            rows += rows_for("SQLite", run(broker, root / "sqlite", url, gateways, hours),
                             gateways, hours)  # fmt: skip
            if with_pg:
                try:
                    postgres = PostgresServer(durable=True).start()
                except PostgresUnavailable as err:
                    rows.append(Row(metric="PostgreSQL", value=str(err), status=SKIP))
                else:
                    try:
                        url = postgres.create_database("bench_fleet")
                        summary = run(broker, root / "pg", url, gateways, hours)
                        rows += rows_for("PostgreSQL", summary, gateways, hours)
                    finally:
                        postgres.stop()
        finally:
            broker.stop()
    rows.append(
        Row(
            metric=f"{GOAL_GATEWAYS:,} gateways x {GOAL_HOURS:g} virtual h through the collector",
            value="not run: ~30 min of both cores here",
            goal="0 lost",
            status=SKIP,
        )
    )
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(render(rows, machine))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
