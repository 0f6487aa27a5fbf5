"""The README's decoder, run as written on a thousand of the agent's own payloads.

The payloads come from the agent's real encoders fed with rounds of its real probes (measured once
on this machine, then varied as a site's values vary); each is validated against the JSON Schema of
its layout and decoded both by the README's example and by `decode_telemetry`.
"""

from __future__ import annotations

import importlib.util
import json
import random
import zlib
from collections import defaultdict
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest

from agent.contract.fields import is_integer_metric
from agent.contract.telemetry import decode_telemetry, encode_telemetry
from agent.reading import Reading
from bench import samples

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "docs" / "decoder_example.py"
SCHEMAS = {
    n: json.loads((REPO / "agent" / "contract" / "schema" / name).read_text())
    for n, name in ((1, "telemetry.schema.json"), (2, "telemetry-2.schema.json"))
}
PAYLOADS = 1000
SITE = "kukar-tenggarong-01"


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("decoder_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def example() -> ModuleType:
    return _example()


@pytest.fixture(scope="module")
def payloads(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[bytes, list[Reading]]]:
    """A thousand payloads of both schemas, compressed or not: single rounds, rounds cut short,
    drains of many rounds, readings from before a clock sync and from another boot."""
    base = samples.template(tmp_path_factory.mktemp("probes"))
    rounds = list(samples.rounds(base, 3000, start_ms=1_795_461_227_068))
    rng = random.Random(16)
    out: list[tuple[bytes, list[Reading]]] = []
    seq, position = 0, 0
    for index in range(PAYLOADS):
        take = rng.choice([1, 1, 1, 2, 5])
        readings: list[Reading] = []
        for stamp, round_samples in rounds[position : position + take]:
            synced = stamp.synced and index % 7 != 3
            boot = stamp.boot_id if index % 11 else "0b5c1e9a-0000-4000-8000-000000000016"
            for sample in round_samples:
                seq += rng.choice([1] * 30 + [2])  # now and then a seq dropped or already sent
                readings.append(
                    Reading(
                        seq=seq,
                        metric=sample.metric,
                        value=sample.value,
                        tags=sample.tags,
                        ts_ms=stamp.ts_ms,
                        mono_ms=stamp.mono_ms,
                        boot_id=boot,
                        synced=synced,
                    )
                )
        position = (position + take) % (len(rounds) - 5)
        if index % 5 == 4:  # a batch cut in the middle of a round
            readings = readings[rng.randrange(1, len(readings)) :]
        out.append(
            (
                encode_telemetry(SITE, readings, schema=1 + index % 2, compress=index % 3 != 0),
                readings,
            )
        )
    return out


def _as_tuple(reading: dict[str, Any]) -> tuple[Any, ...]:
    return (
        reading["seq"],
        reading["ts"],
        reading["metric"],
        float(reading["value"]),
        reading["tags"],
        reading["boot"],
        reading["mono"],
        reading["synced"],
    )


def _from_reading(r: Reading) -> tuple[Any, ...]:
    return (r.seq, r.ts_ms, r.metric, r.value, dict(r.tags), r.boot_id, r.mono_ms, r.synced)


def test_the_readme_shows_the_tested_file() -> None:
    """The README's Python block is docs/decoder_example.py, line for line."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    start = readme.index("```python\n", readme.index("docs/decoder_example.py")) + len(
        "```python\n"
    )
    block = readme[start : readme.index("```\n", start)]
    lines = [line.removeprefix("  ") for line in block.splitlines()]
    assert [line.rstrip() for line in lines[:-1]] == EXAMPLE.read_text().splitlines()


def test_a_thousand_payloads_decode_alike_and_follow_their_schema(
    example: ModuleType, payloads: list[tuple[bytes, list[Reading]]]
) -> None:
    """The README's decoder gives every reading `decode_telemetry` gives, and the agent's; every
    payload is valid against its layout's JSON Schema."""
    assert len(payloads) == PAYLOADS
    readings = 0
    for payload, sent in payloads:
        body = example.body(payload)
        jsonschema.validate(body, SCHEMAS[body["schema"]])
        decoded = [_as_tuple(r) for r in example.readings(body)]
        assert decoded == [_from_reading(r) for r in decode_telemetry(payload).readings]
        assert [d[:3] + d[4:] for d in decoded] == [
            _from_reading(r)[:3] + _from_reading(r)[4:] for r in sent
        ]
        readings += len(decoded)
    assert readings > 10 * PAYLOADS


def test_an_unknown_field_is_valid_and_ignored(
    example: ModuleType, payloads: list[tuple[bytes, list[Reading]]]
) -> None:
    """A field a later agent may add, at the top, in a reading or in a run, breaks no decoder and
    no schema."""
    for payload, _sent in payloads[:2]:
        body = example.body(payload)
        extended = json.loads(json.dumps(body))
        extended["later_field"] = "x"
        for item in extended.get("readings", extended.get("runs", [])):
            item["later_field"] = {"nested": [1, 2.5]}
        jsonschema.validate(extended, SCHEMAS[body["schema"]])
        raw = json.dumps(extended).encode()
        assert list(example.readings(extended)) == list(example.readings(body))
        assert decode_telemetry(raw).readings == decode_telemetry(payload).readings


def test_a_short_series_list_is_refused_not_shortened(example: ModuleType) -> None:
    """An `s` list with fewer indices than values is a broken message: the example says so
    instead of dropping the values it cannot place."""
    body = {
        "schema": 2, "site": SITE, "ts0": 1, "mono0": 1, "boots": ["b"],
        "series": [["system.cpu_percent", {}], ["uptime.system_s", {}]],
        "runs": [{"seq": 1, "v": [1.5, 2.5, 3.5], "s": [0, 1]}],
    }  # fmt: skip
    with pytest.raises(ValueError, match="zip"):
        list(example.readings(body))


def test_schema_1_defaults_match_schema_2(example: ModuleType) -> None:
    """A schema 1 reading without `boot`, `mono`, `synced` means what schema 2's absent fields
    mean: the defaults the JSON Schemas and the README state."""
    reading = {"seq": 1, "ts": 5, "metric": "system.cpu_percent", "value": 1.5, "tags": {}}
    raw = json.dumps({"schema": 1, "site": SITE, "readings": [reading]}).encode()
    decoded = decode_telemetry(raw).readings[0]
    (from_example,) = example.readings(json.loads(raw))
    defaults = SCHEMAS[1]["$defs"]["reading"]["properties"]
    assert (decoded.boot_id, decoded.mono_ms, decoded.synced) == ("", 0, True)
    assert (from_example["boot"], from_example["mono"], from_example["synced"]) == ("", 0, True)
    assert [defaults[k]["default"] for k in ("boot", "mono", "synced")] == ["", 0, True]
    assert SCHEMAS[2]["$defs"]["run"]["properties"]["synced"]["default"] is True


def test_every_series_keeps_one_json_number_type(
    payloads: list[tuple[bytes, list[Reading]]],
) -> None:
    """Whole or not, a series' values are all JSON integers (counting metrics) or all JSON floats,
    in both schemas."""
    types: dict[str, set[type]] = defaultdict(set)
    for payload, _sent in payloads:
        raw = (
            payload
            if payload[:1] == b"{"
            else zlib.decompressobj(zdict=_zdict()).decompress(payload)
        )
        body = json.loads(raw)
        if body["schema"] == 1:
            for r in body["readings"]:
                types[r["metric"]].add(type(r["value"]))
        else:
            for run in body["runs"]:
                s = run.get("s", 0)
                indices = s if isinstance(s, list) else range(s, s + len(run["v"]))
                for value, k in zip(run["v"], indices, strict=True):
                    types[body["series"][k][0]].add(type(value))
    for metric, seen in types.items():
        assert seen == ({int} if is_integer_metric(metric) else {float}), metric
    assert {"system.cpu_percent", "throughput.rx_bps", "uptime.system_s"} <= set(types)


def _zdict() -> bytes:
    return (REPO / "agent" / "contract" / "schema" / "telemetry-2.zdict").read_bytes()
