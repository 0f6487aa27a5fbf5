"""Seq epochs at the collector: a recreated buffer's readings are stored beside the old ones, and
the simulator's view of the database counts each (site, epoch) series alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.buffer.store import Buffer
from agent.contract.telemetry import encode_telemetry
from agent.reading import Sample, Stamp
from collector.clock import SystemClock
from collector.ingest.parse import Message, parcel
from collector.store import Store, migrate, open_database
from simulator.virtual.collector import ManyEpochs
from simulator.virtual.stored import Stored
from tests.collector.test_store import message, reading

OLD, NEW = "aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"


@pytest.fixture
def stored(database_url: str) -> Iterator[Stored]:
    store = Store(lambda: open_database(database_url), SystemClock())
    migrate(store.db, 0)
    old = [reading(s, value=float(s)) for s in range(1, 6)]
    new = [reading(s, value=100.0 + s) for s in range(1, 4)]
    contents, rejected = parcel(
        "desa/test", [message("s1", old, epoch=OLD), message("s1", new, epoch=NEW)]
    )
    assert not rejected
    store.write(contents)
    store.close()
    opened = Stored(database_url)
    yield opened
    opened.close()


def test_a_new_epoch_restarting_at_seq_1_is_neither_duplicate_nor_lost(stored: Stored) -> None:
    """Both epochs' readings are there, counted per epoch; none counts as a repeat."""
    assert stored.epochs("s1") == [OLD, NEW]
    assert stored.duplicates("s1") == 0
    assert stored.count_in("s1", 5, OLD) == 5
    assert stored.count_in("s1", 5, NEW) == 3
    assert [r.value for r in stored.readings("s1", NEW)] == [101.0, 102.0, 103.0]
    assert sorted(stored.arrivals("s1", OLD)) == [1, 2, 3, 4, 5]
    assert stored.wait_counts({"s1": (3, 3)}, 0.0, {"s1": NEW})
    assert not stored.wait_counts({"s1": (5, 5)}, 0.0, {"s1": NEW})


def test_a_query_without_an_epoch_refuses_to_guess(stored: Stored) -> None:
    """With two epochs stored, counting "the" series would mix them: name one."""
    with pytest.raises(ManyEpochs):
        stored.count_in("s1", 5)


def test_a_recreated_buffer_numbers_again_and_the_collector_keeps_both(
    database_url: str, tmp_path: Path
) -> None:
    """The whole path: a buffer's readings go out under its epoch; the files are deleted (new SD
    card); the new buffer's seqs 1.. go out under a new epoch; the collector stores both sets."""
    store = Store(lambda: open_database(database_url), SystemClock())
    migrate(store.db, 0)
    path = tmp_path / "buffer.sqlite"
    stamp = Stamp(ts_ms=1_800_000_000_000, mono_ms=5_000, boot_id="boot-1", synced=True)
    sent: dict[str, list[int]] = {}
    for values in ([1.0, 2.0, 3.0], [7.0, 8.0]):
        buffer = Buffer.open(path, site="s1", max_readings=100)
        buffer.append(stamp, [Sample(metric="uptime.system_s", value=v) for v in values])
        readings = buffer.oldest(limit=100)
        sent[buffer.epoch] = [r.seq for r in readings]
        payload = encode_telemetry("s1", readings, epoch=buffer.epoch)
        contents, rejected = parcel(
            "desa/test",
            [Message(topic="desa/test/s1/telemetry", payload=payload, mid=1, qos=1, connection=1,
                     received_ms=0)],
        )  # fmt: skip
        assert not rejected
        assert store.write(contents).inserted == len(values)
        buffer.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    assert list(sent.values()) == [[1, 2, 3], [1, 2]]  # two epochs, the same seqs
    rows = store.db.execute("SELECT epoch, seq, value FROM readings ORDER BY value")
    store.close()
    first, second = sent
    assert [tuple(r) for r in rows] == [
        (first, 1, 1.0), (first, 2, 2.0), (first, 3, 3.0), (second, 1, 7.0), (second, 2, 8.0),
    ]  # fmt: skip
