"""Latency: per target min/avg/max round trip, jitter and loss, with the method as a tag."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import replace

from agent.config.schema import LatencyConfig
from agent.probes.ping.engine import PingResult, ping_round
from agent.probes.route import default_gateway
from agent.reading import Sample

PingRound = Callable[[LatencyConfig], Sequence[PingResult]]
FirstHop = Callable[[], str | None]

# The word in `latency.targets` that stands for the default route's next hop.
FIRST_HOP = "gateway"


def with_first_hop(
    targets: Sequence[str], first_hop: FirstHop = default_gateway
) -> tuple[tuple[str, ...], str | None]:
    """The targets with the word `gateway` replaced by the first hop's address, and that address.
    With no default route there is no first hop to measure; the other targets say enough."""
    if FIRST_HOP not in targets:
        return tuple(targets), None
    hop = first_hop()
    expanded = [t for t in targets if t != FIRST_HOP]
    if hop is not None and hop not in expanded:
        expanded.insert(list(targets).index(FIRST_HOP), hop)
    return tuple(expanded), hop


def real_ping(config: LatencyConfig) -> list[PingResult]:
    return ping_round(
        config.targets,
        count=config.count,
        interval_s=config.interval_s,
        timeout_s=config.timeout_s,
        method=config.method,
        tcp_port=config.tcp_port,
    )


def _tags(result: PingResult, *, first_hop: bool) -> dict[str, str]:
    tags = {"target": result.target, "method": result.method}
    if first_hop:
        tags["hop"] = "first"
    return tags


def _loss_ratio(result: PingResult) -> float:
    # Nothing could be sent (name not resolved, no route): for the office that is full loss.
    return 1.0 if result.loss_ratio is None else result.loss_ratio


def result_samples(result: PingResult, *, first_hop: bool = False) -> list[Sample]:
    """The readings of one target's round: loss always, RTT statistics when anything answered."""
    tags = _tags(result, first_hop=first_hop)
    loss = _loss_ratio(result)
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


class LossWindow:
    """Loss over the last `size` probes of each target: a round of 10 probes moves loss in 10-point
    steps, which says little about a VSAT link's 1-3 %; a hundred probes resolve 1 point.

    In memory only: a restart (or a power cut) starts every window empty again, and nothing is
    reported until it has filled, so the reading always covers exactly `size` probes. A round only
    says how many of its probes were lost, not which: each of its probes counts as the round's loss
    ratio, which is exact whenever `size` is a multiple of the count and proportional otherwise.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        # Per target, not per method: a round whose name did not resolve is still that target's
        # loss, whatever method its result names.
        self._probes: dict[str, deque[float]] = {}

    def add(self, result: PingResult, count: int) -> float | None:
        """Add one target's round; return the window's loss in percent once it is full."""
        window = self._probes.setdefault(result.target, deque(maxlen=self._size))
        # A round that accounted for no probe at all reads as full loss in loss_percent: here too.
        window.extend([_loss_ratio(result)] * (result.sent or count))
        if len(window) < self._size:
            return None
        return round(sum(window) / self._size * 100, 2)

    def keep_only(self, targets: set[str]) -> None:
        """Forget targets not measured this round (a first hop whose address changed), so memory
        stays bounded; a target that comes back starts an empty window."""
        for target in self._probes.keys() - targets:
            del self._probes[target]


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
        self._window = LossWindow(config.loss_window)

    def collect(self) -> list[Sample]:
        # Looked up every round: a 4G modem's DHCP may hand out a new route at any time.
        targets, hop = with_first_hop(self._config.targets, self._first_hop)
        config = replace(self._config, targets=targets)
        if not config.targets:
            return []
        samples: list[Sample] = []
        measured: set[str] = set()
        for result in self._pinger(config):
            first_hop = result.target == hop
            samples += result_samples(result, first_hop=first_hop)
            measured.add(result.target)
            window_loss = self._window.add(result, config.count)
            if window_loss is not None:
                tags = _tags(result, first_hop=first_hop)
                samples.append(
                    Sample(metric="latency.loss_window_percent", value=window_loss, tags=tags)
                )
        self._window.keep_only(measured)
        return samples
