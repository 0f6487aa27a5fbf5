"""The MQTT contract's payloads: encoding, decoding, the JSON Schema, and bad messages."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import jsonschema
import pytest

from agent.payload import PayloadError, decode_telemetry, encode_telemetry
from agent.reading import Reading

SCHEMA = json.loads(
    (
        Path(__file__).resolve().parent.parent / "agent" / "schema" / "telemetry.schema.json"
    ).read_text()
)


def _reading(seq: int, value: float = 612.25) -> Reading:
    return Reading(
        seq=seq,
        metric="latency.rtt_avg_ms",
        value=value,
        tags={"target": "1.1.1.1", "method": "icmp-raw"},
        ts_ms=1_800_000_000_000 + seq,
        mono_ms=10_000 + seq,
        boot_id="0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9",
        synced=True,
    )


def test_a_batch_round_trips_and_matches_the_schema() -> None:
    """encode -> inflate -> JSON Schema valid -> decode gives the same readings."""
    readings = [_reading(s) for s in range(1, 51)]
    payload = encode_telemetry("site-a", readings)
    body = json.loads(zlib.decompress(payload))
    jsonschema.validate(body, SCHEMA)
    batch = decode_telemetry(payload)
    assert batch.site == "site-a"
    assert batch.readings == tuple(readings)


def test_uncompressed_payloads_decode_too() -> None:
    """compression off gives plain JSON that the same decoder reads."""
    payload = encode_telemetry("site-a", [_reading(1)], compress=False)
    assert payload.startswith(b"{")
    assert decode_telemetry(payload).readings[0].seq == 1


def test_compression_pays_for_itself_on_a_round() -> None:
    """A typical batch compresses to a fraction of its JSON size."""
    readings = [_reading(s, value=600 + s % 7) for s in range(1, 41)]
    plain = encode_telemetry("site-a", readings, compress=False)
    packed = encode_telemetry("site-a", readings)
    assert len(packed) < len(plain) / 4


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\x78\x9c garbage", "zlib"),
        (b"[1, 2]", "neither JSON nor a zlib stream"),
        (b'{"schema": 2, "site": "a", "readings": []}', "schema 2"),
        (b'{"schema": 1, "readings": []}', "'site' is missing"),
        (b'{"schema": 1, "site": "a", "readings": [{"seq": 0}]}', "missing"),
        (
            b'{"schema": 1, "site": "a", "readings": [{"seq": 1, "ts": 1, "metric": "m", '
            b'"value": true, "tags": {}}]}',
            "true/false",
        ),
        (
            b'{"schema": 1, "site": "a", "readings": [{"seq": 1, "ts": 1, "metric": "m", '
            b'"value": 1, "tags": {"a": 1}}]}',
            "strings",
        ),
        (
            b'{"schema": 1, "site": "a", "readings": [{"seq": 1, "ts": 1, "metric": "m", '
            b'"value": 1' + b"0" * 400 + b', "tags": {}}]}',
            "finite",
        ),
        (b'{"schema": 1, "site": "a", "readings": [' + b"1" * 5000 + b"]}", "not valid JSON"),
        (zlib.compress(b"{" + b" " * 10_000_000 + b"}"), "inflates to more than"),
    ],
)
def test_bad_payloads_are_rejected_with_a_reason(payload: bytes, reason: str) -> None:
    """A bad message raises PayloadError that says what is wrong, never anything else."""
    with pytest.raises(PayloadError, match=reason):
        decode_telemetry(payload)
