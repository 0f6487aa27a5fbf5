"""Gateways in lock step on one timeline: a virtual round for each, then a real moment for the broker.

Measuring, buffering and scheduling run in virtual time. The MQTT connections are real, so after each
virtual round the links get real time to carry what was sent and bring the acknowledgements back
(`settle`), and at the end the backlog drains with power and network restored (`drain`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from simulator.virtual.clock import Timeline
from simulator.virtual.gateway import Gateway, GatewayResult

# A poll, not a busy loop: acknowledgements on loopback take a fraction of a millisecond.
_POLL_S = 0.0005


@dataclass(frozen=True, slots=True, kw_only=True)
class WorldResult:
    gateways: tuple[GatewayResult, ...]
    marks: tuple[tuple[float, float], ...]  # (real, virtual): where broker arrivals fall in time
    wall_s: float
    drained: bool  # every backlog reached zero before the deadline


# Whether a consumer has every message the gateways' broker acknowledged.
CaughtUp = Callable[[Sequence[Gateway]], bool]
CATCH_UP_S = 10.0


def settle(gateways: Sequence[Gateway], budget_s: float) -> None:
    """Service the links until nothing is in flight (or the budget is spent)."""
    deadline = time.monotonic() + budget_s
    busy = [g for g in gateways if not g.settled()]
    while busy and time.monotonic() < deadline:
        time.sleep(_POLL_S)
        for gateway in busy:
            gateway.service()
        busy = [g for g in busy if not g.settled()]


def wait_connected(gateways: Sequence[Gateway], timeout_s: float) -> None:
    """Give first connections real time to complete, so the first virtual minutes are not spent
    waiting for TCP and CONNACK (a real gateway connects in well under a round)."""
    deadline = time.monotonic() + timeout_s
    waiting = [g for g in gateways if g.should_connect()]
    while waiting and time.monotonic() < deadline:
        time.sleep(_POLL_S * 4)
        waiting = [g for g in waiting if not g.connected()]


def drain(gateways: Sequence[Gateway], timeout_s: float) -> bool:
    """Power and network back everywhere; service until every buffer is empty. True if they all
    emptied within the time."""
    for gateway in gateways:
        gateway.restore()
    deadline = time.monotonic() + timeout_s
    pending = list(gateways)
    while pending and time.monotonic() < deadline:
        time.sleep(_POLL_S * 4)
        for gateway in pending:
            gateway.service()
        pending = [g for g in pending if not g.settled() or g.backlog() > 0]
    return not pending


def run_world(
    gateways: Sequence[Gateway],
    timeline: Timeline,
    *,
    hours: float,
    settle_s: float = 0.5,
    drain_s: float = 60.0,
    progress: Callable[[float], None] | None = None,
    caught_up: CaughtUp | None = None,
) -> WorldResult:
    """Run every gateway through `hours` of virtual time, then drain. The gateways share one
    measurement interval (the first one's `interval_s`).

    With `caught_up`, virtual time also waits (up to CATCH_UP_S of real time a round) until the
    consumer has what the broker acknowledged: a consumer that lags on a busy machine would
    otherwise read as minutes of virtual delivery delay, a measure of the machine, not the site."""
    started = time.monotonic()
    interval = gateways[0].config.interval_s
    end = timeline.now() + hours * 3600
    for gateway in gateways:
        gateway.boot()
    wait_connected(gateways, settle_s * 20)
    while True:
        for gateway in gateways:
            gateway.step()
        settle(gateways, settle_s)
        if caught_up is not None:
            deadline = time.monotonic() + CATCH_UP_S
            while not caught_up(gateways) and time.monotonic() < deadline:
                time.sleep(_POLL_S)
        if progress is not None:
            progress(timeline.now())
        if timeline.now() + interval > end + 1e-6:
            break
        timeline.advance(interval)
    drained = drain(gateways, drain_s)
    results = tuple(g.finish() for g in gateways)
    return WorldResult(
        gateways=results,
        marks=tuple(timeline.marks()),
        wall_s=time.monotonic() - started,
        drained=drained,
    )
