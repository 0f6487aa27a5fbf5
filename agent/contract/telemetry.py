"""The MQTT contract's payloads: encoding a batch of readings and decoding it again.

Telemetry is compact JSON, zlib-compressed (RFC 1950) by default because village links are metered.
A decoder tells the two apart by the first byte: JSON starts with '{', a zlib stream with 0x78.
Two layouts exist, named by the object's `schema` field, and the decoder reads both:
- 1: every reading an object of its own (agent/contract/schema/telemetry.schema.json); plain zlib.
- 2: series named once per message, readings in runs (agent/contract/telemetry_v2.py,
  agent/contract/schema/telemetry-2.schema.json); zlib with the preset dictionary telemetry-2.zdict.
Both carry `epoch` at the top: the id of the sending buffer's seq series. A reading is identified by
(site, epoch, seq); a payload from an agent older than epochs has none, and decodes with epoch "".
"""

from __future__ import annotations

import functools
import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.contract import telemetry_v2
from agent.contract.fields import PayloadError, field, number, optional, tags, value
from agent.reading import Reading

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "SCHEMAS",
    "Batch",
    "PayloadError",
    "decode_telemetry",
    "encode_telemetry",
    "reading_object",
]

SCHEMAS = (1, 2)  # the layouts this decoder reads; the agent sends broker.payload_schema
MAX_PAYLOAD_BYTES = 4 * 1024 * 1024  # refuse to inflate more than this: a zip bomb is a bad message
MAX_EPOCH_CHARS = 64  # agents send 16; the bound keeps a hostile key out of the collector's index

_SCHEMA_DIR = Path(__file__).resolve().parent / "schema"
# Preset dictionaries are part of the contract: a payload names its dictionary only by adler32
# (the zlib DICTID), so a shipped file is never edited. A better dictionary is a new file, added
# here, and decoders keep knowing the old one for payloads still in flight.
_DICTIONARY_FILES = ("telemetry-2.zdict",)
_SEND_DICTIONARY = "telemetry-2.zdict"
_FDICT = 0x20  # FLG bit of the zlib header: a DICTID follows


@dataclass(frozen=True, slots=True, kw_only=True)
class Batch:
    site: str
    epoch: str  # the seq series the readings belong to; "" when the payload names none
    readings: tuple[Reading, ...]
    schema: int


@functools.cache
def _dictionary(name: str) -> bytes:
    return (_SCHEMA_DIR / name).read_bytes()


@functools.cache
def _dictionaries() -> dict[int, bytes]:
    return {zlib.adler32(_dictionary(n)): _dictionary(n) for n in _DICTIONARY_FILES}


def reading_object(reading: Reading) -> dict[str, Any]:
    """One reading as schema 1 writes it."""
    return {
        "seq": reading.seq,
        "ts": reading.ts_ms,
        "metric": reading.metric,
        "value": number(reading.value, reading.metric),
        "tags": dict(reading.tags),
        "boot": reading.boot_id,
        "mono": reading.mono_ms,
        "synced": reading.synced,
    }


def encode_telemetry(
    site: str,
    readings: Sequence[Reading],
    *,
    epoch: str = "",
    compress: bool = True,
    schema: int = 2,
) -> bytes:
    """Encode a batch for `{prefix}/{site}/telemetry` in layout `schema` (1 or 2), naming the seq
    series `epoch` (the agent passes its buffer's). Schema 2 needs the readings in increasing seq
    order, as the buffer gives them; raise ValueError otherwise."""
    if schema == 1:
        body = {
            "schema": 1,
            "site": site,
            "epoch": epoch,
            "readings": [reading_object(r) for r in readings],
        }
    elif schema == 2:
        body = telemetry_v2.body(site, readings, epoch=epoch)
    else:
        raise ValueError(f"no telemetry schema {schema}; there are {SCHEMAS}")
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    raw = text.encode("utf-8")
    if not compress:
        return raw
    if schema == 1:
        return zlib.compress(raw, 9)
    packer = zlib.compressobj(
        9, zlib.DEFLATED, zlib.MAX_WBITS, 9, zlib.Z_DEFAULT_STRATEGY, _dictionary(_SEND_DICTIONARY)
    )
    return packer.compress(raw) + packer.flush()


