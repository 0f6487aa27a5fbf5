"""The store's read side for the HTTP endpoints: each series' latest value, each site's state, and
the dashboard's queries (hourly rollups, raw readings in a range, outages, events).

A connection of its own, used by one request at a time: reads never wait for the writer (SQLite's WAL,
PostgreSQL's MVCC) and never hold its transaction open.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from collector.confirm.records import SiteConfirmation, per_site
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


@dataclass(frozen=True, slots=True, kw_only=True)
class SiteRow:
    """A row of `sites`: the last status message and when telemetry last arrived."""

    site: str
    status: str | None
    version: str | None
    config: str | None
    status_at_ms: int | None
    last_seen_ms: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Value:
    """One series' value at a time: a latest value, or a raw reading."""

    site: str
    metric: str
    tags: dict[str, str]
    value: float
    ts_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Hourly:
    """One series' hourly rollup."""

    metric: str
    tags: dict[str, str]
    hour_ms: int
    count: int
    sum: float
    min: float
    max: float


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredReading:
    """A raw reading as `readings` keeps it, for export."""

    site: str
    epoch: str
    seq: int
    ts_ms: int
    synced: bool
    metric: str
    tags: str
    value: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Outage:
    site: str
    kind: str
    started_ms: int
    ended_ms: int | None


@functools.lru_cache(maxsize=4096)
def _tags(text: str) -> dict[str, str]:
    """Parsed tags, shared between rows with equal tags (a thousand sites have the same few):
    callers must not change the dict."""
    parsed: dict[str, str] = json.loads(text)
    return parsed


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


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

    def confirmations(self, site: str | None = None) -> list[SiteConfirmation]:
        """Per site (or for `site`) what the collector confirmed; collector/confirm/records.py
        owns the table."""
        with self._lock:
            return per_site(self._db, site)

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, params)

    def site_rows(self) -> list[SiteRow]:
        """Every row of `sites`."""
        rows = self._rows(
            "SELECT site, status, version, config, status_at, last_seen FROM sites ORDER BY site"
        )
        return [
            SiteRow(site=str(s), status=st, version=v, config=c, status_at_ms=_int(at),
                    last_seen_ms=_int(seen))
            for s, st, v, c, at, seen in rows
        ]  # fmt: skip

    def latest_of(self, metrics: Sequence[str], site: str | None = None) -> list[Value]:
        """The latest value of every series of `metrics` (of one site, or of all)."""
        marks = ", ".join("?" for _ in metrics)
        sql = f"SELECT site, metric, tags, value, ts FROM latest WHERE metric IN ({marks})"
        params: list[Any] = list(metrics)
        if site is not None:
            sql += " AND site = ?"
            params.append(site)
        return [
            Value(site=str(s), metric=str(m), tags=_tags(t), value=float(v), ts_ms=int(ts))
            for s, m, t, v, ts in self._rows(sql + " ORDER BY site, metric, tags", params)
        ]

    def hourly_sums(
        self, metric: str, starts: Sequence[int], end: int
    ) -> dict[str, list[tuple[float, int]]]:
        """Per site, (sum, count) of `metric`'s hourly rollups from each of `starts` up to `end`."""
        cases = ", ".join(
            "sum(CASE WHEN hour >= ? THEN sum END), sum(CASE WHEN hour >= ? THEN count END)"
            for _ in starts
        )
        params: list[Any] = [p for start in starts for p in (start, start)]
        rows = self._rows(
            f"SELECT site, {cases} FROM rollups_hourly WHERE metric = ? AND hour >= ? "
            "AND hour < ? GROUP BY site",
            [*params, metric, min(starts), end],
        )
        out: dict[str, list[tuple[float, int]]] = {}
        for row in rows:
            figures = row[1:]
            out[str(row[0])] = [
                (float(figures[i] or 0), int(figures[i + 1] or 0))
                for i in range(0, len(figures), 2)
            ]
        return out

    def hourly(self, site: str, metric: str, start: int, end: int) -> list[Hourly]:
        """One site's hourly rollups of `metric` (every tag set) with `start <= hour < end`."""
        rows = self._rows(
            "SELECT metric, tags, hour, count, sum, min, max FROM rollups_hourly "
            "WHERE site = ? AND metric = ? AND hour >= ? AND hour < ? ORDER BY hour, tags",
            (site, metric, start, end),
        )
        return [
            Hourly(metric=str(m), tags=_tags(t), hour_ms=int(h), count=int(c),
                   sum=float(su), min=float(lo), max=float(hi))
            for m, t, h, c, su, lo, hi in rows
        ]  # fmt: skip

    def readings(
        self, site: str, start: int, end: int, metrics: Sequence[str] = ()
    ) -> list[StoredReading]:
        """One site's readings with `start <= ts < end` (of `metrics`, or all), in time order."""
        sql = (
            "SELECT site, epoch, seq, ts, synced, metric, tags, value FROM readings "
            "WHERE site = ? AND ts >= ? AND ts < ?"
        )
        params: list[Any] = [site, start, end]
        if metrics:
            sql += f" AND metric IN ({', '.join('?' for _ in metrics)})"
            params += metrics
        return [
            StoredReading(site=str(s), epoch=str(e), seq=int(q), ts_ms=int(ts), synced=bool(sy),
                          metric=str(m), tags=str(t), value=float(v))
            for s, e, q, ts, sy, m, t, v in self._rows(sql + " ORDER BY ts, seq", params)
        ]  # fmt: skip

    def outages(self, site: str | None, start: int, end: int) -> list[Outage]:
        """Outages (of one site, or all) that overlap `start`..`end`, oldest first."""
        sql = (
            "SELECT site, kind, started, ended FROM outages "
            "WHERE started < ? AND (ended IS NULL OR ended >= ?)"
        )
        params: list[Any] = [end, start]
        if site is not None:
            sql += " AND site = ?"
            params.append(site)
        return [
            Outage(site=str(s), kind=str(k), started_ms=int(st), ended_ms=_int(en))
            for s, k, st, en in self._rows(sql + " ORDER BY started", params)
        ]

    def events(self, site: str, start: int, end: int, limit: int = 200) -> list[Value]:
        """One site's events and speed tests in `start`..`end`, newest first."""
        rows = self._rows(
            "SELECT site, metric, tags, value, ts FROM readings WHERE site = ? AND ts >= ? "
            "AND ts < ? AND (metric LIKE 'event.%' OR metric IN "
            "('speedtest.download_bps', 'speedtest.upload_bps')) ORDER BY ts DESC LIMIT ?",
            (site, start, end, limit),
        )
        return [
            Value(site=str(s), metric=str(m), tags=json.loads(t), value=float(v), ts_ms=int(ts))
            for s, m, t, v, ts in rows
        ]

    def close(self) -> None:
        with self._lock:
            self._db.close()
