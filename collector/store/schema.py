"""The database schema as numbered migrations, applied in order; the same SQL for SQLite and PostgreSQL.

A migration is never edited once released: a change is a new number. `schema_version` holds one row
per applied migration, so a newer collector upgrades an older database and an older collector refuses
a newer one instead of writing into tables it does not know. Times are milliseconds since the epoch,
UTC, in BIGINT columns; tags are canonical JSON text (keys sorted), so equal tags are equal strings.
"""

from __future__ import annotations

from dataclasses import dataclass

HOUR_MS = 3_600_000


@dataclass(frozen=True, slots=True, kw_only=True)
class Migration:
    number: int
    about: str
    statements: tuple[str, ...]


VERSION_TABLE = """CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    about TEXT NOT NULL,
    applied_at BIGINT NOT NULL
)"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        number=1,
        about="readings keyed by (site, epoch, seq); boots, sites, outages, alarms",
        statements=(
            """CREATE TABLE readings (
                site TEXT NOT NULL,
                epoch TEXT NOT NULL DEFAULT '',
                seq BIGINT NOT NULL,
                ts BIGINT,
                raw_ts BIGINT NOT NULL,
                synced BOOLEAN NOT NULL,
                boot_id TEXT NOT NULL,
                mono_ms BIGINT NOT NULL,
                metric TEXT NOT NULL,
                tags TEXT NOT NULL,
                value DOUBLE PRECISION NOT NULL,
                received BIGINT NOT NULL,
                PRIMARY KEY (site, epoch, seq)
            )""",
            "CREATE INDEX readings_ts ON readings (ts)",
            # Readings still waiting for their boot's clock: few, and found by site and boot.
            "CREATE INDEX readings_untimed ON readings (site, boot_id) WHERE ts IS NULL",
            """CREATE TABLE boots (
                site TEXT NOT NULL,
                boot_id TEXT NOT NULL,
                offset_ms BIGINT NOT NULL,
                PRIMARY KEY (site, boot_id)
            )""",
            """CREATE TABLE sites (
                site TEXT PRIMARY KEY,
                status TEXT,
                version TEXT,
                config TEXT,
                status_at BIGINT,
                last_seen BIGINT,
                last_seq BIGINT,
                import_state TEXT
            )""",
            """CREATE TABLE outages (
                site TEXT NOT NULL,
                kind TEXT NOT NULL,
                started BIGINT NOT NULL,
                ended BIGINT,
                PRIMARY KEY (site, kind, started)
            )""",
            """CREATE TABLE alarms (
                site TEXT NOT NULL,
                event TEXT NOT NULL,
                ts BIGINT NOT NULL,
                detail TEXT NOT NULL,
                received BIGINT NOT NULL,
                PRIMARY KEY (site, event, ts)
            )""",
        ),
    ),
    Migration(
        number=2,
        about="hourly rollups and each series' latest value, filled from the readings already kept",
        statements=(
            """CREATE TABLE rollups_hourly (
                site TEXT NOT NULL,
                metric TEXT NOT NULL,
                tags TEXT NOT NULL,
                hour BIGINT NOT NULL,
                count BIGINT NOT NULL,
                sum DOUBLE PRECISION NOT NULL,
                min DOUBLE PRECISION NOT NULL,
                max DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (site, metric, tags, hour)
            )""",
            f"""INSERT INTO rollups_hourly (site, metric, tags, hour, count, sum, min, max)
                SELECT site, metric, tags, ts - ts % {HOUR_MS}, count(*), sum(value), min(value),
                       max(value)
                FROM readings WHERE ts IS NOT NULL
                GROUP BY site, metric, tags, ts - ts % {HOUR_MS}""",
            """CREATE TABLE latest (
                site TEXT NOT NULL,
                metric TEXT NOT NULL,
                tags TEXT NOT NULL,
                seq BIGINT NOT NULL,
                ts BIGINT NOT NULL,
                value DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (site, metric, tags)
            )""",
            """INSERT INTO latest (site, metric, tags, seq, ts, value)
                SELECT r.site, r.metric, r.tags, r.seq, COALESCE(r.ts, r.raw_ts), r.value
                FROM readings r
                WHERE r.seq = (SELECT max(n.seq) FROM readings n WHERE n.site = r.site
                               AND n.metric = r.metric AND n.tags = r.tags)""",
        ),
    ),
    Migration(
        number=3,
        about="alert states (one row per site and alert kind); rollups found by metric and hour",
        statements=(
            # The last state each alert reported, so a restarted collector does not fire again.
            """CREATE TABLE alert_state (
                site TEXT NOT NULL,
                kind TEXT NOT NULL,
                state TEXT NOT NULL,
                since BIGINT NOT NULL,
                PRIMARY KEY (site, kind)
            )""",
            # The overview's availability reads one metric of every site over 30 days.
            "CREATE INDEX rollups_metric_hour ON rollups_hourly (metric, hour)",
        ),
    ),
    Migration(
        number=4,
        about="confirmations: per (site, epoch) what the collector stored and acknowledged to the site",
        statements=(
            # `through_seq` is the watermark: it only grows, and the readings at or below it are
            # never read again for it, so retention may delete them. `missing` is the JSON list of
            # [first, last] gaps above it; `gap_since` when its lowest gap was first seen;
            # `given_up` how many seqs were given up after `confirm.give_up_s`.
            """CREATE TABLE confirmations (
                site TEXT NOT NULL,
                epoch TEXT NOT NULL,
                first_seq BIGINT NOT NULL,
                through_seq BIGINT NOT NULL,
                missing TEXT NOT NULL,
                gap_since BIGINT,
                given_up BIGINT NOT NULL DEFAULT 0,
                updated BIGINT NOT NULL,
                published BIGINT,
                PRIMARY KEY (site, epoch)
            )""",
        ),
    ),
)

LATEST_VERSION = MIGRATIONS[-1].number
