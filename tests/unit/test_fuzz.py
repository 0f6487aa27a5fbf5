"""Fuzzing the two doors bad input comes through: the config loader and the payload decoder.

Whatever arrives, the only outcomes are a valid object or the boundary's own error with a reason.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from uuid import UUID

import jsonschema
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.config.load import ConfigError, parse_config
from agent.config.schema import Config
from agent.contract.fields import number
from agent.contract.telemetry import Batch, PayloadError, decode_telemetry, encode_telemetry
from agent.reading import Reading

FILE = Path("/nonexistent/agent.yaml")
ZDICT = (
    Path(__file__).resolve().parents[2] / "agent/contract/schema/telemetry-2.zdict"
).read_bytes()
ZDICT_ID = zlib.adler32(ZDICT).to_bytes(4, "big")
SCHEMA_2 = json.loads(
    (
        Path(__file__).resolve().parents[2] / "agent/contract/schema/telemetry-2.schema.json"
    ).read_text()
)
EXAMPLES = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
)
trees = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=20,
)
keys = st.sampled_from(
    [
        "site_id",
        "state_dir",
        "interval_s",
        "broker",
        "latency",
        "buffer",
        "url",
        "topic_prefix",
        "protocol",
        "targets",
        "count",
        "max_readings",
        "keepalive_s",
        "log",
        "level",
        "x",
    ]
)
config_like = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(keys, inner, max_size=6)),
    max_leaves=25,
)


def _load(text: str) -> None:
    try:
        config = parse_config(text, FILE)
    except ConfigError as err:
        assert err.problems, "a rejection must say why"
        assert all(isinstance(p, str) and p for p in err.problems)
    else:
        assert isinstance(config, Config)


@EXAMPLES
@given(st.text(max_size=300))
def test_config_text_never_crashes_the_loader(text: str) -> None:
    """Arbitrary text is either a valid config or a ConfigError with reasons."""
    _load(text)


@EXAMPLES
@given(config_like)
def test_config_shaped_yaml_never_crashes_the_loader(tree: object) -> None:
    """YAML trees with the right key names and wrong everything else are rejected cleanly."""
    _load(yaml.safe_dump(tree))


def _decode(payload: bytes) -> None:
    try:
        batch = decode_telemetry(payload)
    except PayloadError as err:
        assert str(err)
    else:
        assert isinstance(batch, Batch)


def _with_dictionary(raw: bytes) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zlib.Z_DEFAULT_STRATEGY, ZDICT)
    return packer.compress(raw) + packer.flush()


@EXAMPLES
@given(st.binary(max_size=400))
def test_random_bytes_are_rejected_cleanly(payload: bytes) -> None:
    """Arbitrary bytes, compressed with or without the dictionary or not at all, give a Batch or
    a PayloadError, nothing else."""
    _decode(payload)
    _decode(zlib.compress(payload))
    _decode(_with_dictionary(payload))
    _decode(b"\x78\xbb" + ZDICT_ID + payload)  # a header naming the dictionary, any body


@EXAMPLES
@given(trees)
def test_json_shapes_are_rejected_cleanly(tree: object) -> None:
    """Any JSON document, plain or zlib, is decoded or rejected with a reason."""
    text = json.dumps({"schema": 1, "site": "a", "readings": [tree]}, allow_nan=True)
    _decode(text.encode())
    _decode(zlib.compress(json.dumps(tree, allow_nan=True).encode()))


def _schema_2(**changes: object) -> bytes:
    body: dict[str, object] = {
        "schema": 2, "site": "a", "ts0": 0, "mono0": 0, "boots": ["b"],
        "series": [["m.x", {}], ["m.y", {"k": "v"}]], "runs": [{"seq": 1, "v": [1, 2]}],
    }  # fmt: skip
    body.update(changes)
    return json.dumps(body, allow_nan=True).encode()


run_like = st.dictionaries(
    st.sampled_from(["seq", "dt", "dm", "boot", "synced", "s", "v", "x"]), trees, max_size=7
)


@EXAMPLES
@given(trees, run_like, st.sampled_from(["ts0", "mono0", "boots", "series", "runs", "site"]))
def test_schema_2_shapes_are_rejected_cleanly(tree: object, run: object, key: str) -> None:
    """Schema 2 objects with any JSON where a series, a run, or a top-level field belongs."""
    _decode(_schema_2(series=[["m.x", {}], tree]))
    _decode(_schema_2(runs=[{"seq": 1, "v": [1, 2]}, run]))
    _decode(_with_dictionary(_schema_2(runs=[run, tree])))
    _decode(_schema_2(**{key: tree}))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.builds(
            Reading,
            seq=st.integers(min_value=1, max_value=2**62),
            metric=st.from_regex(r"[a-z]{1,8}\.[a-z_]{1,12}", fullmatch=True),
            value=st.floats(allow_nan=False, allow_infinity=False, width=64),
            tags=st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
            ts_ms=st.integers(min_value=0, max_value=2**50),
            mono_ms=st.integers(min_value=0, max_value=2**50),
            boot_id=st.uuids().map(str),
            synced=st.booleans(),
        ),
        max_size=20,
    )
)
def test_what_we_encode_we_decode(readings: list[Reading]) -> None:
    """Every batch the agent can encode decodes to the same readings (values to 6 decimals)."""
    batch = decode_telemetry(encode_telemetry("site-a", readings, schema=1))
    assert [r.seq for r in batch.readings] == [r.seq for r in readings]
    for got, sent in zip(batch.readings, readings, strict=True):
        assert got.metric == sent.metric and dict(got.tags) == dict(sent.tags)
        assert abs(got.value - sent.value) <= max(1e-6, abs(sent.value) * 1e-12)


stamps = st.tuples(
    st.integers(min_value=-(2**50), max_value=2**50),
    st.integers(min_value=-(2**50), max_value=2**50),
    st.sampled_from(["boot-a", "boot-b", str(UUID(int=7))]),
    st.booleans(),
)
series = st.tuples(
    st.from_regex(r"[a-z]{1,8}\.[a-z_]{1,12}", fullmatch=True),
    st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
)


@st.composite
def batches(draw: st.DrawFn) -> list[Reading]:
    """Readings as a buffer gives them: seqs increasing with gaps, a few series and stamps
    repeated so that runs form, values of any size."""
    stamp_pool = draw(st.lists(stamps, min_size=1, max_size=4))
    series_pool = draw(st.lists(series, min_size=1, max_size=6))
    count = draw(st.integers(min_value=0, max_value=40))
    seq = draw(st.integers(min_value=0, max_value=2**62))
    out = []
    for _ in range(count):
        seq += draw(st.sampled_from([1, 1, 1, 2, 1000]))
        ts, mono, boot, synced = draw(st.sampled_from(stamp_pool))
        metric, tags = draw(st.sampled_from(series_pool))
        value = draw(
            st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**60), 2**60)
        )
        out.append(Reading(seq=seq, metric=metric, value=value, tags=tags, ts_ms=ts, mono_ms=mono,
                           boot_id=boot, synced=synced))  # fmt: skip
    return out


@settings(max_examples=500, deadline=None)
@given(batches(), st.booleans())
def test_schema_2_gives_back_exactly_what_schema_1_gives(
    readings: list[Reading], compress: bool
) -> None:
    """Every batch the buffer can hold decodes from schema 2 to the very readings schema 1 gives:
    seq, times, boot, sync flag, series and the value as rounded for the wire."""
    two = decode_telemetry(encode_telemetry("site-a", readings, compress=compress))
    jsonschema.validate(json.loads(encode_telemetry("site-a", readings, compress=False)), SCHEMA_2)
    one = decode_telemetry(encode_telemetry("site-a", readings, schema=1, compress=compress))
    assert two.readings == one.readings
    assert [r.value for r in two.readings] == [float(number(r.value, r.metric)) for r in readings]
    assert [(r.seq, r.ts_ms, r.mono_ms, r.boot_id, r.synced) for r in two.readings] == [
        (r.seq, r.ts_ms, r.mono_ms, r.boot_id, r.synced) for r in readings
    ]
