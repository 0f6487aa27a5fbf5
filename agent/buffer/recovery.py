"""Opening a buffer file safely: refuse a newer layout, convert an older one, find damage at open,
and move a damaged file aside without losing what it says about the seqs it gave."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from agent.buffer.confirm import convert_schema_2
from agent.buffer.errors import BufferError, CorruptBuffer, Unwritable
from agent.buffer.rows import (
    INSERT_ROUND,
    ROUNDS_FROM,
    ROUNDS_TABLE,
    ROW_MAX_READINGS,
    SCHEMA,
    SCHEMA_VERSION,
    V1_READINGS,
    Round,
    round_of,
)
from agent.files import QUARANTINE_INFIX


def connect(path: Path) -> sqlite3.Connection:
    """Open or create the buffer file with the agent's settings, converted to the current layout
    and checked. Raise BufferError if it cannot be opened or was written by a newer agent;
    CorruptBuffer if it is not a database, fails its integrity check, or holds a damaged round,
    so that the caller can quarantine it and start afresh."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, isolation_level=None, timeout=10.0)
    except OSError as err:
        raise Unwritable(f"cannot create the buffer {path}: {err.strerror}") from err
    except sqlite3.Error as err:
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
            raise CorruptBuffer(f"integrity check of {path} failed: {check}")
        check_schema(conn, path)
        # Before the tables are made: a reader must never see an empty `rounds` beside a
        # schema 1 backlog that is still being converted.
        convert_schema_1(conn, path)
        conn.executescript(SCHEMA)
        conn.execute(ROUNDS_TABLE)
        convert_schema_2(conn)
        check_rounds(conn)
    except sqlite3.DatabaseError as err:
        conn.close()
        raise damage_or_refusal(path, err) from err
    except BaseException:
        conn.close()
        raise
    return conn


# SQLite's primary result codes that say the file system, not the file, is at fault.
_REFUSALS = {
    8: "the file system is read-only",  # SQLITE_READONLY
    10: "an I/O error",  # SQLITE_IOERR
    13: "the disk is full",  # SQLITE_FULL
    14: "the file cannot be opened",  # SQLITE_CANTOPEN
}


def damage_or_refusal(path: Path, err: sqlite3.DatabaseError) -> BufferError:
    """CorruptBuffer for a damaged file; Unwritable when the disk is full or read-only, which no
    quarantine would cure (and which would need a write to move the file anyway)."""
    code = getattr(err, "sqlite_errorcode", None)
    refusal = _REFUSALS.get(code & 0xFF) if isinstance(code, int) else None
    if refusal is not None:
        return Unwritable(
            f"cannot write the buffer {path}: {refusal} ({err}); free space or fix the SD card: "
            "readings wait in memory meanwhile"
        )
    return CorruptBuffer(f"{path} is not a usable database: {err}")


def check_schema(conn: sqlite3.Connection, path: Path) -> None:
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone():
        return
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    if row is not None and isinstance(row[0], int) and row[0] > SCHEMA_VERSION:
        raise BufferError(
            f"the buffer {path} was written by a newer village-agent (buffer schema {row[0]}, "
            f"this one reads up to {SCHEMA_VERSION}); install that version again, or export the "
            "readings with it before going back"
        )


def check_rounds(conn: sqlite3.Connection) -> None:
    """Decode every round once at open. A damaged blob that SQLite's own check cannot see would
    otherwise fail every later read and append; CorruptBuffer has it quarantined instead."""
    after = 0
    while rows := conn.execute(ROUNDS_FROM, (after,)).fetchall():
        for row in rows:
            round_of(row)
        after = rows[-1][0] + 1


def convert_schema_1(conn: sqlite3.Connection, path: Path) -> None:
    """Turn a schema 1 file (a row per reading) into rounds, in one transaction, keeping every
    reading's seq and the last seq ever assigned. If it fails the file stays as it was."""
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'readings'").fetchone():
        return
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(ROUNDS_TABLE)
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'readings'").fetchone()
        last = int(row[0]) if row else 0
        pending: list[tuple[int, int, float, int, int, int, int]] = []

        def flush() -> None:
            if pending:
                ts_ms, mono_ms, boot, clock = pending[0][3:]
                conn.execute(
                    INSERT_ROUND,
                    Round(
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

        cursor = conn.execute(V1_READINGS)
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


def epoch_of(path: Path) -> str:
    """The seq series a (possibly damaged) buffer file names in its meta, or "" if unreadable."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return ""
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()
    except sqlite3.Error:
        return ""
    finally:
        conn.close()
    return row[0] if row and isinstance(row[0], str) else ""


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
    """Move a damaged buffer (and its WAL) aside, keeping it for a technician; return the new name.

    The name never collides: a gateway without a real-time clock starts at the same wall time
    at every boot, so the stamp alone would let a second quarantine overwrite the first."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now if now is not None else time.time()))
    suffixes = ("", "-wal", "-shm")
    number = 1
    while True:
        target = path.with_name(f"{path.name}{QUARANTINE_INFIX}{stamp}-{number}")
        if not any(Path(f"{target}{suffix}").exists() for suffix in suffixes):
            break
        number += 1
    for suffix in ("", "-wal"):
        source = Path(f"{path}{suffix}")
        if source.exists():
            source.rename(Path(f"{target}{suffix}"))
    # The -shm is only an index of the -wal, and after a crash or a damaged -wal a wrong one: a
    # reader trusting it reads frames that are not there. Without it SQLite rebuilds the index
    # from the frames whose checksums hold, which is what the salvage must see.
    Path(f"{path}-shm").unlink(missing_ok=True)
    return target
