"""The connection to the provincial broker: paho-mqtt's client driven by one network thread.

Every connection gets a fresh paho client. Messages that were in flight on a lost connection are not
resent by paho; the outbox resends them from the durable buffer instead, so what counts as "sent" has
one owner (the buffer) and survives a restart. paho's callbacks only put events on a queue that the main
thread drains: a PUBACK can arrive before `publish()` returns, and ordering through one queue makes that
race harmless.
"""

from __future__ import annotations

import collections
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
from agent.publish.client import GuardedClient, PacketTooLarge, connect_properties, paho_client
from agent.publish.protocol import WHY_DEFAULT, WHY_FALLBACK, Choice, ProtocolMemory

log = structlog.get_logger("agent.mqtt")

_IDLE_LOOP_S = 2.0
# CONNACK "Unsupported protocol version" (MQTT 5's 0x84; paho also reports 3.1.1's return code 1
# to an MQTT 5 client as this).
_UNSUPPORTED_VERSION = 0x84
_SESSION_TAKEN_OVER = 0x8E


@dataclass(frozen=True, slots=True)
class Connected:
    generation: int
    version: str = "5"  # the MQTT version this connection speaks
    why: str = "configured"  # configured | default | remembered | fallback (agent.publish.protocol)
    detail: str = ""  # for a fallback: what the broker did with MQTT 5


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


def tls_refusal(err: BaseException | None) -> bool:
    """Whether the broker's side of TLS refused us before any CONNACK: an alert about our
    certificate, or TLS ended without a close_notify right after the handshake (mosquitto 2.0's
    way with a missing client certificate under TLS 1.3, where the handshake has already passed on
    our side). Retrying soon will not help, as with a refused login."""
    if err is None or type(err).__module__ not in ("ssl", "_ssl"):
        return False
    if isinstance(err, ssl.SSLEOFError):
        return True
    reason = str(getattr(err, "reason", "") or err).upper()
    return "ALERT" in reason and "CERTIFICATE" in reason


