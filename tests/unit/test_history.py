"""The history's files: what a round adds, what a power cut costs, and the bounds."""

from __future__ import annotations

from pathlib import Path

from agent.files import HISTORY_FILE, HISTORY_NOW_FILE
from agent.history.hours import HOUR_S
from agent.history.journal import KEEP_S, MAX_EVENTS, History, read_history
from agent.reading import Sample, Stamp

T0 = 1_800_000_000.0 - 1_800_000_000.0 % HOUR_S


def _stamp(wall: float, *, synced: bool = True) -> Stamp:
    """The monotonic clock here runs with the wall clock from T0 (or from 0 before it is set)."""
    mono = wall - T0 if wall >= T0 else wall
    return Stamp(ts_ms=round(wall * 1000), mono_ms=round(mono * 1000), boot_id="b", synced=synced)


def _round(up: bool, *extra: Sample) -> list[Sample]:
    return [
        Sample(metric="uptime.backhaul_up", value=1.0 if up else 0.0),
        Sample(metric="latency.rtt_avg_ms", value=600.0, tags={"target": "a"}),
        Sample(metric="latency.rtt_avg_ms", value=5.0, tags={"target": "g", "hop": "first"}),
        Sample(metric="latency.loss_percent", value=0.0 if up else 100.0, tags={"target": "a"}),
        Sample(metric="throughput.rx_bytes", value=1000.0, tags={"iface": "eth0"}),
        Sample(metric="throughput.rx_bytes", value=5000.0, tags={"iface": "wlan0"}),
        *extra,
    ]


def test_rounds_fold_into_hours_and_an_outage_is_kept_with_its_start(tmp_path: Path) -> None:
    history = History(tmp_path, lan_interface="wlan0")
    for n in range(24):  # two hours of 5-minute rounds; down from the 4th to the 10th round
        extra = []
        if n == 4:
            extra = [Sample(metric="event.outage_start", value=1.0)]
        if n == 10:
            extra = [Sample(metric="event.outage_end_s", value=1800.0)]
        history.note(_stamp(T0 + n * 300), _round(not 4 <= n < 10, *extra))
    history.close()
    record = read_history(tmp_path, now=T0 + 7200)
    assert [h.start for h in record.hours] == [T0, T0 + HOUR_S]
    first = record.hours[0]
    assert (first.rounds, first.up, first.down) == (12, 6, 6)
    assert first.rtt_sum_ms / first.rtt_rounds == 600.0  # the first hop is not the backhaul
    assert first.rx_bytes == 12 * 1000  # the hotspot LAN is not the WAN
    (outage,) = record.outages
    assert (outage.start, outage.duration_s, outage.ongoing) == (T0 + 1200, 1800.0, False)


def test_rounds_before_the_clock_is_set_stay_out_of_the_hours(tmp_path: Path) -> None:
    history = History(tmp_path, lan_interface=None)
    history.note(_stamp(1000.0, synced=False), _round(True))
    history.close()
    assert read_history(tmp_path, now=T0).hours == ()


def test_a_power_cut_dates_from_the_last_moment_alive_to_the_boot(tmp_path: Path) -> None:
    history = History(tmp_path, lan_interface=None)
    for n in range(3):
        history.note(_stamp(T0 + n * 300), _round(True))
    # The power goes: no close(). The next boot's first round carries the start reason; its
    # clock is set 10 minutes after the boot.
    again = History(tmp_path, lan_interface=None)
    start = Sample(metric="event.agent_start", value=1.0, tags={"reason": "power_cut"})
    again.note(_stamp(5.0, synced=False), _round(True, start))
    boot = T0 + 7200
    uptime = Sample(metric="uptime.system_s", value=600.0)
    again.note(_stamp(boot + 600), _round(True, uptime))
    (cut,) = read_history(tmp_path, now=boot + 700).power_cuts
    assert (cut.down_from, cut.back) == (T0 + 600, boot)


def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    history = History(tmp_path, lan_interface=None)
    for n in range(13):
        history.note(_stamp(T0 + n * 300), _round(True))
    with (tmp_path / HISTORY_FILE).open("a") as handle:
        handle.write('{"hour": {"start": 12')  # a power cut in the middle of an append
    assert len(read_history(tmp_path, now=T0 + 3900).hours) == 2


