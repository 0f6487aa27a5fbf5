"""The MQTT side: one persistent session, QoS 1, acknowledgements sent by hand after the commit.

- Persistent session (MQTT 5: clean_start false with a session expiry; 3.1.1: clean_session false)
  under a fixed client id: while the collector is down, the broker queues for it.
- `manual_ack=True` (paho 2): paho sends no PUBACK by itself; `ack()` sends them once the
  transaction holding the messages has committed, in the order the messages arrived, as MQTT requires
  (MQTT-4.6.0-2; paho leaves ordering to the application, eclipse-paho/paho.mqtt.python#753).
- An acknowledgement belongs to the connection that delivered the message. After a reconnect the
  broker re-sends every unacknowledged message with its packet id; an old acknowledgement sent on the
  new connection could then hit a different message that reuses the id (the pending-acks reset of
  eclipse-paho/paho.golang#53). So acks of an earlier connection are dropped: the broker re-sends
  those messages and the store's (site, epoch, seq) key absorbs the repeat.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from agent.contract.topics import topic
from agent.publish.tls import verified_context
from collector.clock import Clock, wall_ms
from collector.config.schema import BrokerConfig
from collector.ingest.parse import KINDS, Message

# Unacknowledged messages the broker may have in flight to us (MQTT 5 Receive Maximum): enough for
# several batches while one commits.
RECEIVE_MAXIMUM = 4000

log = structlog.get_logger("collector.ingest")


def topics(broker: BrokerConfig) -> list[str]:
    """The subscriptions: every kind of the contract, through the shared group when one is set."""
    base = [f"{broker.topic_prefix}/+/{kind}" for kind in KINDS]
    if broker.shared_group is None:
        return base
    return [f"$share/{broker.shared_group}/{topic}" for topic in base]


class Subscriber:
    """Delivers each message to `deliver` (on paho's network thread); `ack` acknowledges them."""

    def __init__(
        self,
        broker: BrokerConfig,
        *,
        password: str | None,
        deliver: Callable[[Message], None],
        clock: Clock,
    ) -> None:
        self._broker = broker
        self._deliver = deliver
        self._clock = clock
        self._v5 = broker.protocol == "5"
        self._lock = threading.Lock()
        self._connection = 0
        self._connected = threading.Event()
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=broker.client_id,
            protocol=mqtt.MQTTv5 if self._v5 else mqtt.MQTTv311,
            clean_session=None if self._v5 else False,
            manual_ack=True,
        )
        if broker.username is not None:
            client.username_pw_set(broker.username, password)
        if broker.tls:
            client.tls_set_context(verified_context(broker.ca_file))
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.reconnect_delay_set(1, 30)
        self._client = client

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def start(self) -> None:
        """Connect in the background: an unreachable broker is retried, never fatal."""
        if self._v5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = self._broker.session_expiry_s
            properties.ReceiveMaximum = RECEIVE_MAXIMUM
            self._client.connect_async(
                self._broker.host,
                self._broker.port,
                self._broker.keepalive_s,
                clean_start=False,
                properties=properties,
            )
        else:
            self._client.connect_async(
                self._broker.host, self._broker.port, self._broker.keepalive_s
            )
        self._client.loop_start()

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    def ack(self, messages: Sequence[Message]) -> int:
        """Acknowledge `messages` (in arrival order) that came on the current connection. Return how
        many were of an earlier connection and so left for the broker to send again."""
        stale = 0
        with self._lock:
            for message in messages:
                if message.qos == 0:
                    continue
                if message.connection != self._connection:
                    stale += 1
                    continue
                self._client.ack(message.mid, message.qos)
        return stale

    def publish_ack(self, site: str, payload: bytes) -> bool:
        """Publish a site's ack, retained, QoS 1. Only while connected: the confirmer publishes again
        at its next check. Return whether paho took the message."""
        if not self._connected.is_set():
            return False
        name = topic(self._broker.topic_prefix, site, "ack")
        info = self._client.publish(name, payload, qos=1, retain=True)
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(
        self,
        client: mqtt.Client,
        _userdata: Any,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            log.warning("broker_refused", reason=str(reason), broker=self._broker.url)
            return
        with self._lock:
            self._connection += 1
        options: Any = SubscribeOptions(qos=1) if self._v5 else 1
        client.subscribe([(topic, options) for topic in topics(self._broker)])
        self._connected.set()
        log.info(
            "broker_connected",
            broker=self._broker.url,
            session_present=bool(flags.session_present),
            shared_group=self._broker.shared_group,
        )

    def _on_connect_fail(self, _client: mqtt.Client, _userdata: Any) -> None:
        # paho retries by itself (1 s doubling to 30 s); say so at each try, so an operator who
        # started the collector against a wrong or dead broker sees why nothing arrives.
        log.warning(
            "broker_unreachable",
            broker=self._broker.url,
            message="cannot connect to the broker; retrying, messages wait in its queue",
        )

    def _on_disconnect(
        self,
        _client: mqtt.Client,
        _userdata: Any,
        _flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        # Taken under the lock that `ack` holds: an ack is either queued before this (and paho
        # drops it with the old socket's queue on reconnect) or sees the new connection number.
        with self._lock:
            self._connection += 1
        if self._connected.is_set():
            log.warning("broker_disconnected", reason=str(reason))
        self._connected.clear()

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self._deliver(
            Message(
                topic=msg.topic,
                payload=bytes(msg.payload),
                mid=msg.mid,
                qos=msg.qos,
                connection=self._connection,
                received_ms=wall_ms(self._clock),
            )
        )
