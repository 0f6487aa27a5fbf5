"""Fuzzing the two doors bad input comes through: the config loader and the payload decoder.

Whatever arrives, the only outcomes are a valid object or the boundary's own error with a reason.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.config import Config, ConfigError, parse_config
from agent.payload import Batch, PayloadError, decode_telemetry, encode_telemetry
from agent.reading import Reading

FILE = Path("/nonexistent/agent.yaml")
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


@EXAMPLES
@given(st.binary(max_size=400))
def test_random_bytes_are_rejected_cleanly(payload: bytes) -> None:
    """Arbitrary bytes, compressed or not, give a Batch or a PayloadError, nothing else."""
    _decode(payload)
    _decode(zlib.compress(payload))


@EXAMPLES
@given(trees)
def test_json_shapes_are_rejected_cleanly(tree: object) -> None:
    """Any JSON document, plain or zlib, is decoded or rejected with a reason."""
    text = json.dumps({"schema": 1, "site": "a", "readings": [tree]}, allow_nan=True)
    _decode(text.encode())
    _decode(zlib.compress(json.dumps(tree, allow_nan=True).encode()))


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
    batch = decode_telemetry(encode_telemetry("site-a", readings))
    assert [r.seq for r in batch.readings] == [r.seq for r in readings]
    for got, sent in zip(batch.readings, readings, strict=True):
        assert got.metric == sent.metric and dict(got.tags) == dict(sent.tags)
        assert abs(got.value - sent.value) <= max(1e-6, abs(sent.value) * 1e-12)
