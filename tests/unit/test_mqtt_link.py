"""The MQTT connection: backoff, splay, error wording, and a network thread that survives bugs."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any, cast

from agent.config.load import parse_config
from agent.publish.link import Acked, Connected, MqttLink, Will, backoff_s, splay_fraction
from tests.support.mqtt_broker import Broker


def test_backoff_doubles_up_to_the_ceiling_with_jitter() -> None:
    """Each failed attempt doubles the base; the wait is drawn from the upper half of it."""
    rng = random.Random(1)
    for attempt, base in [(1, 2.0), (2, 4.0), (3, 8.0), (8, 256.0), (9, 300.0), (30, 300.0)]:
        waits = [backoff_s(attempt, 2.0, 300.0, rng) for _ in range(200)]
        assert min(waits) >= base / 2 and max(waits) <= base
        assert max(waits) - min(waits) > base / 4  # really jittered, not one value


def test_splay_spreads_sites_and_is_stable() -> None:
    """The start-up share is the same for a site every time and spread across sites."""
    assert splay_fraction("kukar-01") == splay_fraction("kukar-01")
    shares = [splay_fraction(f"site-{n}") for n in range(1000)]
    assert all(0 <= s < 1 for s in shares)
    buckets = [sum(1 for s in shares if k / 10 <= s < (k + 1) / 10) for k in range(10)]
    assert min(buckets) > 60


def _link(broker: Broker, tmp_path: Path, will: Will) -> MqttLink:
    config = parse_config(
        f"site_id: a\nstate_dir: s\ninterval_s: 1\nbroker:\n  url: {broker.url()}\n"
        "  topic_prefix: t\n  splay_s: 0\n  reconnect_min_s: 0.2\n  reconnect_max_s: 1\n",
        tmp_path / "agent.yaml",
    )
    return MqttLink(config.broker, client_id="link-test", will=will)


def test_an_exception_inside_a_paho_callback_leaves_the_link_working(
    tmp_path: Path, broker: Broker
) -> None:
    """A birth payload paho refuses raises inside on_connect: caught, and publishing goes on."""
    bad_birth = cast(Any, ["not", "bytes"])
    link = _link(broker, tmp_path, Will(topic="t/a/status", online=bad_birth, offline=b"offline"))
    link.start()
    try:
        event = link.next_event(10)
        assert isinstance(event, Connected)
        handle = link.publish("t/a/telemetry", b"{}")
        assert handle is not None
        deadline = time.monotonic() + 10
        acked = None
        while acked is None and time.monotonic() < deadline:
            candidate = link.next_event(0.5)
            if isinstance(candidate, Acked):
                acked = candidate
        assert acked is not None and acked.ok and acked.mid == handle[1]
        assert link.alive
    finally:
        link.stop(2)
    assert not link.alive
