"""The MQTT contract's payloads: both schemas, the JSON Schema files, the dictionary, bad messages."""

from __future__ import annotations

import json
import runpy
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from agent.contract.telemetry import PayloadError, decode_telemetry, encode_telemetry
from agent.reading import Reading

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "agent" / "contract" / "schema"
SCHEMA = json.loads((SCHEMA_DIR / "telemetry.schema.json").read_text())
SCHEMA_2 = json.loads((SCHEMA_DIR / "telemetry-2.schema.json").read_text())
ZDICT = (SCHEMA_DIR / "telemetry-2.zdict").read_bytes()
# The dictionary's id as shipped. Payloads in flight and decoders in the field name it by this
# number: changing the file breaks them. A new dictionary is a new file, never an edit.
ZDICT_ID = 0x8F5874D8
BOOT = "0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9"
EPOCH = "3f9c0a17b24e6d85"


def _reading(seq: int, value: float = 612.25) -> Reading:
    return Reading(
        seq=seq,
        metric="latency.rtt_avg_ms",
        value=value,
        tags={"target": "1.1.1.1", "method": "icmp-raw"},
        ts_ms=1_800_000_000_000 + seq,
        mono_ms=10_000 + seq,
        boot_id=BOOT,
        synced=True,
    )


def _round(first_seq: int, index: int, *, boot: str = BOOT, synced: bool = True) -> list[Reading]:
    """One round of a small site: five series, one stamp, consecutive seqs."""
    series = [
        ("throughput.rx_bps", {"iface": "eth0"}),
        ("throughput.tx_bps", {"iface": "eth0"}),
        ("latency.rtt_avg_ms", {"target": "1.1.1.1", "method": "icmp-raw"}),
        ("uptime.system_s", {}),
        ("system.memory_used_bytes", {}),
    ]
    return [
        Reading(
            seq=first_seq + i,
            metric=metric,
            value=[1234.5, 0.0, 612.438, 86400.1, 2**40][i] + index,
            tags=tags,
            ts_ms=1_780_000_000_000 + 60_000 * index,
            mono_ms=3_600_000 + 60_000 * index,
            boot_id=boot,
            synced=synced,
        )
        for i, (metric, tags) in enumerate(series)
    ]


def _body(payload: bytes) -> Any:
    if payload[:1] == b"{":
        return json.loads(payload)
    return json.loads(zlib.decompressobj(zdict=ZDICT).decompress(payload))


def _both(readings: list[Reading]) -> None:
    """Both schemas, compressed or not, decode to the same readings of the same epoch; each is
    valid by its schema."""
    batches = []
    for schema, json_schema in ((1, SCHEMA), (2, SCHEMA_2)):
        for compress in (True, False):
            payload = encode_telemetry(
                "site-a", readings, epoch=EPOCH, schema=schema, compress=compress
            )
            jsonschema.validate(_body(payload), json_schema)
            batch = decode_telemetry(payload)
            assert (batch.site, batch.epoch, batch.schema) == ("site-a", EPOCH, schema)
            batches.append(batch.readings)
    assert all(b == batches[0] for b in batches)


# -- schema 1 -------------------------------------------------------------------------------------
def test_a_batch_round_trips_and_matches_the_schema() -> None:
    """Schema 1: encode -> inflate -> JSON Schema valid -> decode gives the same readings."""
    readings = [_reading(s) for s in range(1, 51)]
    payload = encode_telemetry("site-a", readings, schema=1)
    body = json.loads(zlib.decompress(payload))
    jsonschema.validate(body, SCHEMA)
    batch = decode_telemetry(payload)
    assert batch.site == "site-a"
    assert batch.readings == tuple(readings)


def test_schema_1_bytes_are_what_collectors_of_schema_1_already_read() -> None:
    """Schema 1 is the documented object per reading, compact JSON, zlib level 9, no dictionary."""
    reading = _reading(7, value=0.1 + 0.2)
    expected = {
        "schema": 1, "site": "site-a", "epoch": EPOCH, "readings": [
            {"seq": 7, "ts": 1_800_000_000_007, "metric": "latency.rtt_avg_ms", "value": 0.3,
             "tags": {"target": "1.1.1.1", "method": "icmp-raw"}, "boot": BOOT, "mono": 10_007,
             "synced": True}],
    }  # fmt: skip
    text = json.dumps(expected, separators=(",", ":")).encode()
    assert encode_telemetry("site-a", [reading], epoch=EPOCH, schema=1, compress=False) == text
    assert encode_telemetry("site-a", [reading], epoch=EPOCH, schema=1) == zlib.compress(text, 9)


