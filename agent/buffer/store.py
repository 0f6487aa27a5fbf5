"""The durable buffer: every reading lives here, on disk, until the broker acknowledged it (and,
once a collector confirms what it stores, until that confirmation: agent/buffer/confirm.py).

SQLite in WAL mode with synchronous=FULL: a committed round survives a power cut. One row holds one
round: the readings that share a stamp, packed and compressed into a blob of a few hundred bytes,
so that the newest rounds share one page. A round's commit (append it, delete what the broker
acknowledged) then rewrites a page or two instead of a row per reading with its index entries,
and each page is a write to the SD card. Nor does a commit touch `meta` unless it must: the count
is summed from the rows at open, and the last seq ever given is the newest row's, written to `meta`
only when the newest row is deleted. So seq stays strictly increasing and never reused, even after
the rows it numbered were deleted. A schema 1 file is converted in place when it is opened.

A file's seqs form one series named by its epoch, a random id in `meta` minted with the file: a
new SD card, a reinstall or a damaged file replaced by a fresh one starts seq again at 1 under a
new epoch, so a reading is identified by (site, epoch, seq) and never collides with an older one.
"""

from __future__ import annotations

import secrets
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.buffer.confirm import Applied, Span, Unconfirmed
from agent.buffer.errors import BufferError, DiskFull
from agent.buffer.recovery import connect, damage_or_refusal
from agent.buffer.rows import (
    CLOCK_RESTAMPED,
    CLOCK_SYNCED,
    CLOCK_UNSYNCED,
    INSERT_ROUND,
    OLDEST_ROUND,
    PAGE,
    ROUND_HOLDING,
    ROUNDS_FROM,
    ROW_MAX_READINGS,
    SCHEMA_VERSION,
    Names,
    Round,
    ranges,
    round_of,
)
from agent.contract.ack import Ack
from agent.reading import Reading, Sample, Stamp


@dataclass(frozen=True, slots=True, kw_only=True)
class BufferStats:
    count: int
    last_seq: int  # highest seq ever assigned (0 before the first reading)
    oldest_seq: int | None
    oldest_ts_ms: int | None
    dropped_total: int  # readings removed unsent to respect the size bound
    epoch: str  # names this file's seq series ("" only in a file no agent has claimed yet)
    unconfirmed: int = 0  # delivered, kept until the collector confirms them
    unconfirmed_released_total: int = 0  # delivered, released unconfirmed to respect their bound


@dataclass(frozen=True, slots=True, kw_only=True)
class Appended:
    first_seq: int | None
    last_seq: int | None
    dropped: int  # oldest readings dropped by this append to stay within the bound


FreeBytes = Callable[[Path], int]
EPOCH_BYTES = 8  # 64 random bits: two buffers of one site never draw the same epoch


def new_epoch() -> str:
    """A fresh seq epoch: 16 lowercase hex characters from the system's random source."""
    return secrets.token_hex(EPOCH_BYTES)


