"""At-least-once delivery from the durable buffer to the broker.

The buffer is the single source of truth: a reading leaves it only after the broker acknowledged the
message that carried it. In flight at most `window` messages; a lost connection voids them all (their
rows are still in the buffer) and sending starts again from the oldest row, so a resend may duplicate,
never lose.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Protocol

from agent.buffer import Buffer, BufferError
from agent.mqtt_link import Acked, Connected, ConnectFailed, Disconnected, LinkEvent
from agent.payload import encode_telemetry


class Link(Protocol):
    """What the shipper needs of the MQTT connection."""

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
class ShipperStats:
    """Counters for status and readings; never persisted, so they restart at zero."""

    messages_acked: int = 0
    readings_acked: int = 0
    rejected_total: int = 0  # messages the broker refused (MQTT 5 negative PUBACK)
    payload_bytes: int = 0
    last_ack_ts: float | None = None
    last_error: str | None = None
    broker_state: str = "connecting"


class Shipper:
    """Moves readings from the buffer to the link and deletes them when acknowledged."""

    def __init__(
        self,
        buffer: Buffer,
        link: Link,
        *,
        site: str,
        topic: str,
        batch_max: int,
        window: int,
        compress: bool,
        payload_schema: int,
        retry_rejected_s: float = 60.0,
        event_topic: str | None = None,
    ) -> None:
        self._buffer = buffer
        self._link = link
        self._site = site
        self._topic = topic
        self._batch_max = batch_max
        self._window = window
        self._compress = compress
        self._payload_schema = payload_schema
        self._retry_rejected_s = retry_rejected_s
        self._event_topic = event_topic
        self._flights: dict[tuple[int, int], _Flight] = {}
        self._cursor = 0  # every row with seq <= cursor is in flight or was acknowledged
        self._held_until = 0.0  # after a rejection, wait before sending again
        self._acked: list[int] = []  # acknowledged, still in the buffer until the next commit
        self._acked_messages = 0
        self._deletes_refused = False  # the card refuses deletes (read-only): see pump()
        self.stats = ShipperStats()

    @property
    def in_flight(self) -> int:
        return len(self._flights)

    @property
    def acked(self) -> tuple[int, ...]:
        """Seqs the broker acknowledged that are still in the buffer: the next round's commit
        deletes them (Buffer.append(delete=...)), then call acks_committed()."""
        return tuple(self._acked)

    def acks_committed(self) -> None:
        self._acked = []
        self._acked_messages = 0
        self._deletes_refused = False

    def acks_due(self) -> bool:
        """Whether acknowledged rows must be deleted now rather than with the next round.

        Rows acknowledged but not yet deleted are sent again after a crash, like rows in flight;
        keeping both together within the in-flight window keeps that bound on duplicates. In
        steady state (one message a round) deletes wait for the round; a backlog drain deletes
        as it goes."""
        return bool(self._acked) and self._acked_messages + len(self._flights) >= self._window

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
                self._held_until = mono + self._retry_rejected_s
                self._void()
        elif isinstance(event, Connected):
            self.stats.broker_state = "connected"
            self._void()
        elif isinstance(event, Disconnected):
            self.stats.broker_state = "disconnected"
            self.stats.last_error = event.reason
            self._void()
        elif isinstance(event, ConnectFailed):
            self.stats.broker_state = "refused" if event.refused else "unreachable"
            self.stats.last_error = event.reason

    def _void(self) -> None:
        """Forget every flight: their rows are still in the buffer and go again from the oldest."""
        self._flights.clear()
        self._cursor = 0

    def commit_acks(self) -> int:
        """Delete acknowledged rows in one transaction; return how many went.

        If the card refuses the delete (read-only, I/O error) the seqs are kept and tried again
        next time, and raise BufferError; the rows are not sent again meanwhile.
        """
        if not self._acked:
            return 0
        try:
            gone = self._buffer.delete(self._acked)
        except BufferError:
            self._deletes_refused = True
            raise
        self.acks_committed()
        return gone

    def alarm(self, kind: str, detail: str, ts_ms: int) -> bool:
        """Publish an alarm on `{prefix}/{site}/event` straight away, outside the buffer: for the
        moments when the buffer itself cannot take a reading. Best effort; True if sent."""
        if self._event_topic is None:
            return False
        body = {"schema": 1, "site": self._site, "event": kind, "detail": detail, "ts": ts_ms}
        payload = json.dumps(body, separators=(",", ":")).encode("utf-8")
        return self._link.publish(self._event_topic, payload) is not None

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
            and len(self._flights) + kept < self._window
        ):
            # Acknowledged rows still in the buffer (their delete waits for the next commit, or
            # the card refused it) are skipped, not sent again.
            done = set(self._acked)
            readings = self._buffer.oldest(
                after_seq=self._cursor, limit=self._batch_max + len(done)
            )
            readings = [r for r in readings if r.seq not in done][: self._batch_max]
            if not readings:
                break
            payload = encode_telemetry(
                self._site, readings, compress=self._compress, schema=self._payload_schema
            )
            handle = self._link.publish(self._topic, payload)
            if handle is None:
                break
            seqs = tuple(r.seq for r in readings)
            self._flights[handle] = _Flight(seqs=seqs, sent_at=now, payload_bytes=len(payload))
            self._cursor = seqs[-1]
            self.stats.payload_bytes += len(payload)
            sent += 1
        return sent
