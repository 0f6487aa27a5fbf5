"""The durable buffer: every reading lives here, on disk, until the broker acknowledged it.

SQLite in WAL mode with synchronous=FULL: a committed round survives a power cut. One row holds one
round: the readings that share a stamp, packed and compressed into a blob of a few hundred bytes,
so that the newest rounds share one page. A round's commit (append it, delete what the broker
acknowledged) then rewrites a page or two instead of a row per reading with its index entries,
and each page is a write to the SD card. Nor does a commit touch `meta` unless it must: the count
is summed from the rows at open, and the last seq ever given is the newest row's, written to `meta`
only when the newest row is deleted. So seq stays strictly increasing and never reused, even after
the rows it numbered were deleted. A schema 1 file is converted in place when it is opened.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import struct
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.reading import Reading, Sample, Stamp, Tags

SCHEMA_VERSION = 2
CLOCK_UNSYNCED, CLOCK_SYNCED, CLOCK_RESTAMPED = 0, 1, 2
# A round is a few dozen readings; this only keeps an odd huge one from becoming one huge blob.
ROW_MAX_READINGS = 1000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY, metric TEXT NOT NULL, tags TEXT NOT NULL, UNIQUE (metric, tags));
CREATE TABLE IF NOT EXISTS boots (id INTEGER PRIMARY KEY, boot_id TEXT NOT NULL UNIQUE);
"""
_ROUNDS_TABLE = """CREATE TABLE IF NOT EXISTS rounds (
    first_seq INTEGER PRIMARY KEY,
    last_seq INTEGER NOT NULL,
    n INTEGER NOT NULL,
    ts_ms INTEGER NOT NULL,
    mono_ms INTEGER NOT NULL,
    boot INTEGER NOT NULL,
    clock INTEGER NOT NULL,
    body BLOB NOT NULL)"""
