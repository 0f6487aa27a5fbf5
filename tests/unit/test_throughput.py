"""Passive throughput from interface counters: rates, wraps and resets."""

from __future__ import annotations

from agent.probes.throughput import IfCounters, ThroughputProbe, counter_delta, psutil_counters
from simulator.virtual.clock import Timeline, VirtualClock


def _counters(rx: int, tx: int = 0) -> IfCounters:
    return IfCounters(
        rx_bytes=rx,
        tx_bytes=tx,
        rx_packets=rx // 100,
        tx_packets=tx // 100,
        rx_errors=0,
        tx_errors=0,
        rx_drops=0,
        tx_drops=0,
    )


def test_counter_delta_handles_wrap_and_reset() -> None:
    """A fall near 2**32 is a wrap; any other fall is a restart of the counter."""
    assert counter_delta(100, 350) == 250
    assert counter_delta(2**32 - 100, 50) == 150
    assert counter_delta(5_000_000, 1_000) == 1_000
    assert counter_delta(2**40, 10) == 10


def test_rates_come_from_the_monotonic_clock() -> None:
    """bit/s = bytes * 8 / seconds between rounds, per interface, loopback skipped."""
    clock = VirtualClock(Timeline(1_800_000_000.0))
    state = {"eth0": _counters(1_000, 500), "lo": _counters(0)}
    probe = ThroughputProbe(clock, source=lambda: dict(state))
    assert probe.collect() == []  # the first read is only a baseline
    clock.advance(10.0)
    state["eth0"] = _counters(1_000 + 1_250_000, 500 + 125_000)
    samples = {(s.metric, s.tags["iface"]): s.value for s in probe.collect()}
    assert samples[("throughput.rx_bps", "eth0")] == 1_000_000.0
    assert samples[("throughput.tx_bps", "eth0")] == 100_000.0
    assert samples[("throughput.rx_bytes", "eth0")] == 1_250_000
    assert not any(iface == "lo" for _m, iface in samples)


def test_an_interface_that_vanishes_and_returns_starts_afresh() -> None:
    """A re-created interface gives no bogus rate on its first round back."""
    clock = VirtualClock(Timeline(1_800_000_000.0))
    state = {"wwan0": _counters(9_000_000)}
    probe = ThroughputProbe(clock, interfaces=["wwan0"], source=lambda: dict(state))
    probe.collect()
    clock.advance(1)
    state.clear()
    assert probe.collect() == []
    clock.advance(1)
    state["wwan0"] = _counters(10)
    assert probe.collect() == []
    clock.advance(1)
    state["wwan0"] = _counters(110)
    rx = [s.value for s in probe.collect() if s.metric == "throughput.rx_bytes"]
    assert rx == [100]


def test_the_real_counters_are_readable() -> None:
    """psutil gives this machine's loopback counters as non-negative integers."""
    counters = psutil_counters()
    assert "lo" in counters
    assert counters["lo"].rx_bytes >= 0
