"""SQLite, the embedded default: one file, WAL, every commit synced to disk before its acknowledgement.

One writer at a time is SQLite's model, and the collector has one writer thread: `BEGIN IMMEDIATE`
takes the write lock at the start, so the "which of these rows are new" step cannot race.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from collector.store.database import StoreError
from collector.store.rows import OUTAGE_END, OUTAGE_START, ROW_COLUMNS, Inserted, Row
from collector.store.schema import HOUR_MS

_STAGING = f"""CREATE TEMP TABLE IF NOT EXISTS incoming (
    site TEXT NOT NULL, epoch TEXT NOT NULL, seq INTEGER NOT NULL, raw_ts INTEGER NOT NULL,
    synced INTEGER NOT NULL, boot_id TEXT NOT NULL, mono_ms INTEGER NOT NULL, metric TEXT NOT NULL,
    tags TEXT NOT NULL, value REAL NOT NULL, ts INTEGER,
    PRIMARY KEY (site, epoch, seq)
) -- {ROW_COLUMNS}"""

# The upsert's SELECT carries a WHERE so SQLite's parser cannot read ON CONFLICT as a join's ON.
_ROLLUP_FROM_INCOMING = f"""
INSERT INTO rollups_hourly (site, metric, tags, hour, count, sum, min, max)
SELECT site, metric, tags, ts - ts % {HOUR_MS}, count(*), sum(value), min(value), max(value)
FROM incoming WHERE ts IS NOT NULL
GROUP BY site, metric, tags, ts - ts % {HOUR_MS}
ON CONFLICT (site, metric, tags, hour) DO UPDATE SET
    count = rollups_hourly.count + excluded.count,
    sum = rollups_hourly.sum + excluded.sum,
    min = min(rollups_hourly.min, excluded.min),
    max = max(rollups_hourly.max, excluded.max)"""

# The latest value is the newest in time, seq breaking ties: a gateway whose buffer was recreated
# numbers from 1 again under a new epoch, and its new readings must not wait behind the old seqs.
# SQLite's max() aggregate takes the other bare columns from the row that holds the max.
_LATEST_FROM_INCOMING = """
INSERT INTO latest (site, metric, tags, seq, ts, value)
SELECT site, metric, tags, seq, t, value FROM (
    SELECT site, metric, tags, seq, COALESCE(ts, raw_ts) AS t, value,
           max(printf('%020d%020d', COALESCE(ts, raw_ts), seq))
    FROM incoming GROUP BY site, metric, tags
) WHERE true
ON CONFLICT (site, metric, tags) DO UPDATE SET
    seq = excluded.seq, ts = excluded.ts, value = excluded.value
WHERE excluded.ts > latest.ts OR (excluded.ts = latest.ts AND excluded.seq > latest.seq)"""

_ROLLUP_BOOT = f"""
INSERT INTO rollups_hourly (site, metric, tags, hour, count, sum, min, max)
SELECT site, metric, tags, (mono_ms + ?1) - (mono_ms + ?1) % {HOUR_MS}, count(*), sum(value),
       min(value), max(value)
FROM readings WHERE site = ?2 AND boot_id = ?3 AND ts IS NULL
GROUP BY site, metric, tags, (mono_ms + ?1) - (mono_ms + ?1) % {HOUR_MS}
ON CONFLICT (site, metric, tags, hour) DO UPDATE SET
    count = rollups_hourly.count + excluded.count,
    sum = rollups_hourly.sum + excluded.sum,
    min = min(rollups_hourly.min, excluded.min),
    max = max(rollups_hourly.max, excluded.max)"""


def sqlite_path(url: str) -> Path:
    """`sqlite:///var/lib/x.sqlite` -> /var/lib/x.sqlite (the config made relative paths absolute)."""
    return Path(url.removeprefix("sqlite://"))


class SqliteDatabase:
    engine = "sqlite"
    greatest = "max"
    transient: tuple[type[Exception], ...] = ()

    def __init__(self, path: Path, *, busy_timeout_s: float = 30.0) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE ... COMMIT).
            self._conn = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_s
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit is on disk before the collector acknowledges the messages it holds,
            # also across a power cut of the provincial server, not only a crash of the process.
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute(_STAGING)
        except (OSError, sqlite3.Error) as err:
            raise StoreError(f"{path}: {err}") from err
        self.path = path

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._conn.execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as err:
            raise StoreError(f"{self.path}: {err}") from err

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        try:
            self._conn.executemany(sql, rows)
        except sqlite3.Error as err:
            raise StoreError(f"{self.path}: {err}") from err

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        self.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.rollback()
            raise
        self.execute("COMMIT")

    def lock_schema(self) -> None:
        """BEGIN IMMEDIATE already holds the one write lock."""

    def insert_readings(self, rows: Sequence[Row], received_ms: int) -> Inserted:
        self.execute("DELETE FROM incoming")
        self.executemany(
            f"INSERT OR IGNORE INTO incoming ({ROW_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
            [r.as_tuple() for r in rows],
        )
        # Keep only rows new to the table: a redelivered message adds nothing, rollups included.
        self.execute(
            """DELETE FROM incoming WHERE EXISTS (SELECT 1 FROM readings r WHERE r.site = incoming.site
               AND r.epoch = incoming.epoch AND r.seq = incoming.seq)"""
        )
        self.execute(
            """UPDATE incoming SET ts = CASE WHEN synced THEN raw_ts ELSE mono_ms + (SELECT
               b.offset_ms FROM boots b WHERE b.site = incoming.site AND b.boot_id = incoming.boot_id)
               END"""
        )
        self.execute(
            f"INSERT INTO readings ({ROW_COLUMNS}, ts, received) "
            f"SELECT {ROW_COLUMNS}, ts, ? FROM incoming",
            (received_ms,),
        )
        self.execute(_ROLLUP_FROM_INCOMING)
        self.execute(_LATEST_FROM_INCOMING)
        events = self.execute(
            "SELECT site, metric, COALESCE(ts, raw_ts), value FROM incoming "
            "WHERE metric IN (?, ?) ORDER BY site, seq",
            (OUTAGE_START, OUTAGE_END),
        )
        (count,) = self.execute("SELECT count(*) FROM incoming")[0]
        return Inserted(
            count=int(count),
            outage_events=tuple((str(s), str(m), int(t), float(v)) for s, m, t, v in events),
        )

    def correct_boot(self, site: str, boot_id: str, offset_ms: int) -> None:
        self.execute(_ROLLUP_BOOT, (offset_ms, site, boot_id))
        self.execute(
            "UPDATE readings SET ts = mono_ms + ? WHERE site = ? AND boot_id = ? AND ts IS NULL",
            (offset_ms, site, boot_id),
        )

    def close(self) -> None:
        self._conn.close()
