"""What one transaction stores: the typed records the ingest side hands to the store."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

OUTAGE_START = "event.outage_start"
OUTAGE_END = "event.outage_end_s"


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    """One reading as the `readings` table keeps it. `tags` is canonical JSON (keys sorted)."""

    site: str
    epoch: str
    seq: int
    raw_ts: int
    synced: bool
    boot_id: str
    mono_ms: int
    metric: str
    tags: str
    value: float

    def as_tuple(self) -> tuple[str, str, int, int, bool, str, int, str, str, float]:
        """In the column order of `ROW_COLUMNS`."""
        return (
            self.site,
            self.epoch,
            self.seq,
            self.raw_ts,
            self.synced,
            self.boot_id,
            self.mono_ms,
            self.metric,
            self.tags,
            self.value,
        )


ROW_COLUMNS = "site, epoch, seq, raw_ts, synced, boot_id, mono_ms, metric, tags, value"


@dataclass(frozen=True, slots=True, kw_only=True)
class Status:
    """A site's retained `status` message: online/offline and what runs there."""

    site: str
    state: str
    version: str | None
    config: str | None
    at_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Alarm:
    """A best-effort alarm from the `event` topic."""

    site: str
    event: str
    detail: str
    ts: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportState:
    """`online`/`offline` of a technician's `buffer import` run for a site."""

    site: str
    state: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Parcel:
    """Everything a batch of MQTT messages carried, stored in one transaction."""

    rows: tuple[Row, ...] = ()
    statuses: tuple[Status, ...] = ()
    alarms: tuple[Alarm, ...] = ()
    imports: tuple[ImportState, ...] = ()
    # site -> highest seq seen in the batch: the site was heard from.
    seen: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Inserted:
    """What the readings insert did: rows new to the table, and the outage events among them as
    (site, metric, ts, value), in seq order per site."""

    count: int
    outage_events: tuple[tuple[str, str, int, float], ...]
