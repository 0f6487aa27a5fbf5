"""One composition root for the daemon and the simulator: what the registry holds is what a
simulated gateway measures and delivers."""

from __future__ import annotations

from pathlib import Path

from agent.config.schema import Config
from agent.daemon.compose import PROBES, ProbeFactory, Sources
from agent.reading import Sample
from simulator.virtual.clock import Timeline
from simulator.virtual.collector import Collector
from simulator.virtual.gateway import Gateway
from simulator.virtual.scenario import load_scenario
from simulator.virtual.world import run_world
from tests.support.mqtt_broker import Broker

PREFIX = "compose/test"


class CountingProbe:
    """A probe that exists only in this test: its readings prove it ran in the gateway."""

    name = "extra"

    def __init__(self) -> None:
        self._rounds = 0

    def collect(self) -> list[Sample]:
        self._rounds += 1
        return [Sample(metric="extra.rounds_total", value=float(self._rounds))]


def _extra(_config: Config, _sources: Sources) -> CountingProbe:
    return CountingProbe()


def test_a_probe_added_to_the_registry_runs_in_a_simulated_gateway(
    tmp_path: Path, broker: Broker
) -> None:
    """A probe added to PROBES is built from the gateway's fake sources and its readings reach
    the broker; the agent's own probes run there too, DNS among them."""
    registry: dict[str, ProbeFactory] = {**PROBES, "extra": _extra}
    scenario = load_scenario("vsat-normal-day")
    timeline = Timeline(scenario.start_s)
    gateway = Gateway(
        scenario,
        site_id="compose-01",
        state_dir=tmp_path / "compose-01",
        broker_url=broker.url(),
        topic_prefix=PREFIX,
        timeline=timeline,
        seed=3,
        probes=registry,
    )
    with Collector(broker.url(), PREFIX).start() as collector:
        result = run_world([gateway], timeline, hours=0.25, drain_s=30)
        assert result.drained
        [ran] = result.gateways
        assert collector.wait_for("compose-01", range(1, ran.last_seq + 1), timeout_s=20)
        metrics = {r.metric for r in collector.readings("compose-01")}
    extra = sorted(
        r.value for r in collector.readings("compose-01") if r.metric == "extra.rounds_total"
    )
    rounds = round(0.25 * 3600 / gateway.config.interval_s) + 1
    assert extra == [float(n) for n in range(1, rounds + 1)]
    families = {metric.split(".", 1)[0] for metric in metrics}
    assert {"throughput", "latency", "uptime", "system", "dns", "clients"} <= families
