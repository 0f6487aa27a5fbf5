"""Fleets: many virtual gateways against one real mosquitto, summarised, and drawn."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from simulator.virtual.fleet import fleet_sites
from simulator.virtual.report import Spans, spans
from simulator.virtual.scenario import load_scenario
from tests.support.mqtt_broker import Broker


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


def _state_root(tmp_path: Path) -> Path:
    # tmpfs when there is one: every gateway's round is an fsync, and the disk is not under test.
    shm = Path("/dev/shm")
    return Path(tempfile.mkdtemp(prefix="village-fleet-", dir=shm)) if shm.is_dir() else tmp_path


def _fleet(broker: Broker, root: Path, *args: str, timeout_s: float) -> dict[str, Any]:
    """Run `python -m simulator fleet ARGS` against the broker; its summary, once it exits 0."""
    done = subprocess.run(
        [
            sys.executable, "-m", "simulator", "fleet", *args,
            "--broker", broker.url(), "--topic-prefix", "fleet/test", "--state-root", str(root),
        ],
        capture_output=True, text=True, timeout=timeout_s, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


def _accounted(summary: dict[str, Any]) -> None:
    """Every committed reading, per site, was delivered or counted: dropped by the bound, or left
    in the buffer; none lost."""
    assert summary["drained"] and summary["collector_complete"]
    assert summary["rejected_messages"] == 0
    for site in [*summary["sites"].values(), summary["totals"]]:
        assert site["lost"] == 0 and site["backlog_end"] == 0
        assert site["delivered"] + site["dropped_by_bound"] == site["committed"]


def test_fleet_command_delivers_everything_and_draws_it(tmp_path: Path, broker: Broker) -> None:
    """`python -m simulator fleet` runs gateways in two workers, prints a summary with 0 lost, and
    `report` draws the run."""
    root = _state_root(tmp_path)
    run_dir = tmp_path / "run"
    try:
        summary = _fleet(
            broker, root, "--gateways", "6", "--hours", "6", "--seed", "5",
            "--run-dir", str(run_dir), "--workers", "2", timeout_s=120,
        )  # fmt: skip
        assert sorted(p.name for p in root.iterdir()) == sorted(summary["sites"])
    finally:
        shutil.rmtree(root, ignore_errors=True)
    assert summary["gateways"] == 6
    _accounted(summary)
    assert summary["totals"]["committed"] > 6 * 300
    # A village without outages or power cuts delivers each round within a round or two of virtual
    # time; a late arrival stamp at the collector would show here as tens of virtual minutes.
    base = load_scenario("vsat-normal-day")
    quiet = [
        s.site_id for s in fleet_sites(base, gateways=6, hours=6, seed=5) if not s.scenario.events
    ]
    assert quiet and all(summary["sites"][s]["worst_delay_s"] <= 1800 for s in quiet)
    assert json.loads((run_dir / "summary.json").read_text()) == summary
    pytest.importorskip("matplotlib")
    drawn = subprocess.run(
        [sys.executable, "-m", "simulator", "report", str(run_dir)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert drawn.returncode == 0, drawn.stderr
    png = Path(drawn.stdout.strip())
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


@pytest.mark.slow
def test_twenty_gateways_through_a_day_lose_nothing(tmp_path: Path, broker: Broker) -> None:
    """Issue 4's day, 20 gateways x 24 virtual hours (power cuts and outages included) through the
    fleet command: 0 lost, every reading delivered or counted. Its wall time is a bench figure."""
    root = _state_root(tmp_path)
    try:
        summary = _fleet(
            broker, root, "--gateways", "20", "--hours", "24", "--seed", "1", timeout_s=300
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    assert summary["gateways"] == 20 and summary["hours"] == 24
    _accounted(summary)
    sites = summary["sites"].values()
    assert sum(s["boots"] for s in sites) > 20  # some villages lost power during the day
    assert summary["totals"]["committed"] > 20 * 24 * 60 * 30  # a round is 30-odd readings


def test_report_tells_outages_power_cuts_and_held_rounds_apart() -> None:
    """The report's shading: a backhaul reading of 0 is an outage until the next round; a gap in the
    readings that ends in a boot is a power cut; one without a boot is rounds held in memory."""
    backhaul = [(0, 1), (60, 0), (120, 0), (180, 1), (600, 1), (660, 1), (1200, 1), (1260, 0)]
    found = spans(backhaul, 60, boots=[0, 590])
    assert found == Spans(down=[(60, 180), (1260, 1320)], off=[(240, 600)], held=[(720, 1200)])


def test_report_of_an_empty_directory_says_what_to_do(tmp_path: Path) -> None:
    """`report` on a directory without a run exits non-zero and names the command that makes one."""
    drawn = subprocess.run(
        [sys.executable, "-m", "simulator", "report", str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert drawn.returncode == 3
    assert "python -m simulator run" in drawn.stderr
