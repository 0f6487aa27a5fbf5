"""The buffer keeps what the broker acknowledged until the collector confirms it (issue 18)."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

from agent.buffer.store import Buffer
from agent.contract.ack import Ack, EpochAck
from agent.reading import Sample, Stamp

SITE = "site-a"
DAY_S = 86400.0


class Wall:
    """A wall clock the test moves."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _open(path: Path, wall: Wall | None = None, *, unconfirmed_max: int = 1000) -> Buffer:
    return Buffer.open(
        path,
        site=SITE,
        max_readings=10_000,
        unconfirmed_max_readings=unconfirmed_max,
        unconfirmed_max_days=7,
        wall=wall or Wall(),
    )


def _fill(buffer: Buffer, rounds: int, per_round: int = 10) -> None:
    for i in range(rounds):
        stamp = Stamp(ts_ms=1_800_000_000_000 + i, mono_ms=i, boot_id="b", synced=True)
        samples = [Sample(metric="m", value=float(j), tags={"k": str(j)}) for j in range(per_round)]
        buffer.append(stamp, samples)


def _ack(
    buffer: Buffer,
    through: int,
    missing: tuple[tuple[int, int], ...] = (),
    *,
    ts: int = 1,
    epoch: str | None = None,
) -> Ack:
    """The collector's ack of `buffer`'s own epoch unless another is named."""
    named = buffer.epoch if epoch is None else epoch
    return Ack(ts_ms=ts, epochs=(EpochAck(epoch=named, through=through, missing=missing),))


def _unsent(buffer: Buffer) -> list[int]:
    return [r.seq for r in buffer.oldest(limit=100_000)]


def test_without_a_collector_ack_acknowledged_rows_are_deleted(tmp_path: Path) -> None:
    """A province without this collector: the broker's PUBACK is the last word, as before."""
    buffer = _open(tmp_path / "b.sqlite")
    _fill(buffer, 3)
    assert buffer.delete(range(1, 21)) == 20
    assert (buffer.count, buffer.stats().unconfirmed, buffer.unconfirmed.active) == (10, 0, False)


def test_after_an_ack_acknowledged_rows_are_kept_delivered_across_a_restart(tmp_path: Path) -> None:
    """Once a collector confirmed anything, PUBACKed rows stay on disk, not among the unsent."""
    path = tmp_path / "b.sqlite"
    buffer = _open(path)
    _fill(buffer, 3)
    buffer.apply_ack(_ack(buffer, 0))
    assert buffer.delete(range(1, 16)) == 15
    assert (buffer.count, buffer.stats().unconfirmed) == (15, 15)
    assert _unsent(buffer) == list(range(16, 31))
    buffer.close()
    again = _open(path)
    assert (again.count, again.stats().unconfirmed, again.unconfirmed.active) == (15, 15, True)
    assert _unsent(again) == list(range(16, 31))
    assert (
        again.append(
            Stamp(ts_ms=1, mono_ms=1, boot_id="b", synced=True), [Sample(metric="m", value=1.0)]
        ).first_seq
        == 31
    )


def test_a_covering_ack_deletes_the_delivered_rows(tmp_path: Path) -> None:
    """through covers everything delivered: nothing is left unconfirmed."""
    buffer = _open(tmp_path / "b.sqlite")
    _fill(buffer, 3)
    buffer.apply_ack(_ack(buffer, 0, ts=1))
    buffer.delete(range(1, 26))
    applied = buffer.apply_ack(_ack(buffer, 25, ts=2))
    assert (applied.confirmed, applied.restored, buffer.stats().unconfirmed) == (25, 0, 0)
    assert buffer.count == 5


def test_missing_ranges_go_back_to_the_unsent_in_seq_order(tmp_path: Path) -> None:
    """Only the readings in the missing ranges are sent again, oldest first, even when a range
    cuts through rounds; what lies between missing ranges is confirmed; above the last one the
    collector says nothing, so it stays delivered."""
    buffer = _open(tmp_path / "b.sqlite")
    _fill(buffer, 5)
    buffer.apply_ack(_ack(buffer, 0, ts=1))
    buffer.delete(range(1, 46))
    applied = buffer.apply_ack(_ack(buffer, 3, ((7, 12), (20, 20)), ts=2))
    assert applied.restored == 7
    assert applied.confirmed == 3 + 3 + 7  # 1-3, 4-6, 13-19; not 21 and above
    assert _unsent(buffer) == [*range(7, 13), 20, *range(46, 51)]
    assert buffer.stats().unconfirmed == 45 - 7 - 13
    # The ranges sent again are delivered again; a later ack covers them.
    buffer.delete([*range(7, 13), 20])
    assert _unsent(buffer) == list(range(46, 51))
    buffer.apply_ack(_ack(buffer, 45, ts=3))
    assert buffer.stats().unconfirmed == 0


def test_an_ack_for_another_epoch_or_seen_again_changes_nothing(tmp_path: Path) -> None:
    """Rows carry no epoch: an ack of another series must not delete them; the retained ack that
    comes again on every connect must not send a repaired range once more."""
    buffer = _open(tmp_path / "b.sqlite")
    _fill(buffer, 2)
    buffer.apply_ack(_ack(buffer, 0, ts=1))
    buffer.delete(range(1, 21))
    assert not buffer.apply_ack(_ack(buffer, 20, ts=2, epoch="other")).matched
    assert buffer.stats().unconfirmed == 20
    assert buffer.apply_ack(_ack(buffer, 0, ((5, 6),), ts=3)).restored == 2
    buffer.delete([5, 6])
    assert buffer.apply_ack(_ack(buffer, 0, ((5, 6),), ts=3)).restored == 0
    assert _unsent(buffer) == []


