"""What a run delivered, per site: the gateway's side (what it committed) against the consumer's.

Per site, seqs 1..last_seq of the gateway's buffer epoch were committed. Each is delivered (under that
epoch), or dropped by the buffer bound (counted in `buffer.dropped_total`), or still in the buffer, or
lost. Lost must be zero.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

from agent.reading import Reading
from simulator.virtual.clock import virtual_at
from simulator.virtual.gateway import GatewayResult


class Delivered(Protocol):
    """What reached the consumer: the in-process checker (`collector.Collector`) or the real
    collector's database (`stored.Stored`)."""

    def arrivals(self, site: str, epoch: str | None = None) -> dict[int, float]:
        """seq -> time.time() when it reached the consumer (first copy), in one epoch."""
        ...

    def duplicates(self, site: str) -> int:
        """Repeats of an (epoch, seq) already delivered."""
        ...

    def readings(self, site: str, epoch: str | None = None) -> list[Reading]:
        """One reading per seq of one epoch, by seq."""
        ...


# Metrics drawn by `report`, with the tags that pick one series.
SERIES: dict[str, dict[str, str]] = {
    "latency.rtt_avg_ms": {},
    "latency.loss_percent": {},
    "throughput.rx_bps": {"iface": "eth0"},
    "uptime.backhaul_up": {},
    "buffer.backlog_readings": {},
    "buffer.dropped_total": {},  # tells readings dropped by the bound from rounds held in memory
}


@dataclass(frozen=True, slots=True, kw_only=True)
class SiteSummary:
    site: str
    committed: int
    delivered: int
    lost: int
    duplicated: int
    dropped_by_bound: int
    dropped_in_memory: int
    backlog_end: int
    boots: int
    worst_delay_s: float | None


def site_summary(
    result: GatewayResult, collector: Delivered, marks: Sequence[tuple[float, float]]
) -> SiteSummary:
    """Compare one gateway's committed seqs with what reached the collector. Delay is in virtual
    time: from when the round was measured to the virtual moment the message reached the broker."""
    arrivals = collector.arrivals(result.site, result.epoch)
    listed = list(marks)
    delivered = 0
    worst: float | None = None
    for seq, arrived in arrivals.items():
        if not 1 <= seq <= result.last_seq:
            continue
        delivered += 1
        measured = result.true_time(seq)
        if measured is not None:
            delay = virtual_at(listed, arrived) - measured
            worst = delay if worst is None else max(worst, delay)
    missing = result.last_seq - delivered
    return SiteSummary(
        site=result.site,
        committed=result.last_seq,
        delivered=delivered,
        lost=max(0, missing - result.dropped_by_bound - result.backlog),
        duplicated=collector.duplicates(result.site),
        dropped_by_bound=result.dropped_by_bound,
        dropped_in_memory=result.dropped_in_memory,
        backlog_end=result.backlog,
        boots=result.boots,
        worst_delay_s=None if worst is None else round(worst, 1),
    )


def totals(sites: Iterable[SiteSummary]) -> dict[str, int | float | None]:
    listed = list(sites)
    keys = (
        "committed",
        "delivered",
        "lost",
        "duplicated",
        "dropped_by_bound",
        "dropped_in_memory",
        "backlog_end",
    )
    out: dict[str, int | float | None] = {k: sum(getattr(s, k) for s in listed) for k in keys}
    delays = [s.worst_delay_s for s in listed if s.worst_delay_s is not None]
    out["worst_delay_s"] = max(delays) if delays else None
    return out


def as_dict(site: SiteSummary) -> dict[str, object]:
    return asdict(site)


def series(result: GatewayResult, collector: Delivered) -> dict[str, list[tuple[float, float]]]:
    """The report's time series for one site, on true time (a reading without one is left out)."""
    out: dict[str, list[tuple[float, float]]] = {metric: [] for metric in SERIES}
    for reading in collector.readings(result.site, result.epoch):
        tags = SERIES.get(reading.metric)
        if tags is None or any(reading.tags.get(k) != v for k, v in tags.items()):
            continue
        measured = result.true_time(reading.seq)
        if measured is not None:
            out[reading.metric].append((measured, reading.value))
    return out
