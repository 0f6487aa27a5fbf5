"""The store on both engines: insert-or-ignore, true time for unsynced readings, rollups, outages."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from agent.contract.telemetry import encode_telemetry
from agent.reading import Reading
from collector.clock import SystemClock
from collector.ingest.parse import Message, parcel, tags_json
from collector.store import Store, migrate, open_database
from collector.store.rows import Status

PREFIX = "desa/test"
BOOT_A = "boot-a"
HOUR = 3_600_000
T0 = 1_800_000_000_000  # a synced wall clock, ms


def reading(seq: int, *, metric: str = "latency.rtt_avg_ms", value: float = 10.0, ts: int = T0,
            mono: int = 50_000, synced: bool = True, boot: str = BOOT_A,
            tags: dict[str, str] | None = None) -> Reading:  # fmt: skip
    return Reading(
        seq=seq,
        metric=metric,
        value=value,
        tags={"target": "1.1.1.1"} if tags is None else tags,
        ts_ms=ts,
        mono_ms=mono,
        boot_id=boot,
        synced=synced,
    )


def message(site: str, readings: list[Reading], schema: int = 2, epoch: str = "") -> Message:
    return Message(
        topic=f"{PREFIX}/{site}/telemetry",
        payload=encode_telemetry(site, readings, epoch=epoch, schema=schema),
        mid=1,
        qos=1,
        connection=1,
        received_ms=T0,
    )


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    opened = Store(lambda: open_database(database_url), SystemClock())
    migrate(opened.db, 0)
    yield opened
    opened.close()


def write(store: Store, *messages: Message) -> int:
    contents, rejected = parcel(PREFIX, list(messages))
    assert not rejected
    return store.write(contents).inserted


def test_a_repeated_message_adds_nothing(store: Store) -> None:
    """The same readings twice (a QoS 1 redelivery) are stored once, and counted once in rollups."""
    batch = [reading(s, value=float(s), ts=T0 + s * 1000) for s in range(1, 11)]
    assert write(store, message("s1", batch)) == 10
    assert write(store, message("s1", batch), message("s1", batch[:3], schema=1)) == 0

    assert store.db.execute("SELECT count(*) FROM readings")[0][0] == 10
    count, total = store.db.execute("SELECT sum(count), sum(sum) FROM rollups_hourly")[0]
    assert (count, total) == (10, 55.0)
    assert store.db.execute("SELECT value, seq FROM latest")[0] == (10.0, 10)


@pytest.mark.parametrize("schema", [1, 2])
def test_seqs_starting_again_in_a_new_epoch_are_stored_beside_the_old_ones(
    store: Store, schema: int
) -> None:
    """A gateway whose buffer was recreated numbers from 1 again under a new epoch: those readings
    are new, not repeats of the old epoch's seqs; a repeat within an epoch still adds nothing."""
    old = [reading(s, value=float(s), ts=T0 + s * 1000) for s in range(1, 6)]
    new = [reading(s, value=100.0 + s, ts=T0 + HOUR + s * 1000) for s in range(1, 4)]
    assert write(store, message("s1", old, schema, epoch="aaaaaaaaaaaaaaaa")) == 5
    assert write(store, message("s1", new, schema, epoch="bbbbbbbbbbbbbbbb")) == 3
    assert write(store, message("s1", new[:2], schema, epoch="bbbbbbbbbbbbbbbb")) == 0
    rows = store.db.execute("SELECT epoch, seq, value FROM readings ORDER BY epoch, seq")
    assert [tuple(r) for r in rows] == [
        *(("aaaaaaaaaaaaaaaa", s, float(s)) for s in range(1, 6)),
        *(("bbbbbbbbbbbbbbbb", s, 100.0 + s) for s in range(1, 4)),
    ]


def test_the_latest_value_follows_a_new_epoch_whose_seqs_are_lower(store: Store) -> None:
    """After the buffer was recreated the site's newest readings carry low seqs again: the latest
    value (what /metrics and the dashboard show) is the newest in time, not the highest seq."""
    old = [reading(s, value=float(s), ts=T0 + s * 1000) for s in range(1, 100)]
    assert write(store, message("s1", old, epoch="aaaaaaaaaaaaaaaa")) == 99
    new = [reading(1, value=555.0, ts=T0 + HOUR)]
    assert write(store, message("s1", new, epoch="bbbbbbbbbbbbbbbb")) == 1
    assert tuple(store.db.execute("SELECT value, seq FROM latest")[0]) == (555.0, 1)
    # An old epoch's backlog arriving late does not push the newer value out.
    late = [reading(100, value=7.0, ts=T0 + 100_000)]
    assert write(store, message("s1", late, epoch="aaaaaaaaaaaaaaaa")) == 1
    assert tuple(store.db.execute("SELECT value, seq FROM latest")[0]) == (555.0, 1)


def test_a_payload_without_an_epoch_is_stored_under_the_empty_one(store: Store) -> None:
    """Agents older than epochs keep their readings' key (site, "", seq)."""
    assert write(store, message("s1", [reading(1), reading(2)], epoch="")) == 2
    rows = store.db.execute("SELECT DISTINCT epoch FROM readings")
    assert [r[0] for r in rows] == [""]


