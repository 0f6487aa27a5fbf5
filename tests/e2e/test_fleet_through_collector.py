"""Fleets through the real collector: `python -m simulator fleet --collector-db URL` stores every
reading via `python -m collector run` into SQLite or PostgreSQL, and summarises from that database."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collector.store import open_database
from simulator.fakes.site import Schedule
from simulator.virtual.fleet import RunOptions, Site, run_slice
from simulator.virtual.real_collector import RealCollector
from simulator.virtual.scenario import load_scenario
from tests.support.collector_proc import stored_seqs
from tests.support.mqtt_broker import Broker

PREFIX = "fleet/db"


@pytest.fixture
def state_root(tmp_path: Path) -> Iterator[Path]:
    # tmpfs when there is one: every gateway's round is an fsync, and the disk is not under test.
    shm = Path("/dev/shm")
    root = Path(tempfile.mkdtemp(prefix="village-fleet-", dir=shm)) if shm.is_dir() else tmp_path
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _fleet(broker: Broker, root: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable, "-m", "simulator", "fleet", *args, "--broker", broker.url(),
            "--topic-prefix", PREFIX, "--state-root", str(root), "--collector-db", url,
        ],
        capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip


def test_fleet_stores_every_reading_once(
    broker: Broker, state_root: Path, database_url: str, tmp_path: Path
) -> None:
    """Four gateways x 3 virtual hours through the real collector: every committed seq is in
    `readings` exactly once, the summary's counts equal a direct count, and a second run into the
    same database is refused instead of counting the first run's rows."""
    args = ("--gateways", "4", "--hours", "3", "--seed", "11", "--workers", "2")
    done = _fleet(broker, state_root, database_url, *args, "--run-dir", str(tmp_path / "run"))
    assert done.returncode == 0, done.stderr[-3000:]
    summary: dict[str, Any] = json.loads(done.stdout)
    assert summary["collector"] == database_url.partition(":")[0]
    assert summary["drained"] and summary["collector_complete"]
    assert summary["rejected_messages"] == 0
    stored = stored_seqs(database_url)
    assert set(stored) == set(summary["sites"])  # the readiness probe stores no reading
    for site, counts in summary["sites"].items():
        assert counts["lost"] == 0 and counts["duplicated"] == 0
        assert counts["dropped_by_bound"] == 0 and counts["backlog_end"] == 0
        assert stored[site] == list(range(1, counts["committed"] + 1))
        assert counts["delivered"] == len(stored[site])
    assert summary["totals"]["delivered"] == sum(len(s) for s in stored.values()) > 4 * 3 * 60 * 20
    assert (tmp_path / "run" / "collector" / "collector.yaml").is_file()

    again = _fleet(broker, state_root / "again", database_url, *args)
    assert again.returncode == 4
    assert "already holds readings" in again.stderr


def test_power_cuts_get_true_time_from_the_collector(
    broker: Broker, state_root: Path, tmp_path: Path
) -> None:
    """Readings sent before the gateway's clock synced arrive with `synced = false` and a wrong
    `ts`; the collector puts them within 1 s of true time once the boot's synced readings are in,
    and leaves `ts` NULL for the boot that never synced."""
    scenario = load_scenario("power-cuts")
    site = "sim-power-cuts-db"
    url = f"sqlite://{tmp_path}/collector.sqlite"
    options = RunOptions(
        broker_url=broker.url(),
        topic_prefix=PREFIX,
        state_root=state_root,
        seed=scenario.seed,
        hours=scenario.hours,
        drain_s=30,
    )
    with RealCollector(
        tmp_path / "collector", broker_url=broker.url(), topic_prefix=PREFIX, database_url=url
    ) as collector:
        world = run_slice([Site(site_id=site, scenario=scenario)], options)
        result = world.gateways[0]
        assert world.drained and result.dropped_by_bound == 0
        assert collector.stored.wait_counts({site: (result.last_seq, result.last_seq)}, 30)
        readings = collector.stored.readings(site)
        true_ts = collector.stored.true_times_ms(site)
        assert collector.stored.rejected == []
    schedule = Schedule(scenario)
    sync_at: dict[str, float | None] = {}
    for boot, booted in result.boot_times:
        cut = schedule.last_ended("power_cut", booted)
        if cut is not None:
            sync_at[boot] = None if cut.ntp_sync_after_s is None else booted + cut.ntp_sync_after_s
    assert len(sync_at) == 5
    on_gateway = by_collector = flagged = 0
    worst_error = 0.0
    for reading in readings:
        true = result.true_time(reading.seq)
        assert true is not None
        synced = sync_at.get(reading.boot_id, 0.0)
        stored_ts = true_ts[reading.seq]
        if synced is None:
            assert not reading.synced and stored_ts is None
            flagged += 1
            continue
        assert stored_ts is not None
        worst_error = max(worst_error, abs(stored_ts / 1000 - true))
        if true >= synced:
            continue
        if reading.synced:
            on_gateway += 1  # re-stamped on the gateway while still buffered
        else:
            by_collector += 1
            assert abs(reading.ts_ms / 1000 - true) > 600  # as sent, the clock was wrong
    assert worst_error <= 1.0
    assert on_gateway > 500 and by_collector > 500 and flagged > 100
    # The same facts straight from the table: unsynced rows with `ts` filled by the collector.
    db = open_database(url)
    try:
        ((filled,),) = db.execute(
            "SELECT count(*) FROM readings WHERE NOT synced AND ts IS NOT NULL AND ts <> raw_ts"
        )
        ((untimed,),) = db.execute("SELECT count(*) FROM readings WHERE ts IS NULL")
    finally:
        db.close()
    assert filled == by_collector and untimed == flagged