@pytest.mark.parametrize(("schema", "json_schema"), [(1, SCHEMA), (2, SCHEMA_2)])
def test_the_epoch_is_a_top_level_string_that_round_trips(
    schema: int, json_schema: dict[str, Any]
) -> None:
    """Every payload names its seq series at the top; the decoder gives it back, and the JSON
    Schema of each layout knows the field."""
    payload = encode_telemetry("site-a", [_reading(1), _reading(2)], epoch=EPOCH, schema=schema)
    body = _body(payload)
    assert body["epoch"] == EPOCH
    jsonschema.validate(body, json_schema)
    assert "epoch" in json_schema["properties"]
    batch = decode_telemetry(payload)
    assert batch.epoch == EPOCH
    assert [r.seq for r in batch.readings] == [1, 2]


@pytest.mark.parametrize("schema", [1, 2])
def test_a_payload_from_before_epochs_decodes_with_an_empty_epoch(schema: int) -> None:
    """Agents older than epochs send none: their readings belong to the epoch ""."""
    body = _body(encode_telemetry("site-a", [_reading(5)], epoch=EPOCH, schema=schema))
    del body["epoch"]
    jsonschema.validate(body, SCHEMA if schema == 1 else SCHEMA_2)
    batch = decode_telemetry(json.dumps(body).encode())
    assert batch.epoch == ""
    assert [r.seq for r in batch.readings] == [5]


@pytest.mark.parametrize(
    ("epoch", "reason"), [(7, "'epoch' has the wrong type"), ("e" * 65, "longer than 64")]
)
def test_a_bad_epoch_is_rejected(epoch: object, reason: str) -> None:
    """An epoch must be a short string: it becomes part of the collector's key."""
    body = _body(encode_telemetry("site-a", [_reading(1)], epoch=EPOCH, schema=1))
    body["epoch"] = epoch
    with pytest.raises(PayloadError, match=reason):
        decode_telemetry(json.dumps(body).encode())


def test_uncompressed_payloads_decode_too() -> None:
    """compression off gives plain JSON that the same decoder reads, in either schema."""
    for schema in (1, 2):
        payload = encode_telemetry("site-a", [_reading(1)], compress=False, schema=schema)
        assert payload.startswith(b"{")
        assert decode_telemetry(payload).readings[0].seq == 1


def test_compression_pays_for_itself_on_a_round() -> None:
    """A typical batch compresses to a fraction of its JSON size."""
    readings = [_reading(s, value=600 + s % 7) for s in range(1, 41)]
    plain = encode_telemetry("site-a", readings, compress=False, schema=1)
    packed = encode_telemetry("site-a", readings, schema=1)
    assert len(packed) < len(plain) / 4


# -- schema 2 round trips -------------------------------------------------------------------------
def test_a_round_is_one_run_with_every_series_listed_once() -> None:
    """One round: the series table in round order, one run giving only its first seq and values."""
    readings = _round(1042, 0)
    body = _body(encode_telemetry("site-a", readings))
    assert body["series"][0] == ["throughput.rx_bps", {"iface": "eth0"}]
    assert body["series"][2] == ["latency.rtt_avg_ms", {"method": "icmp-raw", "target": "1.1.1.1"}]
    assert (body["ts0"], body["mono0"], body["boots"]) == (1_780_000_000_000, 3_600_000, [BOOT])
    assert body["runs"] == [{"seq": 1042, "v": [1234.5, 0, 612.438, 86400.1, 2**40]}]
    _both(readings)


