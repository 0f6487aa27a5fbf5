"""Readings as JSON lines: one object per reading, the fields of a schema 1 reading plus `site`."""

from __future__ import annotations

import json
from collections.abc import Iterator

from collector.decode import Batch


def lines(batch: Batch) -> Iterator[str]:
    for r in batch.readings:
        yield json.dumps(
            {
                "site": batch.site,
                "seq": r.seq,
                "ts": r.ts_ms,
                "metric": r.metric,
                "value": r.value,
                "tags": dict(r.tags),
                "boot": r.boot_id,
                "mono": r.mono_ms,
                "synced": r.synced,
            },
            separators=(",", ":"),
            ensure_ascii=False,
            sort_keys=False,
        )
