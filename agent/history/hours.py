"""One hour of a site's life, folded from its rounds: how often the backhaul answered, latency and
loss across it, and the bytes the WAN carried."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from agent.reading import Sample

HOUR_S = 3600


@dataclass(frozen=True, slots=True, kw_only=True)
class Hour:
    start: int  # wall-clock seconds (UTC) at the top of the hour
    rounds: int = 0
    up: int = 0  # rounds in which a backhaul target answered
    down: int = 0  # rounds in which none did
    rtt_sum_ms: float = 0.0  # backhaul targets' mean RTT, summed over the rounds that had one
    rtt_rounds: int = 0
    loss_sum: float = 0.0  # backhaul targets' mean loss in percent, summed per round
    loss_rounds: int = 0
    rx_bytes: int = 0  # every counted interface but the hotspot LAN
    tx_bytes: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Hour:
        """Raise (KeyError, TypeError, ValueError) on a line that is not an hour."""
        numbers = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        hour = cls(**numbers)
        for value in numbers.values():
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise TypeError("an hour holds numbers only")
            if not math.isfinite(value) or abs(value) > 1e15:
                raise ValueError("not a number an hour can hold")
        return hour


def hour_of(wall_s: float) -> int:
    return int(wall_s // HOUR_S * HOUR_S)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def fold(hour: Hour, samples: Sequence[Sample], *, lan_interface: str | None) -> Hour:
    """`hour` with one more round's samples in it."""
    backhaul = [s for s in samples if s.tags.get("hop") != "first"]
    rtt = _mean([s.value for s in backhaul if s.metric == "latency.rtt_avg_ms"])
    loss = _mean([s.value for s in backhaul if s.metric == "latency.loss_percent"])
    up = [s.value for s in samples if s.metric == "uptime.backhaul_up"]

    def wan_bytes(metric: str) -> int:
        return int(
            sum(
                s.value
                for s in samples
                if s.metric == metric and s.tags.get("iface") != lan_interface
            )
        )

    return replace(
        hour,
        rounds=hour.rounds + 1,
        up=hour.up + sum(1 for v in up if v > 0),
        down=hour.down + sum(1 for v in up if v <= 0),
        rtt_sum_ms=hour.rtt_sum_ms + (rtt or 0.0),
        rtt_rounds=hour.rtt_rounds + (rtt is not None),
        loss_sum=hour.loss_sum + (loss or 0.0),
        loss_rounds=hour.loss_rounds + (loss is not None),
        rx_bytes=hour.rx_bytes + wan_bytes("throughput.rx_bytes"),
        tx_bytes=hour.tx_bytes + wan_bytes("throughput.tx_bytes"),
    )
