"""PostgreSQL, for a province (or a country) that outgrows one SQLite file, and for N collectors.

A batch travels as one COPY into a temporary table, then one statement moves the new rows into
`readings` and, from exactly those rows (RETURNING), updates the hourly rollups and the latest values:
rows another collector inserted first are not counted twice. Rollups and latest values are written in
key order, so two collectors updating the same rows take their locks in the same order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from collector.store.database import StoreError
from collector.store.rows import OUTAGE_END, OUTAGE_START, ROW_COLUMNS, Inserted, Row
from collector.store.schema import HOUR_MS

_STAGING = """CREATE TEMP TABLE IF NOT EXISTS incoming (
    site TEXT NOT NULL, epoch TEXT NOT NULL, seq BIGINT NOT NULL, raw_ts BIGINT NOT NULL,
    synced BOOLEAN NOT NULL, boot_id TEXT NOT NULL, mono_ms BIGINT NOT NULL, metric TEXT NOT NULL,
    tags TEXT NOT NULL, value DOUBLE PRECISION NOT NULL
) ON COMMIT DELETE ROWS"""

_ROLLUP_SET = """ON CONFLICT (site, metric, tags, hour) DO UPDATE SET
    count = rollups_hourly.count + excluded.count,
    sum = rollups_hourly.sum + excluded.sum,
    min = LEAST(rollups_hourly.min, excluded.min),
    max = GREATEST(rollups_hourly.max, excluded.max)"""

_MOVE = f"""
WITH ins AS (
    INSERT INTO readings ({ROW_COLUMNS}, ts, received)
    SELECT i.site, i.epoch, i.seq, i.raw_ts, i.synced, i.boot_id, i.mono_ms, i.metric, i.tags,
           i.value, CASE WHEN i.synced THEN i.raw_ts ELSE i.mono_ms + b.offset_ms END, %(received)s
    FROM incoming i LEFT JOIN boots b ON b.site = i.site AND b.boot_id = i.boot_id
    ON CONFLICT (site, epoch, seq) DO NOTHING
    RETURNING site, seq, metric, tags, ts, raw_ts, value
), roll AS (
    INSERT INTO rollups_hourly (site, metric, tags, hour, count, sum, min, max)
    SELECT site, metric, tags, ts - ts %% {HOUR_MS}, count(*), sum(value), min(value), max(value)
    FROM ins WHERE ts IS NOT NULL
    GROUP BY site, metric, tags, ts - ts %% {HOUR_MS}
    ORDER BY site, metric, tags, ts - ts %% {HOUR_MS}
    {_ROLLUP_SET.replace("%", "%%")}
), lat AS (
    INSERT INTO latest (site, metric, tags, seq, ts, value)
    SELECT DISTINCT ON (site, metric, tags) site, metric, tags, seq, COALESCE(ts, raw_ts), value
    FROM ins ORDER BY site, metric, tags, COALESCE(ts, raw_ts) DESC, seq DESC
    ON CONFLICT (site, metric, tags) DO UPDATE SET
        seq = excluded.seq, ts = excluded.ts, value = excluded.value
    WHERE excluded.ts > latest.ts OR (excluded.ts = latest.ts AND excluded.seq > latest.seq)
)
SELECT count(*),
       COALESCE(json_agg(json_build_array(site, metric, COALESCE(ts, raw_ts), value) ORDER BY site, seq)
                FILTER (WHERE metric IN (%(start)s, %(end)s)), '[]')
FROM ins"""

_CORRECT = f"""
WITH upd AS (
    UPDATE readings SET ts = mono_ms + %(offset)s
    WHERE site = %(site)s AND boot_id = %(boot)s AND ts IS NULL
    RETURNING site, metric, tags, ts, value
)
INSERT INTO rollups_hourly (site, metric, tags, hour, count, sum, min, max)
SELECT site, metric, tags, ts - ts %% {HOUR_MS}, count(*), sum(value), min(value), max(value)
FROM upd GROUP BY site, metric, tags, ts - ts %% {HOUR_MS}
ORDER BY site, metric, tags, ts - ts %% {HOUR_MS}
{_ROLLUP_SET}"""


def _pg(sql: str) -> str:
    """The common SQL's `?` placeholders in psycopg's style (a literal % doubled first)."""
    return sql.replace("%", "%%").replace("?", "%s")


class PostgresDatabase:
    engine = "postgresql"
    greatest = "GREATEST"
    # Two collectors upserting the same rollup rows can, rarely, deadlock; PostgreSQL aborts one
    # transaction, which is then simply tried again.
    transient: tuple[type[Exception], ...] = (
        pg_errors.DeadlockDetected,
        pg_errors.SerializationFailure,
    )

    def __init__(self, url: str, *, application_name: str = "village-collector") -> None:
        self._url = url
        try:
            self._conn = psycopg.connect(url, autocommit=True, application_name=application_name)
            self._conn.execute(_STAGING)
        except psycopg.Error as err:
            raise StoreError(_describe(err)) from err

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            cursor = self._conn.execute(_pg(sql), tuple(params))
            return cursor.fetchall() if cursor.description is not None else []
        except self.transient:
            raise
        except psycopg.Error as err:
            raise StoreError(_describe(err)) from err

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        try:
            with self._conn.cursor() as cursor:
                cursor.executemany(_pg(sql), rows)
        except self.transient:
            raise
        except psycopg.Error as err:
            raise StoreError(_describe(err)) from err

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        try:
            with self._conn.transaction():
                yield
        except self.transient:
            raise
        except psycopg.Error as err:
            raise StoreError(_describe(err)) from err

    def lock_schema(self) -> None:
        # Any fixed number: collectors starting together migrate one after the other.
        self.execute("SELECT pg_advisory_xact_lock(4261727)")

    def insert_readings(self, rows: Sequence[Row], received_ms: int) -> Inserted:
        try:
            with self._conn.cursor() as cursor:
                with cursor.copy(f"COPY incoming ({ROW_COLUMNS}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row.as_tuple())
                params = {"received": received_ms, "start": OUTAGE_START, "end": OUTAGE_END}
                cursor.execute(_MOVE, params)
                found = cursor.fetchone()
        except self.transient:
            raise
        except psycopg.Error as err:
            raise StoreError(_describe(err)) from err
        assert found is not None
        count, events = found
        return Inserted(
            count=int(count),
            outage_events=tuple((str(s), str(m), int(t), float(v)) for s, m, t, v in events),
        )

    def correct_boot(self, site: str, boot_id: str, offset_ms: int) -> None:
        try:
            self._conn.execute(_CORRECT, {"offset": offset_ms, "site": site, "boot": boot_id})
        except self.transient:
            raise
        except psycopg.Error as err:
            raise StoreError(_describe(err)) from err

    def close(self) -> None:
        self._conn.close()


def _describe(err: psycopg.Error) -> str:
    # libpq's messages name host and port and say what failed; never the password.
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
