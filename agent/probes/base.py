"""The probe seam: a probe measures one family of metrics and returns samples."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from agent.reading import Sample


class ProbeError(Exception):
    """A probe could not measure; the round goes on without it."""


class Probe(Protocol):
    """Measures one family. `name` is the metric prefix, the config key and the registry key."""

    name: str

    def collect(self) -> Sequence[Sample]:
        """Measure now and return samples. Raise ProbeError when the source is unavailable."""
        ...
