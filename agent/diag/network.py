"""Checks of the way out: name resolution and the round trips to the latency targets."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from agent.diag.base import CheckResult, DiagInputs, Earlier, needs_config, result
from agent.probes.dns import nameservers
from agent.probes.latency import FIRST_HOP, with_first_hop
from agent.probes.ping.engine import PingResult, ping_round
from agent.probes.route import default_gateway


def is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def check_dns(inputs: DiagInputs, _earlier: Earlier, budget_s: float) -> CheckResult:
    if inputs.config is None:
        return needs_config("dns")
    names = [inputs.config.broker.host, *inputs.config.latency.targets]
    names = [n for n in names if n != FIRST_HOP]  # an address from the routing table, not a name
    names = list(dict.fromkeys(n for n in names if not is_address(n)))
    servers = ", ".join(nameservers()) or "-"
    if not names:
        return result("dns", "pass", "dns.nothing", servers=servers)
    slow: list[str] = []
    for host in names:
        found = inputs.resolver.lookup(host, timeout_s=budget_s)
        if found.error == "timeout":
            return result("dns", "fail", "dns.timeout", host=host, servers=servers)
        if found.error == "nxdomain":
            return result("dns", "fail", "dns.nxdomain", host=host, servers=servers)
        if found.error is not None:
            return result("dns", "fail", "dns.error", host=host, error=found.error)
        if found.elapsed_s > 1.0:
            slow.append(f"{host} {found.elapsed_s:.1f} s")
    if slow:
        return result("dns", "warn", "dns.slow", slow=", ".join(slow), servers=servers)
    return result("dns", "pass", "dns.ok", names=", ".join(names), servers=servers)


# A geostationary VSAT round trip is ~600-800 ms; twice that is congestion or worse.
SLOW_MS = 1500.0
FIRST_HOP_SLOW_MS = 100.0  # the modem is one LAN/Wi-Fi link away: tens of ms at most


def latency_verdict(rounds: Sequence[PingResult], hop: str | None) -> CheckResult:
    """Tell the first hop (the modem, from the routing table) from the backhaul targets behind it.

    Silent first hop: "modem/LAN down". First hop answers and every other target is silent: "backhaul
    down beyond the first hop". Any loss: "lossy". Answers slower than SLOW_MS: "slow"."""
    seen = "; ".join(_describe(r) for r in rounds)
    first = [r for r in rounds if hop is not None and r.target == hop]
    beyond = [r for r in rounds if r not in first]
    answered = [r for r in beyond if r.rtt_avg_ms is not None]
    if first and first[0].rtt_avg_ms is None:
        return result("latency", "fail", "latency.first_hop_down", hop=first[0].target, seen=seen)
    if not answered and beyond:
        if first:
            return result(
                "latency", "fail", "latency.backhaul_down", hop=first[0].target, seen=seen
            )
        return result("latency", "fail", "latency.all_silent", seen=seen)
    if any((r.loss_ratio or 0.0) > 0 for r in rounds):
        return result("latency", "warn", "latency.lossy", seen=seen)
    slow_first = first and (first[0].rtt_avg_ms or 0.0) > FIRST_HOP_SLOW_MS
    if slow_first or any((r.rtt_avg_ms or 0.0) > SLOW_MS for r in answered):
        return result("latency", "warn", "latency.slow", seen=seen, limit_ms=round(SLOW_MS))
    return result("latency", "pass", "latency.ok", seen=seen)


def _describe(r: PingResult) -> str:
    # Numbers and the method only: the engine's error words are English, the line may be Indonesian.
    if r.rtt_avg_ms is None:
        return f"{r.target} 100%"
    return f"{r.target} {r.rtt_avg_ms:.0f} ms {r.loss_ratio or 0.0:.0%} ({r.method})"


def check_latency(inputs: DiagInputs, _earlier: Earlier, budget_s: float) -> CheckResult:
    if inputs.config is None:
        return needs_config("latency")
    latency = inputs.config.latency
    # The first hop is always measured, named or not: it is what tells the modem from the backhaul.
    targets, hop = with_first_hop(
        (FIRST_HOP, *latency.targets), lambda: default_gateway(inputs.proc)
    )
    if not targets:
        return result("latency", "warn", "latency.no_targets")
    # Three probes are enough to tell "answers" from "silent" and keep the round inside the budget.
    timeout_s = max(0.5, min(latency.timeout_s, budget_s - 0.6))
    rounds = ping_round(
        targets,
        count=3,
        interval_s=0.2,
        timeout_s=timeout_s,
        method=latency.method,
        tcp_port=latency.tcp_port,
    )
    return latency_verdict(rounds, hop)
