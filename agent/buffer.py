"""The durable buffer: every reading lives here, on disk, until the broker acknowledged it.

SQLite in WAL mode with synchronous=FULL: a committed round survives a power cut. `seq` comes from an
AUTOINCREMENT key, so it is assigned inside the insert transaction, strictly increasing and never reused,
even after the rows it numbered were deleted.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.reading import Reading, Sample, Stamp, Tags

SCHEMA_VERSION = 1
CLOCK_UNSYNCED, CLOCK_SYNCED, CLOCK_RESTAMPED = 0, 1, 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY, metric TEXT NOT NULL, tags TEXT NOT NULL, UNIQUE (metric, tags));
CREATE TABLE IF NOT EXISTS boots (id INTEGER PRIMARY KEY, boot_id TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS readings (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    series INTEGER NOT NULL,
    value REAL NOT NULL,
    ts_ms INTEGER NOT NULL,
    mono_ms INTEGER NOT NULL,
    boot INTEGER NOT NULL,
    clock INTEGER NOT NULL);
"""


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
        self._count = self._meta_int("count")

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
            conn.executescript(_SCHEMA)
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
                self._conn.execute("INSERT OR IGNORE INTO meta VALUES ('count', 0)")
                self._conn.execute("INSERT OR IGNORE INTO meta VALUES ('dropped', 0)")
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
                before = self._conn.total_changes
                self._conn.executemany("DELETE FROM readings WHERE seq BETWEEN ? AND ?", ranges)
                gone = self._conn.total_changes - before
                boot = self._boot_id(stamp.boot_id)
                rows = [
                    (
                        self._series_id(s.metric, s.tags),
                        s.value,
                        stamp.ts_ms,
                        stamp.mono_ms,
                        boot,
                        clock,
                    )
                    for s in samples
                ]
                self._conn.executemany(
                    "INSERT INTO readings (series, value, ts_ms, mono_ms, boot, clock) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    rows,
                )
                last = int(self._conn.execute("SELECT last_insert_rowid()").fetchone()[0])
                count = self._count - gone + len(rows)
                dropped = max(0, count - self._max)
                if dropped:
                    self._conn.execute(
                        "DELETE FROM readings WHERE seq IN "
                        "(SELECT seq FROM readings ORDER BY seq LIMIT ?)",
                        (dropped,),
                    )
                    self._conn.execute(
                        "UPDATE meta SET value = value + ? WHERE key = 'dropped'", (dropped,)
                    )
                    count -= dropped
                self._conn.execute("UPDATE meta SET value = ? WHERE key = 'count'", (count,))
        except sqlite3.Error as err:
            self._forget_uncommitted()
            raise BufferError(f"cannot write to the buffer {self.path}: {err}") from err
        self._count = count
        return Appended(first_seq=last - len(rows) + 1, last_seq=last, dropped=dropped)

    def _forget_uncommitted(self) -> None:
        # Ids cached inside a rolled-back transaction do not exist on disk.
        self._series.clear()
        self._series_fast.clear()
        self._series_by_id.clear()
        self._boots.clear()
        self._boots_by_id.clear()

    def oldest(self, *, after_seq: int = 0, limit: int) -> list[Reading]:
        """The oldest readings with seq > after_seq, at most `limit` of them, in seq order."""
        rows = self._conn.execute(
            "SELECT seq, series, value, ts_ms, mono_ms, boot, clock FROM readings "
            "WHERE seq > ? ORDER BY seq LIMIT ?",
            (after_seq, limit),
        ).fetchall()
        return [self._reading(row) for row in rows]

    def _reading(self, row: tuple[int, int, float, int, int, int, int]) -> Reading:
        seq, series, value, ts_ms, mono_ms, boot, clock = row
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
            seq=seq,
            metric=metric,
            value=value,
            tags=tags,
            ts_ms=ts_ms,
            mono_ms=mono_ms,
            boot_id=self._boots_by_id[boot],
            synced=clock != CLOCK_UNSYNCED,
        )

    def delete(self, seqs: Iterable[int]) -> int:
        """Delete acknowledged readings in one transaction; return how many rows went."""
        ranges = _ranges(seqs)
        if not ranges:
            return 0
        try:
            with self._tx():
                before = self._conn.total_changes
                self._conn.executemany("DELETE FROM readings WHERE seq BETWEEN ? AND ?", ranges)
                gone = self._conn.total_changes - before
                self._conn.execute(
                    "UPDATE meta SET value = ? WHERE key = 'count'", (self._count - gone,)
                )
        except sqlite3.Error as err:
            raise BufferError(
                f"cannot remove acknowledged readings from {self.path}: {err}"
            ) from err
        self._count -= gone
        return gone

    def continue_seq_after(self, seq: int) -> None:
        """Make the next seq at least seq + 1 (a fresh file replacing a damaged one)."""
        with self._tx():
            self._conn.execute(
                "INSERT INTO readings (seq, series, value, ts_ms, mono_ms, boot, clock) "
                "VALUES (?, 0, 0, 0, 0, 0, 0)",
                (max(seq, self.stats().last_seq),),
            )
            self._conn.execute("DELETE FROM readings WHERE series = 0")

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
                cursor = self._conn.execute(
                    "UPDATE readings SET ts_ms = mono_ms + ?, clock = ? "
                    "WHERE boot = ? AND clock = ?",
                    (offset_ms, CLOCK_RESTAMPED, boot, CLOCK_UNSYNCED),
                )
        except sqlite3.Error as err:
            raise BufferError(f"cannot update the buffer {self.path}: {err}") from err
        return cursor.rowcount

    @property
    def count(self) -> int:
        """Rows in the buffer, kept in memory: no query."""
        return self._count

    def stats(self) -> BufferStats:
        oldest = self._conn.execute(
            "SELECT seq, ts_ms FROM readings ORDER BY seq LIMIT 1"
        ).fetchone()
        row = self._conn.execute(
            "SELECT seq FROM sqlite_sequence WHERE name = 'readings'"
        ).fetchone()
        return BufferStats(
            count=self._count,
            last_seq=int(row[0]) if row else 0,
            oldest_seq=oldest[0] if oldest else None,
            oldest_ts_ms=oldest[1] if oldest else None,
            dropped_total=self._meta_int("dropped"),
        )

    def integrity_ok(self) -> bool:
        row = self._conn.execute("PRAGMA integrity_check").fetchone()
        return row is not None and row[0] == "ok"

    def close(self) -> None:
        self._conn.close()


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
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'readings'").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return 0
    return int(row[0]) if row else 0


def quarantine(path: Path, now: float | None = None) -> Path:
    """Move a damaged buffer (and its WAL) aside, keeping it for a technician; return the new name."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now if now is not None else time.time()))
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{path}{suffix}")
        if source.exists():
            source.rename(Path(f"{target}{suffix}"))
    return target