def disk_free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


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
        unconfirmed_max_readings: int = 20_000,
        unconfirmed_max_days: float = 7.0,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._conn = conn
        self.path = path
        self._max = max_readings
        self._min_free = min_free_bytes
        self._free_bytes = free_bytes
        self._names = Names(conn)
        (count, newest) = conn.execute(
            "SELECT COALESCE(SUM(n), 0), COALESCE(MAX(last_seq), 0) FROM rounds"
        ).fetchone()
        self._count = int(count)
        self._stored_last_seq = self._meta_int("last_seq")
        self._last_seq = max(self._stored_last_seq, int(newest))
        self._epoch = self._meta_text("epoch")
        self.unconfirmed = Unconfirmed(
            conn,
            max_readings=unconfirmed_max_readings,
            max_age_s=unconfirmed_max_days * 86400,
            wall=wall,
        )

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        site: str,
        max_readings: int,
        min_free_bytes: int = 0,
        free_bytes: FreeBytes = disk_free_bytes,
        unconfirmed_max_readings: int = 20_000,
        unconfirmed_max_days: float = 7.0,
        wall: Callable[[], float] = time.time,
    ) -> Buffer:
        """Open or create the buffer. Raise BufferError if it is unusable or belongs to another site.

        A file that is not a database, or fails its integrity check, raises CorruptBuffer so that the
        caller can quarantine it and start afresh; a full or read-only disk raises Unwritable.
        """
        conn = connect(path)
        try:
            buffer = cls(
                conn,
                path,
                max_readings=max_readings,
                min_free_bytes=min_free_bytes,
                free_bytes=free_bytes,
                unconfirmed_max_readings=unconfirmed_max_readings,
                unconfirmed_max_days=unconfirmed_max_days,
                wall=wall,
            )
            buffer._claim(site)
        except sqlite3.DatabaseError as err:
            conn.close()
            raise damage_or_refusal(path, err) from err
        except BaseException:
            conn.close()
            raise
        return buffer

    def _meta_text(self, key: str) -> str:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row and row[0] is not None else ""

    def _meta_int(self, key: str) -> int:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    def _claim(self, site: str) -> None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'site'").fetchone()
        if row is None:
            epoch = new_epoch()
            with self._tx():
                self._conn.execute("INSERT INTO meta VALUES ('site', ?)", (site,))
                self._conn.execute("INSERT OR REPLACE INTO meta VALUES ('epoch', ?)", (epoch,))
                self._conn.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
                self._conn.execute("INSERT OR IGNORE INTO meta VALUES ('dropped', 0)")
                self._conn.execute("INSERT OR IGNORE INTO meta VALUES ('last_seq', 0)")
            self._epoch = epoch
        elif row[0] != site:
            raise BufferError(
                f"the buffer {self.path} holds readings of site '{row[0]}', not '{site}'. "
                "Export them with 'village-agent buffer export', or give this site its own state_dir"
            )
        if not self._epoch:
            # A file written before epochs existed: its readings went out without one, and what
            # numbered them cannot be proven continuous with this file, so a series starts here.
            epoch = new_epoch()
            with self._tx():
                self._conn.execute("INSERT OR REPLACE INTO meta VALUES ('epoch', ?)", (epoch,))
            self._epoch = epoch

    def _tx(self) -> _Transaction:
        return _Transaction(self._conn)

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
        spans = ranges(delete)
        try:
            with self._tx():
                # One commit per round, not one for the round and one per acknowledgement: each
                # commit rewrites whole pages and fsyncs, and that is what wears the SD card.
                gone = self._acknowledge(spans)
                boot = self._names.boot(stamp.boot_id)
                series = [self._names.series(s.metric, s.tags) for s in samples]
                first = self._last_seq + 1
                last = first + len(samples) - 1
                rows = [
                    Round(
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
                self._conn.executemany(INSERT_ROUND, rows)
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

    def _rounds(self, query: str, args: tuple[int, ...]) -> list[Round]:
        return [round_of(row) for row in self._conn.execute(query, args).fetchall()]

    def _replace(self, old: Round, new: Round | None) -> None:
        self._conn.execute("DELETE FROM rounds WHERE first_seq = ?", (old.seqs[0],))
        if new is not None:
            self._conn.execute(INSERT_ROUND, new.row())

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
            edges = self._rounds(ROUND_HOLDING, (lo - 1,)) + self._rounds(ROUND_HOLDING, (hi,))
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
            (oldest,) = self._rounds(OLDEST_ROUND, ())
            if len(oldest.seqs) <= count:
                self._replace(oldest, None)
                count -= len(oldest.seqs)
            else:
                self._replace(oldest, oldest.without(oldest.seqs[0], oldest.seqs[count - 1]))
                count = 0

    def _forget_uncommitted(self) -> None:
        # Ids cached inside a rolled-back transaction do not exist on disk.
        self._names = Names(self._conn)
        self.unconfirmed.reload()

    def _acknowledge(self, spans: Sequence[Span]) -> int:
        """Take the readings the broker acknowledged out of line: deleted, or, once a collector
        confirms what it stores, kept as delivered (agent/buffer/confirm.py). Return how many
        left the undelivered rows. Call inside a transaction."""
        if not self.unconfirmed.active:
            return self._remove(spans)
        if self._disk_short():
            # Space is what the unsent readings need: what waits only for the collector's word
            # goes first, counted as released.
            gone = self._remove(spans)
            self.unconfirmed.release_all(also=gone)
            return gone
        return self.unconfirmed.keep(spans)

    def _disk_short(self) -> bool:
        if not self._min_free:
            return False
        try:
            return self._free_bytes(self.path.parent) < self._min_free
        except OSError:
            return False

    def apply_ack(self, ack: Ack) -> Applied:
        """Apply the collector's ack in one transaction: delete the delivered readings it covers,
        send again those it reports missing. The same retained ack seen again changes nothing.
        Raise BufferError if the buffer cannot be written; then nothing changed."""
        mine = ack.for_epoch(self.epoch)
        if self.unconfirmed.active and ack.ts_ms == self.unconfirmed.last_ack_ts_ms:
            return Applied(matched=mine is not None, confirmed=0, restored=0)
        try:
            with self._tx():
                applied = self.unconfirmed.apply(mine, ts_ms=ack.ts_ms)
        except sqlite3.Error as err:
            self.unconfirmed.reload()
            raise BufferError(f"cannot apply the collector's ack to {self.path}: {err}") from err
        self._count += applied.restored
        return applied

    def oldest(self, *, after_seq: int = 0, limit: int) -> list[Reading]:
        """The oldest readings with seq > after_seq, at most `limit` of them, in seq order."""
        out: list[Reading] = []
        # The round holding after_seq + 1 starts at or before it; later rounds follow in order.
        (start,) = self._conn.execute(
            "SELECT COALESCE(MAX(first_seq), 0) FROM rounds WHERE first_seq <= ?", (after_seq + 1,)
        ).fetchone()
        while len(out) < limit:
            rounds = self._rounds(ROUNDS_FROM, (start,))
            for stored in rounds:
                for index, seq in enumerate(stored.seqs):
                    if seq > after_seq and len(out) < limit:
                        out.append(self._names.reading(stored, index))
            if len(rounds) < PAGE:
                break
            start = rounds[-1].seqs[0] + 1
        return out

    def delete(self, seqs: Iterable[int]) -> int:
        """Delete acknowledged readings in one transaction; return how many went."""
        spans = ranges(seqs)
        if not spans:
            return 0
        try:
            with self._tx():
                gone = self._acknowledge(spans)
                stored = self._keep_last_seq(self._last_seq)
        except sqlite3.Error as err:
            self.unconfirmed.reload()
            raise BufferError(
                f"cannot remove acknowledged readings from {self.path}: {err}"
            ) from err
        self._count -= gone
        self._stored_last_seq = stored
        return gone

    def continue_seq_after(self, seq: int, *, epoch: str = "") -> None:
        """Make the next seq at least seq + 1 (a fresh file replacing a damaged one), in the
        series `epoch` when the old file's series is known (its salvaged rounds keep their names),
        else in this file's own."""
        last = max(seq, self._last_seq)
        with self._tx():
            self._conn.execute("UPDATE meta SET value = ? WHERE key = 'last_seq'", (last,))
            if epoch:
                self._conn.execute("INSERT OR REPLACE INTO meta VALUES ('epoch', ?)", (epoch,))
        self._last_seq = self._stored_last_seq = last
        if epoch:
            self._epoch = epoch

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
                boot = self._names.boot(boot_id)
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
    def epoch(self) -> str:
        """The id of this file's seq series: every seq it gives is unique within it."""
        return self._epoch

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
            epoch=self._epoch,
            unconfirmed=self.unconfirmed.count,
            unconfirmed_released_total=self.unconfirmed.released_total,
        )

    def integrity_ok(self) -> bool:
        row = self._conn.execute("PRAGMA integrity_check").fetchone()
        return row is not None and row[0] == "ok"

    def close(self) -> None:
        self._conn.close()


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
