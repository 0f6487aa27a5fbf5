"""Uptime: how long the gateway and the agent have run, and whether the backhaul is up."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

from agent.clock import Clock
from agent.reading import Sample

UptimeSource = Callable[[], float]


def proc_uptime(path: Path = Path("/proc/uptime")) -> float:
    """Seconds since the kernel booted."""
    return float(path.read_text(encoding="ascii").split()[0])


class UptimeProbe:
    """System and agent uptime in seconds."""

    name = "uptime"

    def __init__(self, clock: Clock, *, system_uptime: UptimeSource = proc_uptime) -> None:
        self._clock = clock
        self._system_uptime = system_uptime
        self._started = clock.monotonic()

    def collect(self) -> list[Sample]:
        return [
            Sample(metric="uptime.system_s", value=round(self._system_uptime(), 1)),
            Sample(
                metric="uptime.agent_s", value=round(self._clock.monotonic() - self._started, 1)
            ),
        ]


def backhaul_answered(samples: Sequence[Sample]) -> bool | None:
    """Whether any latency target answered this round; None when no latency was measured."""
    # The first hop (the modem or router) answers even when the backhaul behind it is dead.
    losses = [
        s.value
        for s in samples
        if s.metric == "latency.loss_percent" and s.tags.get("hop") != "first"
    ]
    if not losses:
        return None
    return any(loss < 100 for loss in losses)


class BackhaulTracker:
    """Turns each round's latency results into link state, outage events and availability.

    An outage starts at the first round in which no target answered and ends at the first round in
    which one did; its duration is measured on the monotonic clock, so a clock sync in the middle of an
    outage does not stretch or shrink it.
    """

    def __init__(self, clock: Clock, *, window_s: float = 86_400.0) -> None:
        self._clock = clock
        self._window_s = window_s
        self._down_since: float | None = None
        self._history: deque[tuple[float, bool]] = deque()
        self._ups = 0  # rounds up within the window, kept as rounds enter and leave it

    def update(self, samples: Sequence[Sample]) -> list[Sample]:
        up = backhaul_answered(samples)
        if up is None:
            return []
        now = self._clock.monotonic()
        self._history.append((now, up))
        self._ups += up
        while self._history and self._history[0][0] < now - self._window_s:
            self._ups -= self._history.popleft()[1]
        out = [Sample(metric="uptime.backhaul_up", value=1.0 if up else 0.0)]
        if not up and self._down_since is None:
            self._down_since = now
            out.append(Sample(metric="event.outage_start", value=1.0))
        elif up and self._down_since is not None:
            duration = now - self._down_since
            self._down_since = None
            out.append(Sample(metric="event.outage_end_s", value=round(duration, 1)))
        ups = self._ups
        out.append(
            Sample(metric="uptime.availability_ratio", value=round(ups / len(self._history), 4))
        )
        return out
