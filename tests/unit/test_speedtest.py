"""The speed test: data budget, schedule, deferral while busy, and real HTTP transfers on loopback."""

import collections
import time
from dataclasses import replace
from pathlib import Path

import pytest

from agent.config.schema import SpeedtestConfig
from agent.files import LEDGER_FILE
from agent.probes.speedtest.budget import BudgetError, DataBudget, periods
from agent.probes.speedtest.probe import MB, SpeedtestProbe, slot_offsets
from agent.probes.speedtest.transport import HttpTransport, wire_bytes
from agent.reading import Sample
from simulator.fakes.measure import FakeTransport, LanTraffic
from simulator.lab.http_sink import serving
from simulator.virtual.clock import Timeline, VirtualClock

START = 1_767_225_600.0  # 2026-01-01T00:00:00Z
CONFIG = SpeedtestConfig(
    enabled=True,
    url_download="http://speed.test/download",
    url_upload="http://speed.test/upload",
    max_seconds=10,
    max_mb=10,
    budget_mb_per_day=30,
    budget_mb_per_month=400,
    runs_per_day=4,
    busy_threshold_bps=2_000_000,
    retry_after_s=600,
)


def _budget(state: Path, config: SpeedtestConfig = CONFIG) -> DataBudget:
    return DataBudget(
        state / LEDGER_FILE,
        per_day_bytes=int(config.budget_mb_per_day * MB),
        per_month_bytes=int(config.budget_mb_per_month * MB),
    )


def _probe(
    state: Path,
    clock: VirtualClock,
    transport: FakeTransport,
    config: SpeedtestConfig = CONFIG,
    lan: LanTraffic | None = None,
) -> SpeedtestProbe:
    return SpeedtestProbe(
        config,
        site_id="kukar-tenggarong-01",
        clock=clock,
        budget=_budget(state, config),
        lan_interface="wlan0" if lan is not None else None,
        counters=lan if lan is not None else dict,
        transport=transport,
    )


def _metrics(samples: list[Sample]) -> list[str]:
    return [s.metric for s in samples]


def test_budget_is_never_exceeded_across_many_scheduled_tests(tmp_path: Path) -> None:
    """Over 60 virtual days with restarts, no day and no month spends more than its budget, and the
    tests that fit still run (more than 50 of them)."""
    clock = VirtualClock(Timeline(START))
    transport = FakeTransport(rate_bps=20_000_000)
    probe = _probe(tmp_path, clock, transport)
    per_day: collections.Counter[str] = collections.Counter()
    per_month: collections.Counter[str] = collections.Counter()
    runs_per_day: collections.Counter[str] = collections.Counter()
    skipped = 0
    for step in range(60 * 288):  # five-minute rounds
        if step % 1000 == 999:
            probe = _probe(tmp_path, clock, transport)  # the agent restarts: state is on disk
        before, calls = transport.cost_total, len(transport.calls)
        samples = probe.collect()
        day, month = periods(clock.wall())
        per_day[day] += transport.cost_total - before
        per_month[month] += transport.cost_total - before
        runs_per_day[day] += 1 if len(transport.calls) > calls else 0
        skipped += _metrics(samples).count("event.speedtest_skipped")
        clock.advance(300)
    assert sum(runs_per_day.values()) > 50
    assert max(per_day.values()) <= CONFIG.budget_mb_per_day * MB
    assert max(per_month.values()) <= CONFIG.budget_mb_per_month * MB
    assert max(runs_per_day.values()) <= CONFIG.runs_per_day
    assert skipped > 0  # the month's budget ran out before the month did
    assert all(call.max_bytes <= CONFIG.max_mb * MB for call in transport.calls)


def test_reported_cost_matches_the_ledger(tmp_path: Path) -> None:
    """A test's readings carry its rate, payload and cost; the ledger holds exactly that cost."""
    clock = VirtualClock(Timeline(START))
    transport = FakeTransport(rate_bps=4_000_000)
    samples = _probe(tmp_path, clock, transport).run()
    values = {s.metric: s.value for s in samples}
    assert values["speedtest.download_bps"] == pytest.approx(4_000_000)
    assert values["speedtest.upload_bps"] == pytest.approx(4_000_000)
    assert values["speedtest.download_bytes"] == 5_000_000  # 4 Mbit/s for the 10 s limit
    assert values["speedtest.cost_bytes"] == transport.cost_total
    assert values["speedtest.budget_day_used_bytes"] == transport.cost_total
    assert _budget(tmp_path).ledger(clock.wall()).day_bytes == transport.cost_total


