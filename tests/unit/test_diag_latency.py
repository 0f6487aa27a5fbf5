"""The latency verdict: first hop against the backhaul behind it, loss, slowness."""

from __future__ import annotations

from agent.diag.network import SLOW_MS, latency_verdict
from agent.probes.ping.engine import PingResult

HOP = "192.168.1.1"


def _round(target: str, *rtts: float, sent: int = 3) -> PingResult:
    return PingResult(target=target, address=target, method="icmp", sent=sent, rtts_ms=rtts)


def test_silent_first_hop_is_modem_or_lan_down() -> None:
    """The modem silent fails as modem/LAN, even when a target beyond it is silent too."""
    found = latency_verdict([_round(HOP), _round("1.1.1.1")], HOP)
    assert (found.status, found.key) == ("fail", "latency.first_hop_down")


def test_answering_first_hop_and_silent_targets_is_backhaul_down() -> None:
    """The modem answers, every target behind it is silent: the backhaul, not dish pointing."""
    found = latency_verdict([_round(HOP, 2, 3, 2), _round("1.1.1.1"), _round("8.8.8.8")], HOP)
    assert (found.status, found.key) == ("fail", "latency.backhaul_down")
    assert found.args["hop"] == HOP


def test_no_first_hop_and_nothing_answers_is_all_silent() -> None:
    """Without a default route there is no first hop to tell apart."""
    found = latency_verdict([_round("1.1.1.1")], None)
    assert (found.status, found.key) == ("fail", "latency.all_silent")


def test_partial_loss_is_lossy_and_a_long_round_trip_is_slow() -> None:
    """One lost probe warns lossy; all answered but beyond SLOW_MS warns slow; else pass."""
    lossy = latency_verdict([_round(HOP, 2, 2, 2), _round("1.1.1.1", 600, 610)], HOP)
    assert (lossy.status, lossy.key) == ("warn", "latency.lossy")
    late = SLOW_MS + 200
    slow = latency_verdict([_round(HOP, 2, 2, 2), _round("1.1.1.1", late, late, late)], HOP)
    assert (slow.status, slow.key) == ("warn", "latency.slow")
    good = latency_verdict([_round(HOP, 2, 2, 2), _round("1.1.1.1", 600, 620, 640)], HOP)
    assert (good.status, good.key) == ("pass", "latency.ok")
    assert "1.1.1.1 620 ms 0% (icmp)" in str(good.args["seen"])
