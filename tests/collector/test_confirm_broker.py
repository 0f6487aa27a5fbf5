"""The real collector publishes each site's retained ack through a real mosquitto."""

from __future__ import annotations

import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.contract.ack import Ack, EpochAck
from agent.contract.telemetry import encode_telemetry
from agent.contract.topics import topic
from agent.reading import Reading
from collector.store import open_database
from tests.support.ack_reader import retained_ack
from tests.support.agent_proc import wait_until
from tests.support.collector_proc import PREFIX, CollectorProcess, stored_seqs, write_config
from tests.support.mqtt_broker import Broker

T0 = 1_800_000_000_000
FAST = {"confirm": {"check_s": 0.3, "interval_s": 900}}


def send(broker: Broker, site: str, seqs: list[int]) -> None:
    """Telemetry for `seqs`, ten readings a message, QoS 1, each acknowledged by the broker."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        for start in range(0, len(seqs), 10):
            readings = [
                Reading(seq=s, metric="system.load1", value=1.0, tags={}, ts_ms=T0 + s,
                        mono_ms=s, boot_id="boot-1", synced=True)
                for s in seqs[start : start + 10]
            ]  # fmt: skip
            payload = encode_telemetry(site, readings)
            client.publish(topic(PREFIX, site, "telemetry"), payload, qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def ack_is(broker: Broker, site: str, expected: tuple[EpochAck, ...]) -> bool:
    found: Ack | None = retained_ack(broker.host, broker.port, PREFIX, site)
    return found is not None and found.epochs == expected


def test_the_ack_reports_a_gap_then_its_repair(
    tmp_path: Path, broker: Broker, database_url: str
) -> None:
    """1..50 and 61..100 stored: the retained ack says through 50, 51..60 missing; once 51..60
    arrive it says through 100, nothing missing."""
    config = write_config(tmp_path / "collector", broker_url=broker.url(),
                          database_url=database_url, extra=FAST)  # fmt: skip
    with CollectorProcess(config).start() as collector:
        send(broker, "s1", [*range(1, 51), *range(61, 101)])
        gap = (EpochAck(epoch="", through=50, missing=((51, 60),)),)
        wait_until(lambda: ack_is(broker, "s1", gap), 30, "no ack with the gap")
        send(broker, "s1", list(range(51, 61)))
        repaired = (EpochAck(epoch="", through=100),)
        wait_until(lambda: ack_is(broker, "s1", repaired), 30, "no ack after the repair")
        assert retained_ack(broker.host, broker.port, PREFIX, "s2") is None
        assert collector.terminate() == 0


def test_two_collectors_in_a_group_agree(tmp_path: Path, broker: Broker, pg_url: str) -> None:
    """Two collectors sharing the messages and one PostgreSQL: the retained ack ends at through
    100 with nothing missing, and no ack either published ever moved the watermark back."""
    collectors = [
        CollectorProcess(
            write_config(
                tmp_path / f"collector-{n}",
                broker_url=broker.url(),
                database_url=pg_url,
                client_id=f"village-collector-{n}",
                broker={"shared_group": "province"},
                extra=FAST,
            )
        )
        for n in range(2)
    ]
    try:
        for collector in collectors:
            collector.start()
        send(broker, "s1", [*range(1, 51), *range(61, 101)])
        send(broker, "s1", list(range(51, 61)))
        repaired = (EpochAck(epoch="", through=100),)
        wait_until(lambda: ack_is(broker, "s1", repaired), 30, "no final ack")
        published = [
            [event["epochs"][0][1] for event in collector.events()
             if event.get("event") == "ack_published"]
            for collector in collectors
        ]  # fmt: skip
        for collector in collectors:
            assert collector.terminate() == 0
        shares = [c.wait_event("collector_stopped")["inserted"] for c in collectors]
    finally:
        for collector in collectors:
            collector.__exit__()
    assert sum(shares) == 100
    # Each collector's acks, in the order it published them, never move the watermark back.
    assert any(published), published
    for throughs in published:
        assert throughs == sorted(throughs)
    db = open_database(pg_url)
    try:
        rows = db.execute("SELECT epoch, through_seq, missing FROM confirmations")
    finally:
        db.close()
    assert rows == [("", 100, "[]")]


def test_no_ack_when_confirmation_is_off(tmp_path: Path, broker: Broker) -> None:
    """`confirm.enabled: false`: readings are stored, nothing is confirmed or published."""
    database_url = f"sqlite://{tmp_path}/collector.sqlite"
    off = {"confirm": {"enabled": False, "check_s": 0.3}}
    config = write_config(tmp_path / "collector", broker_url=broker.url(),
                          database_url=database_url, extra=off)  # fmt: skip
    with CollectorProcess(config).start() as collector:
        send(broker, "s1", list(range(1, 21)))
        wait_until(lambda: len(stored_seqs(database_url).get("s1", [])) == 20, 30, "not stored")
        time.sleep(1.0)  # three check periods, had the confirmer been on
        assert retained_ack(broker.host, broker.port, PREFIX, "s1") is None
        assert collector.terminate() == 0
    db = open_database(database_url)
    try:
        assert db.execute("SELECT count(*) FROM confirmations") == [(0,)]
    finally:
        db.close()
