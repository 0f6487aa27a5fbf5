"""Passive throughput: per-interface kernel counters turned into bytes, bit/s, packets, errors, drops."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields

import psutil

from agent.clock import Clock
from agent.reading import Sample

# 32-bit kernels (Raspberry Pi OS armhf) keep 32-bit interface counters: they wrap after 4 GiB.
_WRAP_32 = 2**32


@dataclass(frozen=True, slots=True, kw_only=True)
class IfCounters:
    rx_bytes: int
    tx_bytes: int
    rx_packets: int
    tx_packets: int
    rx_errors: int
    tx_errors: int
    rx_drops: int
    tx_drops: int


CounterSource = Callable[[], Mapping[str, IfCounters]]


def psutil_counters() -> dict[str, IfCounters]:
    """The kernel's counters, raw: wraps and resets are handled by the probe, not hidden by psutil."""
    return {
        name: IfCounters(
            rx_bytes=c.bytes_recv,
            tx_bytes=c.bytes_sent,
            rx_packets=c.packets_recv,
            tx_packets=c.packets_sent,
            rx_errors=c.errin,
            tx_errors=c.errout,
            rx_drops=c.dropin,
            tx_drops=c.dropout,
        )
        for name, c in psutil.net_io_counters(pernic=True, nowrap=False).items()
    }


def counter_delta(old: int, new: int) -> int:
    """Increase of a kernel counter between two reads, across a 32-bit wrap or an interface reset.

    A fall near the top of the 32-bit range is a wrap; any other fall means the counter restarted
    (driver reload, interface re-created) and everything it counts now happened since.
    """
    if new >= old:
        return new - old
    if _WRAP_32 // 2 <= old < _WRAP_32 and new < _WRAP_32 // 2:
        return new + _WRAP_32 - old
    return new


class ThroughputProbe:
    """Bytes and bit/s per interface since the previous round."""

    name = "throughput"

    def __init__(
        self,
        clock: Clock,
        *,
        interfaces: Sequence[str] = (),
        source: CounterSource = psutil_counters,
    ) -> None:
        self._clock = clock
        self._interfaces = tuple(interfaces)
        self._source = source
        self._last: dict[str, tuple[float, IfCounters]] = {}

    def collect(self) -> list[Sample]:
        now = self._clock.monotonic()
        counters = self._source()
        names = self._interfaces or tuple(n for n in counters if n != "lo")
        samples: list[Sample] = []
        for name in names:
            current = counters.get(name)
            if current is None:
                self._last.pop(name, None)
                continue
            previous = self._last.get(name)
            self._last[name] = (now, current)
            if previous is None:
                continue
            then, old = previous
            elapsed = now - then
            if elapsed <= 0:
                continue
            tags = {"iface": name}
            for spec in fields(IfCounters):
                delta = counter_delta(getattr(old, spec.name), getattr(current, spec.name))
                samples.append(Sample(metric=f"throughput.{spec.name}", value=delta, tags=tags))
                if spec.name.endswith("_bytes"):
                    direction = spec.name.split("_")[0]
                    samples.append(
                        Sample(
                            metric=f"throughput.{direction}_bps",
                            value=round(delta * 8 / elapsed, 1),
                            tags=tags,
                        )
                    )
        return samples
