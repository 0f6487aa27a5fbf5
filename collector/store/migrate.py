"""Bring a database to the newest schema: the numbered migrations it lacks, in order, in one
transaction, under a lock so that collectors starting together do not both migrate."""

from __future__ import annotations

from collections.abc import Sequence

from collector.store.database import Database, SchemaTooNewError
from collector.store.schema import MIGRATIONS, VERSION_TABLE, Migration


def schema_version(db: Database) -> int:
    """The newest migration applied, 0 for an empty database."""
    db.execute(VERSION_TABLE)
    (version,) = db.execute("SELECT COALESCE(max(version), 0) FROM schema_version")[0]
    return int(version)


def migrate(
    db: Database, now_ms: int, migrations: Sequence[Migration] = MIGRATIONS
) -> tuple[int, int]:
    """Apply what `db` lacks of `migrations`. Return (version before, version after). Raise
    SchemaTooNewError when the database is newer than these migrations."""
    newest = migrations[-1].number if migrations else 0
    with db.transaction():
        db.lock_schema()
        before = schema_version(db)
        if before > newest:
            raise SchemaTooNewError(before, newest)
        for migration in migrations:
            if migration.number <= before:
                continue
            for statement in migration.statements:
                db.execute(statement)
            db.execute(
                "INSERT INTO schema_version (version, about, applied_at) VALUES (?, ?, ?)",
                (migration.number, migration.about, now_ms),
            )
    return before, max(before, newest)
