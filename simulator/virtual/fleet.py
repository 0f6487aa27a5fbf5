"""Many virtual gateways against one real broker, and the summary of what reached it.

Each gateway has its own site id and state directory under the state root. With several workers the
gateways are split over processes (each with its own timeline, in lock step within itself): Python runs
one thread at a time per process, and paho's network loop uses select(), which cannot watch a file
descriptor numbered 1024 or more, so one process holds only so many gateways.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import random
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from agent import logs
from simulator.virtual.clock import Timeline
from simulator.virtual.collector import Collector
from simulator.virtual.gateway import Gateway
from simulator.virtual.real_collector import CollectorError, RealCollector
from simulator.virtual.scenario import Event, LinkSpec, Scenario
from simulator.virtual.summary import Delivered, as_dict, series, site_summary, totals
from simulator.virtual.world import CaughtUp, WorldResult, run_world

SUMMARY_FILE = "summary.json"
# Each gateway holds about six descriptors (SQLite file, WAL and shm; the MQTT socket and paho's
# wake-up pair), and paho's select() fails on descriptors past 1023: ~170 gateways per process at most.
GATEWAYS_PER_PROCESS = 150
SERIES_FILE = "series.json"
# Beside the readings in series.json: when each boot happened, (true time, 1), so that a report can
# tell a power cut from rounds that waited in memory (disk full) and so have no true time.
BOOTS_SERIES = "simulator.boot"


@dataclass(frozen=True, slots=True, kw_only=True)
class Site:
    site_id: str
    scenario: Scenario


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOptions:
    broker_url: str
    topic_prefix: str
    state_root: Path
    seed: int
    hours: float
    settle_s: float = 0.5
    drain_s: float = 120.0
    log_level: str | None = None  # set: configure the agents' logging (to stderr) in each worker


class Consumer(Delivered, Protocol):
    """What the fleet waits on and summarises from."""

    def wait_counts(
        self,
        wanted: Mapping[str, tuple[int, int]],
        timeout_s: float,
        epochs: Mapping[str, str] | None = None,
    ) -> bool: ...

    @property
    def rejected(self) -> list[str]: ...


def _events(
    rng: random.Random, hours: float, per_day: float, low_h: float, high_h: float
) -> list[tuple[float, float]]:
    """(at_h, for_h) windows, a Poisson number of them, each over before the run ends."""
    out = []
    count = sum(1 for _ in range(int(hours * 10)) if rng.random() < per_day / 240)
    for _ in range(count):
        length = rng.uniform(low_h, high_h)
        if length >= hours * 0.8:
            continue
        out.append((round(rng.uniform(0, hours * 0.9 - length), 3), round(length, 3)))
    return out


def fleet_sites(base: Scenario, *, gateways: int, hours: float, seed: int) -> list[Site]:
    """Give each gateway its own village: a link profile, power cuts several times a week, outages."""
    sites = []
    for index in range(gateways):
        rng = random.Random(f"{seed}:fleet:{index}")
        profile = rng.choices(["vsat", "4g", "fibre"], weights=[60, 35, 5])[0]
        events = [
            Event(kind="power_cut", at_h=at, for_h=length,
                  ntp_sync_after_h=round(rng.uniform(0.05, 2.0), 3))
            for at, length in _events(rng, hours, 0.6, 0.05, 1.5)
        ] + [
            Event(kind="backhaul_outage", at_h=at, for_h=length)
            for at, length in _events(rng, hours, 0.5, 0.1, 4.0)
        ]  # fmt: skip
        scenario = replace(
            base,
            name=f"{base.name}-{index}",
            hours=hours,
            seed=seed,
            link=LinkSpec(profile=profile),  # type: ignore[arg-type]
            events=tuple(sorted(events, key=lambda e: e.at_h)),
        )
        sites.append(Site(site_id=f"sim-{seed}-{index:04d}", scenario=scenario))
    return sites


def auto_workers(gateways: int) -> int:
    """One process per core, and enough processes that none holds too many gateways."""
    if gateways <= 1:
        return 1
    return max(min(os.cpu_count() or 1, gateways), math.ceil(gateways / GATEWAYS_PER_PROCESS))


def run_slice(
    sites: Sequence[Site], options: RunOptions, caught_up: CaughtUp | None = None
) -> WorldResult:
    """Run some sites in this process on one timeline (a worker's job)."""
    if options.log_level is not None:
        logs.configure(options.log_level, stream=sys.stderr)
    timeline = Timeline(sites[0].scenario.start_s)
    gateways = [
        Gateway(
            site.scenario,
            site_id=site.site_id,
            state_dir=options.state_root / site.site_id,
            broker_url=options.broker_url,
            topic_prefix=options.topic_prefix,
            timeline=timeline,
            seed=options.seed,
        )
        for site in sites
    ]
    return run_world(
        gateways,
        timeline,
        hours=options.hours,
        settle_s=options.settle_s,
        drain_s=options.drain_s,
        caught_up=caught_up,
    )


def _run_slices(
    sites: Sequence[Site], options: RunOptions, workers: int, caught_up: CaughtUp | None
) -> list[WorldResult]:
    if workers <= 1:
        return [run_slice(sites, options, caught_up)]
    slices = [list(sites[i::workers]) for i in range(workers) if sites[i::workers]]
    # spawn: the parent runs the collector's network thread, and fork would copy its locks.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=len(slices), mp_context=context) as pool:
        futures = [pool.submit(run_slice, chunk, options) for chunk in slices]
        return [f.result() for f in futures]


@contextmanager
def consumer(
    options: RunOptions, collector_db: str | None, directory: Path, site_ids: Sequence[str]
) -> Iterator[Consumer]:
    """The in-process checker, or with `collector_db` the real collector storing into that
    database (its config and log in `directory`), subscribed before any gateway starts. Raise
    CollectorError if the database already holds readings of these sites: the key would absorb
    the run's readings as repeats, and the summary would count an earlier run's."""
    if collector_db is None:
        with Collector(options.broker_url, options.topic_prefix) as checker:
            yield checker
        return
    real = RealCollector(
        directory,
        broker_url=options.broker_url,
        topic_prefix=options.topic_prefix,
        database_url=collector_db,
    )
    with real:
        earlier = [s for s in site_ids if real.stored.holds_readings(s)]
        if earlier:
            raise CollectorError(
                f"{collector_db} already holds readings of {earlier[0]} (and {len(earlier) - 1} "
                "more sites of this fleet): use a fresh database, or another --seed or --site"
            )
        yield real.stored


def run_fleet(
    sites: Sequence[Site],
    options: RunOptions,
    *,
    workers: int = 1,
    run_dir: Path | None = None,
    collect_s: float = 60.0,
    collector_db: str | None = None,
    log: Callable[[str], None] = lambda _m: None,
) -> dict[str, Any]:
    """Run the sites against the broker with a consumer watching; return the JSON summary (and
    write it, with the report's series, to run_dir when given). With `collector_db` (a database
    URL) the consumer is the real collector and the summary is read from its database."""
    started = time.monotonic()
    directory = (run_dir or options.state_root) / "collector"
    with consumer(options, collector_db, directory, [s.site_id for s in sites]) as collector:
        # The collector only files messages with their arrival time while the gateways run, and
        # decodes them afterwards. Decoding meanwhile (`absorb()`) holds the collector's lock, so
        # its network thread stamps what arrives during a decode late: half a second of real time
        # is dozens of virtual rounds, and sites that never lost their link showed worst delays
        # near an hour.
        # In one process the world can wait for the in-process checker each round; workers in
        # other processes cannot see it, and the real collector is measured to its storage.
        caught_up: CaughtUp | None = None
        if isinstance(collector, Collector):
            checker = collector

            def caught_up(gateways: Sequence[Gateway]) -> bool:
                return checker.telemetry_received() >= sum(g.acked_messages for g in gateways)

        worlds = _run_slices(sites, options, workers, caught_up)
        simulated = time.monotonic() - started
        log(f"simulated {len(sites)} gateways x {options.hours} h in {simulated:.1f} s")
        results = [(r, w) for w in worlds for r in w.gateways]
        need = {
            r.site: (r.last_seq, r.last_seq - r.dropped_by_bound - r.backlog) for r, _ in results
        }
        complete = collector.wait_counts(need, collect_s, {r.site: r.epoch for r, _ in results})
        complete_s = time.monotonic() - started
        summaries = [site_summary(r, collector, w.marks) for r, w in results]
        drawn = {
            r.site: {**series(r, collector), BOOTS_SERIES: [(t, 1.0) for _, t in r.boot_times]}
            for r, _ in (results if run_dir else [])
        }
        rejected = collector.rejected
    summary: dict[str, Any] = {
        "gateways": len(sites),
        "hours": options.hours,
        "seed": options.seed,
        "workers": max(1, workers),
        "wall_s": round(time.monotonic() - started, 2),
        "simulate_s": round(simulated, 2),
        "complete_s": round(complete_s, 2),  # from the start until the consumer had everything
        "drained": all(w.drained for w in worlds),
        # The engine only: a URL may carry a password.
        "collector": "in-process" if collector_db is None else urlsplit(collector_db).scheme,
        "collector_complete": complete,
        "rejected_messages": len(rejected),
        "totals": totals(summaries),
        "sites": {s.site: {k: v for k, v in as_dict(s).items() if k != "site"} for s in summaries},
    }
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=1), encoding="utf-8")
        (run_dir / SERIES_FILE).write_text(json.dumps(drawn), encoding="utf-8")
    return summary