def test_fourteen_days_and_a_thousand_events_at_most(tmp_path: Path) -> None:
    """A month of a link that flaps every other round: the file keeps 14 days and at most
    MAX_EVENTS outages, says how many it let go, and stays small."""
    history = History(tmp_path, lan_interface=None)
    end = T0 + 30 * 86_400
    wall = T0
    n = 0
    while wall < end:
        down = n % 2 == 1
        extra = [Sample(metric="event.outage_start" if down else "event.outage_end_s", value=300.0)]
        history.note(_stamp(wall), _round(not down, *extra) if n else _round(True))
        wall += 300
        n += 1
    history.close()
    record = read_history(tmp_path, now=wall)
    assert min(h.start for h in record.hours) >= end - KEEP_S - HOUR_S
    assert len(record.hours) <= 14 * 24 + 1
    assert len(record.outages) <= MAX_EVENTS + 1  # and the one under way
    assert record.events_dropped > 0
    assert (tmp_path / HISTORY_FILE).stat().st_size < 256 * 1024


def test_an_outage_under_way_at_a_restart_is_not_shown_as_going_on(tmp_path: Path) -> None:
    """The outage tracker starts afresh with the process and cannot end the old outage."""
    history = History(tmp_path, lan_interface=None)
    history.note(_stamp(T0), _round(False, Sample(metric="event.outage_start", value=1.0)))
    again = History(tmp_path, lan_interface=None)
    start = Sample(metric="event.agent_start", value=1.0, tags={"reason": "restart"})
    again.note(_stamp(T0 + 600), _round(True, start))
    assert read_history(tmp_path, now=T0 + 4 * 3600).outages == ()


def test_an_outage_timed_without_a_clock_is_shown_without_its_start(tmp_path: Path) -> None:
    history = History(tmp_path, lan_interface=None)
    end = Sample(metric="event.outage_end_s", value=900.0)
    history.note(_stamp(50.0, synced=False), _round(True, end))
    (outage,) = read_history(tmp_path, now=T0).outages
    assert (outage.start, outage.duration_s) == (None, 900.0)


def test_a_gateway_whose_clock_is_never_set_keeps_a_bounded_file(tmp_path: Path) -> None:
    history = History(tmp_path, lan_interface=None)
    end = Sample(metric="event.outage_end_s", value=60.0)
    for n in range(3 * MAX_EVENTS):
        history.note(_stamp(float(n), synced=False), _round(True, end))
    lines = (tmp_path / HISTORY_FILE).read_text().splitlines()
    assert len(lines) <= MAX_EVENTS + MAX_EVENTS // 10 + 1


def test_damaged_history_files_are_read_as_far_as_they_make_sense(tmp_path: Path) -> None:
    """Odd numbers, deep nesting, junk: nothing raises, in the daemon or in the command."""
    (tmp_path / HISTORY_NOW_FILE).write_text(
        '{"events_dropped": 1e999, "last_alive": -5, "down_since": 1e20,'
        ' "open_hour": {"start": 1e18, "rounds": 1}}'
    )
    (tmp_path / HISTORY_FILE).write_text(
        "[" * 5000
        + "\n"
        + '{"hour": {"start": 1e999}}\n{"outage": 1e20, "s": 5, "at": 1e20}\n'
        + '{"power_cut": "x", "back": 1800000000}\n{"hour": {"start": 12'
    )
    history = History(tmp_path, lan_interface=None)
    history.note(_stamp(T0), _round(True))
    history.note(_stamp(T0 + 3600), _round(True))  # closes an hour: appends and prunes
    record = read_history(tmp_path, now=T0 + 3700)
    assert [h.start for h in record.hours] == [T0, T0 + 3600]
    assert [c.down_from for c in record.power_cuts] == [None]
    lines = (tmp_path / HISTORY_FILE).read_text().splitlines()
    assert any('"hour":{"start":1800000000' in line for line in lines)  # not joined to junk
