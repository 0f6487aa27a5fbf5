"""`broker.protocol: auto`, the ack timeout, the packet size cap and the reasons the link gives,
against a fake broker that misbehaves on demand and a real mosquitto."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from agent.config.load import parse_config
from agent.config.schema import BrokerConfig
from agent.files import PROTOCOL_FILE
from agent.publish.client import MAX_INCOMING_PACKET_BYTES
from agent.publish.link import (
    Acked,
    Connected,
    ConnectFailed,
    Disconnected,
    LinkEvent,
    MqttLink,
    Will,
)
from agent.publish.protocol import RETRY_V5_AFTER_S, ProtocolMemory
from tests.support.certs import Pki
from tests.support.fake_broker import Behaviour, FakeBroker
from tests.support.mqtt_broker import Broker, BrokerFactory, TlsSetup
from tests.support.nats_broker import nats_broker  # noqa: F401  (a fixture)
from tests.support.rabbitmq_broker import rabbitmq_broker  # noqa: F401  (a fixture)

WILL = Will(topic="t/a/status", online=b"online", offline=b"offline")


def broker_config(tmp_path: Path, url: str, extra: str = "") -> BrokerConfig:
    config = parse_config(
        f"site_id: a\nstate_dir: s\ninterval_s: 1\nbroker:\n  url: {url}\n"
        "  topic_prefix: t\n  splay_s: 0\n  reconnect_min_s: 0.2\n  reconnect_max_s: 1\n"
        "  connect_timeout_s: 3\n" + extra,
        tmp_path / "agent.yaml",
    )
    return config.broker


class Wall:
    """An injected wall clock the test moves."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def wait_for(link: MqttLink, kind: type[LinkEvent], timeout_s: float = 15) -> LinkEvent:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        event = link.next_event(0.2)
        if isinstance(event, kind):
            return event
    raise AssertionError(f"no {kind.__name__} within {timeout_s} s")


def run_link(
    config: BrokerConfig, memory: ProtocolMemory, client_id: str = "link-test"
) -> MqttLink:
    link = MqttLink(config, client_id=client_id, will=WILL, memory=memory)
    link.start()
    return link


@pytest.mark.parametrize("refusal", ["connack", "close"])
def test_auto_falls_back_to_311_remembers_it_and_retries_5_after_a_day(
    tmp_path: Path, refusal: str
) -> None:
    """A broker refusing MQTT 5 (CONNACK 1, or a close) gets 3.1.1, remembered until a day passed."""
    wall = Wall()
    state = tmp_path / "state"
    state.mkdir()
    with FakeBroker(Behaviour(refuse_v5=refusal)) as fake:  # type: ignore[arg-type]
        config = broker_config(tmp_path, fake.url())
        assert config.protocol == "auto"
        link = run_link(config, ProtocolMemory(state, wall=wall))
        try:
            connected = wait_for(link, Connected)
        finally:
            link.stop(1)
        assert isinstance(connected, Connected)
        assert (connected.version, connected.why) == ("3.1.1", "fallback")
        # A close counts as a refusal the second time in a row: once may be a crash.
        tries = [5, 4] if refusal == "connack" else [5, 5, 4]
        assert [s.protocol_level for s in fake.seen[: len(tries)]] == tries
        saved = json.loads((state / PROTOCOL_FILE).read_text())["brokers"][fake.url()]
        assert saved["version"] == "3.1.1" and saved["since"] == wall.now
        # A restart: straight to 3.1.1, no MQTT 5 attempt.
        tried = len(fake.seen)
        link = run_link(config, ProtocolMemory(state, wall=wall))
        try:
            again = wait_for(link, Connected)
        finally:
            link.stop(1)
        assert isinstance(again, Connected) and again.why == "remembered"
        assert fake.seen[tried].protocol_level == 4
        # A day later MQTT 5 is tried again first.
        wall.now += RETRY_V5_AFTER_S + 1
        tried = len(fake.seen)
        link = run_link(config, ProtocolMemory(state, wall=wall))
        try:
            wait_for(link, Connected)
        finally:
            link.stop(1)
        assert [s.protocol_level for s in fake.seen[tried : tried + len(tries)]] == tries


