"""The simulator's view of the real collector's database counts each (site, epoch) series alone."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from collector.clock import SystemClock
from collector.ingest.parse import parcel
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
