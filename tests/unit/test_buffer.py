"""The durable buffer on a real SQLite file: numbering, bounds, deletion, re-stamping, damage."""

from __future__ import annotations

import random
import sqlite3
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from agent.buffer.damage import Quarantined, Settings, Witness, open_checked
from agent.buffer.errors import BufferError, CorruptBuffer, DiskFull
from agent.buffer.recovery import epoch_of, last_seq_of, quarantine
from agent.buffer.rows import SCHEMA_VERSION
from agent.buffer.store import Buffer
from agent.reading import Sample, Stamp

SITE = "site-a"


def _stamp(ts_ms: int = 1_800_000_000_000, mono_ms: int = 5_000, synced: bool = True) -> Stamp:
    return Stamp(ts_ms=ts_ms, mono_ms=mono_ms, boot_id="boot-1", synced=synced)


def _samples(n: int, metric: str = "latency.rtt_avg_ms") -> list[Sample]:
    return [Sample(metric=metric, value=float(i), tags={"target": "1.1.1.1"}) for i in range(n)]


def _open(path: Path, max_readings: int = 1000) -> Buffer:
    return Buffer.open(path, site=SITE, max_readings=max_readings)


def _tamper(path: Path, sql: str) -> None:
    """Change a closed buffer file behind the agent's back."""
    conn = sqlite3.connect(path)
    conn.execute(sql)
    conn.commit()
    conn.close()


def test_seq_is_strictly_increasing_and_survives_reopen(tmp_path: Path) -> None:
    """seq continues after a restart and is never reused, even after deletions."""
    path = tmp_path / "b.sqlite"
    buffer = _open(path)
    first = buffer.append(_stamp(), _samples(3))
    assert (first.first_seq, first.last_seq) == (1, 3)
    buffer.delete([1, 2, 3])
    buffer.close()
    buffer = _open(path)
    second = buffer.append(_stamp(), _samples(2))
    assert (second.first_seq, second.last_seq) == (4, 5)
    assert [r.seq for r in buffer.oldest(limit=10)] == [4, 5]
    assert buffer.stats().last_seq == 5


def test_readings_come_back_as_written(tmp_path: Path) -> None:
    """Metric, value, tags and the clock evidence round-trip through the file."""
    buffer = _open(tmp_path / "b.sqlite")
    buffer.append(_stamp(synced=False), [Sample(metric="uptime.system_s", value=12.5, tags={})])
    (reading,) = buffer.oldest(limit=5)
    assert reading.metric == "uptime.system_s" and reading.value == 12.5
    assert reading.tags == {} and reading.boot_id == "boot-1"
    assert (reading.ts_ms, reading.mono_ms, reading.synced) == (1_800_000_000_000, 5_000, False)


def test_the_bound_drops_the_oldest_and_counts_them(tmp_path: Path) -> None:
    """Beyond max_readings the oldest rows go, and dropped_total says how many."""
    buffer = _open(tmp_path / "b.sqlite", max_readings=10)
    for _ in range(4):
        buffer.append(_stamp(), _samples(4))
    stats = buffer.stats()
    assert stats.count == 10
    assert stats.dropped_total == 6
    assert [r.seq for r in buffer.oldest(limit=100)] == list(range(7, 17))
    buffer.close()
    assert _open(tmp_path / "b.sqlite", max_readings=10).stats().dropped_total == 6


def test_oldest_pages_after_a_cursor_and_delete_counts(tmp_path: Path) -> None:
    """Batches page by seq; delete removes exactly the acknowledged rows."""
    buffer = _open(tmp_path / "b.sqlite")
    buffer.append(_stamp(), _samples(10))
    assert [r.seq for r in buffer.oldest(after_seq=3, limit=4)] == [4, 5, 6, 7]
    assert buffer.delete([4, 5, 6, 7, 99]) == 4
    assert buffer.stats().count == 6
    assert buffer.stats().oldest_seq == 1


