"""The virtual clock: true time, a gateway's wall clock after a power cut, monotonic since boot."""

from __future__ import annotations

import pytest

from agent.clock import Clock
from simulator.virtual.clock import Timeline, VirtualClock, virtual_at

START = 1_772_380_800.0  # 2026-03-01T16:00:00Z


def test_virtual_clock_is_an_agent_clock() -> None:
    """VirtualClock satisfies agent.clock.Clock, so the agent takes it where it takes the real one."""
    clock: Clock = VirtualClock(Timeline(START))
    assert clock.wall() == START and clock.monotonic() == 0.0 and clock.synced()


def test_advance_moves_wall_and_monotonic_together() -> None:
    """A day of virtual time passes in one call; wall and monotonic move by the same amount."""
    clock = VirtualClock(Timeline(START))
    clock.advance(86_400)
    assert clock.wall() == START + 86_400
    assert clock.monotonic() == 86_400
    with pytest.raises(ValueError, match="forward"):
        clock.advance(-1)


def test_power_cut_restarts_wall_clock_at_last_hourly_save_until_ntp_syncs() -> None:
    """After a cut the wall clock resumes from fake-hwclock's last save, monotonic from zero, and
    jumps to true time when NTP syncs."""
    clock = VirtualClock(Timeline(START), hwclock_save_s=3600)
    clock.advance(2.5 * 3600)  # saved at +2 h; the cut comes half an hour later
    clock.power_off()
    clock.advance(1800)  # dark for half an hour
    clock.power_on(sync_after_s=600)
    assert clock.monotonic() == 0.0
    assert not clock.synced()
    assert clock.wall() == START + 2 * 3600  # an hour behind true time
    clock.advance(599)
    assert clock.wall() == START + 2 * 3600 + 599 and not clock.synced()
    clock.advance(1)
    assert clock.synced()
    assert clock.wall() == clock.true_time() == START + 3 * 3600 + 600
    assert clock.monotonic() == 600


def test_drift_makes_monotonic_run_fast_until_sync_corrects_the_wall() -> None:
    """A crystal 50 ppm fast gains 0.18 s an hour on monotonic and the unsynced wall clock."""
    clock = VirtualClock(Timeline(START), drift_ppm=50)
    clock.power_off()
    clock.power_on(sync_after_s=7200)
    clock.advance(3600)
    assert clock.monotonic() == pytest.approx(3600.18)
    assert clock.wall() == pytest.approx(START + 3600.18)
    clock.advance(3600)
    assert clock.wall() == clock.true_time()


def test_boot_without_sync_stays_unsynced() -> None:
    """A boot whose NTP never answers keeps an unsynced wall clock for as long as it runs."""
    clock = VirtualClock(Timeline(START))
    clock.power_off()
    clock.power_on(sync_after_s=None)
    clock.advance(10 * 3600)
    assert not clock.synced()


def test_real_arrivals_map_onto_the_virtual_time_current_then() -> None:
    """A real instant maps to the virtual time that was current at that instant."""
    timeline = Timeline(START)
    timeline.advance(60)
    marks = timeline.marks()
    real_after_step = marks[-1][0]
    assert timeline.virtual_at(real_after_step) == START + 60
    assert virtual_at(marks, real_after_step + 100) == START + 60
    assert virtual_at(marks, marks[0][0] - 1) == START
