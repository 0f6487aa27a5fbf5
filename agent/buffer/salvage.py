"""Reading what can still be read out of a damaged buffer file into a fresh one.

A damaged page, or one round whose blob no longer decodes, must cost only the readings it held:
every round that still reads is copied with its seqs (the collector then drops the ones it already
has as repeats), together with the series and boots it names. What could not be read is counted:
the rounds whose blob is bad exactly (their `n`), a stretch of pages that cannot be read as the
seqs between the readable rounds on either side of it. That is an upper bound, since the stretch
may also hold seqs that were acknowledged and deleted before the damage; never an undercount.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from agent.buffer.errors import CorruptBuffer
from agent.buffer.rows import INSERT_ROUND, ROUNDS, Round, round_of

# Seqs to jump over when a page cannot be read: doubled at each failure, so that an unreadable
# stretch of any length costs a few dozen queries; then narrowed down to the first readable round.
_FIRST_STEP = 1
_LAST_SEQ = 2**62
_ROUND_AT = ROUNDS + "WHERE first_seq >= ? ORDER BY first_seq LIMIT 1"
# The names tables: how to read each, and how to copy a row of it.
_SERIES = (
    "SELECT id, metric, tags FROM series",
    "INSERT OR IGNORE INTO series (id, metric, tags) VALUES (?, ?, ?)",
)
_BOOTS = (
    "SELECT id, boot_id FROM boots",
    "INSERT OR IGNORE INTO boots (id, boot_id) VALUES (?, ?)",
)


Row = tuple[int, int, int, int, int, int, int, bytes]


@dataclass(frozen=True, slots=True, kw_only=True)
class Salvaged:
    recovered: int  # readings copied with their seqs
    lost: int  # readings the damaged file held that could not be read (at most this many)
    last_seq: int  # the highest seq seen in the damaged file, read or not (0: none)
    dropped: int  # the file's count of readings dropped by the bound, kept in the fresh file


def salvage(source: Path, into: sqlite3.Connection, *, unsent_from: int = 0) -> Salvaged:
    """Copy every readable round of the damaged file `source` (opened read-only, never changed)
    into the fresh buffer `into`, in one transaction. `unsent_from` is the oldest seq known to be
    unsent from elsewhere (the status file), 0 if unknown: with it an unreadable first stretch is
    counted from there; without it, from the first seq of the stretch that could be read."""
    try:
        old = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return Salvaged(recovered=0, lost=0, last_seq=0, dropped=0)
    try:
        into.execute("BEGIN IMMEDIATE")
        series = _copy(old, into, *_SERIES)
        boots = _copy(old, into, *_BOOTS)
        dropped = _meta_int(old, "dropped")
        recovered = lost = last = 0
        for found in _rounds(old, unsent_from):
            if isinstance(found, int):
                lost += found
                continue
            stored, row = found
            last = max(last, stored.seqs[-1])
            if stored.boot in boots and all(s in series for s in stored.series):
                into.execute(INSERT_ROUND, row)
                recovered += len(stored.seqs)
            else:
                lost += len(stored.seqs)  # its names went with a damaged page
        into.execute("INSERT OR REPLACE INTO meta VALUES ('dropped', ?)", (dropped,))
        into.execute("COMMIT")
    except BaseException:
        if into.in_transaction:
            into.execute("ROLLBACK")
        raise
    finally:
        old.close()
    return Salvaged(recovered=recovered, lost=lost, last_seq=last, dropped=dropped)


def _rounds(old: sqlite3.Connection, unsent_from: int) -> Iterator[tuple[Round, Row] | int]:
    """Every readable round in seq order with its row; an int for readings found unreadable."""
    after = 1
    previous_last: int | None = None  # last seq of the last round read (good or bad blob)
    failed = False
    while after <= _LAST_SEQ:
        row = _round_at(old, after)
        if row == "unreadable":
            failed = True
            after = _next_readable(old, after)
            if after > _LAST_SEQ:
                break
            continue
        if row == "end":
            break
        first, last, n = row[0], row[1], row[2]
        if failed:
            # An unreadable stretch lay between the last round read and this one.
            start = previous_last + 1 if previous_last is not None else unsent_from or first
            yield max(0, first - start)
            failed = False
        previous_last = last
        after = first + 1
        try:
            stored = round_of(row)
        except CorruptBuffer:
            yield max(int(n), 0)
            continue
        yield stored, row
    if failed and previous_last is not None:
        # The end of the file could not be read: count up to the highest seq it recorded.
        yield max(0, _highest_seq(old) - previous_last)


def _round_at(old: sqlite3.Connection, seq: int) -> Row | Literal["unreadable", "end"]:
    """The first round starting at or after `seq`."""
    try:
        row = old.execute(_ROUND_AT, (seq,)).fetchone()
    except sqlite3.DatabaseError:
        return "unreadable"
    if row is None:
        return "end"
    first, last, n, ts_ms, mono_ms, boot, clock, body = row
    numbers = (first, last, n, ts_ms, mono_ms, boot, clock)
    if not all(isinstance(v, int) for v in numbers) or last < first or first < seq:
        return "unreadable"  # a row the damage made up
    return (first, last, n, ts_ms, mono_ms, boot, clock, body)


def _next_readable(old: sqlite3.Connection, failing: int) -> int:
    """A seq past the unreadable `failing` from which a round reads again (or past the end)."""
    step = _FIRST_STEP
    good = failing + step
    while good <= _LAST_SEQ and _round_at(old, good) == "unreadable":
        failing = good
        step *= 2
        good = failing + step
    if good > _LAST_SEQ:
        return good
    # Narrow down: the first readable seq after the damaged stretch, not one far beyond it.
    while good - failing > 1:
        middle = (failing + good) // 2
        if _round_at(old, middle) == "unreadable":
            failing = middle
        else:
            good = middle
    return good


def _highest_seq(old: sqlite3.Connection) -> int:
    found = 0
    for query in (
        "SELECT MAX(last_seq) FROM rounds",
        "SELECT value FROM meta WHERE key = 'last_seq'",
    ):
        try:
            row = old.execute(query).fetchone()
        except sqlite3.DatabaseError:
            continue
        if row and isinstance(row[0], int):
            found = max(found, row[0])
    return found


def _copy(old: sqlite3.Connection, into: sqlite3.Connection, read: str, insert: str) -> set[int]:
    """Copy the rows of a names table as far as they read; return the ids copied."""
    ids: set[int] = set()
    try:
        for row in old.execute(read):
            into.execute(insert, row)
            ids.add(int(row[0]))
    except sqlite3.DatabaseError:
        pass  # the rest of the table is unreadable: rounds that need those names are counted
    return ids


def _meta_int(old: sqlite3.Connection, key: str) -> int:
    try:
        row = old.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    except sqlite3.DatabaseError:
        return 0
    return int(row[0]) if row and isinstance(row[0], int) else 0
