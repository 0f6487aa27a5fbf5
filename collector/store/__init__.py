"""The collector's database: schema and migrations, the SQLite and PostgreSQL engines, the writer
(one transaction per batch) and the reader (for the HTTP side)."""

from __future__ import annotations

from urllib.parse import urlsplit

from collector.store.database import Database, SchemaTooNewError, StoreError
from collector.store.migrate import migrate, schema_version
from collector.store.reader import Reader
from collector.store.writer import Store, Written

__all__ = [
    "Database",
    "Reader",
    "SchemaTooNewError",
    "Store",
    "StoreError",
    "Written",
    "migrate",
    "open_database",
    "schema_version",
]


def open_database(url: str) -> Database:
    """A connection for `url` (sqlite:///path or postgresql://...). Raise StoreError if it cannot
    be opened; the schema is not touched (see `migrate`)."""
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        from collector.store.sqlite import SqliteDatabase, sqlite_path  # noqa: PLC0415

        return SqliteDatabase(sqlite_path(url))
    if scheme in ("postgresql", "postgres"):
        # psycopg loads libpq: only a collector configured for PostgreSQL pays for it.
        from collector.store.postgres import PostgresDatabase  # noqa: PLC0415

        return PostgresDatabase(url)
    raise StoreError(f"no database engine for {url!r}: use sqlite:///path or postgresql://...")