def describe_disconnect(rc: ReasonCode, client_id: str) -> str:
    """Say in words why the broker ended the connection with an MQTT 5 DISCONNECT."""
    if rc.value == _SESSION_TAKEN_OVER:
        return (
            f"the broker closed the connection: Session taken over (another client connected"
            f" with the client id {client_id}: is this site_id configured on two gateways?)"
        )
    return f"the broker closed the connection: {rc} (reason code 0x{rc.value:02X})"


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
    if tls and isinstance(err, ssl.SSLEOFError):
        return (
            "TLS closed by the broker before it answered CONNECT: it most likely refused the"
            " client certificate (none sent, or one it does not trust); check broker.cert_file"
            " and broker.key_file"
        )
    if tls and isinstance(err, ssl.SSLError):
        reason = str(err.reason or err)
        if "ALERT" in reason.upper() and "CERTIFICATE" in reason.upper():
            return (
                f"TLS refused by the broker: it did not accept the client certificate ({reason});"
                " check broker.cert_file and broker.key_file"
            )
        return f"TLS failed: {reason}"
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
        memory: ProtocolMemory | None = None,
        ack_topic: str | None = None,
    ) -> None:
        """`memory` keeps what `broker.protocol: auto` learnt about the broker (default: in memory
        only, on the real wall clock). `ack_topic`: the collector's ack for this site, subscribed
        after every connect."""
        self._broker = broker
        self._ack_topic = ack_topic
        self._client_id = client_id
        self._will = will
        self._splay_s = splay_s
        self._rng = rng or random.Random()
        self._memory = memory or ProtocolMemory(None, wall=time.time)
        self._events: queue.SimpleQueue[LinkEvent] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._client: GuardedClient | None = None
        self._generation = 0
        self._connected = False
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._refused = ""  # the broker's reason when it answered CONNECT with a refusal
        # Per connection, set by paho's callbacks in the network thread.
        self._connack_seen = False
        self._v5_refused = ""  # auto: what the broker did with an MQTT 5 CONNECT it refused
        self._server_disconnect: ReasonCode | None = None
        # Messages published on this connection and when, oldest first, until acknowledged:
        # paho marks an info published when its PUBACK arrives (is_published()), which is read
        # here without taking a lock inside paho's callbacks.
        self._unacked: collections.deque[tuple[float, mqtt.MQTTMessageInfo]] = collections.deque()
        self._fallback_detail = ""  # auto: MQTT 5 was just refused; the next attempt tries 3.1.1
        self._v5_closes = 0  # MQTT 5 CONNECTs in a row the broker closed without a CONNACK

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
            if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
                self._unacked.append((time.monotonic(), info))
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
    def _new_client(self, generation: int, choice: Choice) -> GuardedClient:
        client = paho_client(self._broker, self._client_id, choice.version)
        # A bug in a callback must never kill the network thread.
        client.suppress_exceptions = True
        client.connect_timeout = self._broker.connect_timeout_s
        client.max_inflight_messages_set(max(20, self._broker.inflight_max + 2))
        client.will_set(self._will.topic, self._will.offline, qos=1, retain=True)
        self._connack_seen = False
        self._v5_refused = ""
        self._server_disconnect = None

        def on_connect(
            _c: mqtt.Client, _u: Any, _f: mqtt.ConnectFlags, rc: ReasonCode, _p: Properties | None
        ) -> None:
            self._connack_seen = True
            self._v5_closes = 0
            auto_v5 = self._broker.protocol == "auto" and choice.version == "5"
            if rc.is_failure and auto_v5 and rc.value == _UNSUPPORTED_VERSION:
                self._v5_refused = f"the broker answered an MQTT 5 CONNECT with {rc}"
                return
            self._settle_version(choice)
            if rc.is_failure:
                self._refused = str(rc)
                if rc.value == _UNSUPPORTED_VERSION:
                    self._refused += (
                        f" (broker.protocol is {self._broker.protocol!r}; auto falls back)"
                    )
                return
            with self._lock:
                self._connected = True
            # Birth message first, so the office sees the site online before its backlog. A
            # failure here must not cost the connection: the backlog matters more. Not under
            # self._lock: paho's publish takes its own locks, and publish() takes them in the
            # other order.
            try:
                info = client.publish(self._will.topic, self._will.online, qos=1, retain=True)
            except Exception as err:
                log.error("birth_message_failed", error=repr(err))
            else:
                with self._lock:
                    self._unacked.append((time.monotonic(), info))
            if self._ack_topic is not None:
                # QoS 0: the retained ack arrives at once, and nothing queues for the gateway on
                # the broker while it is offline (a metered link pays for every byte).
                client.subscribe(self._ack_topic, qos=0)
            self._events.put(Connected(generation, choice.version, choice.why, choice.detail))

        def on_publish(_c: mqtt.Client, _u: Any, mid: int, rc: ReasonCode, _p: Properties) -> None:
            self._events.put(Acked(generation, mid, not rc.is_failure, str(rc)))

        def on_disconnect(
            _c: mqtt.Client,
            _u: Any,
            flags: mqtt.DisconnectFlags,
            rc: ReasonCode,
            _p: Properties | None,
        ) -> None:
            if flags.is_disconnect_packet_from_server:
                self._server_disconnect = rc

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
        client.on_disconnect = on_disconnect
        client.on_message = on_message
        client.on_subscribe = on_subscribe
        # Without this, paho's publish() writes to the socket from the calling (main) thread while
        # our network thread writes from loop(): on a slow link a partial write of one packet gets
        # another packet spliced into it and the broker drops us for a protocol error. With a
        # write-registration hook paho only queues and wakes the loop, so one thread writes.
        client.on_socket_register_write = lambda *_args: None
        return client

    def _choose(self) -> Choice:
        """The version for the next attempt: the remembered or configured one, or 3.1.1 right
        after the broker refused MQTT 5."""
        choice = self._memory.choose(self._broker)
        if self._fallback_detail and choice.version == "5":
            return Choice(version="3.1.1", why=WHY_FALLBACK, detail=self._fallback_detail)
        return choice

    def _settle_version(self, choice: Choice) -> None:
        """A CONNACK arrived for `choice`: if it was the 3.1.1 try after MQTT 5 was refused, the
        broker speaks 3.1.1, so remember that; if MQTT 5 was taken under auto, forget a fallback."""
        detail, self._fallback_detail = self._fallback_detail, ""
        try:
            if choice.why == WHY_FALLBACK:
                if self._memory.fell_back(self._broker, detail):
                    log.warning(
                        "broker_protocol_fallback",
                        broker=self._broker.url,
                        protocol="3.1.1",
                        reason=detail,
                        message="this broker refuses MQTT 5: using 3.1.1, MQTT 5 is tried again"
                        " in a day",
                    )
            elif choice.why == WHY_DEFAULT and self._memory.v5_accepted(self._broker):
                log.info("broker_protocol_mqtt5_again", broker=self._broker.url)
        except OSError as err:
            # The choice holds in memory until the file can be written.
            self._fallback_detail = detail if choice.why == WHY_FALLBACK else ""
            log.warning("broker_protocol_not_saved", error=str(err))

    def _run(self) -> None:
        attempt = 0
        if self._stopping.wait(self._splay_s):
            return
        while not self._stopping.is_set():
            self._refused = ""
            choice = self._choose()
            try:
                reason = self._one_connection(choice)
            except Exception as err:
                reason = f"internal error in the MQTT thread: {err!r}"
            if self._stopping.is_set():
                break
            if choice.why == WHY_FALLBACK and not self._connack_seen:
                # The 3.1.1 try got no answer either: not a version problem; MQTT 5 comes next.
                self._fallback_detail = ""
            was_up = self._connected
            with self._lock:
                self._connected = False
                generation = self._generation
            if self._v5_refused:
                # auto: try 3.1.1 at once; it is the same broker answering, not a failure yet.
                self._fallback_detail = self._v5_refused
                log.info("broker_refused_mqtt5", broker=self._broker.url, reason=self._v5_refused)
                continue
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
                self._events.put(ConnectFailed(reason, refused, wait))
            self._stopping.wait(wait)

    def _one_connection(self, choice: Choice) -> str:
        """Connect and run the loop until the connection ends; return why it ended."""
        with self._lock:
            self._generation += 1
            client = self._new_client(self._generation, choice)
            self._client = client
            self._unacked.clear()
        try:
            client.connect(
                self._broker.host,
                self._broker.port,
                keepalive=self._broker.keepalive_s,
                properties=connect_properties(client),
            )
        except (OSError, ValueError) as err:
            if tls_refusal(err):
                self._refused = describe_error(err)
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
                self._drop(client)
                return "the broker accepted TCP but did not answer the MQTT CONNECT in time"
            waited = self._ack_waited_s(time.monotonic())
            if waited is not None:
                self._drop(client)
                return (
                    f"no acknowledgement (PUBACK) from the broker for {waited:.0f} s"
                    f" (broker.ack_timeout_s {self._broker.ack_timeout:g}): the broker takes"
                    " messages but does not confirm them; reconnecting to send them again"
                )
        if self._stopping.is_set():
            # stop() sent DISCONNECT from the main thread; let the loop flush it.
            for _ in range(4):
                if client.loop(timeout=0.05) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    break
            return "stopped"
        return self._ended(client, rc, choice)

    def _ack_waited_s(self, now: float) -> float | None:
        """How long the oldest message has waited for its PUBACK, once beyond the ack timeout."""
        with self._lock:
            while self._unacked and self._unacked[0][1].is_published():
                self._unacked.popleft()
            if not self._unacked:
                return None
            waited = now - self._unacked[0][0]
        return waited if waited > self._broker.ack_timeout else None

    def _drop(self, client: GuardedClient) -> None:
        """End a connection from our side: DISCONNECT if the socket takes it, then close."""
        client.disconnect()
        client.loop(timeout=0.05)
        sock = client.socket()
        if sock is not None:
            sock.close()

    def _ended(self, client: GuardedClient, rc: MQTTErrorCode, choice: Choice) -> str:
        """Why a connection ended, from what paho and the broker said (the first that applies)."""
        error = client.socket_error
        if isinstance(error, PacketTooLarge):
            return (
                f"the broker sent a packet of {error.size} bytes, more than the agent takes"
                f" ({error.limit} bytes, sent as Maximum Packet Size under MQTT 5):"
                " connection dropped"
            )
        if self._server_disconnect is not None:
            return describe_disconnect(self._server_disconnect, self._client_id)
        if self._v5_refused:
            return self._v5_refused
        if self._refused:
            return f"broker refused the connection: {self._refused}"
        if not self._connack_seen and tls_refusal(error):
            self._refused = describe_error(error)  # type: ignore[arg-type]
            return self._refused
        if (
            not self._connack_seen
            and self._broker.protocol == "auto"
            and choice.version == "5"
            and rc == MQTTErrorCode.MQTT_ERR_CONN_LOST
        ):
            # RabbitMQ 3.10 closes the connection on an MQTT 5 CONNECT without a CONNACK. A broker
            # that crashed at that instant looks the same once, so only the second such close in
            # a row counts as a refusal of MQTT 5.
            self._v5_closes += 1
            reason = "the broker closed the connection on an MQTT 5 CONNECT"
            if self._v5_closes >= 2:
                self._v5_refused = reason
            return reason
        if rc == MQTTErrorCode.MQTT_ERR_KEEPALIVE:
            return (
                "the broker stopped answering (no reply within the keepalive): the link went silent"
            )
        if rc == MQTTErrorCode.MQTT_ERR_CONN_LOST and error is None and self._connack_seen:
            # mosquitto 2.0.11 closes a taken-over session without a DISCONNECT even under MQTT 5
            # (checked in tests/unit/test_link_protocol.py), and 3.1.1 has no way to say why.
            return (
                "the broker closed the connection without a reason: another client connecting"
                f" with the client id {self._client_id} (is this site_id configured on two"
                " gateways?), or the broker was restarted or kicked this client"
            )
        detail = f" ({error})" if error is not None else ""
        return f"connection lost: {mqtt.error_string(rc)}{detail}"