def test_several_rounds_with_a_gap_share_one_table() -> None:
    """Rounds a minute apart are runs with dt; a gap in seqs (rows dropped) is a run's own seq."""
    readings = _round(1, 0) + _round(6, 1) + _round(20, 2)
    body = _body(encode_telemetry("site-a", readings))
    assert len(body["series"]) == 5
    assert body["runs"][1] == {
        "seq": 6,
        "dt": 60_000,
        "v": [1235.5, 1, 613.438, 86401.1, 2**40 + 1],
    }
    assert body["runs"][2]["seq"] == 20
    _both(readings)


def test_a_drain_batch_cut_mid_round_needs_no_series_lists() -> None:
    """A batch that starts and ends inside a round: the table follows a full round, so the cut
    runs give a start index (or none) and the full ones nothing."""
    rounds = [_round(1 + 5 * i, i) for i in range(4)]
    readings = rounds[0][3:] + rounds[1] + rounds[2] + rounds[3][:2]
    runs = _body(encode_telemetry("site-a", readings))["runs"]
    assert [run.get("s") for run in runs] == [3, None, None, None]
    _both(readings)


def test_readings_out_of_table_order_list_their_series() -> None:
    """A run whose series are not consecutive in the table lists them."""
    first = _round(1, 0)
    second = [replace(r, seq=6 + i) for i, r in enumerate(reversed(_round(6, 1)))]
    runs = _body(encode_telemetry("site-a", first + second))["runs"]
    assert runs[1]["s"] == [4, 3, 2, 1, 0]
    _both(first + second)


def test_mixed_boots_unsynced_and_restamped_readings_keep_their_evidence() -> None:
    """A new boot (mono starts again), unsynced readings and a wall clock that went back."""
    old = _round(1, 0, synced=False)
    new_boot = [replace(r, mono_ms=1_200 + i, ts_ms=r.ts_ms - 3_600_000) for i, r in enumerate(
        _round(6, 1, boot="b2"))]  # fmt: skip
    back = _round(11, 2)
    body = _body(encode_telemetry("site-a", old + new_boot + back))
    assert body["boots"] == [BOOT, "b2"]
    assert body["runs"][0]["synced"] is False
    assert "synced" not in body["runs"][2]
    assert [r.get("boot", 0) for r in body["runs"]] == [0, 1, 1, 1, 1, 1, 0]
    assert body["runs"][1]["dt"] == 60_000 - 3_600_000
    assert body["runs"][2] == {"seq": 7, "dm": 1, "boot": 1, "s": 1, "v": [1.0]}
    _both(old + new_boot + back)


def test_unicode_tags_and_tags_in_another_order_round_trip() -> None:
    """Non-ASCII tag text is written as UTF-8; the same tags in another order are one series."""
    a = replace(_reading(1), tags={"target": "Tenggarong ÄÖ 東", "method": "tcp"})
    b = replace(_reading(2), tags={"method": "tcp", "target": "Tenggarong ÄÖ 東"})
    payload = encode_telemetry("site-a", [a, b], compress=False)
    assert "東".encode() in payload
    assert len(json.loads(payload)["series"]) == 1
    _both([a, b])


def test_values_are_rounded_alike_in_both_schemas() -> None:
    """Six decimals, big values kept: the same in both layouts."""
    values = [0.1 + 0.2, 1 / 3, -2.5e-7, 123456.7890125, 2.0**60, -17.0, 1e300]
    readings = [_reading(i + 1, value=v) for i, v in enumerate(values)]
    got = [r.value for r in decode_telemetry(encode_telemetry("site-a", readings)).readings]
    assert got == [0.3, 0.333333, -0.0, 123456.789012, 2.0**60, -17.0, 1e300]
    _both(readings)


@pytest.mark.parametrize("schema", [1, 2])
def test_a_series_keeps_one_json_number_type(schema: int) -> None:
    """Whole or not, a non-counting metric is written as a JSON float and a counting one as a JSON
    integer, so a typed store never sees a series change type."""
    metrics = [
        ("system.cpu_percent", 12.0),
        ("system.cpu_percent", 12.5),
        ("uptime.system_s", 7.0),
        ("throughput.rx_bps", 0.0),
        ("throughput.rx_bytes", 4096.0),
        ("dns.success_bool", 1.0),
        ("event.agent_start", 1.0),
        ("event.outage_end_s", 30.0),
    ]
    readings = [replace(_reading(i + 1), metric=m, value=v) for i, (m, v) in enumerate(metrics)]
    body = json.loads(encode_telemetry("site-a", readings, schema=schema, compress=False))
    if schema == 1:
        values = [r["value"] for r in body["readings"]]
    else:
        values = [v for run in body["runs"] for v in run["v"]]
    assert [type(v) for v in values] == [float, float, float, float, int, int, int, float]


