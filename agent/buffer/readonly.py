"""A read-only look at the daemon's buffer, safe while the daemon runs.

`status`, `diag` and `buffer export` open the SQLite file with `mode=ro`: they can never write to it,
never take its write lock, and see one consistent snapshot per read transaction (WAL readers do not
block the writer, nor does it block them). Reading rows goes through `Buffer`'s own read methods, so
the on-disk layout is decoded in one place.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from agent.buffer.errors import BufferError
from agent.buffer.store import Buffer
from agent.files import buffer_path
from agent.reading import Reading


class NoBuffer(BufferError):
    """There is no buffer file in the state directory (the agent never ran there)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Backlog:
    """The unsent readings at one moment."""

    site: str | None
    epoch: str  # the buffer's seq series ("" for a file from before epochs existed)
    count: int
    oldest_seq: int | None
    oldest_ts_ms: int | None
    oldest_synced: bool | None  # whether the oldest reading's time can be trusted
    dropped_total: int


class BufferView:
    """A read-only connection to the buffer in `state_dir`; close it, or use it as a context."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path

    @classmethod
    def open(cls, state_dir: Path, *, busy_timeout_s: float = 2.0) -> BufferView:
        """Open read-only. Raise NoBuffer when there is no file, BufferError when it is unusable."""
        path = buffer_path(state_dir)
        if not path.is_file():
            raise NoBuffer(f"no buffer at {path}")
        try:
            conn = sqlite3.connect(
                f"{path.resolve().as_uri()}?mode=ro",
                uri=True,
                isolation_level=None,
                timeout=busy_timeout_s,
            )
            conn.execute("SELECT 1 FROM meta LIMIT 1").fetchall()
        except sqlite3.Error as err:
            raise BufferError(f"cannot read the buffer {path}: {err}") from err
        return cls(conn, path)

    @contextmanager
    def snapshot(self) -> Iterator[Buffer]:
        """One read transaction: everything read inside it belongs to the same moment.

        Yields a `Buffer` over the read-only connection for its read methods (`stats`, `oldest`);
        its write methods would fail with "readonly database" and are never called here.
        """
        try:
            self._conn.execute("BEGIN")
            yield Buffer(self._conn, self.path, max_readings=1)
        except sqlite3.Error as err:
            raise BufferError(f"cannot read the buffer {self.path}: {err}") from err
        finally:
            if self._conn.in_transaction:
                self._conn.execute("COMMIT")

    def site(self) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'site'").fetchone()
        return str(row[0]) if row else None

    def backlog(self) -> Backlog:
        """Count and age of the unsent readings, read in one transaction."""
        with self.snapshot() as buffer:
            stats = buffer.stats()
            oldest: list[Reading] = buffer.oldest(limit=1)
            site = self.site()
        return Backlog(
            site=site,
            epoch=stats.epoch,
            count=stats.count,
            oldest_seq=stats.oldest_seq,
            oldest_ts_ms=stats.oldest_ts_ms,
            oldest_synced=oldest[0].synced if oldest else None,
            dropped_total=stats.dropped_total,
        )

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> BufferView:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def read_backlog(state_dir: Path) -> Backlog | str:
    """The buffer's backlog, or a sentence saying why it could not be read."""
    try:
        with BufferView.open(state_dir) as view:
            return view.backlog()
    except NoBuffer:
        return "no buffer yet"
    except BufferError as err:
        return str(err)
