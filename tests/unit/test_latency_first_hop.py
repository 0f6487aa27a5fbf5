"""The first hop as a latency target: `gateway` in latency.targets means the default route's next hop."""

from pathlib import Path

from agent.config.schema import LatencyConfig
from agent.probes.latency import LatencyProbe, with_first_hop
from agent.probes.route import default_gateway
from simulator.fakes.measure import RecordingPinger

ROUTES = Path(__file__).parent.parent / "fixtures" / "route"


def test_default_gateway_is_read_from_proc_net_route() -> None:
    """The kernel's little-endian hex next hop of the 0.0.0.0/0 route is decoded."""
    assert default_gateway(ROUTES / "default") == "192.168.8.1"
    assert default_gateway(ROUTES / "none") is None
    assert default_gateway(ROUTES / "missing") is None


def test_gateway_word_is_replaced_by_the_first_hop_and_tagged() -> None:
    """`gateway` is measured at the next hop's address, in its place, tagged hop=first."""
    pinger = RecordingPinger(rtt_ms=2.0)
    probe = LatencyProbe(
        LatencyConfig(targets=("gateway", "1.1.1.1"), count=3),
        pinger=pinger,
        first_hop=lambda: default_gateway(ROUTES / "default"),
    )
    samples = probe.collect()
    assert pinger.asked == [("192.168.8.1", "1.1.1.1")]
    first = [s for s in samples if s.tags["target"] == "192.168.8.1"]
    other = [s for s in samples if s.tags["target"] == "1.1.1.1"]
    assert first and all(s.tags["hop"] == "first" for s in first)
    assert other and all("hop" not in s.tags for s in other)


def test_no_default_route_drops_the_first_hop_only() -> None:
    """Without a default route the other targets are still measured."""
    pinger = RecordingPinger()
    probe = LatencyProbe(
        LatencyConfig(targets=("gateway", "1.1.1.1")), pinger=pinger, first_hop=lambda: None
    )
    probe.collect()
    assert pinger.asked == [("1.1.1.1",)]
    alone = LatencyProbe(LatencyConfig(targets=("gateway",)), pinger=pinger, first_hop=lambda: None)
    assert alone.collect() == []


def test_the_gateway_word_becomes_the_first_hop_address_in_place() -> None:
    """diag and the probe share one expansion: in place, once, and dropped with no route."""
    targets = ("1.1.1.1", "gateway", "example.id")
    assert with_first_hop(targets, lambda: "192.0.2.1") == (
        ("1.1.1.1", "192.0.2.1", "example.id"),
        "192.0.2.1",
    )
    assert with_first_hop(targets, lambda: None) == (("1.1.1.1", "example.id"), None)
    assert with_first_hop(("192.0.2.1", "gateway"), lambda: "192.0.2.1")[0] == ("192.0.2.1",)
    assert with_first_hop(("1.1.1.1",), lambda: "192.0.2.1") == (("1.1.1.1",), None)