def test_an_empty_batch_is_a_valid_message() -> None:
    """No readings: no runs, and it still decodes and validates."""
    _both([])


def test_the_encoder_refuses_what_schema_2_cannot_say() -> None:
    """Seqs out of order or repeated, and an unknown schema number, are the caller's bug."""
    with pytest.raises(ValueError, match="increasing seq"):
        encode_telemetry("site-a", [_reading(2), _reading(1)])
    with pytest.raises(ValueError, match="increasing seq"):
        encode_telemetry("site-a", [_reading(2), _reading(2)])
    with pytest.raises(ValueError, match="no telemetry schema 3"):
        encode_telemetry("site-a", [_reading(1)], schema=3)


# -- the preset dictionary ------------------------------------------------------------------------
def test_schema_2_names_the_shipped_dictionary_in_its_zlib_header() -> None:
    """FDICT is set and DICTID is the adler32 of telemetry-2.zdict, which has not changed."""
    payload = encode_telemetry("site-a", _round(1, 0))
    assert payload[0] == 0x78 and payload[1] & 0x20
    assert int.from_bytes(payload[2:6], "big") == zlib.adler32(ZDICT) == ZDICT_ID
    with pytest.raises(zlib.error):
        zlib.decompress(payload)  # a consumer without the dictionary cannot read it


def test_the_dictionary_earns_its_header() -> None:
    """With the dictionary a round costs well under what it costs without (4 header bytes more)."""
    readings = _round(1, 0)
    raw = encode_telemetry("site-a", readings, compress=False)
    without = zlib.compress(raw, 9)
    assert len(encode_telemetry("site-a", readings)) < len(without) * 0.7
    assert decode_telemetry(without).readings == tuple(readings)  # plain zlib decodes too


def test_a_payload_needing_another_dictionary_is_refused_by_name() -> None:
    """A stream made with a dictionary this decoder does not know says which one it needs."""
    other = b'["latency.rtt_avg_ms",{"method":"icmp-raw"}]'
    packer = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zlib.Z_DEFAULT_STRATEGY, other)
    raw = encode_telemetry("site-a", [_reading(1)], compress=False)
    payload = packer.compress(raw) + packer.flush()
    wanted = f"{zlib.adler32(other):#010x}"
    with pytest.raises(PayloadError, match=f"preset dictionary {wanted}, which this decoder does"):
        decode_telemetry(payload)
    with pytest.raises(PayloadError, match="truncated in its header"):
        decode_telemetry(payload[:4])


def test_the_readme_reader_agrees_with_decode_telemetry() -> None:
    """The Python reader the README gives collectors (docs/decoder_example.py, which the README
    quotes whole) inflates both schemas and reads schema 2 into the very readings
    decode_telemetry gives."""
    reader = runpy.run_path(str(SCHEMA_DIR.parents[2] / "docs" / "decoder_example.py"))
    old = [replace(r, boot_id="b0") for r in _round(1, 0, synced=False)]
    readings = old + _round(6, 1) + _round(11, 2)[2:] + [replace(_reading(99), ts_ms=5)]
    for schema in (1, 2):
        for compress in (True, False):
            payload = encode_telemetry("site-a", readings, schema=schema, compress=compress)
            assert reader["body"](payload)["schema"] == schema
    payload = encode_telemetry("site-a", readings)
    expected = [
        {"seq": r.seq, "ts": r.ts_ms, "metric": r.metric, "value": r.value, "tags": dict(r.tags),
         "boot": r.boot_id, "mono": r.mono_ms, "synced": r.synced}
        for r in decode_telemetry(payload).readings
    ]  # fmt: skip
    assert list(reader["readings"](reader["body"](payload))) == expected


