"""The confirmer on both engines, with an injected clock: watermark, gaps, pace, give-up."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from agent.contract.ack import Ack, EpochAck, decode_ack
from collector.confirm import records
from collector.confirm.loop import Confirmer
from collector.store import Reader, Store, migrate, open_database
from collector.store.rows import Parcel, Row
from collector.web.app import create_app

T0 = 1_800_000_000_000
DAY_S = 86_400.0


@dataclass
class StepClock:
    """A wall clock the test moves by hand."""

    now_s: float = T0 / 1000

    def wall(self) -> float:
        return self.now_s

    def monotonic(self) -> float:
        return self.now_s


@dataclass
class Sent:
    """The acks published, per site."""

    acks: list[tuple[str, Ack]]

    def __call__(self, site: str, payload: bytes) -> bool:
        self.acks.append((site, decode_ack(payload)))
        return True


def row(site: str, epoch: str, seq: int) -> Row:
    return Row(site=site, epoch=epoch, seq=seq, raw_ts=T0 + seq, synced=True, boot_id="b",
               mono_ms=seq, metric="system.load1", tags="{}", value=1.0)  # fmt: skip


@pytest.fixture
def setup(database_url: str) -> Iterator[tuple[Store, Confirmer, StepClock, Sent]]:
    clock = StepClock()
    store = Store(lambda: open_database(database_url), clock)
    migrate(store.db, 0)
    sent = Sent(acks=[])
    db = open_database(database_url)
    confirmer = Confirmer(db, clock=clock, publish=sent, interval_s=900, give_up_s=2 * DAY_S)
    yield store, confirmer, clock, sent
    db.close()
    store.close()


def put(store: Store, confirmer: Confirmer, site: str, epoch: str, seqs: range | list[int]) -> None:
    rows = tuple(row(site, epoch, s) for s in seqs)
    store.write(Parcel(rows=rows, seen={site: max(seqs)}))
    confirmer.note({(site, epoch)})


def test_a_gap_is_reported_then_its_repair(
    setup: tuple[Store, Confirmer, StepClock, Sent],
) -> None:
    """1..50 and 61..100: through 50, 51..60 missing; once they arrive, through 100, none missing."""
    store, confirmer, clock, sent = setup
    put(store, confirmer, "s1", "e1", [*range(1, 51), *range(61, 101)])
    assert confirmer.check() == ["s1"]
    assert sent.acks[-1][1].epochs == (EpochAck(epoch="e1", through=50, missing=((51, 60),)),)
    clock.now_s += 15
    assert confirmer.check() == []  # the same gap is not published again
    put(store, confirmer, "s1", "e1", range(51, 61))
    clock.now_s += 15
    assert confirmer.check() == ["s1"]
    assert sent.acks[-1][1].epochs == (EpochAck(epoch="e1", through=100),)


def test_a_new_gap_waits_one_check_then_goes_out_at_once(
    setup: tuple[Store, Confirmer, StepClock, Sent],
) -> None:
    """After a clean ack, a gap seen at one check is published at the next, not after 900 s."""
    store, confirmer, clock, sent = setup
    put(store, confirmer, "s1", "e1", range(1, 11))
    assert confirmer.check() == ["s1"]
    put(store, confirmer, "s1", "e1", range(20, 31))
    clock.now_s += 15
    assert confirmer.check() == []
    clock.now_s += 15
    assert confirmer.check() == ["s1"]
    assert sent.acks[-1][1].epochs == (EpochAck(epoch="e1", through=10, missing=((11, 19),)),)


def test_progress_is_published_at_the_interval(
    setup: tuple[Store, Confirmer, StepClock, Sent],
) -> None:
    """Without gaps a site's ack goes out again only once `interval_s` has passed."""
    store, confirmer, clock, sent = setup
    put(store, confirmer, "s1", "e1", range(1, 11))
    confirmer.check()
    put(store, confirmer, "s1", "e1", range(11, 21))
    clock.now_s += 600
    assert confirmer.check() == []
    put(store, confirmer, "s1", "e1", range(21, 31))
    clock.now_s += 300
    assert confirmer.check() == ["s1"]
    assert sent.acks[-1][1].epochs == (EpochAck(epoch="e1", through=30),)


