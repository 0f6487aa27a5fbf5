"""Opening the buffer whatever happened to its files: damage is found at open, the damaged file is
moved aside, and what it still holds is salvaged into a fresh one with its seqs.

SQLite itself finds a file that is not a database or fails its check, and `connect` a round that
no longer decodes. What SQLite cannot see is a lost or damaged `-wal` (deleted, truncated, garbage
frames) or a database emptied to 0 bytes: it then opens an older, consistent file, and the rounds
committed since are gone without an error. The witness outside the file sees that: the last seq
the status file recorded is higher than any the buffer knows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent.buffer.errors import CorruptBuffer, Unwritable
from agent.buffer.recovery import connect, epoch_of, last_seq_of, quarantine
from agent.buffer.salvage import salvage
from agent.buffer.store import Buffer, FreeBytes, disk_free_bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Witness:
    """What was known of the buffer from outside the file before this start (the status file)."""

    last_seq: int = 0
    backlog: int | None = None  # readings unacknowledged then: the newest ones
    ran_before: bool = False  # the agent has run in this state directory (its run marker)

    def unsent_from(self) -> int:
        """The oldest seq known to be unsent, 0 if not known."""
        if self.backlog is None or self.last_seq <= 0:
            return 0
        return max(1, self.last_seq - self.backlog + 1)

    def lost_after(self, seq: int) -> int:
        """Readings committed after `seq` and not yet acknowledged: at most that many."""
        gap = max(0, self.last_seq - seq)
        return gap if self.backlog is None else min(gap, self.backlog)


@dataclass(frozen=True, slots=True, kw_only=True)
class Quarantined:
    """A damaged buffer moved aside and salvaged: the event reading's content."""

    reason: str
    moved_to: Path | None  # None when there was no file left to move
    recovered: int  # readings salvaged with their seqs, delivered as usual
    lost: int  # readings that could not be read back (at most this many)
    last_seq: int  # the fresh file numbers on after this


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    site: str
    max_readings: int
    min_free_bytes: int = 0
    free_bytes: FreeBytes = disk_free_bytes
    unconfirmed_max_readings: int = 20_000
    unconfirmed_max_days: float = 7.0
    wall: Callable[[], float] = time.time


def open_checked(
    path: Path, settings: Settings, *, witness: Witness, now: float
) -> tuple[Buffer, Quarantined | None]:
    """Open the buffer; if it is damaged, quarantine it under a new name, salvage what reads and
    continue the seqs after the highest either knew. Raise Unwritable when the disk refuses the
    writes this needs (the caller holds rounds in memory and tries again), BufferError when the
    file cannot be used for another reason (a newer agent's, another site's)."""
    existed = path.exists()
    empty = existed and path.stat().st_size == 0
    # Read before opening: opening a file that holds no epoch (its -wal lost) claims a new one.
    series = epoch_of(path) if existed and not empty else ""
    reason: str | None = None
    if empty and witness.ran_before:
        # SQLite takes a 0-byte file for a new, empty database; but the agent ran here before.
        reason = f"{path} is empty (0 bytes)"
    else:
        try:
            buffer = _open(path, settings)
        except CorruptBuffer as err:
            reason = str(err)
        else:
            known = buffer.stats().last_seq
            if witness.last_seq <= known:
                return buffer, None
            # Closing checkpoints the frames of the -wal that still hold into the file: the copy
            # kept aside then holds what SQLite could read, not the damaged -wal's bytes.
            buffer.close()
            reason = (
                f"{path} knows seqs up to {known}, but {witness.last_seq} were committed: its "
                "-wal file was lost or damaged, or the file was replaced"
            )
    return _recover(
        path, settings, witness=witness, now=now, reason=reason, existed=existed, epoch=series
    )


def _open(path: Path, settings: Settings) -> Buffer:
    return Buffer.open(
        path,
        site=settings.site,
        max_readings=settings.max_readings,
        min_free_bytes=settings.min_free_bytes,
        free_bytes=settings.free_bytes,
        unconfirmed_max_readings=settings.unconfirmed_max_readings,
        unconfirmed_max_days=settings.unconfirmed_max_days,
        wall=settings.wall,
    )


def _recover(
    path: Path,
    settings: Settings,
    *,
    witness: Witness,
    now: float,
    reason: str,
    existed: bool,
    epoch: str,
) -> tuple[Buffer, Quarantined]:
    """Quarantine, salvage, and open a fresh file. It numbers on in the damaged file's series
    `epoch` only where that file proves the series' last seq: it names the epoch and knows at
    least the seqs the status file saw given (and there is a status file). Otherwise seqs it gave
    may have gone with the damage (a lost -wal; the status file is not fsynced and may be a round
    behind), so a new epoch starts and no seq can be given twice within one."""
    try:
        moved = quarantine(path, now) if existed else None
    except OSError as err:
        # A read-only card cannot even move the file: try again once it takes writes.
        raise Unwritable(f"cannot move the damaged buffer {path} aside: {err.strerror}") from err
    recovered = lost = file_last = 0
    if moved is not None:
        try:
            conn = connect(path)
            try:
                found = salvage(moved, conn, unsent_from=witness.unsent_from())
            finally:
                conn.close()
        except Unwritable:
            # The disk filled in between: put the damaged file back, so that the next try
            # salvages it again instead of starting from a fresh file and an orphan.
            _put_back(moved, path)
            raise
        recovered, lost = found.recovered, found.lost
        file_last = max(found.last_seq, last_seq_of(moved))
    # What the file never got to keep (its -wal) counts from the witness.
    lost += witness.lost_after(file_last)
    seed = max(file_last, witness.last_seq)
    # Without the status file (on tmpfs, gone with a power cut) nothing says the damage spared
    # the newest rounds: their seqs may be past the highest the file still shows.
    proven = bool(epoch) and witness.last_seq > 0 and file_last >= witness.last_seq
    buffer = _open(path, settings)
    buffer.continue_seq_after(seed, epoch=epoch if proven else "")
    return buffer, Quarantined(
        reason=reason, moved_to=moved, recovered=recovered, lost=lost, last_seq=seed
    )


def _put_back(moved: Path, path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    for suffix in ("", "-wal"):
        source = Path(f"{moved}{suffix}")
        if source.exists():
            source.rename(Path(f"{path}{suffix}"))


def stand_in(site: str, *, last_seq: int, epoch: str = "") -> Buffer:
    """An empty buffer in memory for while the real one cannot be opened (the disk refuses it, or
    it waits to be quarantined): reads find nothing to send, and nobody appends to it (the agent
    holds the rounds itself). It knows the last seq, so the status file keeps witnessing it."""
    buffer = Buffer.open(Path(":memory:"), site=site, max_readings=1)
    buffer.continue_seq_after(last_seq, epoch=epoch)
    return buffer
