"""The buffer's on-disk layout: its tables, and one round of readings packed into one row.

One row holds one round: the readings that share a stamp, packed with struct and compressed into a
blob of a few hundred bytes, so that the newest rounds share one page of the SD card.
"""

from __future__ import annotations

import json
import sqlite3
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

from agent.buffer.errors import CorruptBuffer
from agent.reading import Reading, Tags

SCHEMA_VERSION = 3
CLOCK_UNSYNCED, CLOCK_SYNCED, CLOCK_RESTAMPED = 0, 1, 2
# A round is a few dozen readings; this only keeps an odd huge one from becoming one huge blob.
ROW_MAX_READINGS = 1000

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY, metric TEXT NOT NULL, tags TEXT NOT NULL, UNIQUE (metric, tags));
CREATE TABLE IF NOT EXISTS boots (id INTEGER PRIMARY KEY, boot_id TEXT NOT NULL UNIQUE);
"""
ROUNDS_TABLE = """CREATE TABLE IF NOT EXISTS rounds (
    first_seq INTEGER PRIMARY KEY,
    last_seq INTEGER NOT NULL,
    n INTEGER NOT NULL,
    ts_ms INTEGER NOT NULL,
    mono_ms INTEGER NOT NULL,
    boot INTEGER NOT NULL,
    clock INTEGER NOT NULL,
    body BLOB NOT NULL)"""
INSERT_ROUND = (
    "INSERT INTO rounds (first_seq, last_seq, n, ts_ms, mono_ms, boot, clock, body) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
ROUNDS = "SELECT first_seq, last_seq, n, ts_ms, mono_ms, boot, clock, body FROM rounds "
# The round that holds seq ? if any does: the last one starting at or before it.
ROUND_HOLDING = ROUNDS + "WHERE first_seq <= ? ORDER BY first_seq DESC LIMIT 1"
OLDEST_ROUND = ROUNDS + "ORDER BY first_seq LIMIT 1"
PAGE = 32
ROUNDS_FROM = ROUNDS + f"WHERE first_seq >= ? ORDER BY first_seq LIMIT {PAGE}"
V1_READINGS = "SELECT seq, series, value, ts_ms, mono_ms, boot, clock FROM readings ORDER BY seq"


def ranges(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Collapse seqs into inclusive ranges: acknowledged batches are mostly contiguous."""
    out: list[tuple[int, int]] = []
    for seq in sorted(set(seqs)):
        if out and seq == out[-1][1] + 1:
            out[-1] = (out[-1][0], seq)
        else:
            out.append((seq, seq))
    return out


