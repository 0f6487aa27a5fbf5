"""Fakes for what lies outside the agent: the site's events, interface counters, ping, disk space.

Each fake stands behind the same callable the real probe takes (`CounterSource`, `PingRound`,
`UptimeSource`, `FreeBytes`), driven by a scenario, the virtual clock and a seeded random generator.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent.config.schema import LatencyConfig
from agent.probes.dns import DnsAnswer
from agent.probes.ping.engine import PingResult
from agent.probes.throughput import IfCounters
from simulator.virtual.scenario import EventKind, HotspotSpec, LinkProfile, Scenario

TrueTime = Callable[[], float]

WAN, LAN = "eth0", "wlan0"
PLENTY_FREE_BYTES = 8 * 1024**3
FULL_FREE_BYTES = 1024**2  # below any sensible buffer.min_free_mb
CARD_BYTES = 16 * 1024**3


@dataclass(frozen=True, slots=True, kw_only=True)
class Window:
    kind: EventKind
    start: float  # true time, seconds since the epoch
    end: float
    ntp_sync_after_s: float | None
    step_s: float = 0.0


class Schedule:
    """The scenario's events on the true timeline: what is broken at a given moment."""

    def __init__(self, scenario: Scenario) -> None:
        origin = scenario.start_s
        self.windows = tuple(
            Window(
                kind=e.kind,
                start=origin + e.at_h * 3600,
                end=origin + (e.at_h + e.for_h) * 3600,
                ntp_sync_after_s=None if e.ntp_sync_after_h is None else e.ntp_sync_after_h * 3600,
                step_s=e.step_s,
            )
            for e in scenario.events
        )

    def active(self, kind: EventKind, true: float) -> Window | None:
        for window in self.windows:
            if window.kind == kind and window.start <= true < window.end:
                return window
        return None

    def last_ended(self, kind: EventKind, true: float) -> Window | None:
        """The most recent window of `kind` that ended at or before `true`."""
        ended = [w for w in self.windows if w.kind == kind and w.end <= true]
        return max(ended, key=lambda w: w.end) if ended else None

    def backhaul_up(self, true: float) -> bool:
        return self.active("backhaul_outage", true) is None

    def broker_reachable(self, true: float) -> bool:
        return self.backhaul_up(true) and self.active("broker_outage", true) is None

    def disk_full(self, true: float) -> bool:
        return self.active("disk_full", true) is not None


def hotspot_use(hotspot: HotspotSpec, true: float) -> float:
    """Share of the peak use at this moment (0..1): quiet at night, a midday bump, the evening peak."""
    hour = ((true / 3600) + hotspot.utc_offset_h) % 24

    def bump(centre: float, width: float) -> float:
        distance = min(abs(hour - centre), 24 - abs(hour - centre))
        return math.exp(-((distance / width) ** 2))

    return min(1.0, 0.05 + 0.35 * bump(12.5, 2.0) + 0.95 * bump(hotspot.peak_hour, 2.5))


class FakeCounters:
    """Interface counters (a `CounterSource`): the WAN carries the hotspot's use of the backhaul.

    A new instance starts at zero, as the kernel's counters do after a boot.
    """

    def __init__(
        self, scenario: Scenario, schedule: Schedule, now: TrueTime, rng: random.Random
    ) -> None:
        self._link = scenario.link.resolved()
        self._hotspot = scenario.hotspot
        self._schedule = schedule
        self._now = now
        self._rng = rng
        self._last = now()
        self._totals = dict.fromkeys(("rx", "tx", "rxp", "txp"), 0.0)

    def __call__(self) -> dict[str, IfCounters]:
        now = self._now()
        elapsed, self._last = max(0.0, now - self._last), now
        if self._schedule.backhaul_up(now):
            use = hotspot_use(self._hotspot, now) * self._hotspot.peak_share
            noise = self._rng.uniform(0.8, 1.2)
            rx = use * noise * self._link.down_mbit * 1e6 / 8 * elapsed
            tx = use * noise * self._link.up_mbit * 1e6 / 8 * elapsed * 0.3
            self._totals["rx"] += rx
            self._totals["tx"] += tx
            self._totals["rxp"] += rx / 1200
            self._totals["txp"] += tx / 400
        rx_b, tx_b = int(self._totals["rx"]), int(self._totals["tx"])
        rx_p, tx_p = int(self._totals["rxp"]), int(self._totals["txp"])
        # What arrives on the WAN leaves on the hotspot side, and the other way round.
        return {
            WAN: IfCounters(
                rx_bytes=rx_b, tx_bytes=tx_b, rx_packets=rx_p, tx_packets=tx_p,
                rx_errors=0, tx_errors=0, rx_drops=0, tx_drops=0,
            ),
            LAN: IfCounters(
                rx_bytes=tx_b, tx_bytes=rx_b, rx_packets=tx_p, tx_packets=rx_p,
                rx_errors=0, tx_errors=0, rx_drops=0, tx_drops=0,
            ),
        }  # fmt: skip


