"""The `confirmations` table: the one place that reads and writes it, on either engine.

Everything is computed from the database, not from what this collector saw, so N collectors sharing
one PostgreSQL agree; the watermark is written with the engine's two-argument max, so a collector
with an older view never moves it back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent.contract.ack import MAX_EPOCHS, MAX_RANGES, EpochAck
from collector.confirm.ranges import Run

if TYPE_CHECKING:
    # The store's reader imports this module: a run-time import back would be a cycle.
    from collector.store.database import Database

# Gaps-and-islands: within one run, seq minus its rank is constant. Only runs come back, not every
# seq, and no more of them than an ack can list.
_RUNS = """SELECT min(seq), max(seq) FROM (
    SELECT seq, seq - row_number() OVER (ORDER BY seq) AS island
    FROM readings WHERE site = ? AND epoch = ? AND seq > ?
) runs GROUP BY island ORDER BY min(seq) LIMIT ?"""


@dataclass(frozen=True, slots=True, kw_only=True)
class Confirmation:
    site: str
    epoch: str
    first_seq: int
    through: int
    missing: tuple[Run, ...]
    gap_since: int | None
    given_up: int
    updated: int
    published: int | None

    def as_ack(self) -> EpochAck:
        return EpochAck(epoch=self.epoch, through=self.through, missing=self.missing)


_COLUMNS = "site, epoch, first_seq, through_seq, missing, gap_since, given_up, updated, published"


def _record(row: tuple[object, ...]) -> Confirmation:
    site, epoch, first, through, missing, since, given_up, updated, published = row
    return Confirmation(
        site=str(site),
        epoch=str(epoch),
        first_seq=int(str(first)),
        through=int(str(through)),
        missing=tuple((int(a), int(b)) for a, b in json.loads(str(missing))),
        gap_since=None if since is None else int(str(since)),
        given_up=int(str(given_up)),
        updated=int(str(updated)),
        published=None if published is None else int(str(published)),
    )


def load(db: Database, site: str, epoch: str) -> Confirmation | None:
    rows = db.execute(
        f"SELECT {_COLUMNS} FROM confirmations WHERE site = ? AND epoch = ?", (site, epoch)
    )
    return _record(rows[0]) if rows else None


def stored_runs(db: Database, site: str, epoch: str, above: int) -> list[Run]:
    """The runs of stored seqs above `above`, ascending, at most one more than an ack's ranges."""
    rows = db.execute(_RUNS, (site, epoch, above, MAX_RANGES + 1))
    return [(int(a), int(b)) for a, b in rows]


def save(db: Database, record: Confirmation) -> None:
    """Insert or update one (site, epoch); the watermark never goes back."""
    g = db.greatest
    db.execute(
        f"INSERT INTO confirmations ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (site, epoch) DO UPDATE SET "
        f"through_seq = {g}(confirmations.through_seq, excluded.through_seq), "
        "missing = excluded.missing, gap_since = excluded.gap_since, "
        "given_up = excluded.given_up, updated = excluded.updated",
        (
            record.site,
            record.epoch,
            record.first_seq,
            record.through,
            json.dumps([list(r) for r in record.missing], separators=(",", ":")),
            record.gap_since,
            record.given_up,
            record.updated,
            record.published,
        ),
    )


def latest_of_site(db: Database, site: str) -> list[Confirmation]:
    """The site's most recently active epochs, most recent first, as many as an ack lists."""
    rows = db.execute(
        f"SELECT {_COLUMNS} FROM confirmations WHERE site = ? ORDER BY updated DESC, epoch LIMIT ?",
        (site, MAX_EPOCHS),
    )
    return [_record(row) for row in rows]


def pairs_with_gaps(db: Database) -> list[tuple[str, str]]:
    """Every (site, epoch) with an open gap: rechecked after a start even if nothing new arrives,
    so its gap is published, repaired or given up."""
    rows = db.execute("SELECT site, epoch FROM confirmations WHERE missing <> '[]'")
    return [(str(site), str(epoch)) for site, epoch in rows]


def mark_published(db: Database, site: str, epochs: list[str], at_ms: int) -> None:
    db.executemany(
        "UPDATE confirmations SET published = ? WHERE site = ? AND epoch = ?",
        [(at_ms, site, epoch) for epoch in epochs],
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class SiteConfirmation:
    """What /metrics and the dashboard show per site: its most recently active epoch's watermark,
    its open gaps (ranges) and the seqs given up, over all epochs."""

    site: str
    epoch: str
    through: int
    gaps: int
    given_up: int
    published: int | None


def per_site(db: Database, site: str | None = None) -> list[SiteConfirmation]:
    """Every site's confirmation, or the one of `site`."""
    where, params = ("WHERE site = ? ", (site,)) if site is not None else ("", ())
    rows = db.execute(
        f"SELECT {_COLUMNS} FROM confirmations {where}ORDER BY site, updated DESC, epoch", params
    )
    found: dict[str, SiteConfirmation] = {}
    for row in rows:
        record = _record(row)
        seen = found.get(record.site)
        if seen is None:
            found[record.site] = SiteConfirmation(
                site=record.site,
                epoch=record.epoch,
                through=record.through,
                gaps=len(record.missing),
                given_up=record.given_up,
                published=record.published,
            )
        else:
            found[record.site] = SiteConfirmation(
                site=seen.site,
                epoch=seen.epoch,
                through=seen.through,
                gaps=seen.gaps + len(record.missing),
                given_up=seen.given_up + record.given_up,
                published=seen.published,
            )
    return list(found.values())
