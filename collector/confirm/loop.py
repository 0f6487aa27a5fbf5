"""The confirmer: every `check_s`, recompute the (site, epoch) pairs that received readings (or still
have gaps), store the result, and publish each site's ack when the pace says so.

It runs in its own thread with its own database connection; the ingest loop only notes which pairs a
committed batch touched (`note`), which costs a set insert.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

import structlog

from agent.contract.ack import Ack, EpochAck, encode_ack
from collector.clock import Clock, wall_ms
from collector.confirm import records
from collector.confirm.pace import due
from collector.confirm.ranges import Confirmed, confirm, skip_first_gap
from collector.store.database import Database, StoreError

log = structlog.get_logger("collector.confirm")

Pair = tuple[str, str]  # (site, epoch)
Publish = Callable[[str, bytes], bool]  # (site, payload) -> sent


class Confirmer:
    def __init__(
        self,
        db: Database,
        *,
        clock: Clock,
        publish: Publish,
        interval_s: float,
        give_up_s: float,
    ) -> None:
        self._db = db
        self._clock = clock
        self._publish = publish
        self._interval_ms = round(interval_s * 1000)
        self._give_up_ms = round(give_up_s * 1000)
        self._lock = threading.Lock()
        self._touched: set[Pair] = set()
        # Per collector, in memory: the gaps each pair had at the previous check, and what this
        # collector last published per site.
        self._previous: dict[Pair, tuple[tuple[int, int], ...]] = {}
        self._published: dict[str, tuple[EpochAck, ...]] = {}
        self._started = False

    def note(self, pairs: Iterable[Pair]) -> None:
        """Called by the ingest loop after a commit: these pairs received readings."""
        with self._lock:
            self._touched.update(pairs)

    def check(self) -> list[str]:
        """Recompute the noted pairs and those with gaps; publish what is due. Return the sites
        whose ack was published. Raise StoreError if the database cannot be used."""
        if not self._started:
            # Gaps another run (or another collector) left open are this one's to follow too.
            self.note(records.pairs_with_gaps(self._db))
            self._started = True
        with self._lock:
            pairs = self._touched | {pair for pair, gaps in self._previous.items() if gaps}
            self._touched = set()
        now = wall_ms(self._clock)
        previous = dict(self._previous)
        sites: set[str] = set()
        for site, epoch in sorted(pairs):
            with self._db.transaction():
                confirmed = self._recompute(site, epoch, now)
            self._previous[(site, epoch)] = confirmed.missing
            sites.add(site)
        sent = []
        for site in sorted(sites):
            if self._maybe_publish(site, now, previous):
                sent.append(site)
        return sent

    def _recompute(self, site: str, epoch: str, now: int) -> Confirmed:
        known = records.load(self._db, site, epoch)
        above = known.through if known is not None else -1
        runs = records.stored_runs(self._db, site, epoch, above)
        confirmed = confirm(known.through if known is not None else None, runs)
        first = known.first_seq if known is not None else (runs[0][0] if runs else 0)
        given_up = known.given_up if known is not None else 0
        since = known.gap_since if known is not None else None
        lowest_before = known.missing[0] if known is not None and known.missing else None
        if not confirmed.missing:
            since = None
        elif since is None or lowest_before is None or confirmed.missing[0][0] != lowest_before[0]:
            since = now
        elif now - since >= self._give_up_ms:
            confirmed, lost = skip_first_gap(confirmed, runs)
            given_up += lost
            log.warning(
                "confirm_gap_given_up",
                site=site,
                epoch=epoch,
                seqs=lost,
                through=confirmed.through,
            )
            since = now if confirmed.missing else None
        records.save(
            self._db,
            records.Confirmation(
                site=site,
                epoch=epoch,
                first_seq=first,
                through=confirmed.through,
                missing=confirmed.missing,
                gap_since=since,
                given_up=given_up,
                updated=now,
                published=known.published if known is not None else None,
            ),
        )
        return confirmed

    def _maybe_publish(
        self, site: str, now: int, previous: dict[Pair, tuple[tuple[int, int], ...]]
    ) -> bool:
        latest = records.latest_of_site(self._db, site)
        current = tuple(record.as_ack() for record in latest)
        published_ms = max((r.published for r in latest if r.published is not None), default=None)
        if not due(
            now_ms=now,
            current=current,
            previous_missing={epoch: gaps for (s, epoch), gaps in previous.items() if s == site},
            published=self._published.get(site),
            published_ms=published_ms,
            interval_ms=self._interval_ms,
        ):
            return False
        if not self._publish(site, encode_ack(Ack(ts_ms=now, epochs=current))):
            return False
        self._published[site] = current
        with self._db.transaction():
            records.mark_published(self._db, site, [e.epoch for e in current], now)
        log.info(
            "ack_published",
            site=site,
            epochs=[(e.epoch, e.through, len(e.missing)) for e in current],
        )
        return True

    def run(self, stop: threading.Event, check_s: float) -> None:
        """Check every `check_s` until `stop` is set; a database error waits for the next check."""
        while not stop.wait(check_s):
            try:
                self.check()
            except StoreError as err:
                log.error("confirm_failed", error=str(err))
