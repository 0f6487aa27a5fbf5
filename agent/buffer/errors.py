"""What can go wrong with the buffer, as one exception family: the store, its recovery and the
read-only view raise these, and every caller catches `BufferError`."""

from __future__ import annotations


class BufferError(Exception):
    """The buffer cannot be used; the message says what to do."""


class Unwritable(BufferError):
    """The file system refuses the buffer's writes (full, read-only, failing): readings wait in
    memory and the write is tried again; not damage, so the file is never quarantined for it."""


class DiskFull(Unwritable):
    """Less free space than the configured floor: the round is kept out of the file."""


class CorruptBuffer(BufferError):
    """The buffer file is damaged: quarantine it and start a fresh one."""
