"""Latency: per target min/avg/max round trip, jitter and loss, with the method as a tag."""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from agent.config import LatencyConfig
from agent.probes.ping import PingResult, ping_round
from agent.reading import Sample

PingRound = Callable[[LatencyConfig], Sequence[PingResult]]
FirstHop = Callable[[], str | None]

# The word in `latency.targets` that stands for the default route's next hop.
FIRST_HOP = "gateway"
_RTF_GATEWAY = 0x2  # <linux/route.h>: the route goes through a gateway


def default_gateway(route: Path = Path("/proc/net/route")) -> str | None:
    """The IPv4 next hop of the default route, or None when there is none (or no such file)."""
    try:
        lines = route.read_text(encoding="ascii").splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) < 8 or fields[1] != "00000000" or fields[7] != "00000000":
            continue
        if int(fields[3], 16) & _RTF_GATEWAY:
            # The kernel prints the address as a host-order (little-endian on ARM and x86) word.
            return socket.inet_ntoa(struct.pack("<I", int(fields[2], 16)))
    return None


def real_ping(config: LatencyConfig) -> list[PingResult]:
    return ping_round(
        config.targets,
        count=config.count,
        interval_s=config.interval_s,
        timeout_s=config.timeout_s,
        method=config.method,
        tcp_port=config.tcp_port,
    )


def result_samples(result: PingResult, *, first_hop: bool = False) -> list[Sample]:
    """The readings of one target's round: loss always, RTT statistics when anything answered."""
    tags = {"target": result.target, "method": result.method}
    if first_hop:
        tags["hop"] = "first"
    # Nothing could be sent (name not resolved, no route): for the office that is full loss.
    loss = 1.0 if result.loss_ratio is None else result.loss_ratio
    samples = [Sample(metric="latency.loss_percent", value=round(loss * 100, 2), tags=tags)]
    stats = (
        ("latency.rtt_min_ms", result.rtt_min_ms),
        ("latency.rtt_avg_ms", result.rtt_avg_ms),
        ("latency.rtt_max_ms", result.rtt_max_ms),
        ("latency.jitter_ms", result.jitter_ms),
    )
    samples += [
        Sample(metric=metric, value=round(value, 3), tags=tags)
        for metric, value in stats
        if value is not None
    ]
    return samples


class LatencyProbe:
    """One ping round to every target; the round's duration is bounded by the pinger."""

    name = "latency"

    def __init__(
        self,
        config: LatencyConfig,
        *,
        pinger: PingRound = real_ping,
        first_hop: FirstHop = default_gateway,
    ) -> None:
        self._config = config
        self._pinger = pinger
        self._first_hop = first_hop

    def collect(self) -> list[Sample]:
        config, hop = self._config, None
        if FIRST_HOP in config.targets:
            # Looked up every round: a 4G modem's DHCP may hand out a new route at any time. With no
            # default route there is no first hop to measure, and the other targets say enough.
            hop = self._first_hop()
            targets = [t for t in config.targets if t != FIRST_HOP]
            if hop is not None and hop not in targets:
                targets.insert(config.targets.index(FIRST_HOP), hop)
            config = replace(config, targets=tuple(targets))
        if not config.targets:
            return []
        samples: list[Sample] = []
        for result in self._pinger(config):
            samples += result_samples(result, first_hop=result.target == hop)
        return samples
