"""The seam between the store's common logic and its two engines (SQLite, PostgreSQL).

Common SQL is written once with `?` placeholders and runs on both; an engine supplies what differs:
how a batch of readings reaches the table fastest (with its rollups, latest values and the outage
events among the new rows), how a boot's readings are put on true time, and the name of the two-
argument max/min.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from collector.store.rows import Inserted, Row


class StoreError(Exception):
    """The database cannot be used: unreachable, refused, or not a collector's database."""


class SchemaTooNewError(StoreError):
    """The database was migrated by a newer collector than this one."""

    def __init__(self, found: int, known: int) -> None:
        self.found = found
        self.known = known
        super().__init__(f"database schema version {found} is newer than this collector's {known}")


class Database(Protocol):
    """One connection to the collector's database."""

    engine: str  # "sqlite" or "postgresql"
    greatest: str  # the two-argument max: SQLite's max(a, b), PostgreSQL's GREATEST(a, b)
    transient: tuple[type[Exception], ...]  # errors after which the same transaction may succeed

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement (`?` placeholders); return its rows, if it has any."""
        ...

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for each parameter row."""
        ...

    def transaction(self) -> AbstractContextManager[None]:
        """A write transaction: committed when the block ends, rolled back when it raises."""
        ...

    def lock_schema(self) -> None:
        """Inside a transaction: keep other collectors from migrating at the same time."""
        ...

    def insert_readings(self, rows: Sequence[Row], received_ms: int) -> Inserted:
        """Insert-or-ignore on (site, epoch, seq), in the open transaction. Rows whose true time is
        known (synced, or their boot's offset is in `boots`) get `ts` and enter the hourly
        rollups; every new row updates `latest` when its seq is the series' highest."""
        ...

    def correct_boot(self, site: str, boot_id: str, offset_ms: int) -> None:
        """Put the boot's readings still without `ts` on true time (mono + offset), and add them
        to the rollups, in the open transaction."""
        ...

    def close(self) -> None: ...
