"""Readings as InfluxDB line protocol, escaped as its spec says.

A metric `family.name` becomes measurement `family`, field `name`; the reading's tags and `site` are
tags; the value is always a float field (never `i`); the timestamp is `ts` in nanoseconds. A reading
taken before the gateway's clock synced carries the tag `clock=unsynced`: its time is the gateway's
guess (the collector's database has it corrected). Line protocol has no empty tag values and no
newlines, so an empty tag is left out and a newline is written as a space.
"""

from __future__ import annotations

from collections.abc import Iterator

from collector.decode import Batch

_MEASUREMENT = str.maketrans({",": "\\,", " ": "\\ ", "\n": " "})
_KEY = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ ", "\n": " "})


def measurement_and_field(metric: str) -> tuple[str, str]:
    family, dot, name = metric.partition(".")
    return (family, name) if dot and name else (metric, "value")


def _float(value: float) -> str:
    # repr is the shortest text that reads back as the same double, with a '.' or an exponent
    # for whole numbers too ("1.0", "1e+20"), so InfluxDB stores a float, never an integer.
    return repr(float(value))


def lines(batch: Batch) -> Iterator[str]:
    for r in batch.readings:
        measurement, field = measurement_and_field(r.metric)
        tags = {**r.tags, "site": batch.site}
        if not r.synced:
            tags["clock"] = "unsynced"
        tag_text = "".join(
            f",{k.translate(_KEY)}={v.translate(_KEY)}" for k, v in sorted(tags.items()) if k and v
        )
        yield (
            f"{measurement.translate(_MEASUREMENT)}{tag_text} "
            f"{field.translate(_KEY)}={_float(r.value)} {r.ts_ms * 1_000_000}"
        )