def test_append_deletes_acknowledged_rows_in_the_same_commit(tmp_path: Path) -> None:
    """One transaction a round: the new rows go in and the acknowledged ones out, count exact."""
    path = tmp_path / "b.sqlite"
    buffer = _open(path, max_readings=10)
    buffer.append(_stamp(), _samples(8))
    appended = buffer.append(_stamp(), _samples(4), delete=[1, 2, 3, 4, 5, 99])
    assert (appended.first_seq, appended.last_seq, appended.dropped) == (9, 12, 0)
    assert [r.seq for r in buffer.oldest(limit=100)] == [6, 7, 8, 9, 10, 11, 12]
    assert buffer.stats().count == 7
    buffer.close()
    assert _open(path).stats().count == 7  # the persisted count agrees


def test_a_refused_append_deletes_nothing_either(tmp_path: Path) -> None:
    """Disk below its floor: neither the round nor the deletes happen, so the caller keeps both."""
    free = {"bytes": 10**9}
    buffer = Buffer.open(
        tmp_path / "b.sqlite",
        site=SITE,
        max_readings=100,
        min_free_bytes=1024 * 1024,
        free_bytes=lambda _path: free["bytes"],
    )
    buffer.append(_stamp(), _samples(3))
    free["bytes"] = 1024
    with pytest.raises(DiskFull):
        buffer.append(_stamp(), _samples(3), delete=[1, 2])
    assert [r.seq for r in buffer.oldest(limit=10)] == [1, 2, 3]


def test_restamp_fixes_only_unsynced_readings_of_that_boot(tmp_path: Path) -> None:
    """After the clock syncs, wall time = monotonic + offset for this boot's unsynced rows."""
    buffer = _open(tmp_path / "b.sqlite")
    buffer.append(_stamp(ts_ms=1000, mono_ms=2000, synced=False), _samples(1))
    buffer.append(_stamp(ts_ms=1_800_000_000_000, mono_ms=3000, synced=True), _samples(1))
    buffer.append(Stamp(ts_ms=500, mono_ms=100, boot_id="boot-0", synced=False), _samples(1))
    assert buffer.restamp("boot-1", 1_799_999_990_000) == 1
    by_seq = {r.seq: r for r in buffer.oldest(limit=10)}
    assert by_seq[1].ts_ms == 1_799_999_992_000 and by_seq[1].synced
    assert by_seq[2].ts_ms == 1_800_000_000_000
    assert by_seq[3].ts_ms == 500 and not by_seq[3].synced


def test_another_sites_buffer_is_refused(tmp_path: Path) -> None:
    """A state_dir holding another site's readings is not silently mixed."""
    _open(tmp_path / "b.sqlite").close()
    with pytest.raises(BufferError, match="holds readings of site 'site-a'"):
        Buffer.open(tmp_path / "b.sqlite", site="site-b", max_readings=10)


def test_a_damaged_file_is_reported_as_corrupt_and_can_be_quarantined(tmp_path: Path) -> None:
    """A file that is not a database raises CorruptBuffer; quarantine moves it aside."""
    path = tmp_path / "b.sqlite"
    path.write_bytes(b"this is not sqlite" * 500)
    with pytest.raises(CorruptBuffer):
        _open(path)
    moved = quarantine(path, now=0)
    assert moved.exists() and not path.exists()
    assert _open(path).stats().count == 0


def test_overwritten_pages_fail_the_integrity_check(tmp_path: Path) -> None:
    """Garbage written into the middle of a real buffer is caught at open."""
    path = tmp_path / "b.sqlite"
    buffer = _open(path, max_readings=100_000)
    rng = random.Random(3)
    for _ in range(50):
        # Random values: the rows are compressed, and a file of only zeros and counters is small.
        samples = [Sample(metric="m", value=rng.random(), tags={}) for _ in range(100)]
        buffer.append(_stamp(), samples)
    buffer.close()
    data = bytearray(path.read_bytes())
    assert len(data) > 8 * 4096
    data[3 * 4096 : 6 * 4096] = b"\xa5" * (3 * 4096)
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptBuffer):
        _open(path)


