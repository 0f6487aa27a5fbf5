"""The ack's pure parts: ranges from stored seqs, the payload and its schema, the publishing pace."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.contract.ack import MAX_RANGES, Ack, AckError, EpochAck, decode_ack, encode_ack
from agent.contract.topics import topic
from collector.confirm.pace import due
from collector.confirm.ranges import Confirmed, confirm, runs_of, skip_first_gap

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "agent/contract/schema/ack.schema.json").read_text()
)


def test_runs_merge_consecutive_seqs_and_ignore_repeats() -> None:
    """Unsorted seqs with repeats become ascending stretches."""
    assert runs_of([5, 3, 4, 4, 9, 10, 3, 12]) == [(3, 5), (9, 10), (12, 12)]


def test_a_new_epoch_starts_at_its_first_stored_seq() -> None:
    """The first seq seen may be above 1 (the gateway dropped older ones): no gap is invented."""
    assert confirm(None, runs_of(range(40, 51))) == Confirmed(through=50, missing=())


def test_gaps_above_the_watermark_are_listed() -> None:
    """1..50 and 61..100 stored: through 50, 51..60 missing."""
    runs = runs_of([*range(1, 51), *range(61, 101)])
    assert confirm(None, runs) == Confirmed(through=50, missing=((51, 60),))
    assert confirm(0, runs) == Confirmed(through=50, missing=((51, 60),))


def test_a_gap_right_above_the_watermark_keeps_it() -> None:
    """Through 50 known, only 55..60 stored above: 51..54 missing, through stays."""
    assert confirm(50, [(55, 60)]) == Confirmed(through=50, missing=((51, 54),))


def test_nothing_new_keeps_the_watermark() -> None:
    """No stored seq above the watermark: it stays where it was."""
    assert confirm(70, []) == Confirmed(through=70, missing=())


def test_missing_ranges_are_capped() -> None:
    """Every other seq missing: only the lowest `cap` gaps are listed."""
    runs = runs_of(range(1, 400, 2))
    confirmed = confirm(None, runs, cap=MAX_RANGES)
    assert confirmed.through == 1
    assert len(confirmed.missing) == MAX_RANGES
    assert confirmed.missing[0] == (2, 2)
    assert confirmed.missing[-1] == (2 * MAX_RANGES, 2 * MAX_RANGES)


def test_giving_up_a_gap_moves_the_watermark_past_it() -> None:
    """Skipping 51..60 moves through to the end of the next run and counts 10 seqs."""
    runs = runs_of([*range(1, 51), *range(61, 71), *range(80, 91)])
    skipped, lost = skip_first_gap(confirm(None, runs), runs)
    assert lost == 10
    assert skipped == Confirmed(through=70, missing=((71, 79),))


def test_the_payload_round_trips_and_matches_the_schema() -> None:
    """An encoded ack is compact JSON valid under the schema and decodes to the same value."""
    ack = Ack(
        ts_ms=1_800_000_000_000,
        epochs=(
            EpochAck(epoch="e2", through=100, missing=((101, 110), (120, 120))),
            EpochAck(epoch="", through=7),
        ),
    )
    payload = encode_ack(ack)
    assert b" " not in payload
    jsonschema.validate(json.loads(payload), SCHEMA)
    assert decode_ack(payload) == ack


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b'{"v":2,"ts":1,"epochs":[]}',
        b'{"v":1,"ts":-1,"epochs":[]}',
        b'{"v":1,"ts":1,"epochs":[{"epoch":"a","through":5,"missing":[[3,4]]}]}',
        b'{"v":1,"ts":1,"epochs":[{"epoch":"a","through":5,"missing":[[8,9],[7,7]]}]}',
        b'{"v":1,"ts":1,"epochs":[{"epoch":"a","through":true,"missing":[]}]}',
        b'{"v":1,"ts":1,"epochs":[{"epoch":"a","through":1},{"epoch":"a","through":2}]}',
        b" " * 20_000,
    ],
)
def test_a_bad_payload_is_refused(payload: bytes) -> None:
    """Wrong version, negative or boolean numbers, ranges not above through or out of order,
    repeated epochs and oversized payloads raise AckError."""
    with pytest.raises(AckError):
        decode_ack(payload)


def test_the_ack_topic_is_the_sites_own() -> None:
    """The contract's topics module spells the ack topic."""
    assert topic("desa/v1/kaltim", "s1", "ack") == "desa/v1/kaltim/s1/ack"


