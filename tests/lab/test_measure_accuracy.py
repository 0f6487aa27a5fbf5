"""Measurement accuracy on a real emulated link: namespaces, veth, tbf, a userspace ICMP responder."""

import json
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.files import LEDGER_FILE
from agent.probes.speedtest.probe import MB
from simulator.lab.netlab import Lab, netns_available

_AVAILABLE, _WHY = netns_available()
pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(not _AVAILABLE, reason=f"no network namespaces here: {_WHY}"),
]
SINK_PORT = 8080


@pytest.fixture
def lab() -> Iterator[Lab]:
    """A fresh gw/far lab with the HTTP sink listening on the far side."""
    with Lab() as built:
        argv = [sys.executable, "-m", "simulator.lab.http_sink", "--host", built.far_addr]
        argv += ["--port", str(SINK_PORT)]
        sink = built.popen("far", argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert sink.stdout is not None
        ready, _, _ = select.select([sink.stdout], [], [], 10.0)
        assert ready and sink.stdout.readline().startswith("ready"), "http sink did not start"
        yield built


def _write_config(
    lab: Lab, state: Path, *, max_mb: float, max_seconds: float, day_mb: float
) -> Path:
    base = f"http://{lab.far_addr}:{SINK_PORT}"
    config = state / "agent.yaml"
    config.write_text(
        f"""
site_id: lab-site
state_dir: {state}
interval_s: 60
broker: {{url: "mqtt://127.0.0.1:1", topic_prefix: lab}}
latency: {{targets: [{lab.far_addr}], count: 1, timeout_s: 0.5}}
lan: {{interface: veth-gw}}
speedtest:
  enabled: true
  url_download: {base}/download
  url_upload: {base}/upload
  max_seconds: {max_seconds}
  max_mb: {max_mb}
  budget_mb_per_day: {day_mb}
  budget_mb_per_month: {day_mb * 10}
"""
    )
    return config


def _once_speedtest(lab: Lab, config: Path) -> dict[str, float]:
    done = lab.run("gw", [sys.executable, "-m", "agent", "once", "--json", "--speedtest",
                          "--config", str(config)], timeout=90)  # fmt: skip
    readings = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return {r["metric"]: r["value"] for r in readings if r["metric"].startswith(("speed", "event"))}


def _link_bytes(lab: Lab) -> int:
    shown = lab.run("gw", ["ip", "-j", "-s", "link", "show", "dev", "veth-gw"]).stdout
    stats = json.loads(shown)[0]["stats64"]
    return int(stats["rx"]["bytes"]) + int(stats["tx"]["bytes"])


@pytest.mark.parametrize("rate_kbit", [2_000, 8_000])
def test_throughput_within_ten_percent_of_the_tbf_rate(
    lab: Lab, tmp_path: Path, rate_kbit: int
) -> None:
    """Download and upload rates measured through a tbf-shaped link are within ±10 % of its rate."""
    lab.shape(rate_kbit)
    config = _write_config(lab, tmp_path, max_mb=50, max_seconds=4, day_mb=100)
    values = _once_speedtest(lab, config)
    rate = rate_kbit * 1000
    assert "speedtest.download_bps" in values, values
    errors = {d: values[f"speedtest.{d}_bps"] / rate - 1 for d in ("download", "upload")}
    print(f"tbf {rate_kbit} kbit/s: relative errors {errors}")
    assert all(abs(e) <= 0.10 for e in errors.values()), errors


def test_data_budget_holds_on_the_wire(lab: Lab, tmp_path: Path) -> None:
    """Repeated tests stop when the day's budget is spent, and the bytes that really crossed the
    link (veth counters, headers included) stay within the budget and within what was charged."""
    lab.shape(8_000)
    day_mb = 3.0
    config = _write_config(lab, tmp_path, max_mb=1, max_seconds=4, day_mb=day_mb)
    before = _link_bytes(lab)
    outcomes = [_once_speedtest(lab, config) for _ in range(4)]
    on_wire = _link_bytes(lab) - before
    ledger = json.loads((tmp_path / LEDGER_FILE).read_text())
    print(f"on the wire {on_wire} B, charged {ledger['day_bytes']} B, budget {day_mb * MB:.0f} B")
    assert "speedtest.download_bps" in outcomes[0]
    assert "event.speedtest_skipped" in outcomes[-1]
    assert on_wire <= day_mb * MB
    assert ledger["day_bytes"] <= day_mb * MB
    # The charge accounts for the real traffic (pings of the once rounds aside: a few hundred bytes).
    assert ledger["day_bytes"] >= on_wire - 2_000


def test_link_down_makes_one_outage_with_its_duration(lab: Lab) -> None:
    """Taking the link down for 3 s yields exactly one outage start and one end lasting 3 s ± 1
    round interval, from the real latency probe and backhaul tracker."""
    interval, down_s = 0.5, 3.0
    with lab.start_responder(delay_ms=5):
        argv = [sys.executable, "-m", "simulator.lab.latency_rounds", "--target", lab.far_addr]
        argv += ["--interval", str(interval)]
        rounds = lab.popen("gw", argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert rounds.stdout is not None
        ready, _, _ = select.select([rounds.stdout], [], [], 10.0)
        assert ready
        time.sleep(1.5)
        lab.link_down()
        time.sleep(down_s)
        lab.link_up()
        time.sleep(3.0)
        rounds.terminate()
        out, err = rounds.communicate(timeout=10)
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    starts = [r for r in records if r["metric"] == "event.outage_start"]
    ends = [r for r in records if r["metric"] == "event.outage_end_s"]
    assert len(starts) == 1 and len(ends) == 1, (starts, ends, err)
    error = ends[0]["value"] - down_s
    print(f"outage of {down_s} s measured as {ends[0]['value']} s (error {error:+.2f} s)")
    assert abs(error) <= interval