def _preset(payload: bytes) -> bytes | None:
    """The preset dictionary a zlib stream's header asks for, or None if it asks for none."""
    if len(payload) < 2 or (payload[0] << 8 | payload[1]) % 31 or not payload[1] & _FDICT:
        return None  # no zlib header, or one without FDICT: zlib itself says what is wrong
    if len(payload) < 6:
        raise PayloadError("the zlib stream is truncated in its header")
    wanted = int.from_bytes(payload[2:6], "big")
    known = _dictionaries()
    if wanted not in known:
        names = ", ".join(f"{n} ({zlib.adler32(_dictionary(n)):#010x})" for n in _DICTIONARY_FILES)
        raise PayloadError(
            f"the zlib stream needs preset dictionary {wanted:#010x}, which this decoder does not "
            f"know (it knows {names}); a newer agent may have sent it: update the decoder"
        )
    return known[wanted]


def _inflate(payload: bytes) -> bytes:
    if payload[:1] == b"{":
        return payload
    zdict = _preset(payload)
    try:
        inflater = zlib.decompressobj() if zdict is None else zlib.decompressobj(zdict=zdict)
        raw = inflater.decompress(payload, MAX_PAYLOAD_BYTES)
    except zlib.error as err:
        raise PayloadError(f"neither JSON nor a zlib stream: {err}") from err
    if inflater.unconsumed_tail:
        raise PayloadError(f"inflates to more than {MAX_PAYLOAD_BYTES} bytes")
    if not inflater.eof:
        raise PayloadError("the zlib stream is truncated")
    return raw


def _decode_reading(obj: object, where: str) -> Reading:
    if not isinstance(obj, dict):
        raise PayloadError(f"{where}: a reading must be an object")
    reading_value = value(field(obj, "value", (int, float), where), where)
    reading_tags = tags(field(obj, "tags", dict, where), where)
    seq = field(obj, "seq", int, where)
    if seq < 1:
        raise PayloadError(f"{where}: 'seq' must be positive")
    return Reading(
        seq=seq,
        ts_ms=field(obj, "ts", int, where),
        metric=field(obj, "metric", str, where),
        value=reading_value,
        tags=reading_tags,
        boot_id=str(obj.get("boot", "")),
        mono_ms=int(obj.get("mono", 0)) if isinstance(obj.get("mono", 0), int) else 0,
        synced=bool(obj.get("synced", True)),
    )


def decode_telemetry(payload: bytes) -> Batch:
    """Decode and check a telemetry payload of either schema. Raise PayloadError saying what is
    wrong and where."""
    raw = _inflate(payload)
    try:
        body = json.loads(raw)
    # ValueError covers bad UTF-8, bad JSON, and integers longer than Python's 4300-digit limit.
    except (ValueError, RecursionError) as err:
        raise PayloadError(f"not valid JSON: {err}") from err
    if not isinstance(body, dict):
        raise PayloadError("the payload must be a JSON object")
    schema = field(body, "schema", int, "payload")
    if schema not in SCHEMAS:
        raise PayloadError(
            f"payload: schema {schema} is not supported (this decoder reads "
            f"{' and '.join(map(str, SCHEMAS))})"
        )
    site = field(body, "site", str, "payload")
    epoch = optional(body, "epoch", str, "payload", "")
    if len(epoch) > MAX_EPOCH_CHARS:
        raise PayloadError(f"payload: 'epoch' is longer than {MAX_EPOCH_CHARS} characters")
    if schema == 2:
        return Batch(site=site, epoch=epoch, readings=telemetry_v2.readings(body), schema=2)
    readings = field(body, "readings", list, "payload")
    decoded = tuple(_decode_reading(r, f"readings[{i}]") for i, r in enumerate(readings))
    return Batch(site=site, epoch=epoch, readings=decoded, schema=1)
