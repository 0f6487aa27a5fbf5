"""Every site's figures for the overview and `/api/sites`, from `sites`, `latest` and the rollups.

Availability is the share of latency rounds in which the backhaul was up (`uptime.backhaul_up` = 1,
i.e. some non-gateway target answered), over the rounds the gateway measured in the UTC hours that
started within the last 24 h, 7 d or 30 d (`rollups_hourly`: sum / count). Time a gateway did not
measure (switched off, power cut) is not in it: that shows as the site's offline state and outages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from collector.dashboard.registry import SiteInfo
from collector.dashboard.state import NO_DATA, OFFLINE, State, site_state
from collector.store.reader import Reader, Value
from collector.store.schema import HOUR_MS

BACKHAUL_UP = "uptime.backhaul_up"
WINDOWS_MS = (24 * HOUR_MS, 7 * 24 * HOUR_MS, 30 * 24 * HOUR_MS)
DISK_FULL_RATIO = 0.9
HOT_CELSIUS = 80.0
FIGURES = (
    "latency.rtt_avg_ms",
    "latency.loss_percent",
    "throughput.rx_bps",
    "throughput.tx_bps",
    "buffer.backlog_readings",
    "buffer.dropped_total",
    "system.undervoltage_now_bool",
    "system.disk_used_bytes",
    "system.disk_total_bytes",
    "system.temperature_celsius",
    "clients.neighbours_count",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Summary:
    site: str
    info: SiteInfo
    state: State
    since_ms: int | None
    last_seen_ms: int | None
    version: str | None
    config: str | None
    latency_ms: float | None
    loss_percent: float | None
    rx_bps: float | None
    tx_bps: float | None
    availability: tuple[float | None, float | None, float | None]  # 24 h, 7 d, 30 d
    backlog_readings: float | None
    dropped_total: float | None
    undervoltage: bool
    disk_full: bool
    hot: bool
    temperature_celsius: float | None


def latency_target(values: Sequence[Value]) -> str | None:
    """The first target (by name) that is not the gateway: whose latency tells of the backhaul."""
    targets = sorted(
        v.tags.get("target", "")
        for v in values
        if v.metric.startswith("latency.")
        and v.tags.get("hop") != "first"
        and v.tags.get("target") != "gateway"
    )
    return targets[0] if targets else None


def wan_iface(values: Sequence[Value]) -> str | None:
    """The WAN interface: the first (by name) that is not the hotspot LAN the clients probe counts."""
    lan = {v.tags.get("iface") for v in values if v.metric.startswith("clients.")}
    ifaces = sorted(v.tags.get("iface", "") for v in values if v.metric.startswith("throughput."))
    wan = [i for i in ifaces if i not in lan]
    return wan[0] if wan else (ifaces[0] if ifaces else None)


def _pick(values: Sequence[Value], metric: str, **tags: str | None) -> float | None:
    for v in values:
        if v.metric == metric and all(v.tags.get(k) == want for k, want in tags.items()):
            return v.value
    return None


def _ratio(figures: tuple[float, int]) -> float | None:
    up, count = figures
    return up / count if count else None


def summarize(
    site: str,
    *,
    info: SiteInfo,
    row_state: tuple[State, int | None, int | None],
    values: Sequence[Value],
    availability: Sequence[tuple[float, int]],
    meta: tuple[str | None, str | None],
) -> Summary:
    state, since, heard = row_state
    target = latency_target(values)
    iface = wan_iface(values)
    used = _pick(values, "system.disk_used_bytes")
    total = _pick(values, "system.disk_total_bytes")
    temperature = max(
        (v.value for v in values if v.metric == "system.temperature_celsius"), default=None
    )
    windows = [*availability, *([(0.0, 0)] * (3 - len(availability)))]
    return Summary(
        site=site,
        info=info,
        state=state,
        since_ms=since,
        last_seen_ms=heard,
        version=meta[0],
        config=meta[1],
        latency_ms=_pick(values, "latency.rtt_avg_ms", target=target) if target else None,
        loss_percent=_pick(values, "latency.loss_percent", target=target) if target else None,
        rx_bps=_pick(values, "throughput.rx_bps", iface=iface) if iface else None,
        tx_bps=_pick(values, "throughput.tx_bps", iface=iface) if iface else None,
        availability=(_ratio(windows[0]), _ratio(windows[1]), _ratio(windows[2])),
        backlog_readings=_pick(values, "buffer.backlog_readings"),
        dropped_total=_pick(values, "buffer.dropped_total"),
        undervoltage=_pick(values, "system.undervoltage_now_bool") == 1,
        disk_full=bool(used is not None and total and used / total >= DISK_FULL_RATIO),
        hot=temperature is not None and temperature >= HOT_CELSIUS,
        temperature_celsius=temperature,
    )


_ORDER = {OFFLINE: 0, NO_DATA: 1}


def summaries(
    reader: Reader, registry: Mapping[str, SiteInfo], now_ms: int, offline_after_ms: int
) -> list[Summary]:
    """Every site the database or the registry knows: offline first, then no data, then online;
    within each, by regency and site id."""
    rows = {r.site: r for r in reader.site_rows()}
    values: dict[str, list[Value]] = {}
    for v in reader.latest_of(FIGURES):
        values.setdefault(v.site, []).append(v)
    hour_now = now_ms - now_ms % HOUR_MS
    starts = [hour_now - w + HOUR_MS for w in WINDOWS_MS]
    availability = reader.hourly_sums(BACKHAUL_UP, starts, hour_now + HOUR_MS)
    out = []
    for site in sorted(set(rows) | set(registry) | set(values)):
        row = rows.get(site)
        state = site_state(row, now_ms, offline_after_ms)
        out.append(
            summarize(
                site,
                info=registry.get(site) or SiteInfo(site=site),
                row_state=(state.state, state.since_ms, state.heard_ms),
                values=values.get(site, []),
                availability=availability.get(site, []),
                meta=(row.version, row.config) if row else (None, None),
            )
        )
    out.sort(key=lambda s: (_ORDER.get(s.state, 2), s.info.regency or "\uffff", s.site))
    return out