GAP = EpochAck(epoch="e", through=50, missing=((51, 60),))
CLEAN = EpochAck(epoch="e", through=100)


def test_a_first_ack_goes_out_at_once() -> None:
    """A site never acknowledged gets its ack at the first check."""
    assert due(now_ms=0, current=(CLEAN,), previous_missing={}, published=None,
               published_ms=None, interval_ms=900_000)  # fmt: skip


def test_a_gap_is_published_only_when_seen_twice() -> None:
    """A gap new at this check waits for the next one; seen twice, it goes out at once."""
    old = EpochAck(epoch="e", through=40)
    kwargs = {"now_ms": 1000, "current": (GAP,), "published": (old,), "published_ms": 500,
              "interval_ms": 900_000}  # fmt: skip
    assert not due(previous_missing={}, **kwargs)  # type: ignore[arg-type]
    assert due(previous_missing={"e": ((51, 60),)}, **kwargs)  # type: ignore[arg-type]


def test_a_published_gap_is_not_repeated_but_its_repair_is_announced() -> None:
    """The same gap again: no new ack; the gap closed: an ack at once, before the interval."""
    assert not due(now_ms=1000, current=(GAP,), previous_missing={"e": ((51, 60),)},
                   published=(GAP,), published_ms=900, interval_ms=900_000)  # fmt: skip
    assert due(now_ms=1000, current=(CLEAN,), previous_missing={"e": ((51, 60),)},
               published=(GAP,), published_ms=900, interval_ms=900_000)  # fmt: skip


def test_progress_without_gaps_waits_for_the_interval() -> None:
    """Through advanced: published only once the interval since the last ack has passed."""
    old = EpochAck(epoch="e", through=90)
    common = {"current": (CLEAN,), "previous_missing": {}, "published": (old,),
              "published_ms": 0, "interval_ms": 900_000}  # fmt: skip
    assert not due(now_ms=899_999, **common)  # type: ignore[arg-type]
    assert due(now_ms=900_000, **common)  # type: ignore[arg-type]


@given(st.sets(st.integers(min_value=1, max_value=200), min_size=1))
def test_confirm_agrees_with_counting_one_by_one(seqs: set[int]) -> None:
    """For any stored seqs of a new epoch: through is the end of the run from the lowest seq, and
    every listed gap is exactly the seqs missing between the stored ones, lowest first."""
    confirmed = confirm(None, runs_of(seqs))
    through = min(seqs)
    while through + 1 in seqs:
        through += 1
    assert confirmed.through == through
    missing = [s for s in range(through + 1, max(seqs)) if s not in seqs]
    listed = [s for first, last in confirmed.missing for s in range(first, last + 1)]
    assert len(confirmed.missing) <= MAX_RANGES
    assert listed == (missing if len(confirmed.missing) < MAX_RANGES else missing[: len(listed)])


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-5, max_value=2**64) | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
EPOCH_LIKE = st.fixed_dictionaries(
    {}, optional={"epoch": JSON | st.text(max_size=4), "through": JSON, "missing": JSON}
)


@given(st.fixed_dictionaries({"v": st.just(1) | JSON, "ts": JSON,
                              "epochs": st.lists(EPOCH_LIKE, max_size=4) | JSON}))  # fmt: skip
def test_decoding_a_malformed_ack_fails_only_with_ack_error(body: dict[str, object]) -> None:
    """Any JSON shaped roughly like an ack either decodes to a valid ack or raises AckError."""
    try:
        ack = decode_ack(json.dumps(body).encode())
    except AckError:
        return
    assert decode_ack(encode_ack(ack)) == ack
