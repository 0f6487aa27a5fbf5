"""What the real collector stored: the `readings` table read by `(site, seq)`, for the fleet summary.

The database is opened with the collector's own `open_database` (SQLite or PostgreSQL, one SQL with
`?` placeholders for both), so the simulator reads exactly what a provincial office would. The table
is keyed by `(site, epoch, seq)`: a reading stored twice is impossible, and `duplicates` counts what a
second seq epoch would let through, which the agents do not send yet.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping

from agent.reading import Reading
from collector.store import Database, open_database


class Stored:
    """Read-only queries on the collector's database, one connection of its own."""

    def __init__(self, database_url: str) -> None:
        self._db: Database = open_database(database_url)
        self.rejected: list[str] = []  # filled from the collector's log by whoever ran it

    def close(self) -> None:
        self._db.close()

    def count_in(self, site: str, last_seq: int) -> int:
        """How many distinct seqs from 1 to last_seq are stored for `site`."""
        rows = self._db.execute(
            "SELECT count(DISTINCT seq) FROM readings WHERE site = ? AND seq BETWEEN 1 AND ?",
            (site, last_seq),
        )
        return int(rows[0][0])

    def wait_counts(self, wanted: Mapping[str, tuple[int, int]], timeout_s: float) -> bool:
        """Wait until, per site, at least `need` distinct seqs of 1..last_seq are stored, given as
        site -> (last_seq, need). True if all were in time. Polls only the sites still short."""
        deadline = time.monotonic() + timeout_s
        pending = dict(wanted)
        while True:
            pending = {s: w for s, w in pending.items() if self.count_in(s, w[0]) < w[1]}
            if not pending or time.monotonic() >= deadline:
                return not pending
            time.sleep(0.25)

    def site_known(self, site: str) -> bool:
        """Whether the collector stored anything about `site` in `sites` (a status, telemetry)."""
        return bool(self._db.execute("SELECT 1 FROM sites WHERE site = ?", (site,)))

    def holds_readings(self, site: str) -> bool:
        """Whether `site` already has readings (a database left by an earlier run)."""
        return bool(self._db.execute("SELECT 1 FROM readings WHERE site = ? LIMIT 1", (site,)))

    def arrivals(self, site: str) -> dict[int, float]:
        """seq -> when the collector stored it (its `received` column, in seconds)."""
        rows = self._db.execute("SELECT seq, received FROM readings WHERE site = ?", (site,))
        return {int(seq): int(received) / 1000 for seq, received in rows}

    def duplicates(self, site: str) -> int:
        """Rows beyond the first for a seq of `site`: 0 while the key holds and epochs are one."""
        rows = self._db.execute(
            "SELECT count(*) - count(DISTINCT seq) FROM readings WHERE site = ?", (site,)
        )
        return int(rows[0][0])

    def readings(self, site: str) -> list[Reading]:
        """The site's stored readings by seq, as the gateway sent them (`ts_ms` is `raw_ts`)."""
        rows = self._db.execute(
            "SELECT seq, metric, value, tags, raw_ts, mono_ms, boot_id, synced FROM readings "
            "WHERE site = ? ORDER BY seq",
            (site,),
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

    def true_times_ms(self, site: str) -> dict[int, int | None]:
        """seq -> the collector's `ts`: as sent when synced, else put on true time from the boot's
        synced readings; None while the boot never synced."""
        rows = self._db.execute("SELECT seq, ts FROM readings WHERE site = ?", (site,))
        return {int(seq): None if ts is None else int(ts) for seq, ts in rows}


def _tags(text: str) -> dict[str, str]:
    loaded = json.loads(text)
    return {str(k): str(v) for k, v in loaded.items()}
