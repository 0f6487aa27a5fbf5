"""Time as the collector sees it. Injected wherever it decides something (batch deadlines, last seen,
retention), so tests and the benchmark can drive it."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """What the collector needs of time."""

    def wall(self) -> float:
        """Seconds since the epoch, UTC. The provincial server's clock is NTP-synced."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps: for deadlines and intervals."""
        ...


class SystemClock:
    """The machine's clocks."""

    def wall(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


def wall_ms(clock: Clock) -> int:
    """The wall clock in milliseconds, the unit of every time column."""
    return int(clock.wall() * 1000)
