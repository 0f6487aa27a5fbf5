"""The MQTT contract's payloads: encoding a batch of readings and decoding it again.

Telemetry is compact JSON, zlib-compressed (RFC 1950) by default because village links are metered.
A decoder tells the two apart by the first byte: JSON starts with '{', a zlib stream with 0x78.
The JSON Schema of the decoded object is agent/schema/telemetry.schema.json.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agent.reading import Reading

SCHEMA = 1
MAX_PAYLOAD_BYTES = 4 * 1024 * 1024  # refuse to inflate more than this: a zip bomb is a bad message


class PayloadError(ValueError):
    """A payload does not follow the contract; the message says where."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Batch:
    site: str
    readings: tuple[Reading, ...]
    schema: int = SCHEMA


def _number(value: float) -> float | int:
    # Six significant decimals are far below what any probe resolves, and short numbers compress.
    if value == int(value) and abs(value) < 2**53:
        return int(value)
    return round(value, 6)


def reading_object(reading: Reading) -> dict[str, Any]:
    """One reading as the contract writes it."""
    return {
        "seq": reading.seq,
        "ts": reading.ts_ms,
        "metric": reading.metric,
        "value": _number(reading.value),
        "tags": dict(reading.tags),
        "boot": reading.boot_id,
        "mono": reading.mono_ms,
        "synced": reading.synced,
    }


def encode_telemetry(site: str, readings: Sequence[Reading], *, compress: bool = True) -> bytes:
    """Encode a batch for `{prefix}/{site}/telemetry`."""
    body = {"schema": SCHEMA, "site": site, "readings": [reading_object(r) for r in readings]}
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    raw = text.encode("utf-8")
    return zlib.compress(raw, 9) if compress else raw


def _inflate(payload: bytes) -> bytes:
    if payload[:1] == b"{":
        return payload
    try:
        inflater = zlib.decompressobj()
        raw = inflater.decompress(payload, MAX_PAYLOAD_BYTES)
    except zlib.error as err:
        raise PayloadError(f"neither JSON nor a zlib stream: {err}") from err
    if inflater.unconsumed_tail:
        raise PayloadError(f"inflates to more than {MAX_PAYLOAD_BYTES} bytes")
    if not inflater.eof:
        raise PayloadError("the zlib stream is truncated")
    return raw


def _field(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in obj:
        raise PayloadError(f"{where}: '{key}' is missing")
    value = obj[key]
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise PayloadError(f"{where}: '{key}' must not be true/false")
    if not isinstance(value, kind):
        raise PayloadError(f"{where}: '{key}' has the wrong type")
    return value


def _finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer literal beyond a float's range, such as 1 and 400 zeros
        return False


def _decode_reading(obj: object, where: str) -> Reading:
    if not isinstance(obj, dict):
        raise PayloadError(f"{where}: a reading must be an object")
    value = _field(obj, "value", (int, float), where)
    if not _finite(value):
        raise PayloadError(f"{where}: 'value' must be a finite number")
    tags = _field(obj, "tags", dict, where)
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
        raise PayloadError(f"{where}: 'tags' must map strings to strings")
    seq = _field(obj, "seq", int, where)
    if seq < 1:
        raise PayloadError(f"{where}: 'seq' must be positive")
    return Reading(
        seq=seq,
        ts_ms=_field(obj, "ts", int, where),
        metric=_field(obj, "metric", str, where),
        value=float(value),
        tags=tags,
        boot_id=str(obj.get("boot", "")),
        mono_ms=int(obj.get("mono", 0)) if isinstance(obj.get("mono", 0), int) else 0,
        synced=bool(obj.get("synced", False)),
    )


def decode_telemetry(payload: bytes) -> Batch:
    """Decode and check a telemetry payload. Raise PayloadError saying what is wrong."""
    raw = _inflate(payload)
    try:
        body = json.loads(raw)
    # ValueError covers bad UTF-8, bad JSON, and integers longer than Python's 4300-digit limit.
    except (ValueError, RecursionError) as err:
        raise PayloadError(f"not valid JSON: {err}") from err
    if not isinstance(body, dict):
        raise PayloadError("the payload must be a JSON object")
    schema = _field(body, "schema", int, "payload")
    if schema != SCHEMA:
        raise PayloadError(
            f"payload: schema {schema} is not supported (this decoder reads {SCHEMA})"
        )
    site = _field(body, "site", str, "payload")
    readings = _field(body, "readings", list, "payload")
    decoded = tuple(_decode_reading(r, f"readings[{i}]") for i, r in enumerate(readings))
    return Batch(site=site, readings=decoded, schema=schema)


def encode_status(
    state: str, *, site: str, version: str, config_digest: str, ts_ms: int | None = None
) -> bytes:
    """The retained `{prefix}/{site}/status` payload: `online` or `offline`, with what runs there."""
    body: dict[str, Any] = {
        "state": state,
        "site": site,
        "version": version,
        "config": config_digest,
    }
    if ts_ms is not None:
        body["ts"] = ts_ms
    return json.dumps(body, separators=(",", ":")).encode("utf-8")
