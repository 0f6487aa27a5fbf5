"""Every shipped scenario end to end: real agent parts, virtual time, a real mosquitto, a collector."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.reading import Reading
from simulator.fakes.site import Schedule
from simulator.virtual.collector import Collector
from simulator.virtual.fleet import RunOptions, Site, run_slice
from simulator.virtual.gateway import GatewayResult
from simulator.virtual.scenario import Scenario, load_scenario, shipped_scenarios
from simulator.virtual.summary import SiteSummary, site_summary
from tests.support.faults import record
from tests.support.mqtt_broker import Broker, start_broker

PREFIX = "sim/test"


def tmpfs_root(fallback: Path) -> Path:
    """A state root on tmpfs when there is one: every round is an fsync, and tmpfs makes it cheap."""
    shm = Path("/dev/shm")
    return Path(tempfile.mkdtemp(prefix="village-sim-", dir=shm)) if shm.is_dir() else fallback


@dataclass(frozen=True, slots=True)
class Run:
    scenario: Scenario
    result: GatewayResult
    summary: SiteSummary
    readings: list[Reading]


def run_scenario(name: str, broker: Broker, state_root: Path) -> Run:
    scenario = load_scenario(name)
    site = f"sim-{name}"
    options = RunOptions(
        broker_url=broker.url(),
        topic_prefix=PREFIX,
        state_root=state_root,
        seed=scenario.seed,
        hours=scenario.hours,
        drain_s=30,
    )
    with Collector(broker.url(), PREFIX) as collector:
        world = run_slice([Site(site_id=site, scenario=scenario)], options)
        result = world.gateways[0]
        need = result.last_seq - result.dropped_by_bound - result.backlog
        assert world.drained, "the backlog did not drain after the run"
        assert collector.wait_counts({site: (result.last_seq, need)}, 20)
        assert not collector.rejected
        summary = site_summary(result, collector, world.marks)
        return Run(scenario, result, summary, collector.readings(site))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Run]]:
    """Each scenario runs once against one mosquitto; the tests below look at its run."""
    root = tmpfs_root(tmp_path_factory.mktemp("state"))
    done: dict[str, Run] = {}
    with start_broker(tmp_path_factory.mktemp("broker")) as broker:

        def run(name: str) -> Run:
            if name not in done:
                done[name] = run_scenario(name, broker, root / name)
            return done[name]

        yield run
    shutil.rmtree(root, ignore_errors=True)


def values(run: Run, metric: str) -> list[float]:
    return [r.value for r in run.readings if r.metric == metric]


@pytest.mark.parametrize("name", shipped_scenarios())
def test_scenario_delivers_every_committed_reading(name: str, runs: Callable[[str], Run]) -> None:
    """Each scenario ends with 0 lost: every seq committed is delivered or counted as dropped."""
    run = runs(name)
    s = run.summary
    assert s.committed > 1000
    assert s.lost == 0
    assert s.backlog_end == 0
    assert s.delivered + s.dropped_by_bound == s.committed
    assert s.dropped_in_memory == 0
    assert (s.dropped_by_bound > 0) == run.scenario.expect_drops
    if s.dropped_by_bound:
        # Counted, not silent: the agent reported the drops on the wire, and the numbers agree.
        assert max(values(run, "buffer.dropped_total")) == s.dropped_by_bound


def test_vsat_day_looks_like_vsat(runs: Callable[[str], Run]) -> None:
    """A VSAT day reads as one: ~600 ms round trips, a few % loss, the evening busier than night."""
    run = runs("vsat-normal-day")
    rtts = values(run, "latency.rtt_avg_ms")
    assert 550 < sum(rtts) / len(rtts) < 900
    losses = values(run, "latency.loss_percent")
    assert 1 < sum(losses) / len(losses) < 10
    start = run.scenario.start_s
    rx = [
        (run.result.true_time(r.seq) or 0, r.value)
        for r in run.readings
        if r.metric == "throughput.rx_bps" and r.tags.get("iface") == "eth0"
    ]
    evening = [v for t, v in rx if 19 <= (t - start) / 3600 < 22]
    night = [v for t, v in rx if 2 <= (t - start) / 3600 < 5]
    assert sum(evening) / len(evening) > 3 * sum(night) / len(night)
    devices = values(run, "clients.devices_count")
    assert max(devices) >= 30 and min(devices) < 10  # the hotspot fills up in the evening
    # Arrivals are stamped in real time by a thread sharing the GIL: a few rounds of slack.
    assert run.summary.worst_delay_s is not None and run.summary.worst_delay_s <= 600


def test_backhaul_outage_is_measured_and_then_delivered(runs: Callable[[str], Run]) -> None:
    """A five-hour 4G outage shows as outage events of ~5 h, and its readings arrive afterwards."""
    run = runs("4g-outage")
    assert values(run, "event.outage_start") == [1.0]
    (duration,) = values(run, "event.outage_end_s")
    assert abs(duration - 5 * 3600) <= 60
    assert 0 in values(run, "uptime.backhaul_up")
    assert run.summary.worst_delay_s is not None and run.summary.worst_delay_s >= 5 * 3600 - 60


def test_broker_outage_keeps_backhaul_up_and_delivers_late(runs: Callable[[str], Run]) -> None:
    """With only the broker unreachable the pings still answer; readings arrive ~6 h late."""
    run = runs("broker-outage")
    assert set(values(run, "uptime.backhaul_up")) == {1.0}
    assert run.summary.worst_delay_s is not None and run.summary.worst_delay_s >= 6 * 3600 - 60


def test_disk_full_rounds_wait_in_memory_and_keep_their_time(runs: Callable[[str], Run]) -> None:
    """Rounds measured while the disk was full are committed later, stamped when measured."""
    run = runs("disk-full")
    (window,) = [w for w in Schedule(run.scenario).windows if w.kind == "disk_full"]
    stamped = {r.ts_ms for r in run.readings if window.start * 1000 <= r.ts_ms < window.end * 1000}
    assert len(stamped) == round((window.end - window.start) / 60)
    assert min(values(run, "system.disk_free_bytes")) < 20 * 1024**2  # the agent saw it, too


def test_clock_steps_move_only_the_wall_time(runs: Callable[[str], Run]) -> None:
    """Row 11: the wall clock steps +1 h and -1 h; rounds keep their pace, the outage its length,
    and seq follows measurement order."""
    run = runs("clock-steps")
    (duration,) = values(run, "event.outage_end_s")
    assert abs(duration - 3600) <= 60
    uptimes = [r for r in run.readings if r.metric == "uptime.agent_s"]
    assert [r.seq for r in uptimes] == sorted(r.seq for r in uptimes)
    assert [r.mono_ms for r in uptimes] == sorted(r.mono_ms for r in uptimes)
    # One round a minute, whatever the wall clock did.
    assert abs(len(uptimes) - run.scenario.hours * 60) <= 2
    s = run.summary
    record(
        "11 clock steps +-1 h",
        "simulator, virtual time",
        committed=s.committed,
        delivered=s.delivered,
        lost=s.lost,
        duplicated=s.duplicated,
    )
    steps = [w for w in Schedule(run.scenario).windows if w.kind == "clock_step"]
    for reading in uptimes:
        true = run.result.true_time(reading.seq)
        assert true is not None
        expected = next((w.step_s for w in steps if w.start <= true < w.end), 0.0)
        assert abs(reading.ts_ms / 1000 - true - expected) < 1


def test_three_day_broker_outage_drains_everything(runs: Callable[[str], Run]) -> None:
    """Row 3: 72 hours without the broker stay within the buffer bound and drain with 0 lost."""
    run = runs("broker-outage-3-days")
    s = run.summary
    record(
        "3 outage of days",
        "broker unreachable 72 h virtual",
        committed=s.committed,
        delivered=s.delivered,
        lost=s.lost,
        duplicated=s.duplicated,
    )
    assert s.dropped_by_bound == 0 and s.lost == 0
    assert s.committed > 72 * 60 * 20
    assert run.summary.worst_delay_s is not None and run.summary.worst_delay_s >= 72 * 3600 - 60