def test_unsynced_readings_get_true_time_when_their_boot_syncs(store: Store) -> None:
    """Readings sent before the clock synced are put on mono + the offset of a synced reading of
    the same boot, whichever arrives first; the raw time and the flag are kept."""
    offset = T0 - 50_000
    # Before the sync the gateway's clock said 1970-and-a-bit.
    early = [reading(s, ts=1000 + s, mono=10_000 + s, synced=False) for s in (1, 2)]
    write(store, message("s1", early))
    rows = store.db.execute("SELECT ts, raw_ts, synced FROM readings ORDER BY seq")
    assert [r[0] for r in rows] == [None, None]
    assert store.db.execute("SELECT count(*) FROM rollups_hourly")[0][0] == 0

    write(store, message("s1", [reading(3, ts=T0, mono=50_000, synced=True)]))
    write(store, message("s1", [reading(4, ts=5000, mono=60_000, synced=False)]))

    rows = store.db.execute("SELECT seq, ts, raw_ts, synced FROM readings ORDER BY seq")
    assert [(seq, ts) for seq, ts, _raw, _synced in rows] == [
        (1, 10_001 + offset),
        (2, 10_002 + offset),
        (3, T0),
        (4, 60_000 + offset),
    ]
    assert [(raw, bool(synced)) for _s, _t, raw, synced in rows] == [
        (1001, False), (1002, False), (T0, True), (5000, False)
    ]  # fmt: skip
    assert store.db.execute("SELECT sum(count) FROM rollups_hourly")[0][0] == 4


def test_rollups_keep_count_sum_min_max_per_hour(store: Store) -> None:
    """Rollups are per site, metric, tags and hour."""
    batch = [
        reading(1, value=5.0, ts=T0),
        reading(2, value=1.0, ts=T0 + 1000),
        reading(3, value=9.0, ts=T0 + HOUR),
        reading(4, value=2.0, ts=T0, tags={"target": "8.8.8.8"}),
    ]
    write(store, message("s1", batch))
    rows = store.db.execute(
        "SELECT tags, hour, count, sum, min, max FROM rollups_hourly ORDER BY tags, hour"
    )
    hour = T0 - T0 % HOUR
    assert rows == [
        (tags_json({"target": "1.1.1.1"}), hour, 2, 6.0, 1.0, 5.0),
        (tags_json({"target": "1.1.1.1"}), hour + HOUR, 1, 9.0, 9.0, 9.0),
        (tags_json({"target": "8.8.8.8"}), hour, 1, 2.0, 2.0, 2.0),
    ]


def test_backhaul_outages_from_events_and_offline_from_status(store: Store) -> None:
    """event.outage_start opens a backhaul outage and event.outage_end_s closes it; a status going
    offline opens an offline outage that the next online closes."""
    start = reading(1, metric="event.outage_start", value=1.0, ts=T0, tags={})
    end = reading(2, metric="event.outage_end_s", value=90.0, ts=T0 + 90_000, tags={})
    write(store, message("s1", [start]))
    assert store.db.execute("SELECT kind, started, ended FROM outages") == [("backhaul", T0, None)]
    write(store, message("s1", [end]), message("s1", [end]))
    assert store.db.execute("SELECT kind, started, ended FROM outages") == [
        ("backhaul", T0, T0 + 90_000)
    ]

    for state, at in (
        ("online", T0),
        ("offline", T0 + 10),
        ("offline", T0 + 20),
        ("online", T0 + 30),
    ):
        body = {"state": state, "site": "s2", "version": "1.0", "config": "abc", "ts": at}
        contents, _ = parcel(PREFIX, [Message(topic=f"{PREFIX}/s2/status",
                                              payload=json.dumps(body).encode(), mid=1, qos=1,
                                              connection=1, received_ms=at)])  # fmt: skip
        assert contents.statuses == (
            Status(site="s2", state=state, version="1.0", config="abc", at_ms=at),
        )
        store.write(contents)
    assert store.db.execute("SELECT started, ended FROM outages WHERE site = 's2'") == [
        (T0 + 10, T0 + 30)
    ]
    assert store.db.execute("SELECT status, version, config FROM sites WHERE site = 's2'") == [
        ("online", "1.0", "abc")
    ]


def test_a_payload_that_breaks_the_contract_is_rejected_with_its_reason(store: Store) -> None:
    """A bad payload is reported (and so acknowledged by the caller), never stored half."""
    bad = Message(topic=f"{PREFIX}/s1/telemetry", payload=b"{}", mid=1, qos=1, connection=1,
                  received_ms=T0)  # fmt: skip
    other = message("s2", [reading(1)])
    contents, rejected = parcel(PREFIX, [bad, other])
    assert [r.topic for r in rejected] == [f"{PREFIX}/s1/telemetry"]
    assert "schema" in rejected[0].reason
    assert store.write(contents).inserted == 1


def test_retention_deletes_old_readings_and_keeps_rollups(store: Store) -> None:
    """Raw readings beyond retention_days go; their hourly rollups stay."""
    old = T0 - 400 * 86_400_000
    write(store, message("s1", [reading(1, ts=old), reading(2, ts=T0 + 10**12)]))
    # The clock says the present: the reading from 400 days before T0 is far older than 90 days.
    deleted = store.maintain(retention_days=90)
    assert deleted == 1
    assert store.db.execute("SELECT seq FROM readings") == [(2,)]
    assert store.db.execute("SELECT sum(count) FROM rollups_hourly")[0][0] == 2
