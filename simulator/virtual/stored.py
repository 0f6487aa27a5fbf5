"""What the real collector stored: the `readings` table read by `(site, epoch, seq)`, for the fleet
summary.

The database is opened with the collector's own `open_database` (SQLite or PostgreSQL, one SQL with
`?` placeholders for both), so the simulator reads exactly what a provincial office would. The table
is keyed by `(site, epoch, seq)`, so a reading stored twice is impossible and `duplicates` is 0 while
the key holds. Queries name the epoch; without one they read the site's only epoch, and refuse to
guess between several.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping

from agent.reading import Reading
from collector.store import Database, open_database
from simulator.virtual.collector import ManyEpochs


class Stored:
    """Read-only queries on the collector's database, one connection of its own."""

    def __init__(self, database_url: str) -> None:
        self._db: Database = open_database(database_url)
        self.rejected: list[str] = []  # filled from the collector's log by whoever ran it

    def close(self) -> None:
        self._db.close()

    def epochs(self, site: str) -> list[str]:
        """The epochs `site` has readings of."""
        rows = self._db.execute(
            "SELECT DISTINCT epoch FROM readings WHERE site = ? ORDER BY epoch", (site,)
        )
        return [str(row[0]) for row in rows]

    def _epoch(self, site: str, epoch: str | None) -> str:
        if epoch is not None:
            return epoch
        found = self.epochs(site)
        if len(found) > 1:
            raise ManyEpochs(f"site {site} has readings of {len(found)} epochs ({found})")
        return found[0] if found else ""

    def count_in(self, site: str, last_seq: int, epoch: str | None = None) -> int:
        """How many distinct seqs from 1 to last_seq of `epoch` are stored for `site`."""
        rows = self._db.execute(
            "SELECT count(DISTINCT seq) FROM readings "
            "WHERE site = ? AND epoch = ? AND seq BETWEEN 1 AND ?",
            (site, self._epoch(site, epoch), last_seq),
        )
        return int(rows[0][0])

    def wait_counts(
        self,
        wanted: Mapping[str, tuple[int, int]],
        timeout_s: float,
        epochs: Mapping[str, str] | None = None,
    ) -> bool:
        """Wait until, per site, at least `need` distinct seqs of 1..last_seq are stored, given as
        site -> (last_seq, need), in the site's epoch given in `epochs` (else its only one). True if
        all were in time. Polls only the sites still short."""
        named = epochs or {}
        deadline = time.monotonic() + timeout_s
        pending = dict(wanted)
        while True:
            pending = {
                s: w for s, w in pending.items() if self.count_in(s, w[0], named.get(s)) < w[1]
            }
            if not pending or time.monotonic() >= deadline:
                return not pending
            time.sleep(0.25)

    def site_known(self, site: str) -> bool:
        """Whether the collector stored anything about `site` in `sites` (a status, telemetry)."""
        return bool(self._db.execute("SELECT 1 FROM sites WHERE site = ?", (site,)))

    def holds_readings(self, site: str) -> bool:
        """Whether `site` already has readings (a database left by an earlier run)."""
        return bool(self._db.execute("SELECT 1 FROM readings WHERE site = ? LIMIT 1", (site,)))

    def arrivals(self, site: str, epoch: str | None = None) -> dict[int, float]:
        """seq -> when the collector stored it (its `received` column, in seconds), in one epoch."""
        rows = self._db.execute(
            "SELECT seq, received FROM readings WHERE site = ? AND epoch = ?",
            (site, self._epoch(site, epoch)),
        )
        return {int(seq): int(received) / 1000 for seq, received in rows}

    def duplicates(self, site: str) -> int:
        """Rows beyond the first for an (epoch, seq) of `site`: 0 while the key holds. Seqs that
        start again in a new epoch are other readings, not repeats."""
        rows = self._db.execute(
            "SELECT COALESCE(SUM(n - 1), 0) FROM "
            "(SELECT count(*) AS n FROM readings WHERE site = ? GROUP BY epoch, seq) AS per_key",
            (site,),
        )
        return int(rows[0][0])

    def readings(self, site: str, epoch: str | None = None) -> list[Reading]:
        """The site's stored readings of one epoch by seq, as the gateway sent them (`ts_ms` is
        `raw_ts`)."""
        rows = self._db.execute(
            "SELECT seq, metric, value, tags, raw_ts, mono_ms, boot_id, synced FROM readings "
            "WHERE site = ? AND epoch = ? ORDER BY seq",
            (site, self._epoch(site, epoch)),
        )
        return [
            Reading(
                seq=int(seq),
                metric=str(metric),
                value=float(value),
                tags=_tags(str(tags)),
                ts_ms=int(raw_ts),
                mono_ms=int(mono_ms),
                boot_id=str(boot_id),
                synced=bool(synced),
            )
            for seq, metric, value, tags, raw_ts, mono_ms, boot_id, synced in rows
        ]

    def true_times_ms(self, site: str, epoch: str | None = None) -> dict[int, int | None]:
        """seq -> the collector's `ts` in one epoch: as sent when synced, else put on true time
        from the boot's synced readings; None while the boot never synced."""
        rows = self._db.execute(
            "SELECT seq, ts FROM readings WHERE site = ? AND epoch = ?",
            (site, self._epoch(site, epoch)),
        )
        return {int(seq): None if ts is None else int(ts) for seq, ts in rows}


def _tags(text: str) -> dict[str, str]:
    loaded = json.loads(text)
    return {str(k): str(v) for k, v in loaded.items()}