def test_a_second_epoch_is_listed_first(
    setup: tuple[Store, Confirmer, StepClock, Sent],
) -> None:
    """A new buffer identity on the same site: the ack lists both, the most recent first."""
    store, confirmer, clock, sent = setup
    put(store, confirmer, "s1", "e1", range(1, 11))
    confirmer.check()
    clock.now_s += 15
    put(store, confirmer, "s1", "e2", range(1, 6))
    assert confirmer.check() == ["s1"]
    epochs = sent.acks[-1][1].epochs
    assert [(e.epoch, e.through) for e in epochs] == [("e2", 5), ("e1", 10)]


def test_an_old_gap_is_given_up_and_counted(
    setup: tuple[Store, Confirmer, StepClock, Sent],
) -> None:
    """A gap still missing after give_up_s: through moves past it, the seqs are counted per site."""
    store, confirmer, clock, sent = setup
    put(store, confirmer, "s1", "e1", [*range(1, 51), *range(61, 101)])
    confirmer.check()
    clock.now_s += 2 * DAY_S - 1
    confirmer.check()
    assert records.load(store.db, "s1", "e1").through == 50  # type: ignore[union-attr]
    clock.now_s += 1
    assert confirmer.check() == ["s1"]
    assert sent.acks[-1][1].epochs == (EpochAck(epoch="e1", through=100),)
    (site,) = records.per_site(store.db)
    assert (site.site, site.through, site.gaps, site.given_up) == ("s1", 100, 0, 10)


def test_retention_does_not_move_the_watermark_back(
    setup: tuple[Store, Confirmer, StepClock, Sent],
) -> None:
    """Readings below the watermark deleted: new ones continue from it, no gap appears."""
    store, confirmer, clock, sent = setup
    put(store, confirmer, "s1", "e1", range(1, 21))
    confirmer.check()
    store.db.execute("DELETE FROM readings")
    put(store, confirmer, "s1", "e1", range(21, 31))
    clock.now_s += 900
    confirmer.check()
    assert sent.acks[-1][1].epochs == (EpochAck(epoch="e1", through=30),)


def test_metrics_show_the_watermark_gaps_and_given_up_seqs(
    setup: tuple[Store, Confirmer, StepClock, Sent],
) -> None:
    """/metrics carries per site the confirmed seq, the open gaps and the given-up counter."""
    store, confirmer, clock, _sent = setup
    put(store, confirmer, "s1", "e1", [*range(1, 51), *range(61, 101), *range(111, 121)])
    confirmer.check()
    clock.now_s += 2 * DAY_S
    confirmer.check()
    app = create_app(Reader(store.db))
    body = app.test_client().get("/metrics").get_data(as_text=True)
    assert 'village_site_confirmed_through_seq{site="s1",epoch="e1"} 100' in body
    assert 'village_site_confirm_gaps_ranges{site="s1"} 1' in body
    assert "# TYPE village_site_confirm_given_up_total counter" in body
    assert 'village_site_confirm_given_up_total{site="s1"} 10' in body


@pytest.mark.parametrize(("lang", "words"), [("en", "Confirmed through"), ("id", "Tersimpan")])
def test_the_site_page_shows_what_is_confirmed(
    setup: tuple[Store, Confirmer, StepClock, Sent], lang: str, words: str
) -> None:
    """The site page names the confirmed seq and the gap being repaired, in either language."""
    store, confirmer, _clock, _sent = setup
    put(store, confirmer, "s1", "e1", [*range(1, 51), *range(61, 101)])
    confirmer.check()
    app = create_app(Reader(store.db))
    page = app.test_client().get(f"/site/s1?lang={lang}").get_data(as_text=True)
    assert words in page
    assert "seq 50 (epoch e1)" in page
    assert ("1 gap(s) being repaired" if lang == "en" else "1 celah sedang diperbaiki") in page


def test_a_restarted_confirmer_follows_the_gaps_left_open(
    setup: tuple[Store, Confirmer, StepClock, Sent], database_url: str
) -> None:
    """A new confirmer (a restarted collector) rechecks an open gap without new readings, and
    gives it up when it is old enough."""
    store, confirmer, clock, sent = setup
    put(store, confirmer, "s1", "e1", [*range(1, 51), *range(61, 101)])
    confirmer.check()
    db = open_database(database_url)
    try:
        again = Confirmer(db, clock=clock, publish=sent, interval_s=900, give_up_s=2 * DAY_S)
        clock.now_s += 2 * DAY_S
        assert again.check() == ["s1"]
    finally:
        db.close()
    assert sent.acks[-1][1].epochs == (EpochAck(epoch="e1", through=100),)
