"""/metrics over HTTP from a running collector (and from `serve` alone) shows each series' latest
value, in the Prometheus text format."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

from collector.bridge.prometheus import label_name, metric_name
from collector.store import open_database
from tests.support.agent_proc import AgentProcess, buffer_state, wait_until
from tests.support.agent_proc import write_config as agent_config
from tests.support.collector_proc import (
    PREFIX,
    CollectorProcess,
    free_port,
    stored_seqs,
    write_config,
)
from tests.support.mqtt_broker import Broker

SAMPLE = re.compile(r'^(\w+)\{((?:\w+="(?:[^"\\]|\\.)*",?)*)\} (\S+)$')


def scrape(listen: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(f"http://{listen}/metrics", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        body = response.read().decode()
    samples = {}
    for line in body.splitlines():
        if line.startswith("#"):
            continue
        found = SAMPLE.match(line)
        assert found, line
        name, labels, value = found.groups()
        pairs = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', labels))
        samples[(name, pairs)] = float(value)
    return samples


def newest(database_url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Each series' value at its highest seq, straight from the readings."""
    db = open_database(database_url)
    try:
        rows = db.execute("SELECT site, seq, metric, tags, value FROM readings ORDER BY seq")
    finally:
        db.close()
    out = {}
    for site, _seq, metric, tags, value in rows:
        labels = {("site", site), *((label_name(k), v) for k, v in json.loads(tags).items())}
        out[(metric_name(metric), frozenset(labels))] = float(value)
    return out


def site_status(database_url: str) -> str | None:
    db = open_database(database_url)
    try:
        rows = db.execute("SELECT status FROM sites WHERE site = 'kukar-01'")
    finally:
        db.close()
    return rows[0][0] if rows else None


def test_metrics_show_the_latest_value_of_every_series(tmp_path: Path, broker: Broker) -> None:
    """After an agent published for a while, every series' newest value is on /metrics, from
    `run` and from `serve`; the site's status and last-seen time are there too."""
    database_url = f"sqlite://{tmp_path}/collector.sqlite"
    listen = f"127.0.0.1:{free_port()}"
    config = write_config(tmp_path / "collector", broker_url=broker.url(),
                          database_url=database_url, listen=listen)  # fmt: skip
    agent = AgentProcess(
        agent_config(
            tmp_path / "agent",
            broker_url=broker.url(),
            site_id="kukar-01",
            broker={"topic_prefix": PREFIX},
        )
    )
    with CollectorProcess(config).start() as collector, agent:
        collector.wait_event("http_listening")
        wait_until(lambda: len(stored_seqs(database_url).get("kukar-01", ())) > 100, 30,
                   agent.log())  # fmt: skip
        assert agent.terminate() == 0
        last_seq, remaining = buffer_state(agent.state_dir)
        wait_until(
            lambda: (
                set(range(1, last_seq + 1)) - remaining
                <= set(stored_seqs(database_url)["kukar-01"])
            ),
            20,
        )
        wait_until(lambda: site_status(database_url) == "offline", 20, "no offline status")
        samples = scrape(listen)
        expected = newest(database_url)
        assert {k: samples[k] for k in expected} == expected
        rtt = [k for k in samples if k[0] == "village_latency_rtt_avg_ms"]
        assert rtt and ("target", "127.0.0.1") in rtt[0][1]
        site = frozenset({("site", "kukar-01")})
        assert samples[("village_site_online", site)] == 0  # the agent stopped: offline
        assert samples[("village_site_last_seen_seconds", site)] > 1.7e9
        assert collector.terminate() == 0

    served_at = f"127.0.0.1:{free_port()}"
    alone = write_config(tmp_path / "serve", broker_url=broker.url(), database_url=database_url,
                         listen=served_at)  # fmt: skip
    with CollectorProcess(alone, command="serve").start(wait_connected=False) as serve:
        serve.wait_event("http_listening")
        assert scrape(served_at) == samples
        assert serve.terminate() == 0
