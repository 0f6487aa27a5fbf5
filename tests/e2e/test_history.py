"""The technician's local history (`status --history`) after a simulated week: real agent parts,
virtual time, a real mosquitto. Two backhaul outages and a power cut must show with the right
start and length, and the files stay within their bound."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from agent.cli.history import history_report, render_text
from agent.clock import SystemClock
from agent.config.load import load_config
from agent.daemon.compose import build_agent, build_link, open_buffer
from agent.files import HISTORY_FILE, HISTORY_NOW_FILE
from agent.history.journal import History
from simulator.virtual.fleet import RunOptions, Site, run_slice
from simulator.virtual.scenario import agent_config, parse_scenario
from tests.support.agent_proc import write_config
from tests.support.mqtt_broker import Broker

INTERVAL_S = 300
WEEK = f"""
name: history-week
description: a week with two backhaul outages and a power cut
seed: 7
hours: 168
start: "2026-03-02T00:00:00+08:00"
link:
  profile: vsat
events:
  - {{kind: backhaul_outage, at_h: 26, for_h: 3.5}}
  - {{kind: power_cut, at_h: 60, for_h: 2, ntp_sync_after_h: 0.1}}
  - {{kind: backhaul_outage, at_h: 100.25, for_h: 1}}
agent:
  interval_s: {INTERVAL_S}
"""
T0 = 1772380800.0  # 2026-03-02T00:00:00+08:00


def test_a_week_shows_each_outage_and_the_power_cut(
    tmp_path: Path, broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario = parse_scenario(WEEK, "history-week")
    assert scenario.start_s == T0
    options = RunOptions(
        broker_url=broker.url(),
        topic_prefix="sim/history",
        state_root=tmp_path,
        seed=scenario.seed,
        hours=scenario.hours,
        drain_s=30,
    )
    run_slice([Site(site_id="desa-riwayat", scenario=scenario)], options)
    state = tmp_path / "desa-riwayat"
    config = agent_config(
        scenario,
        site_id="desa-riwayat",
        state_dir=state,
        broker_url=broker.url(),
        topic_prefix=options.topic_prefix,
    )
    # The gateway's zone, as on a site in Sulawesi: days and times are read in it.
    monkeypatch.setenv("TZ", "Asia/Makassar")
    time.tzset()
    try:
        out = history_report(config, now=T0 + 168 * 3600)
        english, indonesian = render_text(out, "en"), render_text(out, "id")
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()

    # Two outages: each starts within a round of the cut and lasts its length within a round
    # (give or take a minute: the gateway's wall clock is not the true time to the second).
    outages = [(o["start"] - T0, o["duration_s"]) for o in out["outages"]]
    assert len(outages) == 2, out["outages"]
    for (start, length), (at_h, for_h) in zip(outages, [(26, 3.5), (100.25, 1)], strict=True):
        assert -60 <= start - at_h * 3600 <= INTERVAL_S, (start, at_h)
        assert abs(length - for_h * 3600) <= INTERVAL_S, (length, for_h)
    # The power cut: back when the gateway booted, its start the last moment known alive.
    (cut,) = out["power_cuts"]
    assert abs(cut["back"] - (T0 + 62 * 3600)) <= 60, cut
    assert 0 <= T0 + 60 * 3600 - cut["down_from"] <= INTERVAL_S + 300, cut

    # Seven days, each round counted once; the rounds the power cut took are missing.
    rounds = sum(day["rounds"] for day in out["days"])
    assert out["days"][0]["date"] == "2026-03-02"
    assert 2016 - 2 * 3600 / INTERVAL_S - 3 <= rounds <= 2016 - 2 * 3600 / INTERVAL_S + 1
    worst = min(day["backhaul_up_percent"] for day in out["days"])
    assert worst < 90  # the day of the 3.5 h outage
    assert sum(1 for h in [HISTORY_FILE, HISTORY_NOW_FILE] if (state / h).exists()) == 2
    assert (state / HISTORY_FILE).stat().st_size < 64 * 1024

    assert re.search(r"\n  2026-03-03 0[12]:\d\d - 05:[23]\d \(3 h 3\d min\)\n", english), english
    assert re.search(r"\n  2026-03-04 1[12]:\d\d - 14:0\d \(about 2 h \d+ min\)\n", english)
    assert "Backhaul putus:" in indonesian and "Listrik padam:" in indonesian
    assert re.search(r"\(sekitar 2 j \d+ mnt\)", indonesian), indonesian


def test_a_history_that_cannot_be_written_costs_no_round(tmp_path: Path, broker: Broker) -> None:
    """The history's file cannot be replaced (here a directory stands in its place, as a full
    or broken card would refuse it): every round is still committed."""
    file = write_config(
        tmp_path, broker_url=broker.url(), extra={"clock": {"trust_wall_clock": True}}
    )
    config = load_config(file)
    (config.state_dir / HISTORY_NOW_FILE).mkdir(parents=True)
    buffer, samples = open_buffer(config, now=time.time())
    agent = build_agent(
        config,
        clock=SystemClock(),
        boot_id="boot-1",
        link=build_link(config),
        probes=[],
        buffer=buffer,
        start_samples=samples,
        history=History(config.state_dir, lan_interface=None),
    )
    try:
        counts = [agent.round().samples for _ in range(3)]
        assert buffer.stats().last_seq == sum(counts) > 0
    finally:
        buffer.close()