# -- bad messages ---------------------------------------------------------------------------------
def _with_dictionary(raw: bytes) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zlib.Z_DEFAULT_STRATEGY, ZDICT)
    return packer.compress(raw) + packer.flush()


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\x78\x9c garbage", "zlib"),
        (b"[1, 2]", "neither JSON nor a zlib stream"),
        (b'{"schema": 3, "site": "a", "readings": []}', "schema 3 is not supported"),
        (b'{"schema": 1, "readings": []}', "'site' is missing"),
        (b'{"schema": 1, "site": "a", "readings": [{"seq": 0}]}', "missing"),
        (
            b'{"schema": 1, "site": "a", "readings": [{"seq": 1, "ts": 1, "metric": "m", '
            b'"value": true, "tags": {}}]}',
            "true/false",
        ),
        (
            b'{"schema": 1, "site": "a", "readings": [{"seq": 1, "ts": 1, "metric": "m", '
            b'"value": 1, "tags": {"a": 1}}]}',
            "strings",
        ),
        (
            b'{"schema": 1, "site": "a", "readings": [{"seq": 1, "ts": 1, "metric": "m", '
            b'"value": 1' + b"0" * 400 + b', "tags": {}}]}',
            "finite",
        ),
        (b'{"schema": 1, "site": "a", "readings": [' + b"1" * 5000 + b"]}", "not valid JSON"),
        (zlib.compress(b"{" + b" " * 10_000_000 + b"}"), "inflates to more than"),
        (_with_dictionary(b"{" + b" " * 10_000_000 + b"}"), "inflates to more than"),
        (_with_dictionary(b'{"schema": 2}')[:-6], "truncated"),
    ],
)
def test_bad_payloads_are_rejected_with_a_reason(payload: bytes, reason: str) -> None:
    """A bad message raises PayloadError that says what is wrong, never anything else."""
    with pytest.raises(PayloadError, match=reason):
        decode_telemetry(payload)


def _schema_2(**changes: Any) -> dict[str, Any]:
    """A valid schema 2 object of two series and two runs, with `changes` applied."""
    body: dict[str, Any] = {
        "schema": 2, "site": "a", "ts0": 1_780_000_000_000, "mono0": 5, "boots": ["b1"],
        "series": [["uptime.system_s", {}], ["throughput.rx_bps", {"iface": "eth0"}]],
        "runs": [{"seq": 1, "v": [1, 2]}, {"seq": 3, "dt": 60_000, "v": [3, 4]}],
    }  # fmt: skip
    body.update(changes)
    return body


def _run(**changes: Any) -> list[dict[str, Any]]:
    """The valid runs with the second one changed."""
    return [{"seq": 1, "v": [1, 2]}, {"seq": 3, "dt": 60_000, "v": [3, 4], **changes}]


