"""Decode village-agent telemetry without the agent's code: the README's example, tested as is."""

import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ZDICT = (Path(__file__).parent.parent / "agent/contract/schema/telemetry-2.zdict").read_bytes()
FIELDS = ("seq", "ts", "metric", "value", "tags", "boot", "mono", "synced")
# What an absent optional field means, the same in both schemas.
DEFAULTS = {"boot": "", "mono": 0, "synced": True}


def body(payload: bytes) -> dict[str, Any]:
    if payload[:1] == b"{":
        return dict(json.loads(payload))
    # zlib uses zdict only for a stream whose header asks for it (FDICT), so schema 1 inflates too.
    return dict(json.loads(zlib.decompressobj(zdict=ZDICT).decompress(payload)))


def readings(b: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every reading of a message of either schema, each with all eight fields."""
    if b["schema"] == 1:
        for r in b["readings"]:
            yield {**DEFAULTS, **{k: r[k] for k in FIELDS if k in r}}
        return
    ts, mono = b["ts0"], b["mono0"]
    for run in b["runs"]:
        ts += run.get("dt", 0)
        mono += run.get("dm", run.get("dt", 0))
        values, s = run["v"], run.get("s", 0)
        indices = s if isinstance(s, list) else range(s, s + len(values))
        # strict: an `s` list shorter or longer than `v` is a broken message, not fewer readings.
        for j, (value, k) in enumerate(zip(values, indices, strict=True)):
            metric, tags = b["series"][k]
            yield {
                "seq": run["seq"] + j,
                "ts": ts,
                "metric": metric,
                "value": value,
                "tags": tags,
                "boot": b["boots"][run.get("boot", 0)],
                "mono": mono,
                "synced": run.get("synced", DEFAULTS["synced"]),
            }
