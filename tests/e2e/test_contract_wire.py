"""The MQTT contract as it crosses the wire from a real agent: schema, status, last will, 3.1.1."""

from __future__ import annotations

import json
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent import __version__
from agent.config.load import config_digest, load_config
from agent.contract.telemetry import decode_telemetry
from simulator.virtual.collector import Collector
from tests.support.agent_proc import AgentProcess, buffer_state, wait_until, write_config
from tests.support.mqtt_broker import Broker

SITE = "test-site-01"
PREFIX = "desa/test"
SCHEMA_DIR = Path(__file__).resolve().parents[2] / "agent" / "contract" / "schema"
# The JSON Schema of each payload schema, and what inflates its zlib stream.
SCHEMAS = {
    1: json.loads((SCHEMA_DIR / "telemetry.schema.json").read_text()),
    2: json.loads((SCHEMA_DIR / "telemetry-2.schema.json").read_text()),
}
ZDICT = (SCHEMA_DIR / "telemetry-2.zdict").read_bytes()


class Wire:
    """Every message on the site's topics, raw, as a consumer's socket receives it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages: list[tuple[str, bytes, bool]] = []

    def on_message(self, _c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((message.topic, message.payload, bool(message.retain)))

    def on(self, kind: str) -> list[tuple[bytes, bool]]:
        with self.lock:
            return [(p, r) for t, p, r in self.messages if t == f"{PREFIX}/{SITE}/{kind}"]


@contextmanager
def wire(url: str) -> Iterator[Wire]:
    seen = Wire()
    parts = urlsplit(url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"wire-{time.monotonic_ns()}")
    client.on_message = seen.on_message
    client.connect(parts.hostname or "", parts.port or 1883)
    client.subscribe(f"{PREFIX}/{SITE}/#", qos=1)
    client.loop_start()
    try:
        yield seen
    finally:
        client.loop_stop()
        client.disconnect()


def _status(seen: Wire) -> dict[str, object]:
    payload, _retained = seen.on("status")[-1]
    body = json.loads(payload)
    assert isinstance(body, dict)
    return body


def _inflate(payload: bytes) -> bytes:
    """Inflate as a consumer without our decoder would: with zlib and the published files."""
    if payload[1] & 0x20:  # FDICT: the stream names its preset dictionary
        assert int.from_bytes(payload[2:6], "big") == zlib.adler32(ZDICT)
        return zlib.decompressobj(zdict=ZDICT).decompress(payload)
    return zlib.decompress(payload)


@pytest.mark.parametrize("schema", [1, 2])
def test_every_telemetry_payload_on_the_wire_matches_the_json_schema(
    tmp_path: Path, broker: Broker, schema: int
) -> None:
    """Real payloads, inflated, are valid against the schema file of the payload schema the
    config chose, and carry the readings of every probe family."""
    config = write_config(tmp_path, broker_url=broker.url(), broker={"payload_schema": schema})
    with wire(broker.url()) as seen, AgentProcess(config) as agent:
        wait_until(lambda: len(seen.on("telemetry")) >= 3, 20, agent.log())
        assert agent.terminate() == 0
    payloads = [p for p, _ in seen.on("telemetry")]
    for payload in payloads:
        body = json.loads(_inflate(payload))
        assert body["schema"] == schema
        jsonschema.validate(body, SCHEMAS[body["schema"]])
        assert body["site"] == SITE
    metrics = {r.metric for p in payloads for r in decode_telemetry(p).readings}
    assert {"throughput", "latency", "uptime"} <= {m.split(".")[0] for m in metrics}


def test_status_says_online_with_version_and_config_then_offline_on_sigterm(
    tmp_path: Path, broker: Broker
) -> None:
    """The retained birth names the version and the config hash; a clean stop says offline."""
    config = write_config(tmp_path, broker_url=broker.url())
    expected_digest = config_digest(load_config(config))
    with wire(broker.url()) as seen, AgentProcess(config) as agent:
        wait_until(lambda: bool(seen.on("status")), 20, agent.log())
        online = _status(seen)
        assert online["state"] == "online"
        assert online["version"] == __version__
        assert online["config"] == expected_digest
        assert agent.terminate() == 0
        wait_until(lambda: _status(seen)["state"] == "offline", 10, agent.log())
    # A consumer that connects later still learns the site's state: the status is retained.
    with wire(broker.url()) as late:
        wait_until(lambda: bool(late.on("status")), 10)
        assert late.on("status")[-1][1] is True
        assert _status(late)["state"] == "offline"


def test_the_last_will_says_offline_when_the_agent_dies_without_a_word(
    tmp_path: Path, broker: Broker
) -> None:
    """kill -9: the agent cannot speak, so the broker publishes the will on its behalf."""
    config = write_config(tmp_path, broker_url=broker.url())
    with wire(broker.url()) as seen, AgentProcess(config) as agent:
        wait_until(
            lambda: bool(seen.on("status")) and _status(seen)["state"] == "online", 20, agent.log()
        )
        agent.kill()
        # The socket closes with the process: the broker sends the will at once (or within 1.5
        # keepalives had the link died silently).
        wait_until(lambda: _status(seen)["state"] == "offline", 10, f"{seen.on('status')}")


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_both_protocol_versions_deliver_every_reading(
    tmp_path: Path, broker: Broker, protocol: str
) -> None:
    """MQTT 3.1.1 on request and 5 by default: every committed seq arrives, once the agent stops."""
    config = write_config(tmp_path, broker_url=broker.url(), broker={"protocol": protocol})
    with Collector(broker.url(), PREFIX) as collector, AgentProcess(config) as agent:
        wait_until(lambda: len(collector.seqs(SITE)) >= 20, 20, agent.log())
        assert agent.terminate() == 0
        last_seq, remaining = buffer_state(agent.state_dir)
        assert collector.wait_for(SITE, set(range(1, last_seq + 1)) - remaining, 10)
        assert collector.rejected == []