class FakePinger:
    """A `PingRound`: seeded RTT and loss from the link profile, worse at the evening peak, all
    probes lost while the backhaul is down."""

    def __init__(
        self, scenario: Scenario, schedule: Schedule, now: TrueTime, rng: random.Random
    ) -> None:
        self._link: LinkProfile = scenario.link.resolved()
        self._hotspot = scenario.hotspot
        self._schedule = schedule
        self._now = now
        self._rng = rng

    def __call__(self, config: LatencyConfig) -> list[PingResult]:
        now = self._now()
        up = self._schedule.backhaul_up(now)
        use = hotspot_use(self._hotspot, now)
        loss = min(1.0, self._link.loss_ratio * (1 + 2 * use))
        results = []
        for target in config.targets:
            rtts: list[float] = []
            for _ in range(config.count):
                if not up or self._rng.random() < loss:
                    continue
                rtt = (
                    self._link.rtt_ms
                    + self._link.bloat_ms * use**2
                    + abs(self._rng.gauss(0, self._link.jitter_ms))
                )
                if rtt <= config.timeout_s * 1000:
                    rtts.append(round(rtt, 3))
            results.append(
                PingResult(
                    target=target,
                    address=target,
                    method="icmp-dgram",
                    sent=config.count,
                    rtts_ms=tuple(rtts),
                )
            )
        return results


class FakeNeighbours:
    """A `Neighbours` (the LAN's neighbour table): as many devices as the hour of day brings."""

    def __init__(self, scenario: Scenario, now: TrueTime, rng: random.Random) -> None:
        self._hotspot = scenario.hotspot
        self._now = now
        self._rng = rng

    def __call__(self, _interface: str) -> set[str]:
        use = hotspot_use(self._hotspot, self._now())
        count = max(0, round(self._hotspot.peak_clients * use * self._rng.uniform(0.85, 1.15)))
        return {f"02:00:00:00:{i >> 8:02x}:{i & 0xFF:02x}" for i in range(count)}


class FakeDisk:
    """A `FreeBytes` (and a `DiskUsage`): plenty of room, except while the scenario fills the card."""

    def __init__(self, schedule: Schedule, now: TrueTime) -> None:
        self._schedule = schedule
        self._now = now

    def __call__(self, _path: Path) -> int:
        return FULL_FREE_BYTES if self._schedule.disk_full(self._now()) else PLENTY_FREE_BYTES

    def usage(self, path: Path) -> tuple[int, int, int]:
        free = self(path)
        return CARD_BYTES, CARD_BYTES - free, free


class FakeResolver:
    """A DNS `Query`: the site's resolver answers after about one backhaul round trip while the
    backhaul is up, and not at all (a timeout) while it is down."""

    def __init__(
        self, scenario: Scenario, schedule: Schedule, now: TrueTime, rng: random.Random
    ) -> None:
        self._link: LinkProfile = scenario.link.resolved()
        self._schedule = schedule
        self._now = now
        self._rng = rng

    def __call__(self, server: str, port: int, name: str, *, timeout_s: float) -> DnsAnswer:
        if not self._schedule.backhaul_up(self._now()):
            return DnsAnswer(name=name, elapsed_ms=None, rcode="timeout")
        elapsed = self._link.rtt_ms + abs(self._rng.gauss(0, self._link.jitter_ms))
        if elapsed > timeout_s * 1000:
            return DnsAnswer(name=name, elapsed_ms=None, rcode="timeout")
        return DnsAnswer(
            name=name, elapsed_ms=round(elapsed, 3), rcode="noerror", addresses=("192.0.2.53",)
        )
