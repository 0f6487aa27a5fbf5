"""The contract's payloads other than telemetry: the retained status, the alarm on the `event`
topic and the import marker. Compact JSON, one builder each, so every sender writes the same
fields.
"""

from __future__ import annotations

import json
from typing import Any

ALARM_SCHEMA = 1


def _compact(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


def encode_status(
    state: str, *, site: str, version: str, config_digest: str, ts_ms: int | None = None
) -> bytes:
    """The retained `{prefix}/{site}/status` payload: `online` or `offline`, with what runs there
    (`config`: the fingerprint of the effective configuration, so the office sees a change)."""
    body: dict[str, Any] = {
        "state": state,
        "site": site,
        "version": version,
        "config": config_digest,
    }
    if ts_ms is not None:
        body["ts"] = ts_ms
    return _compact(body)


def encode_alarm(*, site: str, kind: str, detail: str, ts_ms: int) -> bytes:
    """An alarm on `{prefix}/{site}/event`, for the moments the buffer itself cannot take a
    reading (disk full, card read-only): `ts` in milliseconds since the epoch, UTC."""
    return _compact(
        {"schema": ALARM_SCHEMA, "site": site, "event": kind, "detail": detail, "ts": ts_ms}
    )


def encode_import_marker(*, state: str, file: str, count: int, by: str) -> bytes:
    """The retained `{prefix}/{site}/import` payload of a `buffer import`: `importing` while it
    runs, `stopped` (its last will) when it ends or dies; `by` is the importing gateway's site."""
    return _compact({"state": state, "file": file, "count": count, "by": by})