def tags_key(tags: Tags) -> str:
    return json.dumps(dict(sorted(tags.items())), separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Round:
    """One row of `rounds`: readings that share a stamp, in seq order."""

    seqs: tuple[int, ...]
    series: tuple[int, ...]
    values: tuple[float, ...]
    ts_ms: int
    mono_ms: int
    boot: int
    clock: int

    def row(self) -> tuple[int, int, int, int, int, int, int, bytes]:
        first, last, n = self.seqs[0], self.seqs[-1], len(self.seqs)
        if last - first + 1 == n:
            # The usual row: consecutive seqs, so they need not be stored.
            packed = struct.pack(f"<{n}I{n}d", *self.series, *self.values)
        else:
            offsets = (seq - first for seq in self.seqs)
            packed = struct.pack(f"<{n}I{n}I{n}d", *offsets, *self.series, *self.values)
        # Level 1: series ids and counters repeat in their bytes; higher levels gain nothing here.
        body = zlib.compress(packed, 1)
        return (first, last, n, self.ts_ms, self.mono_ms, self.boot, self.clock, body)

    def without(self, lo: int, hi: int) -> Round | None:
        """The same round without the seqs lo..hi (inclusive); None if nothing is left."""
        kept = [i for i, seq in enumerate(self.seqs) if not lo <= seq <= hi]
        if not kept:
            return None
        return Round(
            seqs=tuple(self.seqs[i] for i in kept),
            series=tuple(self.series[i] for i in kept),
            values=tuple(self.values[i] for i in kept),
            ts_ms=self.ts_ms,
            mono_ms=self.mono_ms,
            boot=self.boot,
            clock=self.clock,
        )


def round_of(row: tuple[int, int, int, int, int, int, int, bytes]) -> Round:
    first, last, n, ts_ms, mono_ms, boot, clock, body = row
    try:
        packed = zlib.decompress(body)
        if last - first + 1 == n:
            unpacked = struct.unpack(f"<{n}I{n}d", packed)
            seqs: tuple[int, ...] = tuple(range(first, last + 1))
        else:
            unpacked = struct.unpack(f"<{n}I{n}I{n}d", packed)
            seqs = tuple(first + offset for offset in unpacked[:n])
            unpacked = unpacked[n:]
    except (struct.error, zlib.error, TypeError) as err:
        raise CorruptBuffer(
            f"the round of readings from seq {first} is damaged ({err}); stop the agent, move "
            "the buffer file aside and start it again"
        ) from err
    return Round(
        seqs=seqs,
        series=tuple(int(s) for s in unpacked[:n]),
        values=tuple(float(v) for v in unpacked[n:]),
        ts_ms=ts_ms,
        mono_ms=mono_ms,
        boot=boot,
        clock=clock,
    )


class Names:
    """The ids a row uses for its series (metric and tags) and its boot, cached both ways. Made
    anew whenever a transaction that may have added ids is rolled back."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._series: dict[tuple[str, str], int] = {}
        self._series_fast: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
        self._series_by_id: dict[int, tuple[str, Tags]] = {}
        self._boots: dict[str, int] = {}
        self._boots_by_id: dict[int, str] = {}

    def series(self, metric: str, tags: Tags) -> int:
        # Looked up by the tags' items first: JSON-encoding every sample's tags on every round cost
        # a quarter of append() in profiles.
        fast = (metric, tuple(sorted(tags.items())))
        cached = self._series_fast.get(fast)
        if cached is not None:
            return cached
        key = (metric, tags_key(tags))
        found = self._series.get(key)
        if found is None:
            self._conn.execute("INSERT OR IGNORE INTO series (metric, tags) VALUES (?, ?)", key)
            row = self._conn.execute(
                "SELECT id FROM series WHERE metric = ? AND tags = ?", key
            ).fetchone()
            found = int(row[0])
            self._series[key] = found
            self._series_by_id[found] = (metric, dict(tags))
        self._series_fast[fast] = found
        return found

    def boot(self, boot_id: str) -> int:
        found = self._boots.get(boot_id)
        if found is None:
            self._conn.execute("INSERT OR IGNORE INTO boots (boot_id) VALUES (?)", (boot_id,))
            row = self._conn.execute(
                "SELECT id FROM boots WHERE boot_id = ?", (boot_id,)
            ).fetchone()
            found = int(row[0])
            self._boots[boot_id] = found
            self._boots_by_id[found] = boot_id
        return found

    def reading(self, stored: Round, index: int) -> Reading:
        series, boot = stored.series[index], stored.boot
        if series not in self._series_by_id:
            metric, tags = self._conn.execute(
                "SELECT metric, tags FROM series WHERE id = ?", (series,)
            ).fetchone()
            self._series_by_id[series] = (metric, json.loads(tags))
        if boot not in self._boots_by_id:
            (boot_id,) = self._conn.execute(
                "SELECT boot_id FROM boots WHERE id = ?", (boot,)
            ).fetchone()
            self._boots_by_id[boot] = boot_id
        metric, tags = self._series_by_id[series]
        return Reading(
            seq=stored.seqs[index],
            metric=metric,
            value=stored.values[index],
            tags=tags,
            ts_ms=stored.ts_ms,
            mono_ms=stored.mono_ms,
            boot_id=self._boots_by_id[boot],
            synced=stored.clock != CLOCK_UNSYNCED,
        )
