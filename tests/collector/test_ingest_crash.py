"""FAULTS row 33: the collector killed mid-stream while real agents publish; after restarts every
reading the agents committed is in the database exactly once, on SQLite and on PostgreSQL."""

from __future__ import annotations

import random
import time
from pathlib import Path

from tests.support.agent_proc import AgentProcess, buffer_state, wait_until
from tests.support.agent_proc import write_config as agent_config
from tests.support.collector_proc import PREFIX, CollectorProcess, stored_seqs, write_config
from tests.support.mqtt_broker import Broker

SITES = 3


def agents(tmp_path: Path, broker: Broker) -> list[AgentProcess]:
    return [
        AgentProcess(
            agent_config(
                tmp_path / f"agent-{i}",
                broker_url=broker.url(),
                site_id=f"site-{i}",
                interval_s=0.2,
                broker={"topic_prefix": PREFIX, "batch_max_readings": 50},
            )
        )
        for i in range(SITES)
    ]


def committed(agent: AgentProcess) -> tuple[set[int], set[int]]:
    """(seqs the agent saw acknowledged, seqs still in its buffer) after it stopped."""
    last_seq, remaining = buffer_state(agent.state_dir)
    return set(range(1, last_seq + 1)) - remaining, remaining


def test_kill_9_mid_stream_loses_nothing_and_stores_once(
    tmp_path: Path, broker: Broker, database_url: str
) -> None:
    """Three kill -9s at random moments while three agents publish: afterwards the database holds
    every acknowledged reading of every agent, each once, and nothing it was not sent."""
    rng = random.Random(33)
    config = write_config(
        tmp_path / "collector", broker_url=broker.url(), database_url=database_url
    )
    collector = CollectorProcess(config).start()
    fleet = agents(tmp_path, broker)
    try:
        for agent in fleet:
            agent.start()
        wait_until(lambda: len(stored_seqs(database_url)) == SITES, 30, "no readings stored")
        for _ in range(3):
            time.sleep(rng.uniform(0.3, 1.2))
            collector.kill()
            time.sleep(rng.uniform(0.1, 0.8))  # the broker queues for the absent session
            collector.start()
        time.sleep(1.0)
        for agent in fleet:
            assert agent.terminate() == 0, agent.log()
        sent = {f"site-{i}": committed(agent) for i, agent in enumerate(fleet)}

        def complete() -> bool:
            stored = stored_seqs(database_url)
            return all(acked <= set(stored.get(site, ())) for site, (acked, _) in sent.items())

        wait_until(complete, 30, "acknowledged readings missing from the database")
        assert collector.terminate() == 0
    finally:
        for agent in fleet:
            agent.__exit__()
        collector.__exit__()
    stored = stored_seqs(database_url)
    for site, (acked, buffered) in sent.items():
        seqs = stored[site]
        assert len(seqs) == len(set(seqs)), f"{site}: a reading stored twice"
        assert acked <= set(seqs), f"{site}: lost {sorted(acked - set(seqs))[:10]}"
        # Anything beyond: readings the broker took whose PUBACK the stopping agent did not see.
        assert set(seqs) <= acked | buffered
        assert len(acked) > 50
