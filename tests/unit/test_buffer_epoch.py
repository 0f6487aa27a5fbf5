"""The buffer's seq epoch: minted with a new file, kept by the file, new whenever the file is."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from agent.buffer.readonly import BufferView
from agent.buffer.store import Buffer
from agent.files import buffer_path
from agent.reading import Sample, Stamp
from tests.unit.test_buffer import _SCHEMA_1

SITE = "site-a"
STAMP = Stamp(ts_ms=1_800_000_000_000, mono_ms=5_000, boot_id="boot-1", synced=True)


def _samples(n: int) -> list[Sample]:
    return [Sample(metric="latency.rtt_avg_ms", value=float(i), tags={}) for i in range(n)]


def _open(path: Path) -> Buffer:
    return Buffer.open(path, site=SITE, max_readings=1000)


def test_a_new_buffer_gets_a_random_epoch(tmp_path: Path) -> None:
    """A new file carries 16 hex characters as its epoch, in the property and the stats alike."""
    buffer = _open(tmp_path / "b.sqlite")
    assert re.fullmatch(r"[0-9a-f]{16}", buffer.epoch)
    assert buffer.stats().epoch == buffer.epoch
    buffer.close()


def test_reopening_keeps_the_epoch_and_the_seq_series(tmp_path: Path) -> None:
    """A restart continues the same series: same epoch, seq goes on."""
    path = tmp_path / "b.sqlite"
    buffer = _open(path)
    epoch = buffer.epoch
    buffer.append(STAMP, _samples(3))
    buffer.close()
    buffer = _open(path)
    assert buffer.epoch == epoch
    assert buffer.append(STAMP, _samples(1)).first_seq == 4
    buffer.close()


def test_a_recreated_buffer_starts_a_new_epoch_at_seq_1(tmp_path: Path) -> None:
    """Deleting the files (new SD card, reinstall, --purge) restarts seq under another epoch."""
    path = tmp_path / "b.sqlite"
    buffer = _open(path)
    old = buffer.epoch
    buffer.append(STAMP, _samples(5))
    buffer.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    buffer = _open(path)
    assert buffer.epoch != old
    assert re.fullmatch(r"[0-9a-f]{16}", buffer.epoch)
    assert buffer.append(STAMP, _samples(2)).first_seq == 1
    buffer.close()


def test_two_new_buffers_never_share_an_epoch(tmp_path: Path) -> None:
    """Epochs are drawn at random, not derived from the clock or the site."""
    epochs = set()
    for i in range(20):
        buffer = _open(tmp_path / f"b{i}.sqlite")
        epochs.add(buffer.epoch)
        buffer.close()
    assert len(epochs) == 20


def test_a_file_from_before_epochs_gets_one_and_keeps_its_seqs(tmp_path: Path) -> None:
    """A schema 1 file (no epoch in meta) is given a fresh epoch; numbering continues as before."""
    path = tmp_path / "b.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(_SCHEMA_1)
    conn.close()
    buffer = _open(path)
    epoch = buffer.epoch
    assert re.fullmatch(r"[0-9a-f]{16}", epoch)
    assert buffer.append(STAMP, _samples(1)).first_seq == 13
    buffer.close()
    buffer = _open(path)
    assert buffer.epoch == epoch
    buffer.close()


def test_the_read_only_view_shows_the_epoch(tmp_path: Path) -> None:
    """`status` and `buffer export` see the same epoch the daemon's buffer uses."""
    buffer = _open(buffer_path(tmp_path))
    buffer.append(STAMP, _samples(2))
    with BufferView.open(tmp_path) as view:
        assert view.backlog().epoch == buffer.epoch
        with view.snapshot() as snapshot:
            assert snapshot.stats().epoch == buffer.epoch
    buffer.close()
