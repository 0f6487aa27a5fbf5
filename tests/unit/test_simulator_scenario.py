"""Scenario files: strict validation with paths, shipped files valid, fakes seeded."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from agent.config.schema import LatencyConfig
from simulator.fakes.site import FakeCounters, FakePinger, Schedule, hotspot_use
from simulator.virtual.scenario import (
    ScenarioError,
    agent_config,
    load_scenario,
    parse_scenario,
    shipped_scenarios,
)

REQUIRED = {
    "vsat-normal-day",
    "4g-outage",
    "power-cuts",
    "broker-outage",
    "disk-full",
    "buffer-bound",
}


def test_every_required_scenario_ships_and_loads() -> None:
    """The shipped scenarios include the required set and all pass strict validation."""
    assert set(shipped_scenarios()) >= REQUIRED
    for name in shipped_scenarios():
        assert load_scenario(name).name == name


def test_bad_scenario_reports_every_problem_with_its_path() -> None:
    """Unknown keys, bad values and bad agent settings are all reported, each with its path."""
    text = """
name: broken
hours: -1
link: {profile: satelit}
events:
  - {kind: power_cut, at_h: 1, for_h: 0}
agent:
  buffer: {max_readingz: 5}
"""
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "broken.yaml")
    problems = "\n".join(caught.value.problems)
    assert "At 'hours'" in problems
    assert "At 'link.profile'" in problems
    assert "At 'events[0].for_h'" in problems
    assert "At 'agent.buffer.max_readingz'" in problems and "max_readings" in problems


def test_event_past_the_end_is_refused() -> None:
    """An event that would end after the run is an error, not a silently shortened outage."""
    with pytest.raises(ScenarioError, match="ends after the run"):
        parse_scenario(
            "name: x\nhours: 2\nevents: [{kind: backhaul_outage, at_h: 1, for_h: 5}]", "x"
        )


def test_scenario_agent_section_reaches_the_agent_config(tmp_path: Path) -> None:
    """The scenario's agent settings, and the simulator's broker and site, form the agent config."""
    scenario = load_scenario("buffer-bound")
    config = agent_config(
        scenario,
        site_id="sim-a",
        state_dir=tmp_path,
        broker_url="mqtt://127.0.0.1:1",
        topic_prefix="p",
    )
    assert config.buffer.max_readings == 3000
    assert config.broker.splay_s == 0 and config.broker.reconnect_max_s <= 1
    assert config.site_id == "sim-a" and config.state_dir == tmp_path


def test_fakes_are_seeded_and_follow_the_schedule() -> None:
    """Same seed, same pings; no answers during a backhaul outage; busier in the evening."""
    scenario = load_scenario("4g-outage")
    schedule = Schedule(scenario)
    start = scenario.start_s
    outage = start + 14 * 3600
    config = LatencyConfig(targets=("1.1.1.1",), count=20)

    def pings(at: float, seed: int) -> list[tuple[float, ...]]:
        pinger = FakePinger(scenario, schedule, lambda: at, random.Random(seed))
        return [r.rtts_ms for r in pinger(config)]

    assert pings(start, 1) == pings(start, 1)
    assert pings(start, 1) != pings(start, 2)
    assert pings(outage, 1) == [()]
    evening = start + 20 * 3600  # the scenario starts at local midnight
    assert hotspot_use(scenario.hotspot, evening) > 4 * hotspot_use(
        scenario.hotspot, start + 3 * 3600
    )
    now = [start]
    counters = FakeCounters(scenario, schedule, lambda: now[0], random.Random(1))
    first = counters()["eth0"].rx_bytes
    now[0] = start + 12.5 * 3600  # the outage starts at 13 h
    before = counters()["eth0"].rx_bytes
    assert before > first
    now[0] = outage
    during = counters()["eth0"].rx_bytes
    now[0] = outage + 600
    assert counters()["eth0"].rx_bytes == during  # nothing flows while the backhaul is down
