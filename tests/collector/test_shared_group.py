"""Two collectors in one shared group against one PostgreSQL split the load without duplicates."""

from __future__ import annotations

import time
from pathlib import Path

from tests.collector.test_ingest_crash import SITES, agents, committed
from tests.support.agent_proc import wait_until
from tests.support.collector_proc import CollectorProcess, stored_seqs, write_config
from tests.support.mqtt_broker import Broker


def test_two_collectors_share_the_messages_and_store_each_reading_once(
    tmp_path: Path, broker: Broker, pg_url: str
) -> None:
    """Each collector stores a share (both > 0), together exactly the rows in the database, and
    every reading the agents had acknowledged is there."""
    collectors = [
        CollectorProcess(
            write_config(
                tmp_path / f"collector-{n}",
                broker_url=broker.url(),
                database_url=pg_url,
                client_id=f"village-collector-{n}",
                broker={"shared_group": "province"},
            )
        )
        for n in range(2)
    ]
    fleet = agents(tmp_path, broker)
    try:
        for collector in collectors:
            collector.start()
        for agent in fleet:
            agent.start()
        wait_until(lambda: len(stored_seqs(pg_url)) == SITES, 30, "no readings stored")
        time.sleep(2.0)
        for agent in fleet:
            assert agent.terminate() == 0, agent.log()
        sent = {f"site-{i}": committed(agent) for i, agent in enumerate(fleet)}
        wait_until(
            lambda: all(
                acked <= set(stored_seqs(pg_url).get(site, ())) for site, (acked, _) in sent.items()
            ),
            30,
            "acknowledged readings missing",
        )
        for collector in collectors:
            assert collector.terminate() == 0
    finally:
        for agent in fleet:
            agent.__exit__()
        for collector in collectors:
            collector.__exit__()
    shares = [c.wait_event("collector_stopped")["inserted"] for c in collectors]
    stored = stored_seqs(pg_url)
    total = sum(len(seqs) for seqs in stored.values())
    assert all(share > 0 for share in shares), shares
    assert sum(shares) == total
    for site, (acked, buffered) in sent.items():
        assert len(stored[site]) == len(set(stored[site]))
        assert acked <= set(stored[site]) <= acked | buffered
