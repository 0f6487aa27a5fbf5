"""The connection to the provincial broker: paho-mqtt's client driven by one network thread.

Every connection gets a fresh paho client. Messages that were in flight on a lost connection are not
resent by paho; the outbox resends them from the durable buffer instead, so what counts as "sent" has
one owner (the buffer) and survives a restart. paho's callbacks only put events on a queue that the main
thread drains: a PUBACK can arrive before `publish()` returns, and ordering through one queue makes that
race harmless.
"""

from __future__ import annotations

import contextlib
import queue
import random
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from agent.config.schema import BrokerConfig
from agent.lowmem import sha256_digest
from agent.publish.client import paho_client

log = structlog.get_logger("agent.mqtt")

_IDLE_LOOP_S = 2.0


@dataclass(frozen=True, slots=True)
class Connected:
    generation: int


@dataclass(frozen=True, slots=True)
class ConnectFailed:
    reason: str
    refused: bool  # the broker answered and said no (auth, ACL): retrying soon will not help
    retry_in_s: float


@dataclass(frozen=True, slots=True)
class Disconnected:
    generation: int
    reason: str
    retry_in_s: float


@dataclass(frozen=True, slots=True)
class Acked:
    generation: int
    mid: int
    ok: bool
    reason: str


@dataclass(frozen=True, slots=True)
class AckReceived:
    """The collector's ack (agent/contract/ack.py), undecoded: the main thread decodes it."""

    payload: bytes


LinkEvent = Connected | ConnectFailed | Disconnected | Acked | AckReceived


@dataclass(frozen=True, slots=True, kw_only=True)
class Will:
    topic: str
    online: bytes
    offline: bytes


def splay_fraction(site_id: str) -> float:
    """A stable number in [0, 1) per site: spreads a province's gateways over the splay window."""
    digest = sha256_digest(site_id.encode("utf-8"))
    return int.from_bytes(digest[:4], "big") / 2**32


def backoff_s(attempt: int, low: float, high: float, rng: random.Random) -> float:
    """Exponential backoff with jitter: the base doubles per failed attempt; the wait is drawn from
    its upper half, so a thousand gateways that failed together do not retry together."""
    base = min(high, low * 2 ** max(0, attempt - 1))
    return rng.uniform(base / 2, base)


def describe_error(err: BaseException) -> str:
    """Say in words what went wrong when connecting, for the log and the status file."""
    # Only an exception of ssl's own can be a TLS failure. Asking that of the class's module
    # first keeps a plain connection's error from importing ssl (see agent/lowmem.py).
    tls = type(err).__module__ in ("ssl", "_ssl")
    if tls and isinstance(err, ssl.SSLCertVerificationError):
        detail = err.verify_message or str(err)
        if "not yet valid" in detail:
            return (
                f"TLS refused: certificate not yet valid ({detail}); the gateway clock may be wrong"
            )
        if "expired" in detail:
            return f"TLS refused: certificate expired ({detail}); check the clock or renew the cert"
        if "hostname mismatch" in detail.lower() or "ip address mismatch" in detail.lower():
            return f"TLS refused: the certificate names another host ({detail}); check broker.url"
        return (
            f"TLS refused: the broker's certificate is not trusted ({detail}); check broker.ca_file"
        )
    if tls and isinstance(err, ssl.SSLError):
        return f"TLS failed: {err.reason or err}"
    if isinstance(err, TimeoutError):
        return "timed out connecting to the broker"
    if isinstance(err, OSError) and err.strerror:
        return f"cannot reach the broker: {err.strerror}"
    return f"cannot reach the broker: {err}"


