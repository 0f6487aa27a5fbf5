"""Where the way out breaks: a traceroute with scapy (the `diag` extra), each hop named LAN, first
hop (the modem), backhaul (the VSAT hub or ISP: private or carrier-grade NAT addresses behind the
modem) or beyond (the internet).

All probes of a trace go out at once, one per TTL, and the answers are awaited once, so the check
takes about its timeout whatever the path. ICMP echo towards the first latency target that is not
the first hop; a TCP SYN to the broker's port when there is none (ICMP is often filtered on the way
to a broker). scapy is imported only here, when the check runs: the daemon never loads it.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from agent.diag.base import CheckResult, DiagInputs, Earlier, Status, needs_config, result
from agent.probes.latency import FIRST_HOP
from agent.probes.route import default_gateway

MAX_HOPS = 12
Kind = Literal["lan", "first_hop", "backhaul", "beyond"]
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
# A hop's kind inside a line, in words both languages use as they are (the line's own words come
# from messages.py): "internet" for beyond the backhaul.
KIND_WORDS: dict[Kind, str] = {
    "lan": "LAN",
    "first_hop": "modem",
    "backhaul": "backhaul",
    "beyond": "internet",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Hop:
    ttl: int
    address: str
    reached: bool  # the destination itself answered


def classify(hops: Sequence[Hop], first_hop: str | None) -> list[tuple[Hop, Kind]]:
    """Name each hop: before the modem LAN, the modem itself first hop, private or CGNAT addresses
    after it backhaul, public ones beyond. Without a known modem the first hop that answers is it."""
    modem_ttl = next((h.ttl for h in hops if h.address == first_hop), None)
    if modem_ttl is None and hops:
        modem_ttl = hops[0].ttl
    named: list[tuple[Hop, Kind]] = []
    for hop in hops:
        address = ipaddress.ip_address(hop.address)
        kind: Kind
        if modem_ttl is not None and hop.ttl < modem_ttl:
            kind = "lan"
        elif hop.ttl == modem_ttl:
            kind = "first_hop"
        elif address.is_private or address in _CGNAT:
            kind = "backhaul"
        else:
            kind = "beyond"
        named.append((hop, kind))
    return named


def trace(address: str, *, timeout_s: float, tcp_port: int | None = None) -> list[Hop]:
    """One probe per TTL 1..MAX_HOPS towards `address`; the hops that answered, by TTL, up to the
    destination. Raise ImportError without scapy, PermissionError without CAP_NET_RAW."""
    from scapy.layers.inet import ICMP, IP, TCP  # noqa: PLC0415 - the diag extra, loaded on use
    from scapy.sendrecv import sr  # noqa: PLC0415

    # Each probe its own IP id and sequence, so an answer (which quotes the probe) is matched to the
    # TTL that caused it: with identical probes scapy pairs answers with the wrong TTL.
    base = random.randrange(1, 0xFFFF - MAX_HOPS)
    probes = []
    for ttl in range(1, MAX_HOPS + 1):
        layer = (
            TCP(sport=base + ttl, dport=tcp_port, flags="S")
            if tcp_port is not None
            else ICMP(id=base, seq=ttl)
        )
        probes.append(IP(dst=address, ttl=ttl, id=base + ttl) / layer)
    answered, _lost = sr(probes, timeout=timeout_s, verbose=0, retry=0)
    hops: dict[int, Hop] = {}
    for sent, got in answered:
        reached = got.src == address
        hops[int(sent.ttl)] = Hop(ttl=int(sent.ttl), address=str(got.src), reached=reached)
    ordered: list[Hop] = []
    for ttl in sorted(hops):
        ordered.append(hops[ttl])
        if hops[ttl].reached:
            break
    return ordered


def _destination(
    inputs: DiagInputs, budget_s: float, first_hop: str | None
) -> tuple[str, int | None] | None:
    """(address, TCP port or None for ICMP) to trace towards, or None when nothing resolves."""
    assert inputs.config is not None
    targets = [t for t in inputs.config.latency.targets if t not in (FIRST_HOP, first_hop)]
    broker = inputs.config.broker
    for name, port in [*((t, None) for t in targets), (broker.host, broker.port)]:
        found = inputs.resolver.lookup(name, timeout_s=budget_s / 4)
        v4 = [a for a in found.addresses if ipaddress.ip_address(a).version == 4]
        if v4:
            return v4[0], port
    return None


def _path_text(named: Sequence[tuple[Hop, Kind]]) -> str:
    return ", ".join(f"{h.ttl} {h.address} ({KIND_WORDS[k]})" for h, k in named)


def check_path(inputs: DiagInputs, earlier: Earlier, budget_s: float) -> CheckResult:
    if inputs.config is None:
        return needs_config("path")
    first_hop = default_gateway(inputs.proc)
    where = _destination(inputs, budget_s, first_hop)
    if where is None:
        return result("path", "warn", "path.no_target")
    address, port = where
    try:
        hops = trace(address, timeout_s=max(0.5, budget_s * 0.6), tcp_port=port)
    except ImportError:
        return result("path", "warn", "path.no_scapy")
    except PermissionError:
        return result("path", "warn", "path.no_permission")
    except OSError as err:
        return result("path", "warn", "path.failed", error=str(err))
    named = classify(hops, first_hop)
    args = {
        "dst": address,
        "how": "ICMP" if port is None else f"TCP {port}",
        "path": _path_text(named) or "-",
    }
    if hops and hops[-1].reached:
        return result("path", "pass", "path.ok", hops=len(hops), **args)
    if not hops:
        return result("path", "fail", "path.no_hop", **args)
    last, kind = named[-1]
    # A silent hop is common where routers filter; it is a fault when the latency line says so.
    latency = earlier.get("latency")
    status: Status = "fail" if latency is not None and latency.status == "fail" else "warn"
    return result(
        "path",
        status,
        "path.breaks",
        after=last.ttl,
        at=last.address,
        kind=KIND_WORDS[kind],
        **args,
    )
