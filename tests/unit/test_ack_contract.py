"""The collector's ack payload: what the agent accepts, and that it refuses anything else."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from pathlib import Path

import pytest

from agent.buffer.store import Buffer
from agent.config.schema import BrokerConfig
from agent.contract.ack import Ack, EpochAck, decode_ack, encode_ack
from agent.contract.fields import PayloadError
from agent.contract.telemetry import encode_telemetry
from agent.publish.link import Acked, AckReceived, Connected, LinkEvent
from agent.publish.outbox import Outbox
from agent.reading import Reading, Sample, Stamp


def test_an_ack_round_trips() -> None:
    """encode and decode agree, missing ranges in seq order."""
    ack = Ack(
        ts_ms=1_800_000_000_000,
        epochs=(EpochAck(epoch="e1", through=178, missing=((179, 334), (400, 401))),),
    )
    assert decode_ack(encode_ack(ack)) == ack
    assert decode_ack(encode_ack(ack)).for_epoch("e1") == ack.epochs[0]
    assert decode_ack(encode_ack(ack)).for_epoch("other") is None


_MALFORMED = (
    (b"\xff\xfe", "not JSON"),
    (b"[]", "expected an object"),
    (b'{"v":2,"ts":1,"epochs":[]}', "ack.v"),
    (b'{"v":1,"ts":-1,"epochs":[]}', "ack.ts"),
    (b'{"v":1,"ts":1,"epochs":{}}', "ack.epochs"),
    (b'{"v":1,"ts":1,"epochs":[{"epoch":1,"through":0}]}', "epochs[0].epoch"),
    (b'{"v":1,"ts":1,"epochs":[{"epoch":"e","through":true}]}', "epochs[0].through"),
    (b'{"v":1,"ts":1,"epochs":[{"epoch":"e","through":5,"missing":[[3,4]]}]}', "missing[0]"),
    (b'{"v":1,"ts":1,"epochs":[{"epoch":"e","through":5,"missing":[[9,7]]}]}', "missing[0]"),
    (b'{"v":1,"ts":1,"epochs":[{"epoch":"e","through":5,"missing":[[9]]}]}', "missing[0]"),
    (
        b'{"v":1,"ts":1,"epochs":[{"epoch":"e","through":0,"missing":'
        + b"["
        + b",".join(b"[%d,%d]" % (i, i) for i in range(1, 34))
        + b"]}]}",
        "at most 32",
    ),
    (b" " * (64 * 1024 + 1), "bytes"),
)


@pytest.mark.parametrize(
    "payload", [payload for payload, _ in _MALFORMED], ids=[where for _, where in _MALFORMED]
)
def test_a_malformed_ack_is_refused(payload: bytes) -> None:
    """Every malformed ack raises the contract's PayloadError, which the outbox logs and ignores.
    (The id names the fault; the collector's tests check the decoder's own words.)"""
    with pytest.raises(PayloadError):
        decode_ack(payload)


class Link:
    """A broker that acknowledges at once (on the next event read)."""

    def __init__(self) -> None:
        self.connected = True
        self.events: deque[LinkEvent] = deque([Connected(1)])
        self.sent = 0

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> tuple[int, int]:
        self.sent += 1
        self.events.append(Acked(1, self.sent, True, "Success"))
        return (1, self.sent)


def _outbox(tmp_path: Path, link: Link) -> Outbox:
    buffer = Buffer.open(tmp_path / "b.sqlite", site="site-a", max_readings=1000)
    stamp = Stamp(ts_ms=1_800_000_000_000, mono_ms=1, boot_id="b", synced=True)
    for _ in range(4):
        buffer.append(stamp, [Sample(metric="m", value=1.0)] * 5)

    def encode(readings: Sequence[Reading], epoch: str) -> bytes:
        return encode_telemetry("site-a", readings, epoch=epoch, compress=True, schema=2)

    broker = BrokerConfig(url="mqtt://127.0.0.1", topic_prefix="p", batch_max_readings=5)
    return Outbox(buffer, link, topic="p/site-a/telemetry", encode=encode, broker=broker)


def _drain(outbox: Outbox, link: Link) -> None:
    outbox.pump(0.0)
    while link.events:
        outbox.handle(link.events.popleft(), mono=0.0, wall=100.0)
        outbox.pump(0.0)
    outbox.settle(now=True)


def test_the_outbox_ignores_a_malformed_ack_and_resends_a_missing_range(tmp_path: Path) -> None:
    """A malformed ack changes nothing; a missing range goes out again through the same path."""
    link = Link()
    outbox = _outbox(tmp_path, link)
    outbox.handle(AckReceived(b"{not json"), mono=0.0, wall=100.0)
    assert not outbox.buffer.unconfirmed.active
    ack = Ack(ts_ms=1, epochs=(EpochAck(epoch=outbox.buffer.epoch, through=0),))
    outbox.handle(AckReceived(encode_ack(ack)), mono=0.0, wall=100.0)
    _drain(outbox, link)
    assert (link.sent, outbox.buffer.stats().unconfirmed, outbox.buffer.count) == (4, 20, 0)
    ack = Ack(
        ts_ms=2, epochs=(EpochAck(epoch=outbox.buffer.epoch, through=5, missing=((11, 15),)),)
    )
    outbox.handle(AckReceived(encode_ack(ack)), mono=0.0, wall=160.0)
    assert outbox.stats.confirm == ack.epochs[0]
    assert outbox.stats.confirm_at == 160.0
    assert outbox.buffer.count == 5
    _drain(outbox, link)
    assert (link.sent, outbox.buffer.stats().unconfirmed) == (5, 10)
