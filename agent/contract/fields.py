"""Rules both telemetry layouts share: how a value is written, and what a decoder checks of a field.

Every check raises PayloadError with the place it looked at (`readings[3]`, `runs[1].v[2]`), so the
office can tell a gateway's bug from a damaged message without a debugger.
"""

from __future__ import annotations

import math
from typing import Any


class PayloadError(ValueError):
    """A payload does not follow the contract; the message says where."""


# Series whose values count whole things: they are written as JSON integers, every other series as
# JSON floats (`5.0`, never `5`), so a typed store (an InfluxDB field) sees one type per series.
# The unit is the metric's last word (README, "Metrics"); event markers without a unit count one.
_INTEGER_UNITS = (
    "_bytes",
    "_packets",
    "_errors",
    "_drops",
    "_count",
    "_total",
    "_bool",
    "_readings",
)
_INTEGER_METRICS = frozenset({"uptime.backhaul_up"})
_FLOAT_UNITS = ("_ms", "_s", "_bps", "_percent", "_ratio", "_celsius")


def is_integer_metric(metric: str) -> bool:
    """Whether `metric`'s values are JSON integers on the wire (counts, 1/0 flags, event markers)."""
    if metric in _INTEGER_METRICS or metric.endswith(_INTEGER_UNITS):
        return True
    return metric.startswith("event.") and not metric.endswith(_FLOAT_UNITS)


def number(value: float, metric: str) -> float | int:
    """A value as the contract writes it: an integer for a counting metric, else a float rounded to
    six decimals, whole or not, so each series keeps one JSON number type."""
    # Six decimals are far below what any probe resolves, and short numbers compress. Six
    # significant digits instead were measured on the bench's rounds and saved nothing: the
    # probes already round where they measure (0.1 s, 0.1 bit/s, 0.001 ms), so the digits left
    # are the ones that mean something. Both schemas round alike, so they decode alike.
    if is_integer_metric(metric):
        return round(value)
    return float(round(value, 6))


def field(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    """obj[key], which must be there and of `kind` (true/false only where `kind` says bool)."""
    if key not in obj:
        raise PayloadError(f"{where}: '{key}' is missing")
    return _checked(obj[key], key, kind, where)


def optional(
    obj: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str, default: Any
) -> Any:
    """obj[key] if it is there (and of `kind`), else `default`."""
    if key not in obj:
        return default
    return _checked(obj[key], key, kind, where)


def _checked(value: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise PayloadError(f"{where}: '{key}' must not be true/false")
    if not isinstance(value, kind):
        raise PayloadError(f"{where}: '{key}' has the wrong type")
    return value


def value(raw: object, where: str) -> float:
    """A reading's value: a finite number, not true/false."""
    if isinstance(raw, bool):
        raise PayloadError(f"{where}: a value must be a number, not true/false")
    if not isinstance(raw, int | float) or not _finite(raw):
        raise PayloadError(f"{where}: a value must be a finite number")
    return float(raw)


def _finite(raw: float) -> bool:
    try:
        return math.isfinite(raw)
    except OverflowError:  # an integer literal beyond a float's range, such as 1 and 400 zeros
        return False


def tags(raw: object, where: str) -> dict[str, str]:
    """A tags object: strings to strings."""
    if not isinstance(raw, dict):
        raise PayloadError(f"{where}: tags must be an object")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in raw.items()):
        raise PayloadError(f"{where}: tags must map strings to strings")
    return dict(raw)
