"""Backhaul state, outage events and availability from each round's latency results."""

from __future__ import annotations

from agent.probes.uptime import BackhaulTracker
from agent.reading import Sample
from simulator.virtual.clock import Timeline, VirtualClock


def _loss(target: str, percent: float, **tags: str) -> Sample:
    return Sample(metric="latency.loss_percent", value=percent, tags={"target": target, **tags})


def test_an_outage_gives_one_start_and_one_end_with_its_duration() -> None:
    """Down for three rounds of 60 s: one start event, one end event of 180 s."""
    timeline = Timeline(1_800_000_000.0)
    clock = VirtualClock(timeline)
    tracker = BackhaulTracker(clock)
    events: list[tuple[str, float]] = []
    for loss in (0, 0, 100, 100, 100, 0, 0):
        out = tracker.update([_loss("1.1.1.1", loss)])
        events += [(s.metric, s.value) for s in out if s.metric.startswith("event.")]
        timeline.advance(60)
    assert events == [("event.outage_start", 1.0), ("event.outage_end_s", 180.0)]


def test_the_first_hop_answering_does_not_hide_a_dead_backhaul() -> None:
    """A modem that answers while everything beyond it is silent still counts as an outage."""
    clock = VirtualClock(Timeline(1_800_000_000.0))
    tracker = BackhaulTracker(clock)
    out = tracker.update([_loss("192.168.8.1", 0, hop="first"), _loss("1.1.1.1", 100)])
    assert {s.metric: s.value for s in out}["uptime.backhaul_up"] == 0.0


def test_availability_is_the_share_of_rounds_up() -> None:
    """Three rounds up of four gives 0.75."""
    timeline = Timeline(1_800_000_000.0)
    tracker = BackhaulTracker(VirtualClock(timeline))
    last: list[Sample] = []
    for loss in (0, 100, 0, 0):
        last = tracker.update([_loss("1.1.1.1", loss)])
        timeline.advance(60)
    assert {s.metric: s.value for s in last}["uptime.availability_ratio"] == 0.75