def test_a_nearly_full_disk_refuses_the_round_before_writing(tmp_path: Path) -> None:
    """Below the free-space floor append raises DiskFull and writes nothing."""
    free = {"bytes": 10 * 1024 * 1024}
    buffer = Buffer.open(
        tmp_path / "b.sqlite",
        site=SITE,
        max_readings=100,
        min_free_bytes=5 * 1024 * 1024,
        free_bytes=lambda _p: free["bytes"],
    )
    buffer.append(_stamp(), _samples(2))
    free["bytes"] = 1024
    with pytest.raises(DiskFull):
        buffer.append(_stamp(), _samples(2))
    assert buffer.stats().count == 2
    free["bytes"] = 10 * 1024 * 1024
    assert buffer.append(_stamp(), _samples(1)).last_seq == 3


def test_the_file_is_in_wal_mode(tmp_path: Path) -> None:
    """The buffer file is really in WAL mode, so a reader never blocks a round."""
    import sqlite3

    path = tmp_path / "b.sqlite"
    buffer = _open(path)
    buffer.append(_stamp(), _samples(1))
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    assert buffer.integrity_ok()


def test_acknowledgements_that_cut_through_rounds_keep_the_rest(tmp_path: Path) -> None:
    """Messages need not end where rounds end, and acks may come out of order: a round loses
    exactly the acknowledged readings, holes included, and keeps the others with their stamp."""
    path = tmp_path / "b.sqlite"
    buffer = _open(path)
    buffer.append(_stamp(ts_ms=1000), _samples(10))
    buffer.append(_stamp(ts_ms=2000), _samples(10))
    assert buffer.delete([4, 5, 6]) == 3  # a hole in the first round
    assert buffer.delete(range(9, 14)) == 5  # the end of one round and the start of the next
    expected = [1, 2, 3, 7, 8, 14, 15, 16, 17, 18, 19, 20]
    assert [r.seq for r in buffer.oldest(limit=100)] == expected
    assert [r.value for r in buffer.oldest(limit=3)] == [0.0, 1.0, 2.0]
    assert {r.seq: r.ts_ms for r in buffer.oldest(limit=100)}[8] == 1000
    assert [r.seq for r in buffer.oldest(after_seq=4, limit=3)] == [7, 8, 14]
    buffer.close()
    buffer = _open(path)
    assert buffer.stats().count == len(expected)
    assert buffer.stats().oldest_seq == 1
    assert buffer.delete([1, 2, 3, 7, 8]) == 5
    assert buffer.stats().oldest_seq == 14


def test_random_operations_agree_with_a_plain_model(tmp_path: Path) -> None:
    """Appends, deletes of random seq sets, bound drops and paging, checked against a dict."""
    rng = random.Random(7)
    path = tmp_path / "b.sqlite"
    buffer = _open(path, max_readings=150)
    model: dict[int, float] = {}
    dropped = given = 0
    for step in range(300):
        action = rng.random()
        if action < 0.5:
            n = rng.randint(1, 40)
            samples = [Sample(metric="m", value=float(step * 100 + i), tags={}) for i in range(n)]
            acked = rng.sample(sorted(model), k=min(len(model), rng.randint(0, 30)))
            appended = buffer.append(_stamp(ts_ms=step), samples, delete=acked)
            for seq in acked:
                del model[seq]
            assert appended.first_seq == given + 1  # never reused, also across reopens
            given = appended.last_seq
            for i in range(n):
                model[appended.first_seq + i] = float(step * 100 + i)
            over = max(0, len(model) - 150)
            for seq in sorted(model)[:over]:
                del model[seq]
            assert appended.dropped == over
            dropped += over
        elif action < 0.8 and model:
            start = rng.choice(sorted(model))
            seqs = [s for s in range(start, start + rng.randint(1, 60)) if rng.random() < 0.8]
            assert buffer.delete(seqs) == len(set(seqs) & set(model))
            for seq in seqs:
                model.pop(seq, None)
        else:
            after = rng.randint(0, buffer.stats().last_seq + 1)
            limit = rng.randint(1, 80)
            want = [s for s in sorted(model) if s > after][:limit]
            assert [r.seq for r in buffer.oldest(after_seq=after, limit=limit)] == want
        if step % 50 == 0:
            buffer.close()
            buffer = _open(path, max_readings=150)
        assert buffer.count == len(model)
    got = {r.seq: r.value for r in buffer.oldest(limit=1000)}
    assert got == model
    assert buffer.stats().dropped_total == dropped
    assert buffer.stats().oldest_seq == min(model)


