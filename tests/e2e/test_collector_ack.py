"""The collector's ack on a real mosquitto (issue 18): readings the broker acknowledged stay on
disk until the collector confirms them, and what it reports missing is sent again.

The agent runs in-process, built by the composition root with no probes (each round still commits
its own buffer readings), so a test decides when rounds happen; the kill -9 test runs the real
`village-agent run` process. A test publishes the collector's retained ack itself.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.clock import SystemClock
from agent.config.load import load_config
from agent.contract.ack import Ack, EpochAck, encode_ack
from agent.daemon.compose import build_agent, build_link, open_buffer
from agent.daemon.rounds import Agent
from agent.files import buffer_path
from agent.publish.link import MqttLink
from simulator.virtual.collector import Collector
from tests.support.agent_proc import (
    AgentProcess,
    buffer_epoch,
    buffer_state,
    wait_until,
    write_config,
)
from tests.support.faults import tally
from tests.support.mqtt_broker import Broker

SITE = "test-site-01"
PREFIX = "desa/test"


def publish_ack(
    broker: Broker,
    through: int,
    missing: tuple[tuple[int, int], ...] = (),
    *,
    ts: int,
    epoch: str = "not-yet-known",
) -> None:
    """Publish the collector's ack for the site's buffer `epoch`, retained, as the collector does.
    An ack for another epoch still tells the agent that a collector confirms."""
    ack = Ack(ts_ms=ts, epochs=(EpochAck(epoch=epoch, through=through, missing=missing),))
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        info = client.publish(f"{PREFIX}/{SITE}/ack", encode_ack(ack), qos=1, retain=True)
        info.wait_for_publish(5)
        assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


class Site:
    """One agent in this process, on the real link, its rounds driven by the test."""

    def __init__(self, directory: Path, broker: Broker, **buffer: Any) -> None:
        file = write_config(
            directory,
            broker_url=broker.url(),
            broker={"batch_max_readings": 20},
            extra={"buffer": {"min_free_mb": 1, **buffer}},
        )
        config = load_config(file)
        self.link: MqttLink = build_link(config)
        self.link.start()
        opened, samples = open_buffer(config, now=time.time())
        self.agent: Agent = build_agent(
            config,
            clock=SystemClock(),
            boot_id="boot-1",
            link=self.link,
            probes=[],
            buffer=opened,
            start_samples=samples,
        )
        self.buffer = opened

    def serve_until(self, done: Callable[[], bool], timeout_s: float = 15.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not done():
            assert time.monotonic() < deadline, "condition not met in time"
            self.agent.service(0.05)

    def rounds(self, count: int) -> None:
        for _ in range(count):
            self.agent.round()
            self.agent.service(0.01)

    def deliver_all(self) -> int:
        """Serve until the broker acknowledged everything and the buffer took note; return the
        last seq."""
        self.serve_until(lambda: self.agent.backlog() == 0 and self.agent.outbox.in_flight == 0)
        self.agent.outbox.settle(now=True)
        return self.buffer.stats().last_seq

    def close(self) -> None:
        self.link.stop()
        self.buffer.close()


@pytest.fixture
def site(tmp_path: Path, broker: Broker) -> Iterator[Site]:
    running = Site(tmp_path / "site", broker)
    yield running
    running.close()


def test_without_a_collector_ack_rows_go_on_the_brokers_ack(site: Site, broker: Broker) -> None:
    """(a) No ack ever seen: the buffer empties on PUBACK, as before; nothing is kept."""
    with Collector(broker.url(), PREFIX) as collector:
        site.serve_until(lambda: site.link.connected)
        site.rounds(10)
        last = site.deliver_all()
        assert collector.wait_for(SITE, range(1, last + 1), 10)
    stats = site.buffer.stats()
    assert (stats.count, stats.unconfirmed, site.buffer.unconfirmed.active) == (0, 0, False)
    assert site.agent.status().confirm_seen is False


def test_a_covering_ack_confirms_everything(site: Site, broker: Broker) -> None:
    """(b) Once a collector ack was seen, delivered rows stay until an ack covers them."""
    publish_ack(broker, 0, ts=1)
    site.serve_until(lambda: site.buffer.unconfirmed.active)
    site.rounds(10)
    last = site.deliver_all()
    assert site.buffer.stats().unconfirmed == last
    publish_ack(broker, last, ts=2, epoch=site.buffer.epoch)
    site.serve_until(lambda: site.buffer.stats().unconfirmed == 0)
    status = site.agent.status()
    assert (status.confirmed_through, status.unconfirmed, status.confirm_missing) == (last, 0, "")


def test_a_missing_range_is_sent_again_and_only_that(site: Site, broker: Broker) -> None:
    """(c) The readings in the missing range, and only those, are published once more; a covering
    ack then leaves nothing unconfirmed."""
    publish_ack(broker, 0, ts=1)
    site.serve_until(lambda: site.buffer.unconfirmed.active)
    with Collector(broker.url(), PREFIX) as collector:
        site.rounds(12)
        last = site.deliver_all()
        assert collector.wait_for(SITE, range(1, last + 1), 10)
        gap = (7, 29)
        publish_ack(broker, 3, (gap,), ts=2, epoch=site.buffer.epoch)
        site.serve_until(lambda: site.agent.status().confirm_missing == "7-29")

        def resent() -> bool:
            copies = collector.sites[SITE].series().copies
            return all(copies[s] == 2 for s in range(gap[0], gap[1] + 1))

        site.serve_until(resent)
        site.deliver_all()
        copies = dict(collector.sites[SITE].series().copies)
        twice = {s for s, n in copies.items() if n > 1}
        assert twice == set(range(gap[0], gap[1] + 1))
        # 1-3 and 4-6 were confirmed; 30 and above wait for the collector's word.
        assert site.buffer.stats().unconfirmed == last - 6
        publish_ack(broker, last, ts=3, epoch=site.buffer.epoch)
        site.serve_until(lambda: site.buffer.stats().unconfirmed == 0)


def test_the_bound_releases_the_oldest_and_reports_it(tmp_path: Path, broker: Broker) -> None:
    """(d) Beyond unconfirmed_max_readings the oldest delivered are released, counted, and the
    count is published like buffer.dropped_total."""
    site = Site(tmp_path / "site", broker, unconfirmed_max_readings=30)
    try:
        publish_ack(broker, 0, ts=1)
        site.serve_until(lambda: site.buffer.unconfirmed.active)
        with Collector(broker.url(), PREFIX) as collector:
            site.rounds(15)
            last = site.deliver_all()
            stats = site.buffer.stats()
            assert (stats.unconfirmed, stats.unconfirmed_released_total) == (30, last - 30)
            assert stats.dropped_total == 0
            site.rounds(1)
            site.deliver_all()

            def reported() -> bool:
                values = [
                    r.value
                    for r in collector.readings(SITE)
                    if r.metric == "buffer.unconfirmed_released_total"
                ]
                return bool(values) and max(values) >= last - 30

            wait_until(reported, 10)
    finally:
        site.close()


def _delivered(state_dir: Path) -> set[int]:
    conn = sqlite3.connect(f"file:{buffer_path(state_dir)}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT first_seq, last_seq FROM delivered").fetchall()
    finally:
        conn.close()
    return {s for lo, hi in rows for s in range(lo, hi + 1)}


def test_kill_9_between_puback_and_ack_loses_nothing(tmp_path: Path, broker: Broker) -> None:
    """(e) The delivered rows are on disk: after a kill -9 and a restart, a missing range the
    collector reports is still sent again from them."""
    publish_ack(broker, 0, ts=1)
    config = write_config(tmp_path, broker_url=broker.url(), broker={"batch_max_readings": 20})
    with AgentProcess(config) as agent:
        agent.wait_status("unconfirmed", lambda n: n >= 40, 30)
        agent.kill()
    kept = _delivered(agent.state_dir)
    assert set(range(1, 41)) <= kept
    with Collector(broker.url(), PREFIX) as collector, AgentProcess(config) as again:
        again.wait_status("confirm_seen", lambda seen: seen is True)
        publish_ack(broker, 4, ((5, 24),), ts=2, epoch=buffer_epoch(again.state_dir))
        assert collector.wait_for(SITE, range(5, 25), 15), again.log()
        again.wait_status("confirmed_through", lambda through: through == 4)
        assert again.terminate() == 0


def ack_of(seqs: set[int]) -> tuple[int, tuple[tuple[int, int], ...]]:
    """What a collector that stored `seqs` says: through, and the first 32 gaps above it."""
    through = 0
    while through + 1 in seqs:
        through += 1
    missing: list[tuple[int, int]] = []
    start = None
    for seq in range(through + 1, max(seqs, default=0) + 1):
        if seq not in seqs and start is None:
            start = seq
        elif seq in seqs and start is not None:
            missing.append((start, seq - 1))
            start = None
    return through, tuple(missing[:32])


def test_readings_the_broker_acknowledged_and_lost_are_sent_again(
    tmp_path: Path, broker: Broker
) -> None:
    """The broker acknowledges readings it then delivers to nobody (here: the collector is away
    and its session not kept; a restarted mosquitto or a full queue do the same). The collector's
    ack names the gap; the agent sends it again, and in the end nothing is lost."""
    publish_ack(broker, 0, ts=1)
    config = write_config(tmp_path, broker_url=broker.url(), broker={"batch_max_readings": 20})
    with Collector(broker.url(), PREFIX) as collector, AgentProcess(config) as agent:
        agent.wait_status("confirm_seen", lambda seen: seen is True)
        epoch = buffer_epoch(agent.state_dir)
        wait_until(lambda: len(collector.seqs(SITE)) > 20, 20, agent.log())
        collector.stop()
        away_from = agent.status()["last_seq"]
        agent.wait_status("readings_acked", lambda n: n > away_from + 60, 30)
        collector.start()
        back = agent.status()["last_seq"]
        wait_until(lambda: max(collector.seqs(SITE)) > back, 20, agent.log())
        through, missing = ack_of(collector.seqs(SITE))
        lost_at_broker = sum(hi - lo + 1 for lo, hi in missing)
        assert lost_at_broker >= 60, (through, missing)
        publish_ack(broker, through, missing, ts=2, epoch=epoch)
        last = agent.status()["last_seq"]
        assert collector.wait_for(SITE, range(1, last + 1), 30), agent.log()[-3000:]
        through, missing = ack_of(collector.seqs(SITE))
        publish_ack(broker, through, missing, ts=3, epoch=epoch)
        agent.wait_status("confirmed_through", lambda n: n == through)
        last_seq, _ = buffer_state(agent.state_dir)
        assert collector.wait_for(SITE, range(1, last_seq + 1), 30)
        assert agent.terminate() == 0
        row = tally(
            "35 broker loses acknowledged readings",
            f"collector away, session not kept: {lost_at_broker} lost at the broker",
            agent,
            collector,
            SITE,
        )
    assert row.lost == 0, row
    # Sent again: the gap, and at most a window's worth of flights voided when it was reopened.
    assert row.duplicated <= lost_at_broker + 4 * 20, row  # inflight_max 4, batches of 20