def test_the_valid_schema_2_example_decodes() -> None:
    """The object the bad cases below are made from is itself good, and valid by the schema."""
    jsonschema.validate(_schema_2(), SCHEMA_2)
    batch = decode_telemetry(json.dumps(_schema_2()).encode())
    assert [(r.seq, r.metric, r.value, r.ts_ms, r.mono_ms) for r in batch.readings] == [
        (1, "uptime.system_s", 1.0, 1_780_000_000_000, 5),
        (2, "throughput.rx_bps", 2.0, 1_780_000_000_000, 5),
        (3, "uptime.system_s", 3.0, 1_780_000_060_000, 60_005),
        (4, "throughput.rx_bps", 4.0, 1_780_000_060_000, 60_005),
    ]
    assert {(r.boot_id, r.synced) for r in batch.readings} == {("b1", True)}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"schema": 2, "site": "a"}, "payload: 'ts0' is missing"),
        (_schema_2(mono0=1.5), "payload: 'mono0' has the wrong type"),
        (_schema_2(boots="b1"), "payload: 'boots' has the wrong type"),
        (_schema_2(boots=[7]), r"boots\[0\]: a boot id must be a string"),
        (_schema_2(series={}), "payload: 'series' has the wrong type"),
        (_schema_2(series=[["m.x", {}], "m.y"]), r"series\[1\]: a series must be \[metric"),
        (_schema_2(series=[["m.x", {}, {}]]), r"series\[0\]: a series must be"),
        (_schema_2(series=[[1, {}]]), r"series\[0\]: a series must be"),
        (_schema_2(series=[["m.x", []]]), r"series\[0\]: tags must be an object"),
        (_schema_2(series=[["m.x", {"a": 1}]]), r"series\[0\]: tags must map strings to strings"),
        (_schema_2(runs=None), "payload: 'runs' has the wrong type"),
        (_schema_2(runs=[[1, [1]]]), r"runs\[0\]: a run must be an object"),
        (_schema_2(runs=[{"v": [1]}]), r"runs\[0\]: 'seq' is missing"),
        (_schema_2(runs=[{"seq": 0, "v": [1]}]), r"runs\[0\]: 'seq' must be positive"),
        (_schema_2(runs=[{"seq": True, "v": [1]}]), r"runs\[0\]: 'seq' must not be true/false"),
        (_schema_2(runs=_run(seq=2)), r"runs\[1\]: 'seq' 2 does not follow the previous run, "),
        (_schema_2(runs=_run(seq=1)), r"runs\[1\]: 'seq' 1 does not follow"),
        (_schema_2(runs=_run(dt=1.5)), r"runs\[1\]: 'dt' has the wrong type"),
        (_schema_2(runs=_run(dm="0")), r"runs\[1\]: 'dm' has the wrong type"),
        (_schema_2(runs=_run(synced=1)), r"runs\[1\]: 'synced' has the wrong type"),
        (_schema_2(runs=_run(boot=1)), r"runs\[1\]: boot 1 is not in the message's boot list \(0"),
        (_schema_2(runs=_run(boot=-1)), r"runs\[1\]: boot -1 is not in"),
        (_schema_2(runs=_run(boot=True)), r"runs\[1\]: 'boot' must not be true/false"),
        (_schema_2(boots=[]), r"runs\[0\]: boot 0 is not in the message's boot list \(empty\)"),
        (_schema_2(runs=_run(v=[])), r"runs\[1\]: 'v' is empty"),
        (_schema_2(runs=_run(v=5)), r"runs\[1\]: 'v' has the wrong type"),
        (_schema_2(runs=_run(v=[1, True])), r"runs\[1\].v\[1\]: a value must be a number, not"),
        (_schema_2(runs=_run(v=[1, "2"])), r"runs\[1\].v\[1\]: a value must be a finite number"),
        (_schema_2(runs=_run(v=[10**400])), r"runs\[1\].v\[0\]: a value must be a finite"),
        (_schema_2(runs=_run(v=[1, 2, 3])), r"runs\[1\].s: series 2 is not in the message's "),
        (_schema_2(runs=_run(s=1)), r"runs\[1\].s: series 2 is not in the message's series list"),
        (_schema_2(runs=_run(s=-1)), r"runs\[1\].s: series -1 is not in"),
        (_schema_2(runs=_run(s=[0])), r"runs\[1\]: 's' lists 1 series for 2 values"),
        (_schema_2(runs=_run(s=[1, 2])), r"runs\[1\].s\[1\]: series 2 is not in .* list \(0..1\)"),
        (_schema_2(runs=_run(s=[0, False])), r"runs\[1\].s\[1\]: a series index must be a whole"),
        (_schema_2(runs=_run(s=[0, 1.0])), r"runs\[1\].s\[1\]: a series index must be a whole"),
        (_schema_2(runs=_run(s="01")), r"runs\[1\]: 's' has the wrong type"),
        (_schema_2(series=[]), r"runs\[0\].s: series 0 is not in the message's series list \(e"),
        (
            _schema_2(
                runs=[
                    *_run(),
                    {"seq": 9, "v": [1]},
                    {"seq": 10, "s": [0, 1, 0], "v": [1, 2, 1e999]},
                ]
            ),
            r"runs\[3\].v\[2\]: a value must be a finite number",
        ),
    ],
)
def test_bad_schema_2_objects_are_rejected_saying_where(body: dict[str, Any], reason: str) -> None:
    """Every schema 2 rule has its check, and the message names the place, compressed or not."""
    raw = json.dumps(body).encode()
    for payload in (raw, _with_dictionary(raw)):
        with pytest.raises(PayloadError, match=reason):
            decode_telemetry(payload)
