"""The count of readings a stop took from memory: kept beside the buffer and in the status file,
taken once at the next start."""

from __future__ import annotations

from pathlib import Path

from agent.daemon.state import StatusRecord, save_held_lost, take_held_lost


def test_the_count_beside_the_buffer_is_taken_once(tmp_path: Path) -> None:
    """Saved at the stop, read at the next start, then gone: never reported twice."""
    save_held_lost(tmp_path, 52)
    assert take_held_lost(tmp_path, None) == 52
    assert take_held_lost(tmp_path, None) == 0


def test_the_status_file_counts_when_the_stop_could_not_write_beside_the_buffer(
    tmp_path: Path,
) -> None:
    """A read-only card keeps no file; the status file (another file system) still knows, and
    both describing the same run, the larger count wins rather than their sum."""
    status = StatusRecord(site="s", pending_in_memory=40, lost_unrecorded=12)
    assert take_held_lost(tmp_path, status) == 52
    save_held_lost(tmp_path, 52)
    assert take_held_lost(tmp_path, status) == 52


def test_a_status_from_a_run_that_held_nothing_counts_nothing(tmp_path: Path) -> None:
    """The usual start: nothing was held, nothing is reported."""
    assert take_held_lost(tmp_path, StatusRecord(site="s", last_seq=900, backlog=20)) == 0
