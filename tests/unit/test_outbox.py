"""The outbox between the real buffer and a link: acks that beat publish(), deferred deletes."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from pathlib import Path

import pytest

from agent.buffer.errors import BufferError
from agent.buffer.store import Buffer
from agent.config.schema import BrokerConfig
from agent.contract.telemetry import decode_telemetry, encode_telemetry
from agent.publish.link import Acked, Connected, Disconnected, LinkEvent
from agent.publish.outbox import Outbox
from agent.reading import Reading, Sample, Stamp
from tests.support.faults import can_fail_ext4, ext4_card

SITE = "site-a"
WINDOW = 4


class InstantLink:
    """A link whose broker answers faster than publish() returns, as paho's network thread can on
    loopback: the PUBACK event exists before the outbox has recorded the flight."""

    def __init__(self, *, ok: bool = True) -> None:
        self.connected = True
        # As paho's thread does: the flag is up before the main thread has read the event.
        self.events: deque[LinkEvent] = deque([Connected(1)])
        self.sent: list[bytes] = []
        self._ok = ok

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> tuple[int, int]:
        self.sent.append(payload)
        mid = len(self.sent)
        self.events.append(Acked(1, mid, self._ok, "Success" if self._ok else "Not authorized"))
        return (1, mid)


def _setup(
    tmp_path: Path, link: InstantLink, rounds: int, *, payload_schema: int = 2
) -> tuple[Buffer, Outbox]:
    buffer = Buffer.open(tmp_path / "b.sqlite", site=SITE, max_readings=1000)
    stamp = Stamp(ts_ms=1_800_000_000_000, mono_ms=1, boot_id="boot-1", synced=True)
    for _ in range(rounds):
        buffer.append(stamp, [Sample(metric="uptime.system_s", value=1.0)] * 5)
    outbox = _outbox(buffer, link, payload_schema)
    _handle_all(outbox, link)  # the connection's Connected event
    return buffer, outbox


def _outbox(buffer: Buffer, link: InstantLink, payload_schema: int) -> Outbox:
    def encode(readings: Sequence[Reading], epoch: str) -> bytes:
        return encode_telemetry(SITE, readings, epoch=epoch, compress=True, schema=payload_schema)

    broker = BrokerConfig(
        url="mqtt://127.0.0.1", topic_prefix="p", batch_max_readings=5, inflight_max=WINDOW
    )
    return Outbox(buffer, link, topic="p/site-a/telemetry", encode=encode, broker=broker)


def _handle_all(outbox: Outbox, link: InstantLink) -> None:
    while link.events:
        outbox.handle(link.events.popleft(), mono=0.0, wall=0.0)


def test_an_ack_that_arrives_before_publish_returns_still_counts(tmp_path: Path) -> None:
    """The event waits in the queue until the flight is recorded; no ack is lost to the race."""
    link = InstantLink()
    buffer, outbox = _setup(tmp_path, link, rounds=1)
    assert outbox.pump(0.0) == 1
    _handle_all(outbox, link)
    assert outbox.in_flight == 0
    assert outbox.acknowledged == (1, 2, 3, 4, 5)
    assert outbox.stats.readings_acked == 5
    assert outbox.settle(now=True) == 5
    assert buffer.stats().count == 0


def test_nothing_is_sent_on_a_connection_before_its_connected_event(tmp_path: Path) -> None:
    """Were a flight sent while the Connected event still waits in the queue, reading the event
    would void it, and its readings would go twice."""
    link = InstantLink()
    buffer = Buffer.open(tmp_path / "b.sqlite", site=SITE, max_readings=1000)
    stamp = Stamp(ts_ms=1_800_000_000_000, mono_ms=1, boot_id="boot-1", synced=True)
    buffer.append(stamp, [Sample(metric="uptime.system_s", value=1.0)] * 5)
    outbox = _outbox(buffer, link, 2)
    assert outbox.pump(0.0) == 0 and link.sent == []
    _handle_all(outbox, link)
    assert outbox.pump(0.0) == 1
    _handle_all(outbox, link)
    assert outbox.acknowledged == (1, 2, 3, 4, 5)
    assert len(link.sent) == 1


@pytest.mark.parametrize("schema", [1, 2])
def test_messages_use_the_configured_payload_schema(tmp_path: Path, schema: int) -> None:
    """broker.payload_schema reaches the wire: each message is of that schema, and whole."""
    link = InstantLink()
    buffer, outbox = _setup(tmp_path, link, rounds=2, payload_schema=schema)
    assert outbox.pump(0.0) == 2
    batches = [decode_telemetry(p) for p in link.sent]
    assert [b.schema for b in batches] == [schema, schema]
    assert [r.seq for b in batches for r in b.readings] == list(range(1, 11))
    assert batches[0].readings == tuple(buffer.oldest(limit=5))
    assert {b.epoch for b in batches} == {buffer.epoch}


def test_one_acked_message_waits_for_the_next_round_a_window_full_does_not(
    tmp_path: Path,
) -> None:
    """Steady state defers the delete to the round's commit; a drain deletes as it goes, so rows
    acked-but-not-deleted plus rows in flight never exceed the in-flight window."""
    link = InstantLink()
    _buffer, outbox = _setup(tmp_path, link, rounds=1)
    outbox.pump(0.0)
    _handle_all(outbox, link)
    assert outbox.acknowledged == (1, 2, 3, 4, 5)
    assert outbox.settle() == 0  # one message acked, none in flight: wait for the round
    assert outbox.acknowledged == (1, 2, 3, 4, 5)

    link = InstantLink()
    _buffer, outbox = _setup(tmp_path / "drain", link, rounds=10)
    outbox.pump(0.0)  # the window fills: 4 messages
    assert outbox.in_flight == WINDOW
    outbox.handle(link.events.popleft(), mono=0.0, wall=0.0)
    # 1 acked + 3 in flight: a crash now would resend a full window, so they go at once.
    assert outbox.settle() == 5
    assert outbox.settle() == 0


def test_acked_rows_not_yet_deleted_are_not_sent_again(tmp_path: Path) -> None:
    """The next batch starts after the acknowledged rows even though they are still on disk."""
    link = InstantLink()
    _buffer, outbox = _setup(tmp_path, link, rounds=2)
    outbox.pump(0.0)
    _handle_all(outbox, link)
    assert outbox.acknowledged == tuple(range(1, 11))
    link.sent.clear()
    assert outbox.pump(0.0) == 0
    assert link.sent == []


def test_a_refused_message_keeps_its_rows(tmp_path: Path) -> None:
    """MQTT 5 negative PUBACK: nothing is acknowledged, the rows stay, sending pauses."""
    link = InstantLink(ok=False)
    buffer, outbox = _setup(tmp_path, link, rounds=1)
    outbox.pump(0.0)
    _handle_all(outbox, link)
    assert outbox.acknowledged == ()
    assert outbox.stats.rejected_total == 1
    assert outbox.settle(now=True) == 0
    assert buffer.stats().count == 5
    assert outbox.pump(1.0) == 0  # held for rejected_retry_s


def test_acked_but_kept_messages_take_their_place_in_the_window(tmp_path: Path) -> None:
    """With one message acknowledged and not yet deleted, only window - 1 more go out: a crash
    then resends at most a window."""
    link = InstantLink()
    _buffer, outbox = _setup(tmp_path, link, rounds=1)
    outbox.pump(0.0)
    _handle_all(outbox, link)  # one message acknowledged, its rows kept until the next round
    buffer = _buffer
    stamp = Stamp(ts_ms=1_800_000_000_000, mono_ms=2, boot_id="boot-1", synced=True)
    for _ in range(10):
        buffer.append(stamp, [Sample(metric="uptime.system_s", value=1.0)] * 5)
    link.events.clear()
    link.connected = True
    assert outbox.pump(1.0) == WINDOW - 1


def test_a_card_that_refuses_deletes_does_not_stop_the_publishing(tmp_path: Path) -> None:
    """Read-only SD card: acked rows cannot leave the file, yet the rest of it is still sent."""
    ok, reason = can_fail_ext4(tmp_path)
    if not ok:
        pytest.skip(reason)
    link = InstantLink()
    with ext4_card(tmp_path / "sd", 64) as card:
        buffer, outbox = _setup(card.mount, link, rounds=20)  # 20 messages' worth
        card.fail()
        sent = 0
        for _ in range(10):
            sent += outbox.pump(0.0)
            _handle_all(outbox, link)
            with pytest.raises(BufferError):
                outbox.settle(now=True)
        assert sent == 20
        assert len(outbox.acknowledged) == 100
        buffer.close()


def test_a_reconnect_clears_last_error_and_keeps_why_it_dropped(tmp_path: Path) -> None:
    """last_error follows the link: set by a drop, cleared by the next connection, while
    last_disconnect keeps the reason and the protocol of the new connection is recorded."""
    link = InstantLink()
    _, outbox = _setup(tmp_path, link, 1)
    outbox.handle(Disconnected(1, "no acknowledgement (PUBACK)", 1.0), mono=1.0, wall=5.0)
    assert outbox.stats.last_error == "no acknowledgement (PUBACK)"
    outbox.handle(Connected(2, "3.1.1", "fallback", "refused 5"), mono=2.0, wall=6.0)
    assert outbox.stats.last_error is None
    assert outbox.stats.last_disconnect == "no acknowledgement (PUBACK)"
    assert outbox.stats.last_disconnect_ts == 5.0
    assert (outbox.stats.protocol, outbox.stats.protocol_why) == ("3.1.1", "fallback")
