"""Fuzzing the two doors bad input comes through: the config loader and the payload decoder.

Whatever arrives, the only outcomes are a valid object or the boundary's own error with a reason.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import signal
import tracemalloc
import zlib
from pathlib import Path
from uuid import UUID

import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.cli.exits import EX_CONFIG, EX_DATAERR, EX_OK
from agent.cli.main import parser
from agent.cli.transfer import (
    FORMAT,
    LINE_MAX_BYTES,
    PROGRESS_MAX_BYTES,
    BadExport,
    SeqRanges,
    read_progress,
    write_signed,
)
from agent.config.load import ConfigError, parse_config
from agent.config.messages import Said
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
        # Every problem is a catalogue message: it has its Indonesian words too.
        assert all(isinstance(p, Said) and p and p.in_lang("id") for p in err.problems)
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


# -- `config check`, end to end --------------------------------------------------------------------
# Derandomized: the same cases on every run, so a failure in CI is a failure on a laptop too.
CHECK = settings(
    max_examples=1500,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
SAMPLE = (Path(__file__).resolve().parents[2] / "config/agent.yaml").read_text()
_VALID: dict[str, object] = {
    "site_id": "kukar-01",
    "state_dir": "/var/lib/village-agent",
    "interval_s": 60,
    "broker": {"url": "mqtts://127.0.0.1:8883", "topic_prefix": "desa/v1"},
}
_PATHS = [
    ("site_id",), ("state_dir",), ("status_dir",), ("interval_s",), ("broker", "url"),
    ("broker", "topic_prefix"), ("broker", "client_id"), ("broker", "username"),
    ("broker", "password_file"), ("broker", "key_file"), ("broker", "splay_s"),
    ("broker", "keepalive_s"), ("broker", "protocol"), ("broker", "allow_plaintext"),
    ("latency", "targets"), ("latency", "tcp_port"), ("dns", "port"), ("buffer", "max_readings"),
    ("transfer", "key_file"), ("speedtest", "url_download"), ("lan", "leases_file"),
]  # fmt: skip
_HUGE = "<a number of 5,000 digits>"  # json.dumps cannot write one: spliced in as text
hostile_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=20),
    st.sampled_from(["\ud800", "$SYS/x", "a/+/b", "a\x00b", "a//b", "", " ", "a\nb", "\udfff"]),
    st.builds(
        lambda c, n: c * n, st.sampled_from(["x", "é", "/"]), st.sampled_from([65_536, 70_000])
    ),
)
hostile = st.one_of(
    hostile_text,
    st.integers(min_value=-(10**20), max_value=10**20),
    st.sampled_from([2**63, -(2**63), _HUGE, 0, -1, 65_536]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
    st.lists(st.text(max_size=5), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


def _check(file: Path) -> tuple[int, str]:
    """Run `village-agent config check FILE` in this process: the exit code and all it printed."""
    out, err = io.StringIO(), io.StringIO()
    args = parser().parse_args(["config", "check", str(file)])
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = args.func(args)
        except SystemExit as exit_:
            code = exit_.code
    return int(code), out.getvalue() + err.getvalue()


def _assert_clean(file: Path) -> None:
    code, printed = _check(file)
    assert code in (EX_OK, EX_CONFIG), (code, printed)
    assert "Traceback" not in printed
    if code == EX_CONFIG:
        assert str(file) in printed and "problem" in printed, printed
        assert all(
            line.startswith(("Configuration file", "  - ", "Fix these"))
            for line in printed.splitlines()
        ), printed  # one line per problem: no value may forge lines of its own


@CHECK
@given(st.lists(st.tuples(st.sampled_from(_PATHS), hostile), min_size=1, max_size=3))
def test_config_check_never_tracebacks_on_hostile_values(
    tmp_path: Path, changes: list[tuple[tuple[str, ...], object]]
) -> None:
    """Any value at any key gives exit 0 or 78 with the file and one line per problem."""
    config = json.loads(json.dumps(_VALID))
    for path, value in changes:
        where = config
        for part in path[:-1]:
            where = where.setdefault(part, {})
        where[path[-1]] = value
    file = tmp_path / "agent.yaml"
    # JSON is YAML: it spells lone surrogates and huge integers the way a hostile file would.
    text = json.dumps(config, ensure_ascii=True).replace(json.dumps(_HUGE), "9" * 5000)
    file.write_text(text)
    _assert_clean(file)


@settings(CHECK, max_examples=1000)
@given(st.integers(min_value=0, max_value=len(SAMPLE)), st.binary(min_size=1, max_size=12))
def test_config_check_never_tracebacks_on_damaged_files(
    tmp_path: Path, where: int, junk: bytes
) -> None:
    """The sample with bytes inserted anywhere (half-written, a stray paste) gives exit 0 or 78."""
    file = tmp_path / "agent.yaml"
    file.write_bytes(SAMPLE[:where].encode() + junk + SAMPLE[where:].encode())
    _assert_clean(file)


# -- `buffer import`: the export file and the progress file ----------------------------------------
SITE = "fuzz-site-01"
KEY = b"0123456789abcdef0123456789abcdef"
IMPORT = settings(
    max_examples=1000,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
# What one import may hold in Python objects, whatever the file: a few lines of LINE_MAX_BYTES.
MEMORY_BOUND_BYTES = 6 * LINE_MAX_BYTES


def _site_config(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    key = directory / "transfer.key"
    key.write_bytes(KEY)
    key.chmod(0o600)
    file = directory / "agent.yaml"
    file.write_text(
        f"site_id: {SITE}\nstate_dir: state\ninterval_s: 1\n"
        "broker:\n  url: mqtt://127.0.0.1:9\n  topic_prefix: desa/fuzz\n"
    )
    return file


def _genuine_lines(count: int) -> list[bytes]:
    readings = [
        Reading(seq=seq, metric="m.x", value=seq, tags={}, ts_ms=seq, mono_ms=seq, boot_id="b",
                synced=True)
        for seq in range(1, count + 1)
    ]  # fmt: skip
    header = {"format": FORMAT, "version": 2, "site": SITE, "count": count}
    return [
        json.dumps(header).encode() + b"\n",
        encode_telemetry(SITE, readings, compress=False, schema=1) + b"\n",
    ]


def _import_exit(config: Path, file: Path) -> tuple[int, str]:
    """`village-agent buffer import FILE` in this process: exit code and what it printed."""
    err = io.StringIO()
    args = parser().parse_args(["buffer", "import", str(file), "--config", str(config)])
    # The command takes over SIGINT and SIGTERM; give them back to pytest afterwards.
    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            code = args.func(args)
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)
    return int(code), err.getvalue()


def _refused_within_bounds(config: Path, file: Path) -> str:
    tracemalloc.start()
    try:
        code, printed = _import_exit(config, file)
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert code == EX_DATAERR, (code, printed)
    assert printed.startswith("import: ") and "nothing was sent" in printed, printed
    assert peak < MEMORY_BOUND_BYTES, peak
    return printed


junk_lines = st.lists(
    st.one_of(
        st.binary(max_size=60),
        st.sampled_from([b"", b"{}", b"[]", b"null", b'{"hmac_sha256": "00"}', b"\xff\xfe"]),
        trees.map(lambda tree: json.dumps(tree, allow_nan=True).encode()),
    ),
    max_size=4,
)


@IMPORT
@given(st.sampled_from(["raw", "gzip", "spliced"]), st.binary(max_size=300), junk_lines,
       st.integers(min_value=0, max_value=3))  # fmt: skip
def test_import_refuses_any_unsigned_file_with_exit_65_in_bounded_memory(
    tmp_path: Path, how: str, blob: bytes, junk: list[bytes], where: int
) -> None:
    """Random bytes, gzip of random bytes, or a genuine file's lines with junk spliced in and no
    valid signature: exit 65 with a reason, never a traceback, memory within the bound."""
    config = _site_config(tmp_path / "site")
    file = tmp_path / "export.jsonl.gz"
    if how == "raw":
        file.write_bytes(blob)
    elif how == "gzip":
        file.write_bytes(gzip.compress(blob))
    else:
        lines = _genuine_lines(3)
        lines[where % len(lines) : where % len(lines)] = [j + b"\n" for j in junk]
        file.write_bytes(gzip.compress(b"".join(lines) + blob))
    _refused_within_bounds(config, file)


def test_gzip_bombs_are_refused_in_bounded_memory(tmp_path: Path) -> None:
    """A few hundred KB that inflate to hundreds of MB (one endless line, or endless short lines)
    are refused at the line or size limit without holding them."""
    config = _site_config(tmp_path / "site")
    header = _genuine_lines(1)[0]
    for name, body in (("one_line", b"x" * 200_000_000), ("many", b"{}\n" * 60_000_000)):
        file = tmp_path / f"{name}.jsonl.gz"
        packer = zlib.compressobj(9, zlib.DEFLATED, 31)
        file.write_bytes(packer.compress(header + body) + packer.flush())
        assert file.stat().st_size < 1_000_000
        printed = _refused_within_bounds(config, file)
        assert "line 2" in printed, printed


def _signed_file(directory: Path, count: int) -> tuple[Path, str]:
    file = directory / "export.jsonl.gz"
    write_signed(file, _genuine_lines(count), KEY)
    with gzip.open(file) as packed:
        signature = json.loads(packed.readlines()[-1])["hmac_sha256"]
    return file, str(signature)


@IMPORT
@given(st.one_of(st.binary(max_size=200), trees.map(lambda t: json.dumps(t).encode()),
                 st.lists(st.lists(st.integers(-(2**70), 2**70), max_size=3), max_size=5)))  # fmt: skip
def test_any_progress_file_is_read_or_refused_in_bounded_memory(
    tmp_path: Path, content: bytes | list[list[int]]
) -> None:
    """A progress file with any content, or any "acked" list for the right file, gives ranges or
    BadExport; a range is never expanded into single seqs (the 17 GB `[[1, 10**18]]`)."""
    tmp_path.mkdir(exist_ok=True)
    _file, signature = _signed_file(tmp_path, 2)
    progress = tmp_path / "export.jsonl.gz.progress"
    if isinstance(content, list):
        content = json.dumps({"file_hmac": signature, "acked": content}).encode()
    progress.write_bytes(content)
    tracemalloc.start()
    try:
        try:
            ranges = read_progress(progress, signature)
        except BadExport as err:
            assert str(progress) in str(err)
        else:
            assert isinstance(ranges, SeqRanges)
            _ = 10**17 in ranges
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * PROGRESS_MAX_BYTES, peak  # the file read once (capped), and its objects


def test_a_huge_range_or_a_huge_progress_file_stays_small(tmp_path: Path) -> None:
    """[[1, 10**18]] is held as one range; a progress file over its cap is refused unread."""
    _file, signature = _signed_file(tmp_path, 2)
    progress = tmp_path / "export.jsonl.gz.progress"
    progress.write_text(json.dumps({"file_hmac": signature, "acked": [[1, 10**18]]}))
    tracemalloc.start()
    ranges = read_progress(progress, signature)
    _now, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert 1 in ranges and 10**18 in ranges and 10**18 + 1 not in ranges and 0 not in ranges
    assert peak < 4 * PROGRESS_MAX_BYTES
    progress.write_bytes(b" " * (PROGRESS_MAX_BYTES + 1))
    with pytest.raises(BadExport, match="over"):
        read_progress(progress, signature)


@pytest.mark.parametrize(
    "header",
    [
        b"[" * 200_000,
        b'{"format": "village-agent-buffer-export", "version": "' + b"v" * 100_000 + b'"}',
    ],
)
def test_a_hostile_header_is_refused_in_one_short_line(tmp_path: Path, header: bytes) -> None:
    """A header nested past the recursion limit, or with a huge field, gives exit 65 and one
    short line, not a traceback or a screenful."""
    config = _site_config(tmp_path / "site")
    file = tmp_path / "export.jsonl.gz"
    file.write_bytes(gzip.compress(header + b"\n"))
    printed = _refused_within_bounds(config, file)
    assert "line 1" in printed and len(printed) < 400, printed