def test_a_test_is_capped_by_the_remaining_budget_then_skipped(tmp_path: Path) -> None:
    """The byte cap shrinks to what is left; when too little is left the test is skipped."""
    config = replace(CONFIG, budget_mb_per_day=12)
    clock = VirtualClock(Timeline(START))
    transport = FakeTransport(rate_bps=100_000_000)
    probe = _probe(tmp_path, clock, transport, config)
    probe.run()
    caps = [c.max_bytes for c in transport.calls]
    assert caps[0] == caps[1] < config.max_mb * MB
    assert 2 * wire_bytes(caps[0]) <= config.budget_mb_per_day * MB
    skipped = probe.run()
    assert _metrics(skipped) == ["event.speedtest_skipped"]
    assert skipped[0].tags["reason"] == "budget"
    assert len(transport.calls) == 2


def test_deferred_while_the_hotspot_is_busy_then_retried(tmp_path: Path) -> None:
    """A due test waits while LAN traffic is above the threshold and runs once it drops."""
    clock = VirtualClock(Timeline(START))
    quiet_from = START + 8 * 3600
    lan = LanTraffic("wlan0", clock.wall, lambda t: 6_000_000 if t < quiet_from else 200_000)
    transport = FakeTransport(rate_bps=5_000_000)
    config = replace(CONFIG, runs_per_day=1)
    probe = _probe(tmp_path, clock, transport, config, lan=lan)
    due_at = START + slot_offsets("kukar-tenggarong-01", "2026-01-01", 1)[0]
    deferred, ran_at = [], None
    while clock.wall() < START + 86_400 and ran_at is None:
        samples = probe.collect()
        deferred += [s for s in samples if s.metric == "event.speedtest_deferred"]
        if transport.calls:
            ran_at = clock.wall()
        clock.advance(60)
    assert ran_at is not None
    if due_at < quiet_from:
        assert deferred and all(float(s.tags["lan_bps"]) > 2_000_000 for s in deferred)
        assert quiet_from <= ran_at < quiet_from + config.retry_after_s + 120
        # Retries are spaced by retry_after_s, not every round.
        assert len(deferred) <= (quiet_from - due_at) / config.retry_after_s + 1
    else:
        assert not deferred and ran_at < due_at + 120


def test_busy_lan_defers_a_due_slot(tmp_path: Path) -> None:
    """With users busy all day, no test runs and each deferral is an event."""
    clock = VirtualClock(Timeline(START))
    lan = LanTraffic("wlan0", clock.wall, lambda t: 10_000_000)
    transport = FakeTransport(rate_bps=5_000_000)
    probe = _probe(tmp_path, clock, transport, lan=lan)
    events = 0
    for _ in range(24 * 60):
        events += _metrics(probe.collect()).count("event.speedtest_deferred")
        clock.advance(60)
    assert transport.calls == []
    assert events >= CONFIG.runs_per_day


