"""The store's read side for the HTTP endpoints: each series' latest value and each site's state.

A connection of its own, used by one request at a time: reads never wait for the writer (SQLite's WAL,
PostgreSQL's MVCC) and never hold its transaction open.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass

from collector.store.database import Database


@dataclass(frozen=True, slots=True, kw_only=True)
class Latest:
    site: str
    metric: str
    tags: dict[str, str]
    value: float


@dataclass(frozen=True, slots=True, kw_only=True)
class SiteState:
    site: str
    status: str | None
    last_seen_ms: int | None


class Reader:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._lock = threading.Lock()

    def latest(self) -> list[Latest]:
        """Every series' latest value, by site, metric and tags."""
        with self._lock:
            rows = self._db.execute(
                "SELECT site, metric, tags, value FROM latest ORDER BY metric, site, tags"
            )
        return [
            Latest(site=str(s), metric=str(m), tags=json.loads(t), value=float(v))
            for s, m, t, v in rows
        ]

    def sites(self) -> list[SiteState]:
        with self._lock:
            rows = self._db.execute("SELECT site, status, last_seen FROM sites ORDER BY site")
        return [
            SiteState(site=str(s), status=st, last_seen_ms=None if seen is None else int(seen))
            for s, st, seen in rows
        ]

    def close(self) -> None:
        with self._lock:
            self._db.close()
