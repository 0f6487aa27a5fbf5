"""The reference consumer: dedupe on (site, epoch, seq), a reused seq is a conflict, alarms are alarms."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.contract.telemetry import encode_telemetry
from agent.reading import Reading
from simulator.virtual.collector import Collector, ManyEpochs
from tests.support.agent_proc import wait_until
from tests.support.mqtt_broker import Broker

PREFIX = "desa/test"


def _reading(seq: int, value: float) -> Reading:
    return Reading(
        seq=seq, metric="uptime.system_s", value=value, tags={}, ts_ms=1_800_000_000_000,
        mono_ms=5, boot_id="boot-1", synced=True,
    )  # fmt: skip


@pytest.mark.parametrize("schema", [1, 2])
def test_repeats_are_duplicates_reused_seqs_are_conflicts_alarms_are_kept(
    broker: Broker, schema: int
) -> None:
    """Same reading twice: a duplicate; another reading under a known seq: a conflict; in either
    payload schema."""
    parts = urlsplit(broker.url())
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.connect(parts.hostname or "", parts.port or 1883)
    client.loop_start()
    try:
        with Collector(broker.url(), PREFIX) as collector:
            topic = f"{PREFIX}/site-a/telemetry"
            for payload in (
                encode_telemetry("site-a", [_reading(1, 10.0), _reading(2, 20.0)], schema=schema),
                encode_telemetry("site-a", [_reading(2, 20.0)], schema=schema),  # a resend
                encode_telemetry("site-a", [_reading(2, 99.0)], schema=schema),  # seq 2 again
            ):
                client.publish(topic, payload, qos=1).wait_for_publish(5)
            alarm = {"schema": 1, "site": "site-a", "event": "buffer_unwritable", "detail": "x"}
            client.publish(f"{PREFIX}/site-a/event", json.dumps(alarm), qos=1).wait_for_publish(5)
            wait_until(lambda: len(collector.alarms("site-a")) == 1, 10)
            assert collector.seqs("site-a") == {1, 2}
            assert collector.duplicates("site-a") == 2
            ((first, again),) = collector.conflicts("site-a")
            assert (first.value, again.value) == (20.0, 99.0)
            assert collector.alarms("site-a")[0]["event"] == "buffer_unwritable"
            assert collector.rejected == []
            assert dict(collector.sites["site-a"].schemas) == {schema: 3}
    finally:
        client.loop_stop()
        client.disconnect()


def test_seqs_starting_again_in_a_new_epoch_are_neither_duplicates_nor_lost(
    broker: Broker,
) -> None:
    """A gateway whose buffer was recreated sends seqs 1.. again under a new epoch: the checker
    counts each epoch on its own, and will not guess which one a query without an epoch means."""
    parts = urlsplit(broker.url())
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.connect(parts.hostname or "", parts.port or 1883)
    client.loop_start()
    old, new = "0123456789abcdef", "fedcba9876543210"
    try:
        with Collector(broker.url(), PREFIX) as collector:
            topic = f"{PREFIX}/site-a/telemetry"
            for epoch, value in ((old, 10.0), (new, 99.0)):
                readings = [_reading(1, value), _reading(2, value + 1)]
                payload = encode_telemetry("site-a", readings, epoch=epoch)
                client.publish(topic, payload, qos=1).wait_for_publish(5)
            wait_until(lambda: len(collector.epochs("site-a")) == 2, 10)
            assert collector.duplicates("site-a") == 0
            assert collector.conflicts("site-a") == []
            for epoch, value in ((old, 10.0), (new, 99.0)):
                report = collector.completeness("site-a", [1, 2], epoch)
                assert (report.delivered, report.lost) == (2, ())
                assert [r.value for r in collector.readings("site-a", epoch)] == [value, value + 1]
            assert collector.completeness("site-a", [1, 2, 3], new).lost == (3,)
            with pytest.raises(ManyEpochs):
                collector.seqs("site-a")
    finally:
        client.loop_stop()
        client.disconnect()