_SCHEMA_1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE series (
    id INTEGER PRIMARY KEY, metric TEXT NOT NULL, tags TEXT NOT NULL, UNIQUE (metric, tags));
CREATE TABLE boots (id INTEGER PRIMARY KEY, boot_id TEXT NOT NULL UNIQUE);
CREATE TABLE readings (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, series INTEGER NOT NULL, value REAL NOT NULL,
    ts_ms INTEGER NOT NULL, mono_ms INTEGER NOT NULL, boot INTEGER NOT NULL, clock INTEGER NOT NULL);
INSERT INTO meta VALUES ('site', 'site-a'), ('schema', 1), ('count', 5), ('dropped', 2);
INSERT INTO series VALUES (1, 'latency.rtt_avg_ms', '{"target":"1.1.1.1"}'), (2, 'uptime.system_s', '{}');
INSERT INTO boots VALUES (1, 'boot-0'), (2, 'boot-1');
INSERT INTO readings VALUES (3, 1, 612.5, 1000, 10, 1, 0), (4, 2, 86400, 1000, 10, 1, 0),
    (7, 1, 598.25, 61000, 70, 1, 2), (8, 2, 86460, 61000, 70, 1, 2), (9, 1, 601.0, 5000, 5, 2, 1);
INSERT INTO readings VALUES (12, 2, 1, 1, 1, 2, 1);
DELETE FROM readings WHERE seq = 12;
"""


def test_a_schema_1_file_is_converted_with_every_reading_and_its_seq(tmp_path: Path) -> None:
    """A gateway upgraded with a backlog keeps it: same seqs, values, stamps and clock state, and
    numbering continues after the highest seq schema 1 ever gave (12, deleted since)."""
    path = tmp_path / "b.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(_SCHEMA_1)
    conn.close()
    buffer = _open(path)
    readings = buffer.oldest(limit=10)
    assert [
        (r.seq, r.metric, r.value, r.ts_ms, r.mono_ms, r.boot_id, r.synced) for r in readings
    ] == [
        (3, "latency.rtt_avg_ms", 612.5, 1000, 10, "boot-0", False),
        (4, "uptime.system_s", 86400.0, 1000, 10, "boot-0", False),
        (7, "latency.rtt_avg_ms", 598.25, 61000, 70, "boot-0", True),
        (8, "uptime.system_s", 86460.0, 61000, 70, "boot-0", True),
        (9, "latency.rtt_avg_ms", 601.0, 5000, 5, "boot-1", True),
    ]
    assert readings[0].tags == {"target": "1.1.1.1"}
    stats = buffer.stats()
    assert (stats.count, stats.last_seq, stats.dropped_total) == (5, 12, 2)
    assert buffer.append(_stamp(), _samples(1)).first_seq == 13
    buffer.close()
    conn = sqlite3.connect(path)
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "readings" not in tables
    assert conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()[0] == SCHEMA_VERSION
    conn.close()
    assert last_seq_of(path) == 13


def test_a_file_from_a_newer_agent_is_refused_untouched(tmp_path: Path) -> None:
    """Going back to an older agent must not reinterpret a layout it does not know."""
    path = tmp_path / "b.sqlite"
    _open(path).close()
    _tamper(path, "UPDATE meta SET value = 99 WHERE key = 'schema'")
    with pytest.raises(BufferError, match="newer village-agent"):
        _open(path)


def test_a_conversion_that_cannot_finish_changes_nothing_and_is_not_corruption(
    tmp_path: Path,
) -> None:
    """No room to convert (the file may not grow): a plain BufferError saying what to do, never
    CorruptBuffer (which would quarantine a healthy backlog), and the schema 1 file untouched."""
    path = tmp_path / "b.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(_SCHEMA_1)
    rng = random.Random(5)
    rows = [(seq, 1, rng.random(), 1000 + seq // 50, 10, 1, 1) for seq in range(13, 20_013)]
    conn.executemany("INSERT INTO readings VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    conn.commit()
    conn.close()
    size = path.stat().st_size
    script = f"""
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, ({size + 64 * 1024}, {size + 64 * 1024}))
from pathlib import Path
from agent.buffer.errors import BufferError, CorruptBuffer
from agent.buffer.store import Buffer
try:
    Buffer.open(Path({str(path)!r}), site="site-a", max_readings=100_000)