_INSERT_ROUND = (
    "INSERT INTO rounds (first_seq, last_seq, n, ts_ms, mono_ms, boot, clock, body) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_ROUNDS = "SELECT first_seq, last_seq, n, ts_ms, mono_ms, boot, clock, body FROM rounds "
# The round that holds seq ? if any does: the last one starting at or before it.
_ROUND_HOLDING = _ROUNDS + "WHERE first_seq <= ? ORDER BY first_seq DESC LIMIT 1"
_OLDEST_ROUND = _ROUNDS + "ORDER BY first_seq LIMIT 1"
_PAGE = 32
_ROUNDS_FROM = _ROUNDS + f"WHERE first_seq >= ? ORDER BY first_seq LIMIT {_PAGE}"
_V1_READINGS = "SELECT seq, series, value, ts_ms, mono_ms, boot, clock FROM readings ORDER BY seq"


class BufferError(Exception):
    """The buffer cannot be used; the message says what to do."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BufferStats:
    count: int
    last_seq: int  # highest seq ever assigned (0 before the first reading)
    oldest_seq: int | None
    oldest_ts_ms: int | None
    dropped_total: int  # readings removed unsent to respect the size bound


@dataclass(frozen=True, slots=True, kw_only=True)
class Appended:
    first_seq: int | None
    last_seq: int | None
    dropped: int  # oldest readings dropped by this append to stay within the bound


FreeBytes = Callable[[Path], int]


def disk_free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


def _ranges(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Collapse seqs into inclusive ranges: acknowledged batches are mostly contiguous."""
    out: list[tuple[int, int]] = []
    for seq in sorted(set(seqs)):
        if out and seq == out[-1][1] + 1:
            out[-1] = (out[-1][0], seq)
        else:
            out.append((seq, seq))
    return out


def _tags_key(tags: Tags) -> str:
    return json.dumps(dict(sorted(tags.items())), separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class _Round:
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

    def without(self, lo: int, hi: int) -> _Round | None:
        """The same round without the seqs lo..hi (inclusive); None if nothing is left."""
        kept = [i for i, seq in enumerate(self.seqs) if not lo <= seq <= hi]
        if not kept:
            return None
        return _Round(
            seqs=tuple(self.seqs[i] for i in kept),
            series=tuple(self.series[i] for i in kept),
            values=tuple(self.values[i] for i in kept),
            ts_ms=self.ts_ms,
            mono_ms=self.mono_ms,
            boot=self.boot,
            clock=self.clock,
        )


def _round_of(row: tuple[int, int, int, int, int, int, int, bytes]) -> _Round:
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
    return _Round(
        seqs=seqs,
        series=tuple(int(s) for s in unpacked[:n]),
        values=tuple(float(v) for v in unpacked[n:]),
        ts_ms=ts_ms,
        mono_ms=mono_ms,
        boot=boot,
        clock=clock,
    )


class Buffer:
    """Readings on disk, oldest first. Use from one thread; open one per state directory."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: Path,
        *,
        max_readings: int,
        min_free_bytes: int = 0,
        free_bytes: FreeBytes = disk_free_bytes,
    ) -> None:
        self._conn = conn
        self.path = path
        self._max = max_readings
        self._min_free = min_free_bytes
        self._free_bytes = free_bytes
        self._series: dict[tuple[str, str], int] = {}
        self._series_fast: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
        self._series_by_id: dict[int, tuple[str, Tags]] = {}
        self._boots: dict[str, int] = {}
        self._boots_by_id: dict[int, str] = {}
        (count, newest) = conn.execute(
            "SELECT COALESCE(SUM(n), 0), COALESCE(MAX(last_seq), 0) FROM rounds"
        ).fetchone()
        self._count = int(count)
        self._stored_last_seq = self._meta_int("last_seq")
        self._last_seq = max(self._stored_last_seq, int(newest))

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        site: str,
        max_readings: int,
        min_free_bytes: int = 0,
        free_bytes: FreeBytes = disk_free_bytes,
    ) -> Buffer:
        """Open or create the buffer. Raise BufferError if it is unusable or belongs to another site.

        A file that is not a database, or fails its integrity check, raises CorruptBuffer so that the
        caller can quarantine it and start afresh.
        """
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, isolation_level=None, timeout=10.0)
        except (OSError, sqlite3.Error) as err:
            raise BufferError(
                f"cannot open the buffer {path}: {err}; check that state_dir exists and is "
                "writable by the agent"
            ) from err
        try:
            # Small pages for a new file (an existing one keeps its own): a round touches a few
            # pages and each is written whole, twice (WAL, then checkpoint), on an SD card.
            conn.execute("PRAGMA page_size=1024")
            # The default 2 MiB cache would grow with a long outage's backlog; the hot pages are
            # the tail (appends) and the head (the oldest batch), which fit in a few dozen.
            conn.execute("PRAGMA cache_size=-256")
            conn.execute("PRAGMA journal_mode=WAL")
            # FULL: the WAL is fsynced at every commit, so a committed round survives a power cut.
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=OFF")
            check = conn.execute("PRAGMA quick_check").fetchone()
            if check is None or check[0] != "ok":
                conn.close()
                raise CorruptBuffer(f"integrity check of {path} failed: {check}")
            _check_schema(conn, path)
            # Before the tables are made: a reader must never see an empty `rounds` beside a
            # schema 1 backlog that is still being converted.
            _convert_schema_1(conn, path)
            conn.executescript(_SCHEMA)
            conn.execute(_ROUNDS_TABLE)
            _check_rounds(conn)
            buffer = cls(
                conn,
                path,
                max_readings=max_readings,
                min_free_bytes=min_free_bytes,
                free_bytes=free_bytes,
            )
            buffer._claim(site)
        except sqlite3.DatabaseError as err:
            conn.close()
            raise CorruptBuffer(f"{path} is not a usable database: {err}") from err
        except BaseException:
            conn.close()
            raise
        return buffer

    def _meta_int(self, key: str) -> int:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    def _claim(self, site: str) -> None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'site'").fetchone()
        if row is None:
            with self._tx():
                self._conn.execute("INSERT INTO meta VALUES ('site', ?)", (site,))
                self._conn.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
                self._conn.execute("INSERT OR IGNORE INTO meta VALUES ('dropped', 0)")
                self._conn.execute("INSERT OR IGNORE INTO meta VALUES ('last_seq', 0)")
        elif row[0] != site:
            raise BufferError(
                f"the buffer {self.path} holds readings of site '{row[0]}', not '{site}'. "
                "Export them with 'village-agent buffer export', or give this site its own state_dir"
            )

    def _tx(self) -> _Transaction:
        return _Transaction(self._conn)

    def _series_id(self, metric: str, tags: Tags) -> int:
        # Looked up by the tags' items first: JSON-encoding every sample's tags on every round cost
        # a quarter of append() in profiles.
        fast = (metric, tuple(sorted(tags.items())))
        cached = self._series_fast.get(fast)
        if cached is not None:
            return cached
        key = (metric, _tags_key(tags))
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

    def _boot_id(self, boot_id: str) -> int:
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

    def append(
        self, stamp: Stamp, samples: Sequence[Sample], *, delete: Iterable[int] = ()
    ) -> Appended:
        """Append one round of samples in one transaction, numbering them, and in the same
        transaction delete the acknowledged seqs in `delete`.

        Returns the seqs assigned and how many old readings were dropped to respect the bound.
        Raise BufferError if the database cannot be written (disk full, read-only); then nothing
        was appended nor deleted.
        """
        if not samples:
            self.delete(delete)
            return Appended(first_seq=None, last_seq=None, dropped=0)
        if self._min_free:
            try:
                free = self._free_bytes(self.path.parent)
            except OSError:
                free = self._min_free  # cannot tell: let SQLite try and report what it finds
            if free < self._min_free:
                # Stop before ENOSPC: SQLite and the filesystem behave worst in the last few pages.
                raise DiskFull(
                    f"only {free // 1024} KiB free where the buffer lives ({self.path.parent}); "
                    "free some space on the SD card: readings wait in memory meanwhile"
                )
        clock = CLOCK_SYNCED if stamp.synced else CLOCK_UNSYNCED
        ranges = _ranges(delete)
        try:
            with self._tx():
                # One commit per round, not one for the round and one per acknowledgement: each
                # commit rewrites whole pages and fsyncs, and that is what wears the SD card.
                gone = self._remove(ranges)
                boot = self._boot_id(stamp.boot_id)
                series = [self._series_id(s.metric, s.tags) for s in samples]
                first = self._last_seq + 1
                last = first + len(samples) - 1
                rows = [
                    _Round(
                        seqs=tuple(range(first + start, first + start + len(chunk))),
                        series=tuple(series[start : start + len(chunk)]),
                        values=tuple(s.value for s in chunk),
                        ts_ms=stamp.ts_ms,
                        mono_ms=stamp.mono_ms,
                        boot=boot,
                        clock=clock,
                    ).row()
                    for start in range(0, len(samples), ROW_MAX_READINGS)
                    for chunk in [samples[start : start + ROW_MAX_READINGS]]
                ]
                self._conn.executemany(_INSERT_ROUND, rows)
                count = self._count - gone + len(samples)
                dropped = max(0, count - self._max)
                if dropped:
                    self._drop_oldest(dropped)
                    self._conn.execute(
                        "UPDATE meta SET value = value + ? WHERE key = 'dropped'", (dropped,)
                    )
                    count -= dropped
                stored = self._keep_last_seq(last)
        except BaseException as err:
            # Rolled back, whatever failed: ids cached inside the transaction do not exist.
            self._forget_uncommitted()
            if isinstance(err, sqlite3.Error):
                raise BufferError(f"cannot write to the buffer {self.path}: {err}") from err
            raise
        self._count = count
        self._last_seq = last
        self._stored_last_seq = stored
        return Appended(first_seq=first, last_seq=last, dropped=dropped)

    def _keep_last_seq(self, last: int) -> int:
        """Make sure the file still knows `last` as the last seq given; return what `meta` holds.
        Call inside a transaction, after its deletes."""
        newest = self._conn.execute(
            "SELECT last_seq FROM rounds ORDER BY first_seq DESC LIMIT 1"
        ).fetchone()
        if (newest is not None and newest[0] == last) or self._stored_last_seq == last:
            return self._stored_last_seq
        # The round holding it is gone (acknowledged or dropped): only meta can remember it now.
        self._conn.execute("UPDATE meta SET value = ? WHERE key = 'last_seq'", (last,))
        return last

    def _rounds(self, query: str, args: tuple[int, ...]) -> list[_Round]:
        return [_round_of(row) for row in self._conn.execute(query, args).fetchall()]

    def _replace(self, old: _Round, new: _Round | None) -> None:
        self._conn.execute("DELETE FROM rounds WHERE first_seq = ?", (old.seqs[0],))
        if new is not None:
            self._conn.execute(_INSERT_ROUND, new.row())

    def _remove(self, ranges: Sequence[tuple[int, int]]) -> int:
        """Delete the readings in the inclusive seq ranges; return how many were there.
        Call inside a transaction."""
        gone = 0
        for lo, hi in ranges:
            # Rounds wholly inside the range go as rows; a round the range cuts through (at most
            # one at each end) is rewritten without the readings in the range.
            (inside,) = self._conn.execute(
                "SELECT COALESCE(SUM(n), 0) FROM rounds "
                "WHERE first_seq BETWEEN ? AND ? AND last_seq <= ?",
                (lo, hi, hi),
            ).fetchone()
            self._conn.execute(
                "DELETE FROM rounds WHERE first_seq BETWEEN ? AND ? AND last_seq <= ?",
                (lo, hi, hi),
            )
            gone += int(inside)
            edges = self._rounds(_ROUND_HOLDING, (lo - 1,)) + self._rounds(_ROUND_HOLDING, (hi,))
            done: set[int] = set()
            for edge in edges:
                if edge.seqs[0] in done or edge.seqs[-1] < lo or edge.seqs[0] > hi:
                    continue
                done.add(edge.seqs[0])
                kept = edge.without(lo, hi)
                gone += len(edge.seqs) - (len(kept.seqs) if kept else 0)
                self._replace(edge, kept)
        return gone

    def _drop_oldest(self, count: int) -> None:
        """Delete the `count` oldest readings. Call inside a transaction."""
        while count > 0:
            (oldest,) = self._rounds(_OLDEST_ROUND, ())
            if len(oldest.seqs) <= count:
                self._replace(oldest, None)
                count -= len(oldest.seqs)
            else:
                self._replace(oldest, oldest.without(oldest.seqs[0], oldest.seqs[count - 1]))
                count = 0

    def _forget_uncommitted(self) -> None:
        # Ids cached inside a rolled-back transaction do not exist on disk.
        self._series.clear()
        self._series_fast.clear()
        self._series_by_id.clear()
        self._boots.clear()
        self._boots_by_id.clear()

    def oldest(self, *, after_seq: int = 0, limit: int) -> list[Reading]:
        """The oldest readings with seq > after_seq, at most `limit` of them, in seq order."""
        out: list[Reading] = []
        # The round holding after_seq + 1 starts at or before it; later rounds follow in order.
        (start,) = self._conn.execute(
            "SELECT COALESCE(MAX(first_seq), 0) FROM rounds WHERE first_seq <= ?", (after_seq + 1,)
        ).fetchone()
        while len(out) < limit:
            rounds = self._rounds(_ROUNDS_FROM, (start,))
            for stored in rounds:
                for index, seq in enumerate(stored.seqs):
                    if seq > after_seq and len(out) < limit:
                        out.append(self._reading(stored, index))
            if len(rounds) < _PAGE:
                break
            start = rounds[-1].seqs[0] + 1
        return out

    def _reading(self, stored: _Round, index: int) -> Reading:
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

    def delete(self, seqs: Iterable[int]) -> int:
        """Delete acknowledged readings in one transaction; return how many went."""
        ranges = _ranges(seqs)
        if not ranges:
            return 0
        try:
            with self._tx():
                gone = self._remove(ranges)
                stored = self._keep_last_seq(self._last_seq)
        except sqlite3.Error as err:
            raise BufferError(
                f"cannot remove acknowledged readings from {self.path}: {err}"
            ) from err
        self._count -= gone
        self._stored_last_seq = stored
        return gone

    def continue_seq_after(self, seq: int) -> None:
        """Make the next seq at least seq + 1 (a fresh file replacing a damaged one)."""
        last = max(seq, self._last_seq)
        with self._tx():
            self._conn.execute("UPDATE meta SET value = ? WHERE key = 'last_seq'", (last,))
        self._last_seq = self._stored_last_seq = last

    def add_dropped(self, count: int) -> None:
        """Record readings lost outside the file (kept in memory while it could not be written)."""
        if count <= 0:
            return
        try:
            with self._tx():
                self._conn.execute(
                    "UPDATE meta SET value = value + ? WHERE key = 'dropped'", (count,)
                )
        except sqlite3.Error as err:
            raise BufferError(f"cannot update the buffer {self.path}: {err}") from err

    def restamp(self, boot_id: str, offset_ms: int) -> int:
        """Give unsynced readings of this boot their true time: wall = monotonic + offset.

        Called once the wall clock synced; returns how many readings were corrected.
        """
        try:
            with self._tx():
                boot = self._boot_id(boot_id)
                (fixed,) = self._conn.execute(
                    "SELECT COALESCE(SUM(n), 0) FROM rounds WHERE boot = ? AND clock = ?",
                    (boot, CLOCK_UNSYNCED),
                ).fetchone()
                self._conn.execute(
                    "UPDATE rounds SET ts_ms = mono_ms + ?, clock = ? WHERE boot = ? AND clock = ?",
                    (offset_ms, CLOCK_RESTAMPED, boot, CLOCK_UNSYNCED),
                )
        except sqlite3.Error as err:
            self._forget_uncommitted()  # the boot's id may have been made in the rollback
            raise BufferError(f"cannot update the buffer {self.path}: {err}") from err
        return int(fixed)

    @property
    def count(self) -> int:
        """Readings in the buffer, kept in memory: no query."""
        return self._count

    def stats(self) -> BufferStats:
        oldest = self._conn.execute(
            "SELECT first_seq, ts_ms FROM rounds ORDER BY first_seq LIMIT 1"
        ).fetchone()
        return BufferStats(
            count=self._count,
            last_seq=self._last_seq,
            oldest_seq=oldest[0] if oldest else None,
            oldest_ts_ms=oldest[1] if oldest else None,
            dropped_total=self._meta_int("dropped"),
        )

    def integrity_ok(self) -> bool:
        row = self._conn.execute("PRAGMA integrity_check").fetchone()
        return row is not None and row[0] == "ok"

    def close(self) -> None:
        self._conn.close()


def _check_schema(conn: sqlite3.Connection, path: Path) -> None:
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone():
        return
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    if row is not None and isinstance(row[0], int) and row[0] > SCHEMA_VERSION:
        raise BufferError(
            f"the buffer {path} was written by a newer village-agent (buffer schema {row[0]}, "
            f"this one reads up to {SCHEMA_VERSION}); install that version again, or export the "
            "readings with it before going back"
        )


def _check_rounds(conn: sqlite3.Connection) -> None:
    """Decode every round once at open. A damaged blob that SQLite's own check cannot see would
    otherwise fail every later read and append; CorruptBuffer has it quarantined instead."""
    after = 0
    while rows := conn.execute(_ROUNDS_FROM, (after,)).fetchall():
        for row in rows:
            _round_of(row)
        after = rows[-1][0] + 1


def _convert_schema_1(conn: sqlite3.Connection, path: Path) -> None:
    """Turn a schema 1 file (a row per reading) into rounds, in one transaction, keeping every
    reading's seq and the last seq ever assigned. If it fails the file stays as it was."""
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'readings'").fetchone():
        return
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(_ROUNDS_TABLE)
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'readings'").fetchone()
        last = int(row[0]) if row else 0
        pending: list[tuple[int, int, float, int, int, int, int]] = []

        def flush() -> None:
            if pending:
                ts_ms, mono_ms, boot, clock = pending[0][3:]
                conn.execute(
                    _INSERT_ROUND,
                    _Round(
                        seqs=tuple(p[0] for p in pending),
                        series=tuple(p[1] for p in pending),
                        values=tuple(p[2] for p in pending),
                        ts_ms=ts_ms,
                        mono_ms=mono_ms,
                        boot=boot,
                        clock=clock,
                    ).row(),
                )
                pending.clear()

        cursor = conn.execute(_V1_READINGS)
        while batch := cursor.fetchmany(5000):
            for reading in batch:
                if pending and (reading[3:] != pending[0][3:] or len(pending) >= ROW_MAX_READINGS):
                    flush()
                pending.append(reading)
        flush()
        conn.execute("DROP TABLE readings")
        conn.execute("DELETE FROM meta WHERE key = 'count'")  # summed from the rows now
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('last_seq', ?)", (last,))
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (SCHEMA_VERSION,))
        conn.execute("COMMIT")
    except BaseException as err:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        if isinstance(err, sqlite3.Error):
            # Not CorruptBuffer: the old file is whole, and quarantining it would hide a backlog.
            raise BufferError(
                f"cannot convert the buffer {path} to the new layout ({err}); nothing was "
                "changed. The conversion needs about as much free space again as the file: free "
                "some on the SD card, then restart the agent"
            ) from err
        raise


class DiskFull(BufferError):
    """Less free space than the configured floor: the round is kept out of the file."""


class CorruptBuffer(BufferError):
    """The buffer file is damaged: quarantine it and start a fresh one."""


class _Transaction:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        # IMMEDIATE takes the write lock at once: a reader such as `buffer export` never makes a
        # round fail half-way with "database is locked".
        self._conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self._conn.execute("COMMIT")
        elif self._conn.in_transaction:
            self._conn.execute("ROLLBACK")


def last_seq_of(path: Path) -> int:
    """The highest seq a (possibly damaged) buffer file recorded, or 0 if it cannot be read."""
    found = 0
    queries = (
        "SELECT value FROM meta WHERE key = 'last_seq'",
        "SELECT MAX(last_seq) FROM rounds",
        "SELECT seq FROM sqlite_sequence WHERE name = 'readings'",  # schema 1
    )
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return 0
    try:
        for query in queries:
            # Each on its own: damage to one table must not hide what another still knows.
            try:
                row = conn.execute(query).fetchone()
            except sqlite3.Error:
                continue
            if row and isinstance(row[0], int):
                found = max(found, row[0])
    finally:
        conn.close()
    return found


def quarantine(path: Path, now: float | None = None) -> Path:
    """Move a damaged buffer (and its WAL) aside, keeping it for a technician; return the new name."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now if now is not None else time.time()))
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{path}{suffix}")
        if source.exists():
            source.rename(Path(f"{target}{suffix}"))
    return target
