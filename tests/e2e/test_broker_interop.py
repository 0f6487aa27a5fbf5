"""The real agent against the brokers a province may run: mosquitto, RabbitMQ (MQTT plugin), NATS.

Each broker is Debian's own package, started by the tests on free loopback ports with its own data.
What is asserted is what the README's broker table states: every reading arrives, counted by
(site, seq), across a broker restart and a `kill -9` of the agent; the retained status and the last
will behave as each broker supports them.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from simulator.virtual.collector import Collector
from tests.support.agent_proc import AgentProcess, buffer_state, wait_until, write_config
from tests.support.mqtt_broker import Broker, start_broker
from tests.support.nats_broker import NatsBroker, nats_broker
from tests.support.rabbitmq_broker import RabbitBroker, rabbitmq_broker

__all__ = ["nats_broker", "rabbitmq_broker"]  # session fixtures, used through `interop_broker`

SITE = "interop-site-01"
_prefixes = (f"desa/interop{n}" for n in itertools.count())

# The agent's own default (`broker.protocol: auto`): what a province gets without editing a config.
PROTOCOLS = [pytest.param({}, id="default")]


class InteropBroker(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def running(self) -> bool: ...
    def url(self) -> str: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def version(self) -> str: ...


class _Mosquitto:
    """The tests' mosquitto under the names the other brokers' fixtures use."""

    name = "mosquitto"

    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self.port = broker.port

    @property
    def running(self) -> bool:
        return self._broker.running

    def url(self) -> str:
        return self._broker.url()

    def start(self) -> None:
        self._broker.start()

    def stop(self) -> None:
        self._broker.stop()

    def version(self) -> str:
        text = self._broker.read_log()
        return text.split("mosquitto version ", 1)[1].split()[0] if "version " in text else "?"


@pytest.fixture(params=["mosquitto", "rabbitmq", "nats"])
def interop_broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[InteropBroker]:
    """A broker running at the start of the test whatever the last test did: a mosquitto of the
    test's own, or the session's RabbitMQ or NATS."""
    if request.param == "mosquitto":
        with start_broker(tmp_path / "mosquitto") as mosquitto:
            yield _Mosquitto(mosquitto)
        return
    broker: RabbitBroker | NatsBroker = request.getfixturevalue(f"{request.param}_broker")
    if not broker.running:
        broker.start()
    yield broker
    if not broker.running:
        broker.start()


def _config(tmp_path: Path, broker: InteropBroker, prefix: str, protocol: dict[str, str]) -> Path:
    return write_config(
        tmp_path,
        broker_url=broker.url(),
        site_id=SITE,
        broker={"topic_prefix": prefix, "batch_max_readings": 20, **protocol},
    )


def _supports_retained_on_wildcards(broker: InteropBroker) -> bool:
    # RabbitMQ sends retained messages only to subscriptions on the exact topic before 3.13
    # (rabbitmq-server#8096); NATS and mosquitto send them to matching wildcards too.
    if broker.name != "rabbitmq":
        return True
    major, minor = (int(part) for part in broker.version().split(".")[:2])
    return (major, minor) >= (3, 13)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_no_reading_lost_across_a_broker_restart_and_a_kill_9(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    interop_broker: InteropBroker,
    protocol: dict[str, str],
) -> None:
    """Every seq the agent committed arrives, or is still in its buffer, after both faults."""
    broker, prefix = interop_broker, next(_prefixes)
    config = _config(tmp_path, broker, prefix, protocol)
    collector = Collector(broker.url(), prefix, protocol=mqtt.MQTTv311)
    with collector, AgentProcess(config) as agent:
        wait_until(lambda: len(collector.seqs(SITE)) > 10, 30, agent.log())
        # The broker goes away while the agent measures on, and comes back.
        collector.stop()
        broker.stop()
        before, _ = buffer_state(agent.state_dir)
        wait_until(lambda: buffer_state(agent.state_dir)[0] > before + 20, 30, "no rounds buffered")
        # Hold the agent while the subscriber comes back, so nothing is published unheard.
        agent.pause()
        broker.start()
        collector.start()
        agent.resume()
        agent.wait_status("broker_state", lambda s: s == "connected", 60)
        after_restart, _ = buffer_state(agent.state_dir)
        wait_until(lambda: max(collector.seqs(SITE)) > after_restart, 30, agent.log())
        agent.kill()
    with collector, AgentProcess(config) as agent:
        agent.wait_status("broker_state", lambda s: s == "connected", 30)
        # MQTT 5 where the broker takes it; else 3.1.1, remembered from the first run.
        used = (agent.status()["broker_protocol"], agent.status()["broker_protocol_why"])
        killed_at, _ = buffer_state(agent.state_dir)
        wait_until(lambda: max(collector.seqs(SITE), default=0) > killed_at, 30, agent.log())
        assert agent.terminate() == 0
        last_seq, remaining = buffer_state(agent.state_dir)
        collector.wait_for(SITE, set(range(1, last_seq + 1)) - remaining, 30)
        report = collector.completeness(SITE, range(1, last_seq + 1))
    lost = sorted(set(report.lost) - remaining)
    print(
        f"\ninterop {broker.name} {broker.version()} protocol={protocol.get('protocol', 'default')}"
        f" ({used[0]}, {used[1]}):"
        f" delivered {report.delivered} lost {len(lost)} still buffered {len(remaining)}"
        f" duplicates {report.duplicates}"
    )
    assert lost == []
    if not protocol:
        assert used == (("5", "default") if broker.name == "mosquitto" else ("3.1.1", "remembered"))
    assert report.delivered >= last_seq - len(remaining)
    assert collector.rejected == []
    assert collector.conflicts(SITE) == []


class _StatusWatcher:
    """A 3.1.1 subscriber that keeps every status payload it is sent, retained or not."""

    def __init__(self, broker: InteropBroker, topic: str) -> None:
        self.messages: list[tuple[dict[str, Any], bool]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        self._client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.on_message = self._on_message
        self._client.connect("127.0.0.1", broker.port, keepalive=30)
        self._client.loop_start()
        assert self._subscribed.wait(15), f"could not subscribe to {topic}"

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((json.loads(message.payload), bool(message.retain)))

    def states(self) -> list[str]:
        with self._lock:
            return [str(body["state"]) for body, _ in self.messages]

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_retained_status_and_last_will(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    interop_broker: InteropBroker,
    protocol: dict[str, str],
) -> None:
    """A late subscriber gets the retained `online` (on a wildcard only where the broker can), and
    the broker says `offline` for the agent once it dies without a word."""
    broker, prefix = interop_broker, next(_prefixes)
    config = _config(tmp_path, broker, prefix, protocol)
    topic = f"{prefix}/{SITE}/status"
    with AgentProcess(config) as agent:
        agent.wait_status("broker_state", lambda s: s == "connected", 30)
        # Subscribed only after the agent said `online`: what arrives now is the retained copy.
        time.sleep(1.0)
        exact = _StatusWatcher(broker, topic)
        wildcard = _StatusWatcher(broker, f"{prefix}/+/status")
        try:
            wait_until(lambda: "online" in exact.states(), 15, f"no retained status: {agent.log()}")
            assert exact.messages[0][0]["site"] == SITE
            if _supports_retained_on_wildcards(broker):
                wait_until(lambda: "online" in wildcard.states(), 15, "none on the wildcard")
            else:
                # The exact topic's copy has come: the wildcard's would have come with it.
                time.sleep(2.0)
                assert wildcard.states() == []
            wildcard_got_retained = "online" in wildcard.states()
            agent.kill()
            # The will is due after 1.5 keepalives (5 s) without a packet.
            wait_until(lambda: "offline" in exact.states(), 30, "the broker sent no last will")
        finally:
            exact.close()
            wildcard.close()
        print(
            f"\ninterop {broker.name}: retained status on exact topic yes, on wildcard"
            f" {'yes' if wildcard_got_retained else 'no'}, last will yes"
        )
