"""When a site's ack is published: a pure policy, so that the downlink a site pays for stays small.

- at once when a gap was already there at the previous check (one check of grace: a message still on
  its way through a shared-subscription peer is not a loss), when a gap that was published closed,
  or when an epoch appears that the last ack did not list (a new buffer: rare, and worth knowing);
- otherwise when some `through` advanced and `interval_ms` passed since the site's last ack;
- never when nothing changed since the last ack.
"""

from __future__ import annotations

from collections.abc import Mapping

from agent.contract.ack import EpochAck

Key = str  # an epoch


def persistent_gap(now: EpochAck, previous_missing: tuple[tuple[int, int], ...] | None) -> bool:
    """A range missing now overlaps one missing at the previous check."""
    if not now.missing or not previous_missing:
        return False
    return any(a <= d and c <= b for a, b in now.missing for c, d in previous_missing)


def due(
    *,
    now_ms: int,
    current: tuple[EpochAck, ...],
    previous_missing: Mapping[Key, tuple[tuple[int, int], ...]],
    published: tuple[EpochAck, ...] | None,
    published_ms: int | None,
    interval_ms: int,
) -> bool:
    """Whether to publish `current` for a site now."""
    before = {e.epoch: e for e in published or ()}
    if published is not None and current == published:
        return False
    for epoch in current:
        last = before.get(epoch.epoch)
        if published is not None and last is None:
            return True
        changed = last is None or last.missing != epoch.missing
        if changed and persistent_gap(epoch, previous_missing.get(epoch.epoch)):
            return True
        if last is not None and last.missing and not epoch.missing:
            return True
    advanced = any(e.epoch not in before or e.through > before[e.epoch].through for e in current)
    if not advanced:
        return False
    return published_ms is None or now_ms - published_ms >= interval_ms
