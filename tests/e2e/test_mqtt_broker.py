"""Self-tests of the mosquitto fixture, and a record of what mosquitto 2.0.11 does at the edges.

These use paho-mqtt directly so that they pin down the broker's behaviour, not the agent's.
"""

from __future__ import annotations

import queue
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from tests.support.certs import Pki, make_ca
from tests.support.mqtt_broker import Broker, BrokerFactory, PortInUseError, TlsSetup, start_broker

TIMEOUT_SECONDS = 5.0
NOT_AUTHORIZED = 0x87
AGENT_ACL = """\
user agent
topic write village/readings
topic read village/#

user admin
topic readwrite #
"""
PASSWORDS = {"agent": "agent-secret", "admin": "admin-secret"}


class ConnectionLostError(Exception):
    """The connection closed before the broker answered."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionEvent:
    kind: Literal["connack", "disconnect"]
    reason: ReasonCode


class Session:
    """A paho client that records what its callbacks saw.

    Acknowledgements are stored by message id under a lock because paho may run the callback
    before `publish()` has returned that id to us.
    """

    def __init__(
        self,
        *,
        protocol: MQTTProtocolVersion = mqtt.MQTTv5,
        client_id: str = "",
        username: str | None = None,
        password: str | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        if tls is not None:
            self.client.tls_set_context(tls)
        self.events: queue.Queue[ConnectionEvent] = queue.Queue()
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self._acks: dict[int, ReasonCode] = {}
        self._acked = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def connect(self, host: str, port: int, *, keepalive: int = 10) -> ReasonCode:
        """Connect and return the CONNACK's reason; raise ConnectionLostError if there is none.

        The network thread starts only after a successful CONNACK: paho's own thread would retry
        a refused connection and its reconnect wait sleeps in uninterruptible 1 s steps, which
        would slow every teardown.
        """
        self.client.connect(host, port, keepalive=keepalive)
        deadline = time.monotonic() + TIMEOUT_SECONDS
        while self.events.empty():
            if time.monotonic() > deadline:
                raise TimeoutError(f"no CONNACK from {host}:{port}")
            error = self.client.loop(timeout=0.05)
            if error != mqtt.MQTT_ERR_SUCCESS and self.events.empty():
                raise ConnectionLostError(mqtt.error_string(error))
        event = self.events.get_nowait()
        if event.kind == "disconnect":
            raise ConnectionLostError(str(event.reason))
        if not event.reason.is_failure:
            self.client.loop_start()
        return event.reason

    def wait_for(
        self, kind: Literal["connack", "disconnect"], timeout: float = TIMEOUT_SECONDS
    ) -> ReasonCode:
        """The reason of the next event of `kind`, skipping others.

        paho may report one lost connection twice (eclipse-paho/paho.mqtt.python#870).
        """
        deadline = time.monotonic() + timeout
        while True:
            event = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            if event.kind == kind:
                return event.reason

    def publish(self, topic: str, payload: bytes, *, qos: int = 1) -> ReasonCode:
        """Publish and return the reason code of the broker's acknowledgement."""
        info = self.client.publish(topic, payload, qos=qos)
        return self._wait_ack(info.mid)

    def subscribe(self, topic: str, *, qos: int = 1) -> ReasonCode:
        _, mid = self.client.subscribe(topic, qos=qos)
        assert mid is not None
        return self._wait_ack(mid)

    def close(self) -> None:
        self.client.disconnect()
        if self.client.loop_stop() != mqtt.MQTT_ERR_SUCCESS:
            # No network thread ran, so nothing else will close the socket.
            self.client.loop(timeout=0.01)

    def _wait_ack(self, mid: int) -> ReasonCode:
        with self._acked:
            if not self._acked.wait_for(lambda: mid in self._acks, TIMEOUT_SECONDS):
                raise TimeoutError(f"no acknowledgement for message {mid}")
            return self._acks.pop(mid)

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self.events.put(ConnectionEvent(kind="connack", reason=reason))

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self.events.put(ConnectionEvent(kind="disconnect", reason=reason))

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._acked:
            self._acks[mid] = reason
            self._acked.notify_all()

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reasons: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        with self._acked:
            self._acks[mid] = reasons[0]
            self._acked.notify_all()

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        self.messages.put(message)


@pytest.fixture
def sessions() -> Iterator[list[Session]]:
    """Sessions a test appends here are closed after it, even if it fails."""
    opened: list[Session] = []
    yield opened
    for session in opened:
        session.close()


def open_session(
    opened: list[Session],
    broker: Broker,
    *,
    protocol: MQTTProtocolVersion = mqtt.MQTTv5,
    username: str | None = None,
    password: str | None = None,
) -> Session:
    """A session connected to `broker`; fail the test unless the CONNACK says success."""
    session = Session(protocol=protocol, username=username, password=password)
    opened.append(session)
    reason = session.connect(broker.host, broker.port)
    assert not reason.is_failure, reason
    return session


def client_tls(ca_file: Path, client_cert: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_file)
    if client_cert is not None:
        context.load_cert_chain(*client_cert)
    return context


def test_plain_round_trip_at_qos_1(broker: Broker, sessions: list[Session]) -> None:
    """A QoS 1 message published to the plain broker reaches a subscriber."""
    subscriber = open_session(sessions, broker)
    publisher = open_session(sessions, broker)
    assert subscriber.subscribe("village/test").value == 1
    assert publisher.publish("village/test", b"hello").value == 0
    message = subscriber.messages.get(timeout=TIMEOUT_SECONDS)
    assert (message.topic, message.payload, message.qos) == ("village/test", b"hello", 1)
    assert broker.url() == f"mqtt://127.0.0.1:{broker.port}"


@pytest.fixture
def tls_broker(broker_factory: BrokerFactory, pki: Pki) -> Broker:
    return broker_factory(
        tls=TlsSetup(
            ca_file=pki.ca.cert_file,
            cert_file=pki.server.cert_file,
            key_file=pki.server.key_file,
            require_client_cert=True,
        )
    )


def connect_tls(broker: Broker, session: Session) -> ReasonCode:
    """Connect by the name in the broker's URL, so the certificate's hostname is checked."""
    url = urlsplit(broker.url())
    assert url.scheme == "mqtts"
    assert url.hostname is not None
    assert url.port == broker.port
    return session.connect(url.hostname, url.port)


def test_tls_accepts_client_with_ca_and_client_cert(
    tls_broker: Broker, pki: Pki, sessions: list[Session]
) -> None:
    """A client trusting the CA and presenting a CA-signed client cert connects over TLS."""
    tls = client_tls(pki.ca.cert_file, (pki.client.cert_file, pki.client.key_file))
    session = Session(tls=tls)
    sessions.append(session)
    assert connect_tls(tls_broker, session).value == 0
    assert not session.publish("village/tls", b"x").is_failure


def test_tls_client_trusting_another_ca_fails_handshake(
    tls_broker: Broker, pki: Pki, tmp_path: Path, sessions: list[Session]
) -> None:
    """A client that trusts a different CA rejects the broker's certificate."""
    other_ca = make_ca(tmp_path / "other-ca", "Other CA")
    tls = client_tls(other_ca.cert_file, (pki.client.cert_file, pki.client.key_file))
    session = Session(tls=tls)
    sessions.append(session)
    with pytest.raises(ssl.SSLCertVerificationError):
        connect_tls(tls_broker, session)


def test_tls_refuses_client_without_client_cert(
    tls_broker: Broker, pki: Pki, sessions: list[Session]
) -> None:
    """With require_certificate, the broker refuses a client that presents no certificate."""
    session = Session(tls=client_tls(pki.ca.cert_file))
    sessions.append(session)
    # Under TLS 1.3 the client finishes its side of the handshake before the broker checks for a
    # client certificate, so the refusal arrives as an alert after connect() has returned.
    with pytest.raises((ssl.SSLError, ConnectionLostError)):
        connect_tls(tls_broker, session)
    assert "peer did not return a certificate" in tls_broker.read_log()


def test_tls_client_rejects_expired_broker_cert(
    broker_factory: BrokerFactory, pki: Pki, tmp_path: Path, sessions: list[Session]
) -> None:
    """A client refuses a broker whose certificate expired, even though the CA signed it."""
    now = datetime.now(UTC)
    expired = pki.ca.issue(
        tmp_path / "expired",
        "server",
        hostnames=("127.0.0.1",),
        not_before=now - timedelta(days=30),
        not_after=now - timedelta(days=1),
    )
    broker = broker_factory(
        tls=TlsSetup(
            ca_file=pki.ca.cert_file, cert_file=expired.cert_file, key_file=expired.key_file
        )
    )
    session = Session(tls=client_tls(pki.ca.cert_file))
    sessions.append(session)
    with pytest.raises(ssl.SSLCertVerificationError, match="expired"):
        connect_tls(broker, session)


@pytest.mark.parametrize("protocol", [mqtt.MQTTv5, mqtt.MQTTv311], ids=["v5", "v311"])
def test_password_auth(
    broker_factory: BrokerFactory, sessions: list[Session], protocol: MQTTProtocolVersion
) -> None:
    """The right password is accepted; a wrong one gets a refused CONNACK (Not authorized)."""
    broker = broker_factory(passwords=PASSWORDS)
    right = open_session(
        sessions, broker, protocol=protocol, username="agent", password=PASSWORDS["agent"]
    )
    assert right.client.is_connected()
    wrong = Session(protocol=protocol, username="agent", password="not-" + PASSWORDS["agent"])
    sessions.append(wrong)
    # mosquitto 2.0.11 answers a bad password with "Not authorized" (v5: 0x87; v3.1.1: return
    # code 5, which paho reports as ReasonCode 0x87), not "Bad user name or password" (0x86 / 4).
    reason = wrong.connect(broker.host, broker.port)
    assert reason.is_failure
    assert reason.value == NOT_AUTHORIZED


# What mosquitto 2.0.11 does with a QoS 1 PUBLISH the ACL denies: under MQTT 5 it answers with a
# PUBACK carrying 0x87 Not authorized, which paho passes to on_publish (and still counts as
# "published": MQTTMessageInfo.is_published() is True, so only the reason code tells). MQTT 3.1.1
# has no reason code in PUBACK, so the client sees a plain success while the broker drops the
# message: the only trace is "Denied PUBLISH" in the broker's debug log.
@pytest.mark.parametrize(
    ("protocol", "expected"),
    [(mqtt.MQTTv5, NOT_AUTHORIZED), (mqtt.MQTTv311, 0)],
    ids=["v5", "v311"],
)
def test_acl_denied_publish(
    broker_factory: BrokerFactory,
    sessions: list[Session],
    protocol: MQTTProtocolVersion,
    expected: int,
) -> None:
    """A QoS 1 publish the ACL denies gets PUBACK 0x87 under MQTT 5, a silent drop under 3.1.1."""
    broker = broker_factory(passwords=PASSWORDS, acl=AGENT_ACL)
    admin = open_session(sessions, broker, username="admin", password=PASSWORDS["admin"])
    admin.subscribe("village/#")
    agent = open_session(
        sessions, broker, protocol=protocol, username="agent", password=PASSWORDS["agent"]
    )
    assert agent.publish("village/forbidden", b"denied").value == expected
    assert agent.publish("village/readings", b"allowed").value == 0
    # The broker forwards one publisher's messages in order, so had the denied one been
    # delivered it would arrive first.
    assert admin.messages.get(timeout=TIMEOUT_SECONDS).payload == b"allowed"
    assert "Denied PUBLISH" in broker.read_log()


# Finding: on SIGHUP mosquitto 2.0.11 re-reads the ACL file and applies it at once to clients
# that are already connected, not only to new connections. Revoking a write rule therefore
# makes the agent's very next QoS 1 publish on the same connection fail with 0x87 (MQTT 5).
def test_acl_reload_applies_to_connected_client(
    broker_factory: BrokerFactory, sessions: list[Session]
) -> None:
    """set_acl (SIGHUP) revokes a write rule for a client that is already connected."""
    broker = broker_factory(passwords=PASSWORDS, acl=AGENT_ACL)
    agent = open_session(sessions, broker, username="agent", password=PASSWORDS["agent"])
    # Success, or 0x10 No matching subscribers: nobody listens here.
    assert not agent.publish("village/readings", b"before").is_failure
    broker.set_acl(AGENT_ACL.replace("topic write village/readings\n", ""))
    assert agent.publish("village/readings", b"after").value == NOT_AUTHORIZED
    newcomer = open_session(sessions, broker, username="agent", password=PASSWORDS["agent"])
    assert newcomer.publish("village/readings", b"after").value == NOT_AUTHORIZED


def test_taken_port_is_reported(tmp_path: Path) -> None:
    """Starting on a port another process holds fails with PortInUseError and the log's tail."""
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(PortInUseError, match="Address already in use"):
            start_broker(tmp_path / "broker", port=port)


def test_kill_and_restart_on_same_port(broker: Broker, sessions: list[Session]) -> None:
    """After SIGKILL and restart the broker listens on the same port and clients reconnect."""
    session = open_session(sessions, broker)
    port = broker.port
    session.client.reconnect_delay_set(min_delay=1, max_delay=1)
    broker.kill()
    assert not broker.running
    session.wait_for("disconnect")
    broker.restart()
    assert broker.port == port
    assert session.wait_for("connack").value == 0
    assert not session.publish("village/test", b"again").is_failure


def test_pause_is_noticed_by_keepalive_and_resume_recovers(
    broker: Broker, sessions: list[Session]
) -> None:
    """A client with keepalive 2 s drops a paused broker and reconnects once it resumes."""
    session = Session()
    sessions.append(session)
    session.client.reconnect_delay_set(min_delay=1, max_delay=1)
    assert session.connect(broker.host, broker.port, keepalive=2).value == 0
    broker.pause()
    paused_at = time.monotonic()
    # paho pings after one keepalive of silence and gives up after a second one.
    session.wait_for("disconnect", timeout=8)
    assert 1.5 < time.monotonic() - paused_at < 6
    broker.resume()
    assert session.wait_for("connack").value == 0
    assert not session.publish("village/test", b"resumed").is_failure