except CorruptBuffer as err:
    print("corrupt", err)
except BufferError as err:
    print("refused", err)
else:
    print("converted")
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.stdout.startswith("refused"), done.stdout + done.stderr
    assert "nothing was changed" in done.stdout and "free" in done.stdout
    conn = sqlite3.connect(path)
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "rounds" not in tables
    assert conn.execute("SELECT count(*) FROM readings").fetchone()[0] == 20_005
    conn.close()
    buffer = _open(path, max_readings=100_000)  # with room, the same file converts
    assert buffer.stats().count == 20_005 and buffer.stats().last_seq == 20_012


def test_a_failed_append_forgets_the_series_it_made(tmp_path: Path) -> None:
    """Whatever makes a round's transaction fail, series ids made inside it are not reused for
    another series: each reading keeps its own metric."""
    buffer = _open(tmp_path / "b.sqlite")
    buffer.append(_stamp(), [Sample(metric="base", value=1.0, tags={})])
    bad = Sample(metric="a", value="not a number", tags={})  # type: ignore[arg-type]
    with pytest.raises(struct.error):
        buffer.append(_stamp(), [bad])
    buffer.append(_stamp(), [Sample(metric="b", value=2.0, tags={})])
    buffer.append(_stamp(), [Sample(metric="a", value=3.0, tags={})])
    got = [(r.seq, r.metric, r.value) for r in buffer.oldest(limit=10)]
    assert got == [(1, "base", 1.0), (2, "b", 2.0), (3, "a", 3.0)]


def test_a_damaged_round_that_sqlite_accepts_is_caught_at_open(tmp_path: Path) -> None:
    """A blob that is valid to SQLite but not a round (bit rot inside a row) would fail every
    later read; open reports it as corruption so that it is quarantined."""
    path = tmp_path / "b.sqlite"
    buffer = _open(path)
    for _ in range(3):
        buffer.append(_stamp(), _samples(5))
    buffer.close()
    _tamper(path, "UPDATE rounds SET body = x'789c0102' WHERE first_seq = 6")
    with pytest.raises(CorruptBuffer, match="seq 6"):
        _open(path)


# -- damage found at open: quarantined, salvaged, counted -------------------------------------


def _crash_image(tmp_path: Path, *, on_disk: int = 20, in_wal: int = 10) -> tuple[Path, Witness]:
    """A buffer as a kill -9 leaves it: `on_disk` rounds of 10 readings checkpointed into the
    database file, `in_wal` more committed to the `-wal` only; and what the status file knew."""
    live = tmp_path / "live" / "b.sqlite"
    buffer = _open(live, max_readings=100_000)
    for _ in range(on_disk):
        buffer.append(_stamp(), _samples(10))
    buffer.close()  # the last close checkpoints the WAL into the file
    buffer = _open(live, max_readings=100_000)
    for _ in range(in_wal):
        buffer.append(_stamp(), _samples(10))
    stats = buffer.stats()
    image = tmp_path / "state" / "b.sqlite"
    image.parent.mkdir()
    for suffix in ("", "-wal"):
        Path(f"{image}{suffix}").write_bytes(Path(f"{live}{suffix}").read_bytes())
    buffer.close()
    return image, Witness(last_seq=stats.last_seq, backlog=stats.count, ran_before=True)


def _open_checked(path: Path, witness: Witness) -> tuple[Buffer, Quarantined | None]:
    return open_checked(path, Settings(site=SITE, max_readings=100_000), witness=witness, now=0)


