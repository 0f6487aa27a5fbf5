"""The ack-cost bench measures the PUBLISH a QoS 0 subscriber really receives."""

from __future__ import annotations

from agent.contract.ack import encode_ack
from agent.contract.topics import topic
from bench.ack_cost import PREFIX, SITE, acks, publish_retained, received_publish_bytes
from tests.support.mqtt_broker import Broker


def test_the_measured_packet_is_header_topic_and_payload(broker: Broker) -> None:
    """The packet read off the socket is 1 byte of type, the remaining length, the topic and the
    payload (QoS 0: no packet id): the bench counts what the broker sends, no more, no less."""
    name = topic(PREFIX, SITE, "ack")
    payload = encode_ack(acks()["with one gap"])
    publish_retained(broker.port, name, payload)
    remaining = 2 + len(name) + len(payload)
    assert 128 <= remaining < 16384  # two bytes of remaining length
    assert received_publish_bytes(broker.port, name) == 1 + 2 + remaining
