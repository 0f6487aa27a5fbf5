"""A site's state: the only place the rule is written, for the dashboard, the API and the alerts.

- `offline` when its retained status says `offline` (since the status time), or when nothing was heard
  from it (no reading, no `online` status) for `offline_after_ms` (since it was last heard);
- `no_data` when the collector never heard from it;
- `online` otherwise (since its `online` status, when it sent one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from collector.store.reader import SiteRow

State = Literal["online", "offline", "no_data"]
ONLINE: State = "online"
OFFLINE: State = "offline"
NO_DATA: State = "no_data"


@dataclass(frozen=True, slots=True, kw_only=True)
class SiteState:
    state: State
    since_ms: int | None
    heard_ms: int | None  # the last time the site was heard from


def site_state(row: SiteRow | None, now_ms: int, offline_after_ms: int) -> SiteState:
    """The state of the site whose `sites` row is `row` (None: never heard of) at `now_ms`."""
    if row is None:
        return SiteState(state=NO_DATA, since_ms=None, heard_ms=None)
    online_at = row.status_at_ms if row.status == ONLINE else None
    heard = max((t for t in (row.last_seen_ms, online_at) if t is not None), default=None)
    if row.status == OFFLINE:
        since = row.status_at_ms if row.status_at_ms is not None else heard
        return SiteState(state=OFFLINE, since_ms=since, heard_ms=heard)
    if heard is None:
        return SiteState(state=NO_DATA, since_ms=None, heard_ms=None)
    if now_ms - heard > offline_after_ms:
        return SiteState(state=OFFLINE, since_ms=heard, heard_ms=heard)
    return SiteState(state=ONLINE, since_ms=online_at, heard_ms=heard)
