"""Network-edge fakes for the measurement probes: a speed-test transport with a chosen rate, LAN
interface counters driven by a traffic curve on virtual time, and a pinger that answers everything
and remembers what it was asked."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.config.schema import LatencyConfig
from agent.probes.ping.engine import PingResult
from agent.probes.speedtest.transport import Direction, Transfer
from agent.probes.throughput import IfCounters

Now = Callable[[], float]


@dataclass(frozen=True, slots=True, kw_only=True)
class Call:
    direction: Direction
    url: str
    max_bytes: int
    max_seconds: float


@dataclass(slots=True, kw_only=True)
class FakeTransport:
    """Moves `rate_bps` of payload until the byte or time cap; costs payload plus `overhead_ratio`
    plus `handshake_bytes`, as a real TCP connection roughly does. `fail` makes every transfer
    fail after its handshake."""

    rate_bps: float
    overhead_ratio: float = 0.05
    handshake_bytes: int = 8_000
    fail: str | None = None
    calls: list[Call] = field(default_factory=list)
    cost_total: int = 0

    def transfer(
        self, direction: Direction, url: str, *, max_bytes: int, max_seconds: float
    ) -> Transfer:
        self.calls.append(
            Call(direction=direction, url=url, max_bytes=max_bytes, max_seconds=max_seconds)
        )
        if self.fail is not None:
            self.cost_total += self.handshake_bytes
            return Transfer(
                direction=direction,
                body_bytes=0,
                seconds=0.0,
                cost_bytes=self.handshake_bytes,
                error=self.fail,
            )
        body = min(max_bytes, int(self.rate_bps / 8 * max_seconds))
        cost = math.ceil(body * (1 + self.overhead_ratio)) + self.handshake_bytes
        self.cost_total += cost
        return Transfer(
            direction=direction,
            body_bytes=body,
            seconds=body * 8 / self.rate_bps,
            cost_bytes=cost,
        )


class LanTraffic:
    """Counters of one interface whose rx+tx rate at time t is `rate_bps(t)` (split evenly)."""

    def __init__(self, interface: str, now: Now, rate_bps: Callable[[float], float]) -> None:
        self._interface = interface
        self._now = now
        self._rate = rate_bps
        self._last = now()
        self._bytes = 0.0

    def __call__(self) -> dict[str, IfCounters]:
        now = self._now()
        self._bytes += self._rate(now) / 8 * max(0.0, now - self._last)
        self._last = now
        half = int(self._bytes / 2)
        return {
            self._interface: IfCounters(
                rx_bytes=half,
                tx_bytes=half,
                rx_packets=0,
                tx_packets=0,
                rx_errors=0,
                tx_errors=0,
                rx_drops=0,
                tx_drops=0,
            )
        }


@dataclass(slots=True)
class RecordingPinger:
    """Answers every target in `rtt_ms`; `asked` keeps the target lists of each round."""

    rtt_ms: float = 10.0
    asked: list[tuple[str, ...]] = field(default_factory=list)

    def __call__(self, config: LatencyConfig) -> list[PingResult]:
        self.asked.append(config.targets)
        return [
            PingResult(
                target=target,
                address=target,
                method="icmp-raw",
                sent=config.count,
                rtts_ms=(self.rtt_ms,) * config.count,
            )
            for target in config.targets
        ]


@dataclass(slots=True)
class LossyPinger:
    """Answers every target in `rtt_ms` except, in round n, the first `lost[n]` of its probes
    (the last entry repeats once the list runs out)."""

    lost: tuple[int, ...]
    rtt_ms: float = 10.0
    rounds: int = 0

    def __call__(self, config: LatencyConfig) -> list[PingResult]:
        lost = min(self.lost[min(self.rounds, len(self.lost) - 1)], config.count)
        self.rounds += 1
        return [
            PingResult(
                target=target,
                address=target,
                method="icmp-raw",
                sent=config.count,
                rtts_ms=(self.rtt_ms,) * (config.count - lost),
            )
            for target in config.targets
        ]
