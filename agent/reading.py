"""The unit of data: a measured value with its name, tags and the evidence of when it was taken."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

Tags = Mapping[str, str]


@dataclass(frozen=True, slots=True, kw_only=True)
class Sample:
    """What a probe returns: a metric, its value and tags; the round stamps it with time."""

    metric: str
    value: float
    tags: Tags = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Stamp:
    """When a round was measured, with the evidence needed to correct a wrong wall clock later."""

    ts_ms: int  # wall clock, UTC, milliseconds since the epoch
    mono_ms: int  # monotonic clock of this boot, milliseconds
    boot_id: str
    synced: bool  # whether the wall clock was known to be right at ts_ms


@dataclass(frozen=True, slots=True, kw_only=True)
class Reading:
    """A sample stamped and numbered by the buffer. `seq` is per site, strictly increasing."""

    seq: int
    metric: str
    value: float
    tags: Tags
    ts_ms: int
    mono_ms: int
    boot_id: str
    synced: bool
