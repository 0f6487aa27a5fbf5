"""latency.loss_window_percent: loss over the last `latency.loss_window` probes of each target."""

from pathlib import Path

import pytest

from agent.config.load import ConfigError, parse_config
from agent.config.schema import LatencyConfig
from agent.probes.latency import LatencyProbe
from agent.reading import Sample
from simulator.fakes.measure import LossyPinger

WINDOW = "latency.loss_window_percent"


def _window(samples: list[Sample]) -> dict[str, float]:
    return {s.tags["target"]: s.value for s in samples if s.metric == WINDOW}


def _probe(pinger: LossyPinger, *, count: int, window: int, hop: str = "") -> LatencyProbe:
    targets = ("gateway", "1.1.1.1") if hop else ("1.1.1.1",)
    config = LatencyConfig(targets=targets, count=count, loss_window=window)
    return LatencyProbe(config, pinger=pinger, first_hop=lambda: hop or None)


def test_nothing_is_sent_until_the_window_is_full() -> None:
    """With 10 probes a round and a window of 30, the third round is the first to report it."""
    probe = _probe(LossyPinger(lost=(1, 2, 3)), count=10, window=30)
    assert _window(probe.collect()) == {}
    assert _window(probe.collect()) == {}
    assert _window(probe.collect()) == {"1.1.1.1": 20.0}  # 6 of 30


def test_the_window_slides_probe_by_probe() -> None:
    """Each round pushes its probes in and the oldest out; per-round loss_percent is unchanged."""
    probe = _probe(LossyPinger(lost=(1, 2, 3, 0, 0, 0)), count=10, window=30)
    for _ in range(3):
        probe.collect()
    fourth = probe.collect()
    assert _window(fourth) == {"1.1.1.1": 16.67}  # 2 + 3 + 0 of 30
    assert [s.value for s in fourth if s.metric == "latency.loss_percent"] == [0.0]
    probe.collect()
    assert _window(probe.collect()) == {"1.1.1.1": 0.0}


def test_a_window_that_cuts_a_round_counts_its_probes_at_the_round_loss() -> None:
    """Window 15, count 10: the older round's 5 remaining probes count at that round's ratio."""
    probe = _probe(LossyPinger(lost=(2, 4)), count=10, window=15)
    assert _window(probe.collect()) == {}
    assert _window(probe.collect()) == {"1.1.1.1": 33.33}  # (5 * 0.2 + 10 * 0.4) / 15


def test_each_target_has_its_own_window_with_the_round_tags() -> None:
    """The first hop's window reading carries target, method and hop=first like its other readings."""
    probe = _probe(LossyPinger(lost=(5,)), count=10, window=10, hop="192.168.8.1")
    samples = [s for s in probe.collect() if s.metric == WINDOW]
    assert {s.tags["target"]: s.value for s in samples} == {"192.168.8.1": 50.0, "1.1.1.1": 50.0}
    first = next(s for s in samples if s.tags["target"] == "192.168.8.1")
    assert first.tags == {"target": "192.168.8.1", "method": "icmp-raw", "hop": "first"}


def test_a_new_first_hop_address_starts_an_empty_window() -> None:
    """When DHCP hands out another next hop, the old address's probes do not count for the new."""
    hops = iter(["192.168.8.1", "192.168.8.1", "10.0.0.1", "10.0.0.1"])
    config = LatencyConfig(targets=("gateway",), count=10, loss_window=20)
    probe = LatencyProbe(config, pinger=LossyPinger(lost=(0,)), first_hop=lambda: next(hops))
    assert [_window(probe.collect()) for _ in range(4)] == [
        {},
        {"192.168.8.1": 0.0},
        {},
        {"10.0.0.1": 0.0},
    ]


def test_a_restarted_probe_waits_for_a_full_window_again() -> None:
    """The window lives in memory: a new probe (after a restart) reports nothing until refilled."""
    pinger = LossyPinger(lost=(0,))
    before = _probe(pinger, count=10, window=10)
    assert _window(before.collect()) == {"1.1.1.1": 0.0}
    after = _probe(pinger, count=10, window=20)
    assert _window(after.collect()) == {}


def test_defaults_are_ten_probes_and_a_window_of_a_hundred() -> None:
    """Loss per round moves in 10-point steps, the window's in 1-point steps; gateway is a target."""
    config = LatencyConfig()
    assert (config.count, config.loss_window) == (10, 100)
    assert config.targets == ("gateway", "1.1.1.1")


def test_a_window_shorter_than_a_round_is_refused(tmp_path: Path) -> None:
    """latency.loss_window below latency.count is a config error naming the key."""
    text = (
        "site_id: a\nstate_dir: s\ninterval_s: 1\nbroker:\n  url: mqtt://h\n  topic_prefix: p\n"
        "latency:\n  count: 20\n  loss_window: 10\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text, tmp_path / "agent.yaml")
    assert caught.value.problems == [
        "At 'latency.loss_window': must be at least latency.count (20), got 10"
    ]
