"""Fills a collector database through the collector's own writer (`Store.write`), fast: gateways'
rounds for a stretch of time, with backhaul outages, agent restarts and speed tests, no MQTT."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence

from collector.store.rows import OUTAGE_END, OUTAGE_START, Parcel, Row, Status
from collector.store.writer import Store

_LAT = json.dumps({"method": "icmp-raw", "target": "1.1.1.1"}, sort_keys=True)
_GW = json.dumps({"hop": "first", "method": "icmp-raw", "target": "gateway"}, sort_keys=True)
_WAN = json.dumps({"iface": "wwan0"})
_LAN = json.dumps({"iface": "wlan0"})
_NONE = "{}"


def _round(site: str, ts: int, up: bool, rng: random.Random) -> list[tuple[str, str, float]]:
    diurnal = 0.5 + 0.5 * math.sin(ts / 86_400_000 * 2 * math.pi)
    rtt = 560 + 120 * diurnal + rng.random() * 60
    return [
        ("latency.rtt_avg_ms", _LAT, rtt if up else 0.0),
        ("latency.loss_percent", _LAT, (rng.random() * 3) if up else 100.0),
        ("latency.rtt_avg_ms", _GW, 1.5 + rng.random()),
        ("throughput.rx_bps", _WAN, (2e5 + 2.5e6 * diurnal * rng.random()) if up else 0.0),
        ("throughput.tx_bps", _WAN, (5e4 + 4e5 * diurnal * rng.random()) if up else 0.0),
        ("throughput.rx_bps", _LAN, 3e6 * diurnal),
        ("clients.neighbours_count", _LAN, float(rng.randint(0, 25))),
        ("uptime.backhaul_up", _NONE, 1.0 if up else 0.0),
        ("buffer.backlog_readings", _NONE, 0.0 if up else float(rng.randint(50, 900))),
        ("buffer.dropped_total", _NONE, 0.0),
        ("system.undervoltage_now_bool", _NONE, 1.0 if site.endswith("7") else 0.0),
        ("system.temperature_celsius", json.dumps({"zone": "cpu"}), 48 + 10 * diurnal),
    ]


def fill_sites(
    store: Store,
    sites: Sequence[str],
    *,
    start_ms: int,
    hours: float,
    interval_s: int = 300,
    outages: Sequence[tuple[float, float]] = (),
    offline: Sequence[str] = (),
    seed: int = 1,
) -> int:
    """Rounds every `interval_s` for `hours` from `start_ms` for each site; backhaul down in each
    (start hour, length in hours) of `outages`, with its outage events; an agent start and a speed
    test a day. Sites in `offline` end with a retained `offline` status. Return readings written."""
    rng = random.Random(seed)
    step = interval_s * 1000
    rounds = int(hours * 3600 / interval_s)
    total = 0
    for site in sites:
        items: list[tuple[str, str, float, int]] = []
        add = items.append

        windows = [(start_ms + int(a * 3_600_000), start_ms + int((a + d) * 3_600_000))
                   for a, d in outages]  # fmt: skip
        for w_start, _end in windows:
            add((OUTAGE_START, _NONE, 1.0, w_start))
        for n in range(rounds):
            ts = start_ms + n * step
            if n % (86_400_000 // step) == 0:
                add(("event.agent_start", json.dumps({"reason": "power_cut"}), 1.0, ts))
                add(("speedtest.download_bps", json.dumps({"server": "s", "trigger": "schedule"}),
                     3e6 + rng.random() * 2e6, ts))  # fmt: skip
            up = not any(a <= ts < b for a, b in windows)
            for metric, tags, value in _round(site, ts, up, rng):
                if up or tags != _LAT or metric != "latency.rtt_avg_ms":  # no answer: no RTT
                    add((metric, tags, value, ts))
        for w_start, w_end in windows:
            add((OUTAGE_END, _NONE, (w_end - w_start) / 1000, w_end))
        rows = [
            Row(site=site, epoch="", seq=seq, raw_ts=ts, synced=True, boot_id="b1",
                mono_ms=ts - start_ms, metric=metric, tags=tags, value=value)
            for seq, (metric, tags, value, ts) in enumerate(items, 1)
        ]  # fmt: skip
        last = start_ms + (rounds - 1) * step
        state = "offline" if site in offline else "online"
        status = Status(site=site, state=state, version="0.9.0", config=f"c0ffee{len(site):02d}",
                        at_ms=last if state == "offline" else start_ms)  # fmt: skip
        for i in range(0, len(rows), 20_000):
            chunk = tuple(rows[i : i + 20_000])
            store.write(Parcel(rows=chunk, seen={site: chunk[-1].seq}))
        store.write(Parcel(statuses=(status,)))
        total += len(rows)
    return total
