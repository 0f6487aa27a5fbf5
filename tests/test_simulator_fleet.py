"""Fleets: many virtual gateways against one real mosquitto, summarised, and drawn."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from mqtt_broker import Broker

from simulator.fleet import fleet_sites
from simulator.scenario import load_scenario


def test_fleet_sites_are_seeded_villages() -> None:
    """Same seed, same fleet; each gateway its own site id, link and events; another seed differs."""
    base = load_scenario("vsat-normal-day")
    one = fleet_sites(base, gateways=30, hours=24, seed=7)
    assert one == fleet_sites(base, gateways=30, hours=24, seed=7)
    assert one != fleet_sites(base, gateways=30, hours=24, seed=8)
    assert len({s.site_id for s in one}) == 30
    assert {s.scenario.link.profile for s in one} >= {"vsat", "4g"}
    cuts = [e for s in one for e in s.scenario.events if e.kind == "power_cut"]
    assert cuts and all(e.at_h + e.for_h <= 24 for s in one for e in s.scenario.events)


def test_fleet_command_delivers_everything_and_draws_it(tmp_path: Path, broker: Broker) -> None:
    """`python -m simulator fleet` runs gateways in two workers, prints a summary with 0 lost, and
    `report` draws the run."""
    shm = Path("/dev/shm")
    root = Path(tempfile.mkdtemp(prefix="village-fleet-", dir=shm)) if shm.is_dir() else tmp_path
    run_dir = tmp_path / "run"
    try:
        done = subprocess.run(
            [
                sys.executable, "-m", "simulator", "fleet",
                "--gateways", "6", "--hours", "6", "--seed", "5",
                "--broker", broker.url(), "--topic-prefix", "fleet/test",
                "--state-root", str(root), "--run-dir", str(run_dir), "--workers", "2",
            ],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        summary = json.loads(done.stdout)
        assert sorted(p.name for p in root.iterdir()) == sorted(summary["sites"])
    finally:
        shutil.rmtree(root, ignore_errors=True)
    totals = summary["totals"]
    assert summary["gateways"] == 6 and summary["drained"] and summary["collector_complete"]
    assert totals["lost"] == 0 and totals["backlog_end"] == 0
    assert totals["delivered"] + totals["dropped_by_bound"] == totals["committed"] > 6 * 300
    assert summary["rejected_messages"] == 0
    assert json.loads((run_dir / "summary.json").read_text()) == summary
    pytest.importorskip("matplotlib")
    drawn = subprocess.run(
        [sys.executable, "-m", "simulator", "report", str(run_dir)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert drawn.returncode == 0, drawn.stderr
    png = Path(drawn.stdout.strip())
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_report_of_an_empty_directory_says_what_to_do(tmp_path: Path) -> None:
    """`report` on a directory without a run exits non-zero and names the command that makes one."""
    drawn = subprocess.run(
        [sys.executable, "-m", "simulator", "report", str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert drawn.returncode == 3
    assert "python -m simulator run" in drawn.stderr