def _seqs(buffer: Buffer) -> list[int]:
    return [r.seq for r in buffer.oldest(limit=100_000)]


def test_an_intact_crash_image_opens_without_quarantine(tmp_path: Path) -> None:
    """The control: a file and its -wal as a kill -9 leaves them lose nothing and move nowhere."""
    image, witness = _crash_image(tmp_path)
    buffer, moved = _open_checked(image, witness)
    assert moved is None
    assert _seqs(buffer) == list(range(1, 301))


def test_a_deleted_wal_is_detected_counted_and_the_rest_kept(tmp_path: Path) -> None:
    """The -wal held 100 readings: they are counted lost, the 200 in the file kept with their
    seqs, and numbering continues after the last seq ever given."""
    image, witness = _crash_image(tmp_path)
    Path(f"{image}-wal").unlink()
    buffer, moved = _open_checked(image, witness)
    assert moved is not None and moved.moved_to is not None
    assert (moved.recovered, moved.lost, moved.last_seq) == (200, 100, 300)
    assert moved.moved_to.exists() and "-wal" in moved.reason
    assert _seqs(buffer) == list(range(1, 201))
    assert buffer.append(_stamp(), _samples(1)).first_seq == 301


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_damaged_wal_loses_only_what_it_held_and_says_how_much(
    tmp_path: Path, damage: str
) -> None:
    """A -wal cut short or overwritten in its middle: SQLite keeps the commits before the damage;
    the rest is counted, so that recovered + lost is every reading committed."""
    image, witness = _crash_image(tmp_path)
    wal = Path(f"{image}-wal")
    data = bytearray(wal.read_bytes())
    half = len(data) // 2
    if damage == "truncated":
        wal.write_bytes(bytes(data[:half]))
    else:
        data[half : half + 3000] = random.Random(7).randbytes(3000)
        wal.write_bytes(bytes(data))
    buffer, moved = _open_checked(image, witness)
    assert moved is not None
    assert moved.recovered + moved.lost == 300
    assert 200 <= moved.recovered < 300
    assert _seqs(buffer) == list(range(1, moved.recovered + 1))
    assert buffer.append(_stamp(), _samples(1)).first_seq == 301


def test_a_zero_byte_database_is_quarantined_and_counted(tmp_path: Path) -> None:
    """A database emptied to 0 bytes (its -wal gone too) where the agent ran before: every unsent
    reading is counted lost, and seq continues after the last one given."""
    image, witness = _crash_image(tmp_path)
    image.write_bytes(b"")
    Path(f"{image}-wal").unlink()
    buffer, moved = _open_checked(image, witness)
    assert moved is not None and moved.moved_to is not None
    assert (moved.recovered, moved.lost) == (0, 300)
    assert "0 bytes" in moved.reason and moved.moved_to.exists()
    assert buffer.append(_stamp(), _samples(1)).first_seq == 301


def test_a_zero_byte_file_where_nothing_ever_ran_is_just_a_new_buffer(tmp_path: Path) -> None:
    """A first start that died before the first write leaves 0 bytes: nothing to report."""
    path = tmp_path / "b.sqlite"
    path.write_bytes(b"")
    buffer, moved = _open_checked(path, Witness())
    assert moved is None and buffer.stats().last_seq == 0


def test_garbage_in_a_page_costs_only_the_rounds_on_it(tmp_path: Path) -> None:
    """Random bytes over one page in the middle of a real buffer: the rounds on other pages are
    salvaged with their seqs; recovered + lost accounts for every reading."""
    path = tmp_path / "b.sqlite"
    buffer = _open(path, max_readings=100_000)
    rng = random.Random(5)
    for _ in range(60):
        buffer.append(
            _stamp(), [Sample(metric="m", value=rng.random(), tags={}) for _ in range(20)]
        )
    witness = Witness(last_seq=buffer.stats().last_seq, backlog=buffer.count, ran_before=True)
    buffer.close()
    data = bytearray(path.read_bytes())
    pages = len(data) // 1024
    assert pages > 12
    middle = pages * 2 // 3
    data[middle * 1024 : (middle + 1) * 1024] = rng.randbytes(1024)
    path.write_bytes(bytes(data))
    buffer, moved = _open_checked(path, witness)
    assert moved is not None
    assert moved.recovered + moved.lost == 1200
    assert 0 < moved.lost <= 200, moved
    kept = _seqs(buffer)
    assert len(kept) == moved.recovered and kept[0] == 1 and kept[-1] == 1200
    assert [r.value for r in buffer.oldest(limit=1)] == [
        random.Random(5).random()
    ]  # the values, not only the seqs, came through
    assert buffer.append(_stamp(), _samples(1)).first_seq == 1201


