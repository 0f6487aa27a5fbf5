"""The decode bridge: real agents' payloads of both schemas, through `village-collector decode`, come
out as JSON lines and InfluxDB line protocol that read back to the same readings."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from agent.contract.telemetry import encode_telemetry
from agent.reading import Reading
from collector.decode import decode_telemetry
from tests.support.agent_proc import AgentProcess, wait_until
from tests.support.agent_proc import write_config as agent_config
from tests.support.collector_proc import PREFIX, REPO
from tests.support.mqtt_broker import Broker


def decode(payload: bytes, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "collector", "decode", *args],
        input=payload,
        capture_output=True,
        cwd=REPO,
        check=False,
        timeout=60,
    )


_LINE = re.compile(r"^((?:[^,\\ ]|\\.)+)((?:,(?:[^,=\\ ]|\\.)+=(?:[^,\\ ]|\\.)+)*) (.+) (-?\d+)$")


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _split(text: str, sep: str) -> list[str]:
    return [p for p in re.split(rf"(?<!\\){re.escape(sep)}", text) if p]


def parse_line(line: str) -> tuple[str, dict[str, str], dict[str, float], int]:
    """An InfluxDB line: measurement, tags, fields (floats only here) and the timestamp in ns."""
    found = _LINE.match(line)
    assert found, line
    measurement, tag_text, field_text, ts = found.groups()
    tags = dict(tuple(_unescape(x) for x in _split(pair, "=")) for pair in _split(tag_text, ","))
    fields = {}
    for pair in _split(field_text, ","):
        key, value = _split(pair, "=")
        assert not value.endswith("i"), f"an integer field: {line}"
        fields[_unescape(key)] = float(value)
    return _unescape(measurement), tags, fields, int(ts)


def capture(broker: Broker, tmp_path: Path) -> list[bytes]:
    """Telemetry payloads from two real agents, one sending schema 1 and one schema 2."""
    payloads: list[bytes] = []
    lock = threading.Lock()

    def keep(_c: object, _u: object, message: mqtt.MQTTMessage) -> None:
        with lock:
            payloads.append(bytes(message.payload))

    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    sub.on_message = keep
    sub.connect(broker.host, broker.port)
    sub.subscribe(f"{PREFIX}/+/telemetry", qos=1)
    sub.loop_start()
    fleet = [
        AgentProcess(
            agent_config(
                tmp_path / f"agent-s{schema}",
                broker_url=broker.url(),
                site_id=f"schema-{schema}",
                broker={"topic_prefix": PREFIX, "payload_schema": schema},
            )
        )
        for schema in (1, 2)
    ]
    try:
        for agent in fleet:
            agent.start()

        def both() -> bool:
            with lock:
                schemas = [decode_telemetry(p).schema for p in payloads]
            return schemas.count(1) >= 2 and schemas.count(2) >= 2

        wait_until(both, 30, "no payloads of both schemas")
    finally:
        for agent in fleet:
            agent.__exit__()
        sub.loop_stop()
    with lock:
        return list(payloads)


def test_jsonl_and_influx_round_trip_real_payloads_of_both_schemas(
    tmp_path: Path, broker: Broker
) -> None:
    """Every reading of every payload comes back from both formats with its site, seq, time,
    metric, tags and value; floats stay floats."""
    payloads = capture(broker, tmp_path)
    for payload in payloads[:6]:
        batch = decode_telemetry(payload)
        jsonl = decode(payload, "--format", "jsonl")
        assert jsonl.returncode == 0, jsonl.stderr
        objects = [json.loads(line) for line in jsonl.stdout.decode().splitlines()]
        assert [
            (o["site"], o["seq"], o["ts"], o["metric"], o["value"], o["tags"], o["boot"],
             o["mono"], o["synced"])
            for o in objects
        ] == [
            (batch.site, r.seq, r.ts_ms, r.metric, r.value, dict(r.tags), r.boot_id, r.mono_ms,
             r.synced)
            for r in batch.readings
        ]  # fmt: skip

        influx = decode(payload, "--format", "influx")
        assert influx.returncode == 0, influx.stderr
        lines = influx.stdout.decode().splitlines()
        assert len(lines) == len(batch.readings)
        for line, r in zip(lines, batch.readings, strict=True):
            measurement, tags, fields, ts_ns = parse_line(line)
            ((field, value),) = fields.items()
            assert f"{measurement}.{field}" == r.metric
            assert tags.pop("site") == batch.site
            assert tags.pop("clock", "synced") == ("synced" if r.synced else "unsynced")
            assert tags == {k: v for k, v in r.tags.items() if v}
            assert value == r.value
            assert ts_ns == r.ts_ms * 1_000_000

    # The streaming form Telegraf's execd runs: one hex payload a line, as `mosquitto_sub -F %x`.
    stream = "".join(p.hex() + "\n" for p in payloads).encode()
    streamed = decode(stream, "--hex", "--format", "influx")
    assert streamed.returncode == 0, streamed.stderr
    total = sum(len(decode_telemetry(p).readings) for p in payloads)
    assert len(streamed.stdout.decode().splitlines()) == total


def test_influx_escapes_what_line_protocol_reserves() -> None:
    """Spaces, commas and equals signs in tags are escaped and read back; a whole number is
    written as a float."""
    awkward = {"iface": "wlan 0,a=b", "path": "/mnt/usb stick", "empty": ""}
    reading = Reading(seq=7, metric="disk.used bytes", value=3.0, tags=awkward, ts_ms=1_800_000,
                      mono_ms=5, boot_id="b", synced=False)  # fmt: skip
    result = decode(encode_telemetry("site-1", [reading]), "--format", "influx")
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.decode().splitlines()
    measurement, tags, fields, ts_ns = parse_line(line)
    assert measurement == "disk"
    assert fields == {"used bytes": 3.0}
    assert " used\\ bytes=3.0 " in line
    assert tags == {"iface": "wlan 0,a=b", "path": "/mnt/usb stick", "site": "site-1",
                    "clock": "unsynced"}  # fmt: skip
    assert ts_ns == 1_800_000_000_000


@pytest.mark.parametrize(
    ("payload", "lang", "status", "words"),
    [
        (b"not a payload", "en", 65, "does not follow the contract"),
        (b'{"schema": 9, "site": "x"}', "id", 65, "tidak sesuai kontrak"),
        (b"", "en", 66, "Nothing on standard input"),
    ],
)
def test_decode_refuses_bad_input_in_words_not_a_traceback(
    payload: bytes, lang: str, status: int, words: str
) -> None:
    """A payload that breaks the contract (or none at all) gets a sentence and an exit status."""
    result = decode(payload, "--lang", lang)
    assert result.returncode == status
    assert words in result.stderr.decode()
    assert "Traceback" not in result.stderr.decode()
