"""Readings the broker acknowledged, kept until the collector confirms it stored them.

A broker's PUBACK is not the last word: a restarted mosquitto drops what arrives for a persistent
session it restored before that client reconnects, and a slow consumer overflows its queue. Once a
collector's ack has ever been seen (remembered in `meta`), a round the broker acknowledged moves
from `rounds` to `delivered`, the same compressed row plus the wall time it was delivered, instead
of being deleted. The collector's ack deletes what it covers and moves what it reports missing back
to `rounds`, where the ordinary publishing path sends it again, oldest first.

The table is bounded in readings and in days: beyond either, the oldest delivered readings are
released (deleted and counted in `meta`), never silently. Undelivered readings are never dropped to
make room for delivered ones: the two tables have their own bounds.

This module works inside the buffer's transactions; `Buffer` (agent/buffer/store.py) owns them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from agent.buffer.rows import Round, round_of
from agent.contract.ack import EpochAck

Table = Literal["rounds", "delivered"]
Span = tuple[int, int]

DELIVERED_TABLE = """CREATE TABLE IF NOT EXISTS delivered (
    first_seq INTEGER PRIMARY KEY,
    last_seq INTEGER NOT NULL,
    n INTEGER NOT NULL,
    ts_ms INTEGER NOT NULL,
    mono_ms INTEGER NOT NULL,
    boot INTEGER NOT NULL,
    clock INTEGER NOT NULL,
    body BLOB NOT NULL,
    at_ms INTEGER NOT NULL)"""
_COLUMNS = "first_seq, last_seq, n, ts_ms, mono_ms, boot, clock, body"
_SEEN_KEY = "confirm_seen"
_RELEASED_KEY = "unconfirmed_released"
_ACK_TS_KEY = "confirm_ack_ts"


def convert_schema_2(conn: sqlite3.Connection) -> None:
    """Schema 3 only adds the `delivered` table: a schema 2 file gains it, empty, in place."""
    conn.execute(DELIVERED_TABLE)
    conn.execute("UPDATE meta SET value = 3 WHERE key = 'schema' AND value = 2")


def covered(ack: EpochAck) -> list[Span]:
    """The seq ranges the ack says are stored: up to `through`, and the stretches between its
    missing ranges. Above the last missing range the collector says nothing (it lists at most 32),
    so readings there wait for a later ack."""
    spans: list[Span] = [(0, ack.through)]
    done = ack.through
    for lo, hi in ack.missing:
        if lo > done + 1:
            spans.append((done + 1, lo - 1))
        done = max(done, hi)
    return spans


def only(stored: Round, lo: int, hi: int) -> Round | None:
    """The part of a round with seqs lo..hi (inclusive); None if it has none."""
    kept = [i for i, seq in enumerate(stored.seqs) if lo <= seq <= hi]
    if not kept:
        return None
    return Round(
        seqs=tuple(stored.seqs[i] for i in kept),
        series=tuple(stored.series[i] for i in kept),
        values=tuple(stored.values[i] for i in kept),
        ts_ms=stored.ts_ms,
        mono_ms=stored.mono_ms,
        boot=stored.boot,
        clock=stored.clock,
    )


def _insert(conn: sqlite3.Connection, table: Table, part: Round, at_ms: int) -> None:
    row = part.row()
    if table == "delivered":
        conn.execute(
            f"INSERT INTO delivered ({_COLUMNS}, at_ms) VALUES (?,?,?,?,?,?,?,?,?)", (*row, at_ms)
        )
    else:
        conn.execute(f"INSERT INTO rounds ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)", row)


def move(
    conn: sqlite3.Connection, spans: Sequence[Span], *, src: Table, dst: Table | None, at_ms: int
) -> int:
    """Move the readings with seqs in `spans` from table `src` to `dst` (None: delete them);
    return how many there were. Whole rows move as they are; a row a span cuts through is split.
    Call inside a transaction."""
    moved = 0
    inside = "WHERE first_seq BETWEEN ? AND ? AND last_seq <= ?"
    for lo, hi in spans:
        args = (lo, hi, hi)
        (count,) = conn.execute(f"SELECT COALESCE(SUM(n), 0) FROM {src} {inside}", args).fetchone()
        if dst == "delivered":
            conn.execute(
                f"INSERT INTO delivered ({_COLUMNS}, at_ms) SELECT {_COLUMNS}, ? FROM rounds {inside}",
                (at_ms, *args),
            )
        elif dst == "rounds":
            conn.execute(
                f"INSERT INTO rounds ({_COLUMNS}) SELECT {_COLUMNS} FROM delivered {inside}", args
            )
        conn.execute(f"DELETE FROM {src} {inside}", args)
        moved += int(count)
        # What is left that overlaps the span: at most a row reaching in from below, and one
        # reaching out above (or a single row holding the whole span). Both by the primary key:
        # a long backlog must not be scanned for every span.
        when = ", at_ms" if src == "delivered" else ", 0"
        below = conn.execute(
            f"SELECT {_COLUMNS}{when} FROM {src} WHERE first_seq < ? "
            "ORDER BY first_seq DESC LIMIT 1",
            (lo,),
        ).fetchall()
        above = conn.execute(
            f"SELECT {_COLUMNS}{when} FROM {src} WHERE first_seq BETWEEN ? AND ?", (lo, hi)
        ).fetchall()
        edges = below + above
        for *row, row_at in edges:
            stored = round_of(tuple(row))
            part = only(stored, lo, hi)
            if part is None:
                continue  # a row with a hole where the span is
            conn.execute(f"DELETE FROM {src} WHERE first_seq = ?", (stored.seqs[0],))
            # What stays is kept as up to two rows, below and above the span, never as one row
            # with a hole: a part moved back later would land inside it, and `Buffer.oldest`
            # reads rows in the order of their first seq.
            for kept in (only(stored, 0, lo - 1), only(stored, hi + 1, stored.seqs[-1])):
                if kept is not None:
                    _insert(conn, src, kept, int(row_at))
            if dst is not None:
                _insert(conn, dst, part, at_ms)
            moved += len(part.seqs)
    return moved


@dataclass(frozen=True, slots=True, kw_only=True)
class Applied:
    """What one collector ack did to the buffer."""

    matched: bool  # the ack spoke of this buffer's epoch
    confirmed: int  # delivered readings it covered, now deleted
    restored: int  # delivered readings it reported missing, back in line to be sent


class Unconfirmed:
    """The `delivered` table, its bound and its counters. Counters are changed inside the
    buffer's transaction; after a rollback the buffer calls `reload()`."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        max_readings: int,
        max_age_s: float,
        wall: Callable[[], float],
    ) -> None:
        self._conn = conn
        self._max = max_readings
        self._max_age_ms = int(max_age_s * 1000)
        self._wall = wall
        self.active = False
        self.count = 0
        self.released_total = 0
        self.last_ack_ts_ms = 0
        self.reload()

    def reload(self) -> None:
        """Read the counters from the file (at open, and after a rolled-back transaction)."""
        meta = dict(self._conn.execute("SELECT key, value FROM meta").fetchall())
        self.active = meta.get(_SEEN_KEY) == 1
        self.released_total = int(meta.get(_RELEASED_KEY) or 0)
        self.last_ack_ts_ms = int(meta.get(_ACK_TS_KEY) or 0)
        (count,) = self._conn.execute("SELECT COALESCE(SUM(n), 0) FROM delivered").fetchone()
        self.count = int(count)

    def keep(self, spans: Sequence[Span]) -> int:
        """Move acknowledged readings from `rounds` to `delivered`, then hold the bound; return
        how many left `rounds`. Call inside a transaction."""
        now_ms = round(self._wall() * 1000)
        moved = move(self._conn, spans, src="rounds", dst="delivered", at_ms=now_ms)
        self.count += moved
        self._release(now_ms)
        return moved

    def release_all(self, *, also: int = 0) -> None:
        """Release every delivered reading, and count `also` more released by the caller (the
        disk is nearly full). Call inside a transaction."""
        released = self.count + also
        self._conn.execute("DELETE FROM delivered")
        self.count = 0
        self._count_released(released)

    def _count_released(self, released: int) -> None:
        if released:
            self._conn.execute(
                "INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = value + ?",
                (_RELEASED_KEY, released, released),
            )
            self.released_total += released

    def _release(self, now_ms: int) -> None:
        released = 0
        # By age, oldest seq first, while the oldest row has waited too long: one look at the
        # head of the table per round, not a scan. A wall clock stepped back makes nothing old;
        # one stepped forward releases early, counted: never a reading lost unsent, only one
        # the collector may not confirm.
        cutoff = now_ms - self._max_age_ms
        while self._max_age_ms > 0:
            head = self._conn.execute(
                "SELECT first_seq, n, at_ms FROM delivered ORDER BY first_seq LIMIT 1"
            ).fetchone()
            if head is None or head[2] >= cutoff:
                break
            self._conn.execute("DELETE FROM delivered WHERE first_seq = ?", (head[0],))
            released += int(head[1])
            self.count -= int(head[1])
        while self.count > self._max:
            (first, last, n) = self._conn.execute(
                "SELECT first_seq, last_seq, n FROM delivered ORDER BY first_seq LIMIT 1"
            ).fetchone()
            excess = self.count - self._max
            if n <= excess:
                gone = move(self._conn, [(first, last)], src="delivered", dst=None, at_ms=0)
            else:
                (row,) = self._conn.execute(
                    f"SELECT {_COLUMNS} FROM delivered WHERE first_seq = ?", (first,)
                ).fetchall()
                cut = round_of(row).seqs[excess - 1]
                gone = move(self._conn, [(first, cut)], src="delivered", dst=None, at_ms=0)
            released += gone
            self.count -= gone
        self._count_released(released)

    def apply(self, ack: EpochAck | None, *, ts_ms: int) -> Applied:
        """Apply the collector's ack for this buffer's epoch (None: it spoke only of others).
        Remember that a collector confirms, so that acknowledged rounds are kept from now on.
        Call inside a transaction."""
        if not self.active:
            self._conn.execute("INSERT OR REPLACE INTO meta VALUES (?, 1)", (_SEEN_KEY,))
            self.active = True
        self._conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (_ACK_TS_KEY, ts_ms))
        self.last_ack_ts_ms = ts_ms
        if ack is None:
            return Applied(matched=False, confirmed=0, restored=0)
        confirmed = move(self._conn, covered(ack), src="delivered", dst=None, at_ms=0)
        # Missing ranges the buffer no longer holds (released, or never delivered) move nothing.
        restored = move(self._conn, ack.missing, src="delivered", dst="rounds", at_ms=0)
        self.count -= confirmed + restored
        return Applied(matched=True, confirmed=confirmed, restored=restored)
