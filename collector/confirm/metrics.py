"""The confirmations on /metrics: per site, the watermark of its most recent epoch, the gaps being
repaired and the seqs given up (a counter: it only grows)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from collector.bridge.prometheus import label_value
from collector.confirm.records import SiteConfirmation

THROUGH = "village_site_confirmed_through_seq"
GAPS = "village_site_confirm_gaps_ranges"
GIVEN_UP = "village_site_confirm_given_up_total"


def confirmation_lines(sites: Iterable[SiteConfirmation]) -> Iterator[str]:
    rows = list(sites)
    if not rows:
        return
    yield f"# TYPE {THROUGH} gauge"
    for s in rows:
        yield f'{THROUGH}{{site="{label_value(s.site)}",epoch="{label_value(s.epoch)}"}} {s.through}'
    yield f"# TYPE {GAPS} gauge"
    for s in rows:
        yield f'{GAPS}{{site="{label_value(s.site)}"}} {s.gaps}'
    yield f"# TYPE {GIVEN_UP} counter"
    for s in rows:
        yield f'{GIVEN_UP}{{site="{label_value(s.site)}"}} {s.given_up}'
