"""What each alert kind says about each site now: the states the alerts compare with the last ones."""

from __future__ import annotations

from collections.abc import Mapping

from collector.dashboard.state import NO_DATA, site_state
from collector.store.reader import Reader

UNDERVOLTAGE = "system.undervoltage_now_bool"
# kind -> (bad state, good state). The first state seen of a site is reported only when it is bad.
KINDS: Mapping[str, tuple[str, str]] = {
    "offline": ("offline", "online"),
    "backhaul": ("down", "up"),
    "undervoltage": ("on", "off"),
}


def current_states(
    reader: Reader, now_ms: int, offline_after_ms: int
) -> dict[tuple[str, str], tuple[str, int]]:
    """(site, kind) -> (state, since ms) for every site the collector heard from."""
    out: dict[tuple[str, str], tuple[str, int]] = {}
    for row in reader.site_rows():
        state = site_state(row, now_ms, offline_after_ms)
        if state.state != NO_DATA:
            out[(row.site, "offline")] = (state.state, state.since_ms or state.heard_ms or now_ms)
    open_backhaul = {
        o.site: o.started_ms
        for o in reader.outages(None, now_ms, now_ms + 1)
        if o.kind == "backhaul" and o.ended_ms is None
    }
    for site, _kind in list(out):
        if site in open_backhaul:
            out[(site, "backhaul")] = ("down", open_backhaul[site])
        else:
            out[(site, "backhaul")] = ("up", now_ms)
    for value in reader.latest_of((UNDERVOLTAGE,)):
        out[(value.site, "undervoltage")] = ("on" if value.value == 1 else "off", value.ts_ms)
    return out
