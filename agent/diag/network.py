"""Checks of the way out: name resolution and the round trips to the latency targets."""

from __future__ import annotations

import ipaddress

from agent.diag.base import CheckResult, DiagInputs, Earlier, needs_config, result
from agent.probes.dns import nameservers
from agent.probes.latency import FIRST_HOP, with_first_hop
from agent.probes.ping.engine import ping_round


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


def check_latency(inputs: DiagInputs, _earlier: Earlier, budget_s: float) -> CheckResult:
    if inputs.config is None:
        return needs_config("latency")
    latency = inputs.config.latency
    targets, _hop = with_first_hop(latency.targets)
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
    parts: list[str] = []
    silent: list[str] = []
    lossy = False
    for r in rounds:
        if r.rtt_avg_ms is None:
            silent.append(f"{r.target} ({r.error or '100%'})")
            continue
        loss = r.loss_ratio or 0.0
        lossy = lossy or loss > 0
        parts.append(f"{r.target} {r.rtt_avg_ms:.0f} ms {loss:.0%} ({r.method})")
    seen = "; ".join(parts + silent)
    if not parts:
        return result("latency", "fail", "latency.all_silent", seen=seen)
    if silent or lossy:
        return result("latency", "warn", "latency.some_loss", seen=seen)
    return result("latency", "pass", "latency.ok", seen=seen)
