"""The ingest loop: messages in, one transaction per batch, acknowledgements only after its commit.

A batch closes at `max_messages`, or `max_wait_s` after its first message: one commit (one fsync)
carries many messages, and a message waits at most that long for its acknowledgement. If the database
cannot take a batch, the batch is kept and tried again; nothing is acknowledged meanwhile, so a
collector killed at any moment loses nothing: the broker re-sends what it never acknowledged.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog

from collector.clock import Clock
from collector.ingest.parse import Message, parcel
from collector.store import Store, StoreError

log = structlog.get_logger("collector.ingest")


class Acker(Protocol):
    """Acknowledges messages to the broker; the subscriber is one."""

    def ack(self, messages: Sequence[Message]) -> int: ...


@dataclass(slots=True)
class Totals:
    """What this collector did since it started."""

    messages: int = 0
    inserted: int = 0
    duplicates: int = 0
    rejected: int = 0
    batches: int = 0
    stale_acks: int = 0


class Ingest:
    """Owns the inbox the subscriber fills, and the loop that empties it into the store."""

    def __init__(
        self,
        *,
        store: Store,
        topic_prefix: str,
        clock: Clock,
        retention_days: float,
        max_messages: int = 1000,
        max_wait_s: float = 0.1,
        maintenance_every_s: float = 600.0,
        retry_after_s: float = 2.0,
        stored: Callable[[Iterable[tuple[str, str]]], None] | None = None,
    ) -> None:
        self._store = store
        self._prefix = topic_prefix
        self._clock = clock
        self._retention_days = retention_days
        self._max_messages = max_messages
        self._max_wait_s = max_wait_s
        self._maintenance_every_s = maintenance_every_s
        self._retry_after_s = retry_after_s
        # Told the (site, epoch) pairs of each committed batch: the confirmer's cheap bookkeeping.
        self._stored = stored
        self._inbox: queue.SimpleQueue[Message] = queue.SimpleQueue()
        self.totals = Totals()

    def deliver(self, message: Message) -> None:
        """Called on the network thread: file the message, nothing more."""
        self._inbox.put(message)

    def run(self, acker: Acker, stop: threading.Event) -> None:
        """Batch, store, acknowledge until `stop` is set; the batch in hand is finished first."""
        next_maintenance = self._clock.monotonic()
        while not stop.is_set():
            if self._clock.monotonic() >= next_maintenance:
                self._maintain()
                next_maintenance = self._clock.monotonic() + self._maintenance_every_s
            batch = self._collect(timeout_s=0.5)
            if batch:
                self._commit_then_ack(batch, acker, stop)

    def _collect(self, timeout_s: float) -> list[Message]:
        try:
            batch = [self._inbox.get(timeout=timeout_s)]
        except queue.Empty:
            return []
        deadline = self._clock.monotonic() + self._max_wait_s
        while len(batch) < self._max_messages:
            remaining = deadline - self._clock.monotonic()
            try:
                batch.append(self._inbox.get(timeout=remaining) if remaining > 0 else
                             self._inbox.get_nowait())  # fmt: skip
            except queue.Empty:
                break
        return batch

    def _commit_then_ack(self, batch: list[Message], acker: Acker, stop: threading.Event) -> None:
        contents, rejected = parcel(self._prefix, batch)
        for bad in rejected:
            log.warning("payload_rejected", topic=bad.topic, reason=bad.reason)
        while True:
            try:
                written = self._store.write(contents)
                break
            except StoreError as err:
                log.error("store_failed", error=str(err), retry_in_s=self._retry_after_s)
                # Nothing is acknowledged: if the collector stops now, the broker keeps it all.
                if stop.wait(self._retry_after_s):
                    return
                try:
                    self._store.reconnect()
                except StoreError as again:
                    log.error("store_reconnect_failed", error=str(again))
        stale = acker.ack(batch)
        if self._stored is not None and contents.rows:
            self._stored({(row.site, row.epoch) for row in contents.rows})
        totals = self.totals
        totals.batches += 1
        totals.messages += len(batch)
        totals.inserted += written.inserted
        totals.duplicates += written.duplicates
        totals.rejected += len(rejected)
        totals.stale_acks += stale
        log.debug(
            "batch_committed",
            messages=len(batch),
            inserted=written.inserted,
            duplicates=written.duplicates,
        )

    def _maintain(self) -> None:
        try:
            deleted = self._store.maintain(self._retention_days)
        except StoreError as err:
            log.error("maintenance_failed", error=str(err))
            return
        totals = self.totals
        log.info(
            "collector_totals",
            deleted_by_retention=deleted,
            messages=totals.messages,
            inserted=totals.inserted,
            duplicates=totals.duplicates,
            rejected=totals.rejected,
        )
