"""What the dashboard's routes share: the read side, the site registry, the offline rule, the clock."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from collector.clock import Clock, SystemClock, wall_ms
from collector.dashboard.registry import SiteInfo

DEFAULT_OFFLINE_AFTER_S = 900.0


@dataclass(frozen=True, slots=True, kw_only=True)
class DashboardSettings:
    registry: Mapping[str, SiteInfo] = field(default_factory=dict)
    offline_after_s: float = DEFAULT_OFFLINE_AFTER_S
    clock: Clock = field(default_factory=SystemClock)

    @property
    def offline_after_ms(self) -> int:
        return round(self.offline_after_s * 1000)

    def now_ms(self) -> int:
        return wall_ms(self.clock)
