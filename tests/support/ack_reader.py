"""Reads a site's retained ack the way a gateway would: a fresh MQTT 5 subscription to its own
`ack` topic, QoS 0, and the retained message the broker hands over at once."""

from __future__ import annotations

import threading

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.contract.ack import Ack, decode_ack
from agent.contract.topics import topic


def retained_ack(
    host: str, port: int, prefix: str, site: str, timeout_s: float = 5.0
) -> Ack | None:
    """The site's retained ack, None when the broker holds none (or within `timeout_s`)."""
    got: list[bytes] = []
    subscribed = threading.Event()
    done = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        if msg.retain:
            got.append(bytes(msg.payload))
        done.set()

    def on_subscribe(*_args: object) -> None:
        subscribed.set()

    client.on_message = on_message
    client.on_subscribe = on_subscribe
    client.connect(host, port)
    client.loop_start()
    try:
        client.subscribe(topic(prefix, site, "ack"), qos=0)
        # A retained message comes right after SUBACK; an empty topic sends nothing at all.
        if subscribed.wait(timeout_s):
            done.wait(1.0)
    finally:
        client.disconnect()
        client.loop_stop()
    return decode_ack(got[-1]) if got else None
