"""The delivery rule, behind one type: a reading leaves the durable buffer only after the broker
acknowledged the message that carried it, and what could be sent twice after a crash stays within
the in-flight window.

`Outbox` is the only caller of the buffer's writes (`Buffer.append(delete=)`, `Buffer.delete`), the
way Telegraf's buffer has one transaction API: take the oldest batch (`pump`), then accept it (a
positive PUBACK: the rows go with the next commit) or keep it (a lost connection or a refusal: the
rows go again, oldest first). At most `window` messages are in flight; rows acknowledged but not yet
deleted count against the same window, so a crash resends at most a window's worth: a resend may
duplicate, never lose. Where a collector confirms what it stored, "deleted" means kept as delivered
until its ack (agent/buffer/confirm.py); the ack arrives as a link event and is applied here too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog

from agent.buffer.errors import BufferError
from agent.buffer.store import Appended, Buffer, BufferStats
from agent.config.schema import BrokerConfig
from agent.contract.ack import EpochAck, decode_ack
from agent.contract.fields import PayloadError
from agent.publish.link import (
    Acked,
    AckReceived,
    Connected,
    ConnectFailed,
    Disconnected,
    LinkEvent,
)
from agent.reading import Reading, Sample, Stamp

# (readings, the buffer's seq epoch) -> payload
Encode = Callable[[Sequence[Reading], str], bytes]

log = structlog.get_logger("agent.outbox")


class Link(Protocol):
    """What the outbox needs of the MQTT connection."""

    @property
    def connected(self) -> bool: ...

    def publish(
        self, topic: str, payload: bytes, *, retain: bool = False
    ) -> tuple[int, int] | None: ...


@dataclass(slots=True)
class _Flight:
    seqs: tuple[int, ...]
    sent_at: float
    payload_bytes: int


@dataclass(slots=True)
class OutboxStats:
    """Counters for status and readings; never persisted, so they restart at zero."""

    messages_acked: int = 0
    readings_acked: int = 0
    rejected_total: int = 0  # messages the broker refused (MQTT 5 negative PUBACK)
    payload_bytes: int = 0
    last_ack_ts: float | None = None
    last_error: str | None = None  # what keeps readings from flowing now; None once connected
    broker_state: str = "connecting"
    protocol: str | None = None  # the MQTT version of the current (or last) connection
    protocol_why: str | None = None  # configured | default | remembered | fallback
    protocol_detail: str | None = None  # for a fallback: what the broker did with MQTT 5
    last_disconnect: str | None = None  # why the last connection ended, kept after a reconnect
    last_disconnect_ts: float | None = None
    confirm_at: float | None = None  # wall time the collector's last ack arrived
    confirm: EpochAck | None = None  # what it said of this buffer's epoch


class Outbox:
    """Moves readings from the buffer to the link and deletes them once acknowledged."""

    def __init__(
        self,
        buffer: Buffer,
        link: Link,
        *,
        topic: str,
        encode: Encode,
        broker: BrokerConfig,
    ) -> None:
        """Send batches of `broker.batch_max_readings`, at most `broker.inflight_max` messages in
        flight, and after a refusal wait `broker.rejected_retry_s` before sending again."""
        self.buffer = buffer
        self._link = link
        self._topic = topic
        self._encode = encode
        self._broker = broker
        self._flights: dict[tuple[int, int], _Flight] = {}
        self._cursor = 0  # every row with seq <= cursor is in flight or was acknowledged
        self._held_until = 0.0  # after a rejection, wait before sending again
        self._acked: list[int] = []  # acknowledged, still in the buffer until the next commit
        self._acked_messages = 0
        self._deletes_refused = False  # the card refuses deletes (read-only): see pump()
        self.stats = OutboxStats()

    @property
    def in_flight(self) -> int:
        return len(self._flights)

    @property
    def acknowledged(self) -> tuple[int, ...]:
        """Seqs the broker acknowledged that are still in the buffer, until the next commit (or
        `settle`) deletes them."""
        return tuple(self._acked)

    # -- the buffer's side ------------------------------------------------------------------------
    def commit(self, stamp: Stamp, samples: Sequence[Sample]) -> Appended:
        """Append one round and, in the same transaction (one fsync), delete the rows the broker
        acknowledged since the last commit. Raise BufferError when the buffer refuses the write;
        the acknowledged rows are then kept for the next commit."""
        appended = self.buffer.append(stamp, samples, delete=tuple(self._acked))
        self._forget_acked()
        return appended

    def settle(self, *, now: bool = False) -> int:
        """Delete acknowledged rows in a transaction of their own when they may not wait for the
        next round: the window is full of them (a backlog drain), or `now` (the disk is full and
        deletes are what frees it; the agent is stopping). Return how many went.

        If the card refuses the delete (read-only, I/O error) the seqs are kept and tried again
        later, and raise BufferError; the rows are not sent again meanwhile."""
        due = self._acked_messages + len(self._flights) >= self._broker.inflight_max
        if not self._acked or not (now or due):
            return 0
        try:
            gone = self.buffer.delete(self._acked)
        except BufferError:
            self._deletes_refused = True
            raise
        self._forget_acked()
        return gone

    def _forget_acked(self) -> None:
        self._acked = []
        self._acked_messages = 0
        self._deletes_refused = False

    def backlog(self, stats: BufferStats | None = None) -> int:
        """Readings not yet acknowledged by the broker, or sent again at the collector's request
        (give `stats` if already read)."""
        if not self._acked:
            return self.buffer.count
        # A row in flight may have been dropped by the bound before its ack came: not in the file.
        oldest = (stats or self.buffer.stats()).oldest_seq or 0
        return self.buffer.count - sum(1 for seq in self._acked if seq >= oldest)

    # -- the link's side --------------------------------------------------------------------------
    def handle(self, event: LinkEvent, *, mono: float, wall: float) -> None:
        """Apply one event from the link (main thread only). `mono` schedules, `wall` reports."""
        if isinstance(event, Acked):
            flight = self._flights.pop((event.generation, event.mid), None)
            if flight is None:
                return  # the birth message, or a flight voided by a reconnect
            if event.ok:
                self._acked.extend(flight.seqs)
                self._acked_messages += 1
                self.stats.messages_acked += 1
                self.stats.readings_acked += len(flight.seqs)
                self.stats.last_ack_ts = wall
            else:
                # MQTT 5 negative PUBACK (e.g. 0x87 Not authorized): the rows stay and are retried
                # later; resending at once would only be refused again.
                self.stats.rejected_total += 1
                self.stats.last_error = f"broker refused a telemetry message: {event.reason}"
                self._held_until = mono + self._broker.rejected_retry_s
                self._void()
        elif isinstance(event, Connected):
            self.stats.broker_state = "connected"
            # The error that kept the link down is history now; `last_disconnect` keeps it.
            self.stats.last_error = None
            self.stats.protocol = event.version
            self.stats.protocol_why = event.why
            self.stats.protocol_detail = event.detail or None
            self._void()
        elif isinstance(event, Disconnected):
            self.stats.broker_state = "disconnected"
            self.stats.last_error = event.reason
            self.stats.last_disconnect = event.reason
            self.stats.last_disconnect_ts = wall
            self._void()
        elif isinstance(event, ConnectFailed):
            self.stats.broker_state = "refused" if event.refused else "unreachable"
            self.stats.last_error = event.reason
        elif isinstance(event, AckReceived):
            self._confirmed(event.payload, wall=wall)

    def _confirmed(self, payload: bytes, *, wall: float) -> None:
        """Apply the collector's ack in one commit. A malformed one is logged and ignored; one
        the buffer cannot take (read-only card) is logged and comes again with the next connect."""
        try:
            ack = decode_ack(payload)
        except PayloadError as err:
            log.warning("collector_ack_malformed", error=str(err), size=len(payload))
            return
        try:
            applied = self.buffer.apply_ack(ack)
        except BufferError as err:
            log.warning("collector_ack_not_applied", error=str(err))
            return
        self.stats.confirm_at = wall
        self.stats.confirm = ack.for_epoch(self.buffer.epoch)
        if applied.confirmed or applied.restored:
            log.info(
                "collector_ack_applied",
                confirmed=applied.confirmed,
                resend=applied.restored,
                unconfirmed=self.buffer.unconfirmed.count,
            )
        if applied.restored:
            # Readings the collector lacks are back among the unsent, older than the cursor:
            # start again from the oldest. Flights in the air go again too (a window at most).
            self._void()

    def _void(self) -> None:
        """Forget every flight: their rows are still in the buffer and go again from the oldest."""
        self._flights.clear()
        self._cursor = 0

    def pump(self, now: float) -> int:
        """Send batches while the window has room. Return how many messages were sent."""
        sent = 0
        # Acknowledged rows not yet deleted would be sent again after a crash, just like rows in
        # flight: both together stay within the window, which is what bounds duplicates. On a
        # card that refuses deletes they stay anyway; holding them against the window would only
        # stop the publishing of everything else.
        kept = 0 if self._deletes_refused else self._acked_messages
        while (
            # Not only the link's own flag: a connection counts from its Connected event on, so
            # that the event, read after a publish on that connection, cannot void the flight
            # and have it sent twice.
            self.stats.broker_state == "connected"
            and self._link.connected
            and now >= self._held_until
            and len(self._flights) + kept < self._broker.inflight_max
        ):
            # Acknowledged rows still in the buffer (their delete waits for the next commit, or
            # the card refused it) are skipped, not sent again.
            done = set(self._acked)
            readings = self.buffer.oldest(
                after_seq=self._cursor, limit=self._broker.batch_max_readings + len(done)
            )
            readings = [r for r in readings if r.seq not in done][: self._broker.batch_max_readings]
            if not readings:
                break
            # The buffer's own epoch, read at each batch: readings are named by (site, epoch, seq).
            payload = self._encode(readings, self.buffer.epoch)
            handle = self._link.publish(self._topic, payload)
            if handle is None:
                break
            seqs = tuple(r.seq for r in readings)
            self._flights[handle] = _Flight(seqs=seqs, sent_at=now, payload_bytes=len(payload))
            self._cursor = seqs[-1]
            self.stats.payload_bytes += len(payload)
            sent += 1
        return sent