def test_one_bad_round_loses_only_that_round(tmp_path: Path) -> None:
    """One round whose blob no longer decodes: its 5 readings are counted lost, the 10 around it
    kept and delivered with their seqs."""
    path = tmp_path / "b.sqlite"
    buffer = _open(path)
    for _ in range(3):
        buffer.append(_stamp(), _samples(5))
    buffer.close()
    _tamper(path, "UPDATE rounds SET body = x'789c0102' WHERE first_seq = 6")
    buffer, moved = _open_checked(path, Witness(last_seq=15, backlog=15, ran_before=True))
    assert moved is not None
    assert (moved.recovered, moved.lost) == (10, 5)
    assert _seqs(buffer) == [1, 2, 3, 4, 5, 11, 12, 13, 14, 15]
    assert buffer.append(_stamp(), _samples(1)).first_seq == 16


def test_a_salvaged_file_numbers_on_in_the_damaged_files_series(tmp_path: Path) -> None:
    """The damaged file names its epoch and knows every seq the status file saw given: the fresh
    file keeps that epoch, so the salvaged rounds keep their identity at the collector."""
    path = tmp_path / "b.sqlite"
    buffer = _open(path)
    for _ in range(3):
        buffer.append(_stamp(), _samples(5))
    epoch = buffer.epoch
    buffer.close()
    _tamper(path, "UPDATE rounds SET body = x'789c0102' WHERE first_seq = 6")
    buffer, moved = _open_checked(path, Witness(last_seq=15, backlog=15, ran_before=True))
    assert moved is not None
    assert buffer.epoch == epoch
    buffer.close()
    buffer = _open(path)  # and it stays so in the file
    assert (buffer.epoch, buffer.append(_stamp(), _samples(1)).first_seq) == (epoch, 16)
    buffer.close()


def test_damage_without_a_status_file_starts_a_new_epoch(tmp_path: Path) -> None:
    """The status file went with a power cut (tmpfs): nothing proves the damage spared the newest
    rounds, whose seqs the file may no longer show, so the series cannot go on."""
    path = tmp_path / "b.sqlite"
    buffer = _open(path)
    for _ in range(3):
        buffer.append(_stamp(), _samples(5))
    epoch = buffer.epoch
    buffer.close()
    _tamper(path, "UPDATE rounds SET body = x'789c0102' WHERE first_seq = 11")
    buffer, moved = _open_checked(path, Witness(ran_before=True))
    assert moved is not None
    assert buffer.epoch not in ("", epoch)
    buffer.close()


def test_a_file_that_cannot_prove_its_last_seq_starts_a_new_epoch(tmp_path: Path) -> None:
    """The status file saw more seqs given than the damaged file knows (its -wal lost), or the
    file does not read at all: seqs may have gone with the damage, so a new epoch starts, and
    seq still numbers on after the highest either knew."""
    image, witness = _crash_image(tmp_path, on_disk=3, in_wal=2)
    Path(f"{image}-wal").unlink()
    epoch = epoch_of(image)  # the checkpointed file still names it
    assert epoch
    buffer, moved = _open_checked(image, witness)
    assert moved is not None
    assert buffer.epoch not in ("", epoch)
    assert buffer.append(_stamp(), _samples(1)).first_seq == witness.last_seq + 1
    buffer.close()
    other = tmp_path / "c.sqlite"
    other.write_bytes(b"this is not sqlite" * 500)
    buffer, _ = _open_checked(other, Witness(last_seq=40, backlog=7, ran_before=True))
    assert buffer.epoch != "" and buffer.append(_stamp(), _samples(1)).first_seq == 41
    buffer.close()


