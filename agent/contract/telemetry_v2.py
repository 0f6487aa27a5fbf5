"""Telemetry schema 2: each series named once per message, readings grouped in runs.

    {"schema": 2, "site": S, "epoch": E, "ts0": T, "mono0": M, "boots": [B, ...],
     "series": [[metric, {tags}], ...],
     "runs": [{"seq": N, "dt": D, "dm": E, "boot": I, "synced": false, "s": X, "v": [values]}, ...]}

A run is readings with consecutive seqs (N, N+1, ...) that share ts, mono, boot and synced: a round,
or the part of one a message holds. Of a run only `seq` and `v` are required:
- `dt`: ts minus the previous run's ts (the first run's: minus ts0); absent: 0.
- `dm`: the same for mono; absent: equal to dt (both clocks advance together within a boot).
- `boot`: index into `boots`; absent: 0. `synced`: absent: true.
- `s`: the series of each value, as indices into `series`. Absent: 0, 1, ..., n-1; an integer k:
  k, k+1, ..., k+n-1; else a list with one index per value.
Every message stands on its own (QoS 1 may deliver out of order or twice): no state across messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agent.contract.fields import PayloadError, field, number, optional, tags, value
from agent.reading import Reading

SeriesKey = tuple[str, tuple[tuple[str, str], ...]]


def _key(reading: Reading) -> SeriesKey:
    # Tags in key order: the same tags given in another order are the same series.
    return reading.metric, tuple(sorted(reading.tags.items()))


def _same_stamp(a: Reading, b: Reading) -> bool:
    return (a.ts_ms, a.mono_ms, a.boot_id, a.synced) == (b.ts_ms, b.mono_ms, b.boot_id, b.synced)


def _runs(readings: Sequence[Reading]) -> list[list[Reading]]:
    runs: list[list[Reading]] = []
    for reading in readings:
        if runs:
            last = runs[-1][-1]
            if reading.seq <= last.seq:
                raise ValueError(
                    f"schema 2 needs readings in increasing seq order: {reading.seq} after {last.seq}"
                )
            if reading.seq == last.seq + 1 and _same_stamp(reading, last):
                runs[-1].append(reading)
                continue
        runs.append([reading])
    return runs


def body(site: str, readings: Sequence[Reading], *, epoch: str) -> dict[str, Any]:
    """The schema 2 object for a batch of the seq series `epoch`. Raise ValueError unless seqs
    increase."""
    runs = _runs(readings)
    # The series table follows the longest run (a full round, in a drain's batch of many rounds),
    # so every full round needs no `s`; a round cut short at either end of the batch gives k.
    series: dict[SeriesKey, int] = {}
    for run in ([max(runs, key=len)] if runs else []) + runs:
        for reading in run:
            series.setdefault(_key(reading), len(series))
    boots: dict[str, int] = {}
    for run in runs:
        boots.setdefault(run[0].boot_id, len(boots))
    ts = runs[0][0].ts_ms if runs else 0
    mono = runs[0][0].mono_ms if runs else 0
    out: dict[str, Any] = {"schema": 2, "site": site, "epoch": epoch, "ts0": ts, "mono0": mono}
    out["boots"] = list(boots)
    out["series"] = [[metric, dict(pairs)] for metric, pairs in series]
    out["runs"] = []
    for run in runs:
        first = run[0]
        obj: dict[str, Any] = {"seq": first.seq}
        dt, dm = first.ts_ms - ts, first.mono_ms - mono
        ts, mono = first.ts_ms, first.mono_ms
        if dt:
            obj["dt"] = dt
        if dm != dt:
            obj["dm"] = dm
        if boots[first.boot_id]:
            obj["boot"] = boots[first.boot_id]
        if not first.synced:
            obj["synced"] = False
        indices = [series[_key(r)] for r in run]
        start = indices[0]
        if indices != list(range(start, start + len(indices))):
            obj["s"] = indices
        elif start:
            obj["s"] = start
        obj["v"] = [number(r.value, r.metric) for r in run]
        out["runs"].append(obj)
    return out


def _index(raw: object, limit: int, what: str, where: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise PayloadError(f"{where}: a {what} index must be a whole number")
    if not 0 <= raw < limit:
        have = f"0..{limit - 1}" if limit else "empty"
        raise PayloadError(f"{where}: {what} {raw} is not in the message's {what} list ({have})")
    return raw


def _series_table(body: dict[str, Any]) -> list[tuple[str, dict[str, str]]]:
    table = []
    for i, entry in enumerate(field(body, "series", list, "payload")):
        where = f"series[{i}]"
        if not isinstance(entry, list) or len(entry) != 2 or not isinstance(entry[0], str):
            raise PayloadError(f"{where}: a series must be [metric, {{tags}}]")
        table.append((entry[0], tags(entry[1], where)))
    return table


def _series_of(run: dict[str, Any], count: int, limit: int, where: str) -> list[int]:
    raw = optional(run, "s", (int, list), where, 0)
    if isinstance(raw, int):
        return [_index(raw + j, limit, "series", f"{where}.s") for j in range(count)]
    if len(raw) != count:
        raise PayloadError(f"{where}: 's' lists {len(raw)} series for {count} values")
    return [_index(k, limit, "series", f"{where}.s[{j}]") for j, k in enumerate(raw)]


def readings(body: dict[str, Any]) -> tuple[Reading, ...]:
    """The readings of a schema 2 object. Raise PayloadError saying where it breaks the layout."""
    ts = field(body, "ts0", int, "payload")
    mono = field(body, "mono0", int, "payload")
    boots = field(body, "boots", list, "payload")
    for i, boot in enumerate(boots):
        if not isinstance(boot, str):
            raise PayloadError(f"boots[{i}]: a boot id must be a string")
    table = _series_table(body)
    out: list[Reading] = []
    last_seq = 0
    for i, run in enumerate(field(body, "runs", list, "payload")):
        where = f"runs[{i}]"
        if not isinstance(run, dict):
            raise PayloadError(f"{where}: a run must be an object")
        seq = field(run, "seq", int, where)
        if seq < 1:
            raise PayloadError(f"{where}: 'seq' must be positive")
        if seq <= last_seq:
            raise PayloadError(
                f"{where}: 'seq' {seq} does not follow the previous run, which ended at {last_seq}"
            )
        dt = optional(run, "dt", int, where, 0)
        dm = optional(run, "dm", int, where, dt)
        boot = _index(optional(run, "boot", int, where, 0), len(boots), "boot", where)
        synced = optional(run, "synced", bool, where, True)
        values = field(run, "v", list, where)
        if not values:
            raise PayloadError(f"{where}: 'v' is empty; a run carries at least one value")
        indices = _series_of(run, len(values), len(table), where)
        ts, mono = ts + dt, mono + dm
        for j, (raw, k) in enumerate(zip(values, indices, strict=True)):
            metric, series_tags = table[k]
            out.append(
                Reading(
                    seq=seq + j,
                    ts_ms=ts,
                    metric=metric,
                    value=value(raw, f"{where}.v[{j}]"),
                    tags=dict(series_tags),
                    boot_id=boots[boot],
                    mono_ms=mono,
                    synced=synced,
                )
            )
        last_seq = seq + len(values) - 1
    return tuple(out)