def test_explicit_5_does_not_fall_back(tmp_path: Path) -> None:
    """`protocol: "5"` stays MQTT 5: the refusal is reported, no 3.1.1 attempt is made."""
    with FakeBroker(Behaviour(refuse_v5="connack")) as fake:
        config = broker_config(tmp_path, fake.url(), '  protocol: "5"\n')
        link = run_link(config, ProtocolMemory(None, wall=Wall()))
        try:
            failed = wait_for(link, ConnectFailed)
        finally:
            link.stop(1)
        assert isinstance(failed, ConnectFailed)
        assert "Unsupported protocol version" in failed.reason
        assert {s.protocol_level for s in fake.seen} == {5}


def test_auto_keeps_mqtt5_on_mosquitto(tmp_path: Path, broker: Broker) -> None:
    """Real mosquitto takes MQTT 5: the link stays on 5 and remembers nothing."""
    state = tmp_path / "state"
    state.mkdir()
    link = run_link(broker_config(tmp_path, broker.url()), ProtocolMemory(state, wall=Wall()))
    try:
        connected = wait_for(link, Connected)
    finally:
        link.stop(1)
    assert isinstance(connected, Connected)
    assert (connected.version, connected.why) == ("5", "default")
    assert not (state / PROTOCOL_FILE).exists()


def test_connect_announces_the_maximum_packet_size(tmp_path: Path) -> None:
    """The MQTT 5 CONNECT carries Maximum Packet Size, so a conforming broker never sends more."""
    with FakeBroker(Behaviour()) as fake:
        link = run_link(broker_config(tmp_path, fake.url()), ProtocolMemory(None, wall=Wall()))
        try:
            wait_for(link, Connected)
        finally:
            link.stop(1)
    assert fake.seen[0].max_packet_size == MAX_INCOMING_PACKET_BYTES


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_huge_packet_drops_the_connection_with_the_reason(tmp_path: Path, protocol: str) -> None:
    """A broker announcing a 200 MiB PUBLISH is cut off before the agent reads it."""
    size = 200 * 1024 * 1024
    with FakeBroker(Behaviour(huge_publish=size)) as fake:
        config = broker_config(tmp_path, fake.url(), f'  protocol: "{protocol}"\n')
        link = run_link(config, ProtocolMemory(None, wall=Wall()))
        try:
            dropped = wait_for(link, Disconnected)
        finally:
            link.stop(1)
        assert isinstance(dropped, Disconnected)
        assert f"packet of {size - 3}" in dropped.reason or f"packet of {size}" in dropped.reason
        assert "more than the agent takes" in dropped.reason
        # The fake could push at most what fits in the socket buffers before the close.
        assert fake.sent_bytes < 32 * 1024 * 1024


def test_no_puback_drops_the_connection_and_resends(tmp_path: Path) -> None:
    """A broker that never acknowledges: after ack_timeout_s the link reconnects, saying why."""
    with FakeBroker(Behaviour(puback=frozenset({1}))) as fake:
        config = broker_config(tmp_path, fake.url(), "  ack_timeout_s: 1\n")
        link = run_link(config, ProtocolMemory(None, wall=Wall()))
        try:
            first = wait_for(link, Connected)
            assert isinstance(first, Connected)
            assert link.publish("t/a/telemetry", b"reading-1") is not None
            dropped = wait_for(link, Disconnected)
            assert isinstance(dropped, Disconnected)
            assert "no acknowledgement (PUBACK)" in dropped.reason
            assert "ack_timeout_s 1" in dropped.reason
            second = wait_for(link, Connected)
            assert isinstance(second, Connected) and second.generation > first.generation
        finally:
            link.stop(1)
        assert ("t/a/telemetry", b"reading-1") in fake.seen[0].publishes


def test_server_disconnect_reason_is_reported(tmp_path: Path) -> None:
    """An MQTT 5 DISCONNECT from the broker is reported with its reason code."""
    with FakeBroker(Behaviour(disconnect_reason=0x89)) as fake:  # Server busy
        link = run_link(broker_config(tmp_path, fake.url()), ProtocolMemory(None, wall=Wall()))
        try:
            dropped = wait_for(link, Disconnected)
        finally:
            link.stop(1)
    assert isinstance(dropped, Disconnected)
    assert "Server busy" in dropped.reason and "0x89" in dropped.reason