def test_schedule_spreads_sites_and_days() -> None:
    """Slots fall one per share of the day; sites and days get different times."""
    offsets = slot_offsets("site-a", "2026-01-01", 4)
    assert [int(o // 21_600) for o in offsets] == [0, 1, 2, 3]
    assert offsets != slot_offsets("site-a", "2026-01-02", 4)
    assert offsets == slot_offsets("site-a", "2026-01-01", 4)
    hours = {int(slot_offsets(f"site-{n}", "2026-01-01", 1)[0] // 3600) for n in range(200)}
    assert len(hours) == 24  # a province's sites do not all test in the same hour


def test_clock_jump_runs_missed_slots_once(tmp_path: Path) -> None:
    """A wall clock that jumps hours ahead (NTP sync) makes one test, not one per missed slot."""
    timeline = Timeline(START)
    clock = VirtualClock(timeline)
    transport = FakeTransport(rate_bps=5_000_000)
    probe = _probe(tmp_path, clock, transport)
    clock.advance(23 * 3600)
    probe.collect()
    probe.collect()
    assert len(transport.calls) == 2  # one test: a download and an upload


def test_clock_going_back_does_not_open_a_fresh_budget(tmp_path: Path) -> None:
    """After a power cut resets the wall clock to 1970, the spent budget is still spent."""
    budget = _budget(tmp_path)
    budget.reserve(START + 100, 25 * MB)
    assert budget.remaining(START + 200) == 5 * MB
    assert budget.remaining(0.0) == 5 * MB
    assert budget.remaining(START + 86_400) == 30 * MB  # the next real day is fresh


def test_a_crash_mid_test_leaves_the_reservation_charged(tmp_path: Path) -> None:
    """A reservation is durable before any byte moves: a restart sees it charged in full."""
    _budget(tmp_path).reserve(START, 20 * MB)
    assert _budget(tmp_path).remaining(START + 1) == 10 * MB
    with pytest.raises(BudgetError):
        _budget(tmp_path).reserve(START + 2, 11 * MB)


def test_unreadable_ledger_counts_as_spent(tmp_path: Path) -> None:
    """A damaged ledger stops tests instead of risking the budget."""
    (tmp_path / LEDGER_FILE).write_text("{not json")
    assert _budget(tmp_path).remaining(START) == 0


def test_disabled_probe_is_silent(tmp_path: Path) -> None:
    """Disabled (the default), the probe returns nothing and moves no bytes."""
    clock = VirtualClock(Timeline(START + 86_000))
    transport = FakeTransport(rate_bps=5_000_000)
    probe = _probe(tmp_path, clock, transport, replace(CONFIG, enabled=False))
    assert probe.collect() == []
    assert transport.calls == []


def test_failed_transfer_is_an_event_and_still_charged(tmp_path: Path) -> None:
    """A transfer that fails is reported; what its handshake cost stays in the ledger."""
    clock = VirtualClock(Timeline(START))
    transport = FakeTransport(rate_bps=5_000_000, fail="ConnectionRefusedError: refused")
    samples = _probe(tmp_path, clock, transport).run()
    assert _metrics(samples).count("event.speedtest_failed") == 2
    assert _budget(tmp_path).ledger(START).day_bytes == transport.cost_total


def test_http_transport_download_and_upload_on_loopback() -> None:
    """Real HTTP transfers: the download honours its byte cap through Range, the upload's bytes
    all reach the server, and the cost read from TCP_INFO covers the payload."""
    with serving() as sink:
        base = f"http://127.0.0.1:{sink.port}"
        transport = HttpTransport()
        down = transport.transfer(
            "download", f"{base}/download", max_bytes=3_000_000, max_seconds=5
        )
        up = transport.transfer("upload", f"{base}/upload", max_bytes=2_000_000, max_seconds=5)
        served, received = sink.counts.served, sink.counts.received
    assert down.error is None and up.error is None
    assert served == 3_000_000
    assert received == up.body_bytes == 2_000_000
    assert down.body_bytes <= 3_000_000
    assert 3_000_000 <= down.cost_bytes <= wire_bytes(3_000_000)
    assert 2_000_000 <= up.cost_bytes <= wire_bytes(2_000_000)
    assert down.bps is not None and up.bps is not None


def test_http_transport_stops_at_the_time_limit() -> None:
    """A cap larger than the time allows ends at the time limit."""
    with serving() as sink:
        started = time.monotonic()
        up = HttpTransport().transfer(
            "upload", f"http://127.0.0.1:{sink.port}/upload", max_bytes=10**12, max_seconds=1.0
        )
        elapsed = time.monotonic() - started
    assert up.error is None
    assert 1.0 <= elapsed < 3.0
    assert up.body_bytes > 0


def test_endpoint_ignoring_range_is_refused() -> None:
    """A server offering more than the cap is refused before the body is read."""
    with serving() as sink:
        url = f"http://127.0.0.1:{sink.port}/download?ignore_range=1&bytes=50000000"
        down = HttpTransport().transfer("download", url, max_bytes=1_000_000, max_seconds=5)
    assert down.error is not None and "Range" in down.error
    assert down.cost_bytes < 50_000_000


def test_unreachable_endpoint_is_a_failed_transfer() -> None:
    """Nothing listening: the transfer fails quickly with the reason, charged a handshake at most."""
    with serving() as sink:
        port = sink.port
    down = HttpTransport().transfer(
        "download", f"http://127.0.0.1:{port}/download", max_bytes=1_000_000, max_seconds=2
    )
    assert down.error is not None and "Refused" in down.error
    assert down.cost_bytes <= wire_bytes(0)