class MqttLink:
    """Keeps one MQTT connection up in a background thread; publish from the main thread."""

    def __init__(
        self,
        broker: BrokerConfig,
        *,
        client_id: str,
        will: Will,
        splay_s: float = 0.0,
        rng: random.Random | None = None,
        ack_topic: str | None = None,
    ) -> None:
        """`ack_topic`: the collector's ack for this site, subscribed after every connect."""
        self._broker = broker
        self._ack_topic = ack_topic
        self._client_id = client_id
        self._will = will
        self._splay_s = splay_s
        self._rng = rng or random.Random()
        self._events: queue.SimpleQueue[LinkEvent] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._client: mqtt.Client | None = None
        self._generation = 0
        self._connected = False
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._refused = ""  # the broker's reason when it answered CONNECT with a refusal

    # -- main thread ------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mqtt", daemon=True)
        self._thread.start()

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def alive(self) -> bool:
        """The network thread runs. If it ever died, only a restart brings MQTT back."""
        return self._thread is not None and self._thread.is_alive()

    def publish(
        self, topic: str, payload: bytes, *, retain: bool = False
    ) -> tuple[int, int] | None:
        """Publish at QoS 1. Return (generation, mid) to match the Acked event, or None if the link
        is down (nothing was queued anywhere: the caller keeps the data)."""
        with self._lock:
            client, generation = self._client, self._generation
            if client is None or not self._connected:
                return None
            info = client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return None
        return generation, info.mid

    def next_event(self, timeout_s: float) -> LinkEvent | None:
        """Wait up to timeout_s for the next event from the network thread."""
        try:
            if timeout_s <= 0:
                return self._events.get_nowait()
            return self._events.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def stop(self, timeout_s: float = 5.0) -> bool:
        """Say `offline` (retained), disconnect cleanly and end the thread. Return True if the
        offline status was acknowledged by the broker within the time."""
        acknowledged = False
        deadline = time.monotonic() + timeout_s
        with self._lock:
            client = self._client if self._connected else None
        if client is not None:
            info = client.publish(self._will.topic, self._will.offline, qos=1, retain=True)
            while time.monotonic() < deadline and not info.is_published() and self._connected:
                time.sleep(0.02)
            acknowledged = info.is_published()
            client.disconnect()
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(max(0.1, deadline - time.monotonic()))
        return acknowledged

    def abort(self) -> None:
        """Drop the connection without a word, as a power cut would: the broker publishes the will."""
        self._stopping.set()
        with self._lock:
            client = self._client
            self._connected = False
        if client is not None and client.socket() is not None:
            sock = client.socket()
            if sock is not None:
                # shutdown() first: it wakes the network thread's select() at once, where a bare
                # close() leaves it waiting out its timeout.
                with contextlib.suppress(OSError):
                    if isinstance(sock, socket.socket):  # TLS sockets are socket.socket too
                        sock.shutdown(socket.SHUT_RDWR)
                sock.close()
        if self._thread is not None:
            self._thread.join(2.0)
        self._events.put(Disconnected(self._generation, "connection dropped", 0.0))

    # -- network thread ---------------------------------------------------------------------------
    def _new_client(self, generation: int) -> mqtt.Client:
        client = paho_client(self._broker, self._client_id)
        # A bug in a callback must never kill the network thread.
        client.suppress_exceptions = True
        client.connect_timeout = self._broker.connect_timeout_s
        client.max_inflight_messages_set(max(20, self._broker.inflight_max + 2))
        client.will_set(self._will.topic, self._will.offline, qos=1, retain=True)

        def on_connect(
            _c: mqtt.Client, _u: Any, _f: mqtt.ConnectFlags, rc: ReasonCode, _p: Properties | None
        ) -> None:
            if rc.is_failure:
                self._refused = str(rc)
                return
            with self._lock:
                self._connected = True
            # Birth message first, so the office sees the site online before its backlog. A
            # failure here must not cost the connection: the backlog matters more than the birth.
            try:
                client.publish(self._will.topic, self._will.online, qos=1, retain=True)
            except Exception as err:
                log.error("birth_message_failed", error=repr(err))
            if self._ack_topic is not None:
                # QoS 0: the retained ack arrives at once, and nothing queues for the gateway on
                # the broker while it is offline (a metered link pays for every byte).
                client.subscribe(self._ack_topic, qos=0)
            self._events.put(Connected(generation))

        def on_publish(_c: mqtt.Client, _u: Any, mid: int, rc: ReasonCode, _p: Properties) -> None:
            self._events.put(Acked(generation, mid, not rc.is_failure, str(rc)))

        def on_message(_c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
            if message.topic == self._ack_topic:
                self._events.put(AckReceived(bytes(message.payload)))

        def on_subscribe(
            _c: mqtt.Client, _u: Any, _mid: int, codes: list[ReasonCode], _p: Properties | None
        ) -> None:
            # Only the ack topic is subscribed. Refused (an ACL without read on it): no ack
            # comes, and the agent keeps deleting on PUBACK, or releases what it kept.
            refused = [str(code) for code in codes if code.is_failure]
            if refused:
                log.warning("ack_subscription_refused", topic=self._ack_topic, reason=refused[0])

        client.on_connect = on_connect
        client.on_publish = on_publish
        client.on_message = on_message
        client.on_subscribe = on_subscribe
        # Without this, paho's publish() writes to the socket from the calling (main) thread while
        # our network thread writes from loop(): on a slow link a partial write of one packet gets
        # another packet spliced into it and the broker drops us for a protocol error. With a
        # write-registration hook paho only queues and wakes the loop, so one thread writes.
        client.on_socket_register_write = lambda *_args: None
        return client

    def _run(self) -> None:
        attempt = 0
        if self._stopping.wait(self._splay_s):
            return
        while not self._stopping.is_set():
            self._refused = ""
            try:
                reason = self._one_connection()
            except Exception as err:
                reason = f"internal error in the MQTT thread: {err!r}"
            if self._stopping.is_set():
                break
            was_up = self._connected
            with self._lock:
                self._connected = False
                generation = self._generation
            attempt = 1 if was_up else attempt + 1
            refused = bool(self._refused)
            if refused:
                # A refusal repeats until someone fixes the broker or the config: go slow at once.
                attempt = max(attempt, 5)
            wait = backoff_s(
                attempt, self._broker.reconnect_min_s, self._broker.reconnect_max_s, self._rng
            )
            if was_up:
                self._events.put(Disconnected(generation, reason, wait))
            else:
                self._events.put(ConnectFailed(self._refused or reason, refused, wait))
            self._stopping.wait(wait)

    def _one_connection(self) -> str:
        """Connect and run the loop until the connection ends; return why it ended."""
        with self._lock:
            self._generation += 1
            client = self._new_client(self._generation)
            self._client = client
        try:
            client.connect(self._broker.host, self._broker.port, keepalive=self._broker.keepalive_s)
        except (OSError, ValueError) as err:
            return describe_error(err)
        rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        # A stopped (SIGSTOP) broker still completes TCP handshakes from its listen backlog but never
        # answers CONNECT, and paho has no limit for that wait: this is it.
        connack_deadline = time.monotonic() + self._broker.connect_timeout_s
        idle_s = min(_IDLE_LOOP_S, self._broker.keepalive_s / 8)
        while not self._stopping.is_set() and rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            # paho's select() returns at once for anything to read, and for anything to send
            # (publish() and disconnect() write to its wake-up socket pair): the timeout only
            # paces the CONNACK deadline, keepalive pings and the stop flag. Once connected,
            # waking every 2 s instead of every 0.5 s is most of what the idle agent costs; a
            # short keepalive keeps a finer step, so a dead link is still noticed in time.
            rc = client.loop(timeout=idle_s if self._connected else 0.5)
            if not self._connected and time.monotonic() > connack_deadline:
                client.disconnect()
                return "the broker accepted TCP but did not answer the MQTT CONNECT in time"
        if self._stopping.is_set():
            # stop() sent DISCONNECT from the main thread; let the loop flush it.
            for _ in range(4):
                if client.loop(timeout=0.05) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    break
            return "stopped"
        if self._refused:
            return f"broker refused the connection: {self._refused}"
        if rc == MQTTErrorCode.MQTT_ERR_KEEPALIVE:
            return (
                "the broker stopped answering (no reply within the keepalive): the link went silent"
            )
        return f"connection lost: {mqtt.error_string(rc)}"