def test_session_taken_over_names_a_duplicate_site(tmp_path: Path, broker: Broker) -> None:
    """Two gateways with one client id on real mosquitto: the first is told why it was dropped."""
    config = broker_config(tmp_path, broker.url())
    first = run_link(config, ProtocolMemory(None, wall=Wall()), client_id="village-agent-dup")
    second: MqttLink | None = None
    try:
        wait_for(first, Connected)
        second = run_link(config, ProtocolMemory(None, wall=Wall()), client_id="village-agent-dup")
        dropped = wait_for(first, Disconnected)
    finally:
        first.stop(1)
        if second is not None:
            second.stop(1)
    assert isinstance(dropped, Disconnected)
    # mosquitto 2.0.11 closes the old connection without an MQTT 5 DISCONNECT: the reason says
    # what such a silent close most often means.
    assert "closed the connection without a reason" in dropped.reason
    assert "village-agent-dup" in dropped.reason
    assert "site_id configured on two gateways" in dropped.reason


def test_session_taken_over_disconnect_is_named(tmp_path: Path) -> None:
    """A broker that says Session taken over (0x8E) in its DISCONNECT: the reason names it."""
    with FakeBroker(Behaviour(disconnect_reason=0x8E)) as fake:
        link = run_link(broker_config(tmp_path, fake.url()), ProtocolMemory(None, wall=Wall()))
        try:
            dropped = wait_for(link, Disconnected)
        finally:
            link.stop(1)
    assert isinstance(dropped, Disconnected)
    assert "Session taken over" in dropped.reason
    assert "site_id configured on two gateways" in dropped.reason


def test_refused_client_certificate_is_named(
    tmp_path: Path, broker_factory: BrokerFactory, pki: Pki
) -> None:
    """A broker demanding a client certificate the agent lacks: a refusal naming the cert."""
    tls = broker_factory(
        tls=TlsSetup(
            ca_file=pki.ca.cert_file,
            cert_file=pki.server.cert_file,
            key_file=pki.server.key_file,
            require_client_cert=True,
        )
    )
    config = broker_config(tmp_path, tls.url(), f"  ca_file: {pki.ca.cert_file}\n")
    link = run_link(config, ProtocolMemory(None, wall=Wall()))
    try:
        failed = wait_for(link, ConnectFailed)
    finally:
        link.stop(1)
    assert isinstance(failed, ConnectFailed)
    # An alert or a bare close of TLS, depending on timing: both name the client certificate.
    assert "client certificate" in failed.reason and "broker.cert_file" in failed.reason
    assert failed.refused


@pytest.fixture(params=["nats", "rabbitmq"])
def old_broker_url(request: pytest.FixtureRequest) -> str:
    """A real broker without MQTT 5 (nats-server 2.9, RabbitMQ 3.10), one per session, started by
    the tests on their own ports; skipped where not installed."""
    running = request.getfixturevalue(f"{request.param}_broker")
    return str(running.url())


def test_auto_delivers_to_real_brokers_without_mqtt5(tmp_path: Path, old_broker_url: str) -> None:
    """NATS 2.9 answers MQTT 5 with "Unsupported protocol version", RabbitMQ 3.10 closes the
    connection: `auto` falls back to 3.1.1 and a message is acknowledged."""
    state = tmp_path / "state"
    state.mkdir()
    link = run_link(broker_config(tmp_path, old_broker_url), ProtocolMemory(state, wall=Wall()))
    try:
        connected = wait_for(link, Connected, timeout_s=30)
        assert isinstance(connected, Connected)
        assert (connected.version, connected.why) == ("3.1.1", "fallback")
        assert "MQTT 5" in connected.detail
        handle = link.publish("t/a/telemetry", b"reading")
        assert handle is not None
        acked = None
        deadline = time.monotonic() + 10
        while acked is None and time.monotonic() < deadline:
            event = link.next_event(0.2)
            if isinstance(event, Acked) and event.mid == handle[1]:
                acked = event
        assert acked is not None and acked.ok
    finally:
        link.stop(1)
