"""The collector's confirmation on `{prefix}/{site}/ack`: the only place its payload is built or read.

The collector publishes it retained, QoS 1; the agent reads it to learn what is stored and what to
re-send. Compact JSON, e.g.
`{"v":1,"ts":1765000000000,"epochs":[{"epoch":"e1","through":50,"missing":[[51,60]]}]}`:
- `ts`: when the collector computed it, milliseconds since the epoch, UTC;
- per epoch (at most `MAX_EPOCHS`, most recently active first): `through`, the highest seq up to
  which every reading of the epoch from the first one the collector saw is stored (0: none yet), and
  `missing`, inclusive `[first, last]` ranges above `through` it lacks (at most `MAX_RANGES`, lowest
  first; beyond the last range nothing is known, so a sender re-sends only what is listed).
Pure code without I/O, importable by both sides; the JSON Schema is schema/ack.schema.json. The
encoder writes exactly what the schema allows; the decoder ignores fields it does not know (a later
version 1 collector may add some) and takes a missing `missing` as none.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from agent.contract.fields import PayloadError

ACK_VERSION = 1
MAX_EPOCHS = 3
MAX_RANGES = 32
# A bound for the decoder: a valid ack with 3 epochs of 32 ranges of 19-digit seqs stays far below.
MAX_PAYLOAD_BYTES = 16_384
_MAX_SEQ = 2**63 - 1


class AckError(PayloadError):
    """The payload is not a valid ack of a known version: one of the contract's payload errors."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EpochAck:
    epoch: str
    through: int
    missing: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Ack:
    ts_ms: int
    epochs: tuple[EpochAck, ...]

    def for_epoch(self, epoch: str) -> EpochAck | None:
        """The confirmation of one seq series, or None if the collector says nothing of it."""
        return next((item for item in self.epochs if item.epoch == epoch), None)


def encode_ack(ack: Ack) -> bytes:
    """The compact JSON payload. Raise AckError on more epochs or ranges than the contract allows."""
    _check(ack)
    body: dict[str, Any] = {
        "v": ACK_VERSION,
        "ts": ack.ts_ms,
        "epochs": [
            {"epoch": e.epoch, "through": e.through, "missing": [list(r) for r in e.missing]}
            for e in ack.epochs
        ],
    }
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


def decode_ack(payload: bytes) -> Ack:
    """Read a payload. Raise AckError when it is too big, not JSON, of another version, or breaks a
    rule of the contract (ranges out of order, overlapping, at or below `through`)."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise AckError(f"ack payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    try:
        body = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise AckError(f"ack payload is not JSON: {err}") from err
    if not isinstance(body, dict) or body.get("v") != ACK_VERSION:
        raise AckError(f"ack payload is not version {ACK_VERSION}")
    ts = _int(body.get("ts"), "ts")
    raw_epochs = body.get("epochs")
    if not isinstance(raw_epochs, list):
        raise AckError("ack payload: 'epochs' must be a list")
    epochs = tuple(_epoch(item) for item in raw_epochs)
    ack = Ack(ts_ms=ts, epochs=epochs)
    _check(ack)
    return ack


def _epoch(item: object) -> EpochAck:
    if not isinstance(item, dict) or not isinstance(item.get("epoch"), str):
        raise AckError("ack payload: each epoch needs a string 'epoch'")
    raw_missing = item.get("missing", [])
    if not isinstance(raw_missing, list):
        raise AckError("ack payload: 'missing' must be a list")
    missing: list[tuple[int, int]] = []
    for pair in raw_missing:
        if not isinstance(pair, list) or len(pair) != 2:
            raise AckError("ack payload: a missing range is [first, last]")
        missing.append((_int(pair[0], "missing"), _int(pair[1], "missing")))
    return EpochAck(
        epoch=item["epoch"], through=_int(item.get("through"), "through"), missing=tuple(missing)
    )


def _int(value: object, name: str) -> int:
    # bool is an int to Python, not to the contract.
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _MAX_SEQ:
        raise AckError(f"ack payload: {name!r} must be an integer from 0 to {_MAX_SEQ}")
    return value


def _check(ack: Ack) -> None:
    if len(ack.epochs) > MAX_EPOCHS:
        raise AckError(f"ack lists {len(ack.epochs)} epochs, at most {MAX_EPOCHS}")
    if len({e.epoch for e in ack.epochs}) != len(ack.epochs):
        raise AckError("ack lists an epoch twice")
    for e in ack.epochs:
        if len(e.missing) > MAX_RANGES:
            raise AckError(f"ack lists {len(e.missing)} ranges for one epoch, at most {MAX_RANGES}")
        floor = e.through
        for first, last in e.missing:
            if not floor < first <= last:
                raise AckError(f"ack range [{first}, {last}] is out of order or not above {floor}")
            floor = last + 1