def test_the_bound_in_readings_releases_the_oldest_and_counts_them(tmp_path: Path) -> None:
    """Beyond unconfirmed_max_readings the oldest delivered go, counted; unsent ones never."""
    buffer = _open(tmp_path / "b.sqlite", unconfirmed_max=25)
    _fill(buffer, 5)
    buffer.apply_ack(_ack(buffer, 0))
    buffer.delete(range(1, 31))
    buffer.delete(range(31, 38))
    stats = buffer.stats()
    assert (stats.unconfirmed, stats.unconfirmed_released_total) == (25, 12)
    assert (buffer.count, stats.dropped_total) == (13, 0)
    # The oldest went: a missing range over them finds nothing to send again.
    assert buffer.apply_ack(_ack(buffer, 0, ((1, 12),), ts=2)).restored == 0
    assert buffer.apply_ack(_ack(buffer, 0, ((13, 13),), ts=3)).restored == 1


def test_the_bound_in_days_releases_what_waited_too_long(tmp_path: Path) -> None:
    """Delivered readings still unconfirmed after unconfirmed_max_days are released, counted."""
    wall = Wall()
    buffer = _open(tmp_path / "b.sqlite", wall)
    _fill(buffer, 3)
    buffer.apply_ack(_ack(buffer, 0))
    buffer.delete(range(1, 11))
    wall.now += 8 * DAY_S
    buffer.delete(range(11, 21))
    stats = buffer.stats()
    assert (stats.unconfirmed, stats.unconfirmed_released_total) == (10, 10)


def test_a_schema_2_file_gains_the_delivered_table_in_place(tmp_path: Path) -> None:
    """An older file is converted when opened, its rows untouched."""
    path = tmp_path / "b.sqlite"
    buffer = _open(path)
    _fill(buffer, 2)
    buffer.close()
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE delivered")
    conn.execute("UPDATE meta SET value = 2 WHERE key = 'schema'")
    conn.commit()
    conn.close()
    again = _open(path)
    assert again.count == 20
    again.apply_ack(_ack(again, 0))
    again.delete(range(1, 6))
    assert again.stats().unconfirmed == 5
    again.close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0] == 3
    conn.close()


def test_random_deliveries_and_acks_agree_with_a_plain_model(tmp_path: Path) -> None:
    """Whatever the order of rounds, PUBACKs and acks, every reading is unsent, delivered or
    confirmed exactly once, and the unsent come back in strictly increasing seq order."""
    rng = random.Random(18)
    buffer = _open(tmp_path / "b.sqlite", unconfirmed_max=100_000)
    buffer.apply_ack(_ack(buffer, 0, ts=0))
    unsent: set[int] = set()
    delivered: set[int] = set()
    last = 0
    for step in range(300):
        action = rng.random()
        if action < 0.4:
            n = rng.randint(1, 12)
            _fill(buffer, 1, per_round=n)
            unsent |= set(range(last + 1, last + n + 1))
            last += n
        elif action < 0.75 and unsent:
            lo = rng.choice(sorted(unsent))
            seqs = {s for s in unsent if lo <= s < lo + rng.randint(1, 15)}
            buffer.delete(seqs)
            unsent -= seqs
            delivered |= seqs
        elif delivered:
            through = rng.randint(0, last)
            missing: list[tuple[int, int]] = []
            at = through
            for _ in range(rng.randint(0, 3)):
                a = at + rng.randint(1, 6)
                b = a + rng.randint(0, 5)
                missing.append((a, b))
                at = b + 1
            buffer.apply_ack(_ack(buffer, through, tuple(missing), ts=step + 1))
            top = max([through, *(b for _, b in missing)])
            gaps = {s for a, b in missing for s in range(a, b + 1)}
            back = delivered & gaps
            confirmed = {s for s in delivered if s <= top and s not in gaps}
            delivered -= back | confirmed
            unsent |= back
        order = _unsent(buffer)
        assert order == sorted(unsent)
        assert buffer.count == len(unsent)
        assert buffer.stats().unconfirmed == len(delivered)
    assert buffer.integrity_ok()


def test_a_nearly_full_disk_releases_the_delivered_first(tmp_path: Path) -> None:
    """Below buffer.min_free_mb acknowledged readings are deleted, not kept, and what was kept is
    released: counted, and the unsent readings stay."""
    free = [10_000_000]
    buffer = Buffer.open(
        tmp_path / "b.sqlite",
        site=SITE,
        max_readings=10_000,
        min_free_bytes=1_000_000,
        free_bytes=lambda _path: free[0],
    )
    _fill(buffer, 3)
    buffer.apply_ack(_ack(buffer, 0))
    buffer.delete(range(1, 11))
    assert buffer.stats().unconfirmed == 10
    free[0] = 10
    buffer.delete(range(11, 16))
    stats = buffer.stats()
    assert (stats.unconfirmed, stats.unconfirmed_released_total, stats.dropped_total) == (0, 15, 0)
    assert _unsent(buffer) == list(range(16, 31))
