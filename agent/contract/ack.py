"""The collector's confirmation on `{prefix}/{site}/ack` (retained, QoS 1), version 1:

    {"v": 1, "ts": <ms>, "epochs": [{"epoch": "<str>", "through": N, "missing": [[a, b], ...]}]}

Per epoch, `through` is the highest seq up to which every reading the collector ever saw is stored;
`missing` holds at most 32 inclusive seq ranges above `through` that it lacks. This module is the
only place the payload is encoded or decoded; the agent reads it, the collector writes it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from agent.contract.fields import PayloadError

VERSION = 1
MISSING_MAX = 32
# A real ack is a few hundred bytes; this only keeps a hostile one from costing memory.
PAYLOAD_MAX_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class EpochAck:
    epoch: str
    through: int
    missing: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class AckPayload:
    ts_ms: int
    epochs: tuple[EpochAck, ...]

    def for_epoch(self, epoch: str) -> EpochAck | None:
        """The confirmation of one seq series, or None if the collector says nothing of it."""
        return next((item for item in self.epochs if item.epoch == epoch), None)


def encode_ack(ack: AckPayload) -> bytes:
    body = {
        "v": VERSION,
        "ts": ack.ts_ms,
        "epochs": [
            {"epoch": e.epoch, "through": e.through, "missing": [list(r) for r in e.missing]}
            for e in ack.epochs
        ],
    }
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


def _int(value: Any, where: str) -> int:
    # bool is an int to Python, never to the contract.
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise PayloadError(f"{where}: expected a whole number >= 0, got {value!r}")
    return value


def _epoch(obj: Any, where: str) -> EpochAck:
    if not isinstance(obj, dict):
        raise PayloadError(f"{where}: expected an object")
    epoch = obj.get("epoch")
    if not isinstance(epoch, str):
        raise PayloadError(f"{where}.epoch: expected a string, got {epoch!r}")
    through = _int(obj.get("through"), f"{where}.through")
    missing = obj.get("missing", [])
    if not isinstance(missing, list) or len(missing) > MISSING_MAX:
        raise PayloadError(f"{where}.missing: expected a list of at most {MISSING_MAX} ranges")
    spans: list[tuple[int, int]] = []
    for index, item in enumerate(missing):
        place = f"{where}.missing[{index}]"
        if not isinstance(item, list) or len(item) != 2:
            raise PayloadError(f"{place}: expected [first, last]")
        lo, hi = _int(item[0], place), _int(item[1], place)
        if not through < lo <= hi:
            raise PayloadError(f"{place}: expected through < first <= last, got [{lo}, {hi}]")
        spans.append((lo, hi))
    return EpochAck(epoch=epoch, through=through, missing=tuple(sorted(spans)))


def decode_ack(payload: bytes) -> AckPayload:
    """The ack in `payload`. Raise PayloadError, naming the place, for anything else."""
    if len(payload) > PAYLOAD_MAX_BYTES:
        raise PayloadError(f"ack: {len(payload)} bytes, more than {PAYLOAD_MAX_BYTES}")
    try:
        obj = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise PayloadError(f"ack: not JSON ({err})") from err
    if not isinstance(obj, dict):
        raise PayloadError("ack: expected an object")
    if obj.get("v") != VERSION:
        raise PayloadError(f"ack.v: expected {VERSION}, got {obj.get('v')!r}")
    ts_ms = _int(obj.get("ts"), "ack.ts")
    epochs = obj.get("epochs")
    if not isinstance(epochs, list):
        raise PayloadError("ack.epochs: expected a list")
    return AckPayload(
        ts_ms=ts_ms, epochs=tuple(_epoch(e, f"ack.epochs[{i}]") for i, e in enumerate(epochs))
    )
