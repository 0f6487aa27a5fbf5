"""The downlink a site pays for the collector's acks: bytes of one ack on the wire, times the acks a
30-day month brings at the default pace. `python -m bench.ack_cost` prints the rows alone.

Measured: the MQTT PUBLISH packet a gateway receives, read off the socket of a raw MQTT 3.1.1
subscriber (QoS 0, as the contract tells a site to subscribe) from a bench-started mosquitto.
Assumed, stated in the rows: per ack one TCP segment with its IPv4+TCP headers (bench.net.HEADER_BYTES,
timestamps included) and one TLS 1.2/1.3 record (~29 B of header, AEAD tag and nonce); the gateway's
bare TCP ACK going back is uplink and not counted here. Pace: through advances at every
`confirm.interval_s` (a site that measures every minute), and a gap costs two more acks (reported,
repaired) a day, which is generous for a healthy site.
"""

from __future__ import annotations

import socket
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # `python bench/ack_cost.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.contract.ack import MAX_EPOCHS, MAX_RANGES, Ack, EpochAck, encode_ack
from agent.contract.topics import topic
from bench.net import HEADER_BYTES, HOST, Broker
from bench.table import Row, judged, render
from collector.config.schema import ConfirmConfig

PREFIX = "desa/v1/kaltim"
SITE = "kaltim-kutaikartanegara-0042"
EPOCH = "0f3c9a7e5b2d4c1e8a6f9b3d2c1e0a47"  # assumed: a 128-bit id in hex
TLS_RECORD_BYTES = 29
MONTH_S = 30 * 86_400
GAP_ACKS_PER_DAY = 2
BUDGET_BYTES = 1_000_000


def _string(text: str) -> bytes:
    raw = text.encode()
    return len(raw).to_bytes(2, "big") + raw


def _length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_packet(sock: socket.socket) -> bytes:
    """One whole MQTT control packet, fixed header included."""
    head = sock.recv(1, socket.MSG_WAITALL)
    length_bytes, length, shift = b"", 0, 0
    while True:
        b = sock.recv(1, socket.MSG_WAITALL)
        length_bytes += b
        length += (b[0] & 0x7F) << shift
        shift += 7
        if not b[0] & 0x80:
            break
    body = sock.recv(length, socket.MSG_WAITALL) if length else b""
    return head + length_bytes + body


def received_publish_bytes(port: int, name: str) -> int:
    """Size of the PUBLISH packet a QoS 0 subscriber to `name` receives (the retained message)."""
    with socket.create_connection((HOST, port), 10) as sock:
        variable = _string("MQTT") + bytes([4, 0x02]) + (60).to_bytes(2, "big")
        body = variable + _string("bench-ack-reader")
        sock.sendall(b"\x10" + _length(len(body)) + body)
        assert _read_packet(sock)[0] == 0x20  # CONNACK
        body = (1).to_bytes(2, "big") + _string(name) + b"\x00"
        sock.sendall(b"\x82" + _length(len(body)) + body)
        assert _read_packet(sock)[0] == 0x90  # SUBACK
        packet = _read_packet(sock)
        assert packet[0] & 0xF0 == 0x30, packet[:1]  # PUBLISH
        return len(packet)


def publish_retained(port: int, name: str, payload: bytes) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(HOST, port)
    client.loop_start()
    try:
        client.publish(name, payload, qos=1, retain=True).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def acks() -> dict[str, Ack]:
    ts = 1_800_000_000_000
    typical = Ack(ts_ms=ts, epochs=(EpochAck(epoch=EPOCH, through=1_234_567),))
    gap = Ack(ts_ms=ts, epochs=(EpochAck(epoch=EPOCH, through=1_234_567,
                                         missing=((1_234_568, 1_235_567),)),))  # fmt: skip
    worst = Ack(
        ts_ms=ts,
        epochs=tuple(
            EpochAck(epoch=f"{EPOCH[:-1]}{n}", through=9_000_000_000,
                     missing=tuple((9_000_000_001 + 10 * i, 9_000_000_005 + 10 * i)
                                   for i in range(MAX_RANGES)))
            for n in range(MAX_EPOCHS)
        ),
    )  # fmt: skip
    return {"typical (1 epoch, no gap)": typical, "with one gap": gap, "largest allowed": worst}


def measure(broker: Broker) -> list[Row]:
    defaults = ConfirmConfig()
    name = topic(PREFIX, SITE, "ack")
    rows: list[Row] = []
    wire: dict[str, int] = {}
    for label, ack in acks().items():
        publish_retained(broker.port, name, encode_ack(ack))
        packet = received_publish_bytes(broker.port, name)
        wire[label] = packet + HEADER_BYTES + TLS_RECORD_BYTES
        rows.append(Row(metric=f"ack {label}: PUBLISH / on the wire",
                        value=f"{packet} B / {wire[label]} B"))  # fmt: skip
    routine = MONTH_S / defaults.interval_s
    gaps = GAP_ACKS_PER_DAY * 30
    month = routine * wire["typical (1 epoch, no gap)"] + gaps * wire["with one gap"]
    rows.append(Row(metric="acks per 30-day month at the default pace",
                    value=f"{routine:,.0f} + {gaps} for gaps"))  # fmt: skip
    rows.append(judged("ack downlink per site per month", month / 1e6, "MB",
                       at_most=BUDGET_BYTES / 1e6, digits=3))  # fmt: skip
    return rows


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="village-bench-ack-", dir="/var/tmp") as root:
        broker = Broker(Path(root) / "broker")
        try:
            rows = measure(broker)
        finally:
            broker.stop()
    print(render(rows, "loopback mosquitto"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
