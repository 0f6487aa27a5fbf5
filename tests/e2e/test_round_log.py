"""The daemon's log: one info line per round, and at debug one per publish batch."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.agent_proc import AgentProcess, write_config
from tests.support.mqtt_broker import Broker


def _events(text: str) -> list[dict[str, object]]:
    found = []
    for line in text.splitlines():
        if line.startswith("{"):
            found.append(json.loads(line))
    return found


def test_info_logs_a_line_per_round_and_debug_adds_publishes(
    tmp_path: Path, broker: Broker
) -> None:
    """At info each round logs readings, duration and backlog, and no publish line; debug adds them."""
    for level in ("info", "debug"):
        config = write_config(
            tmp_path / level, broker_url=broker.url(), extra={"log": {"level": level}}
        )
        with AgentProcess(config) as agent:
            agent.wait_status("readings_acked", lambda n: n > 0)
            agent.wait_status("last_seq", lambda seq: seq > 40)  # a few rounds
            assert agent.terminate() == 0
            events = _events(agent.log())
        rounds = [e for e in events if e.get("event") == "round_done"]
        assert len(rounds) >= 2, agent.log()
        assert all(e["level"] == "info" for e in rounds)
        assert {"readings", "duration_s", "backlog"} <= set(rounds[0])
        assert int(str(rounds[0]["readings"])) > 0
        batches = [e for e in events if e.get("event") == "publish_batches_sent"]
        if level == "info":
            assert batches == []
        else:
            assert batches and int(str(batches[0]["messages"])) >= 1