def test_a_file_that_is_not_a_database_is_moved_aside_whole(tmp_path: Path) -> None:
    """Nothing reads: nothing recovered, the file kept byte for byte for a technician."""
    path = tmp_path / "b.sqlite"
    junk = b"this is not sqlite" * 500
    path.write_bytes(junk)
    buffer, moved = _open_checked(path, Witness(last_seq=40, backlog=7, ran_before=True))
    assert moved is not None and moved.moved_to is not None
    assert (moved.recovered, moved.lost) == (0, 7)
    assert moved.moved_to.read_bytes() == junk
    assert buffer.append(_stamp(), _samples(1)).first_seq == 41


def test_two_quarantines_at_the_same_wall_time_keep_both_files(tmp_path: Path) -> None:
    """No RTC: every boot starts at the same wall time; the second file must not overwrite the first."""
    path = tmp_path / "b.sqlite"
    path.write_bytes(b"first")
    Path(f"{path}-wal").write_bytes(b"first wal")
    first = quarantine(path, now=0)
    path.write_bytes(b"second")
    second = quarantine(path, now=0)
    assert first != second
    assert first.read_bytes() == b"first" and second.read_bytes() == b"second"
    assert Path(f"{first}-wal").read_bytes() == b"first wal"


def _damage(image: Path, kind: str, rng: random.Random) -> None:
    wal = Path(f"{image}-wal")
    if kind == "wal deleted":
        wal.unlink(missing_ok=True)
    elif kind == "wal cut" and wal.exists():
        wal.write_bytes(wal.read_bytes()[: rng.randrange(wal.stat().st_size + 1)])
    elif kind == "wal garbage" and wal.exists() and wal.stat().st_size > 64:
        data = bytearray(wal.read_bytes())
        at = rng.randrange(32, len(data) - 32)
        data[at : at + 512] = rng.randbytes(len(data[at : at + 512]))
        wal.write_bytes(bytes(data))
    elif kind == "page garbage":
        data = bytearray(image.read_bytes())
        page = rng.randrange(1, max(2, len(data) // 1024))
        data[page * 1024 : (page + 1) * 1024] = rng.randbytes(1024)
        image.write_bytes(bytes(data))
    elif kind == "empty":
        image.write_bytes(b"")
        wal.unlink(missing_ok=True)


DAMAGE_KINDS = ("wal deleted", "wal cut", "wal garbage", "page garbage", "empty")


@pytest.mark.parametrize("seed", range(30))
def test_no_seq_is_given_twice_within_an_epoch_whatever_the_damage(
    tmp_path: Path, seed: int
) -> None:
    """30 damage scenarios on crash images of random shape: whatever the salvage recovers and
    whichever epoch the fresh file takes, the seqs it holds and gives are unique within that
    epoch, every seq the old file gave is kept or counted lost, and seq never goes back."""
    rng = random.Random(seed)
    kind = DAMAGE_KINDS[seed % len(DAMAGE_KINDS)]
    image, witness = _crash_image(tmp_path, on_disk=rng.randrange(1, 25), in_wal=rng.randrange(8))
    old_epoch = epoch_of(tmp_path / "live" / "b.sqlite")
    _damage(image, kind, rng)
    buffer, moved = _open_checked(image, witness)
    kept = _seqs(buffer)
    new = [buffer.append(_stamp(), _samples(3)).first_seq for _ in range(2)]
    assert len(kept) == len(set(kept)) and kept == sorted(kept)
    assert all(1 <= seq <= witness.last_seq for seq in kept)
    assert new[0] > witness.last_seq  # seq never goes back, whichever the epoch
    if moved is None:
        assert buffer.epoch == old_epoch and kept == list(range(1, witness.last_seq + 1))
    else:
        assert witness.backlog is not None
        assert moved.recovered == len(kept)
        assert moved.recovered + moved.lost >= witness.backlog, (kind, moved)
    buffer.close()
