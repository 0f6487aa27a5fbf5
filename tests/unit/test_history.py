"""The history's files: what a round adds, what a power cut costs, and the bounds."""

from __future__ import annotations

from pathlib import Path

from agent.files import HISTORY_FILE
from agent.history.hours import HOUR_S
from agent.history.journal import KEEP_S, MAX_EVENTS, History, read_history
from agent.reading import Sample, Stamp

T0 = 1_800_000_000.0 - 1_800_000_000.0 % HOUR_S


def _stamp(wall: float, *, synced: bool = True) -> Stamp:
    return Stamp(ts_ms=round(wall * 1000), mono_ms=0, boot_id="b", synced=synced)


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
