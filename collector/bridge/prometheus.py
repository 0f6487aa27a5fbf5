"""Each site's latest value per metric and tags in the Prometheus text format (version 0.0.4).

`latency.rtt_avg_ms` with tags {target} becomes `village_latency_rtt_avg_ms{site="...",target="..."}`:
names sanitised to [a-zA-Z0-9_], label values escaped (backslash, quote, newline). No timestamps: a
reading may be hours old after a backlog, and Prometheus would refuse such a sample; the age is in
`village_site_last_seen_seconds`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from collector.store.reader import Latest, SiteState

PREFIX = "village_"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_NOT_NAME = re.compile(r"[^a-zA-Z0-9_]")


def metric_name(metric: str) -> str:
    name = PREFIX + _NOT_NAME.sub("_", metric)
    return name


def label_name(key: str) -> str:
    name = _NOT_NAME.sub("_", key)
    if not name or name[0].isdigit() or name.startswith("__"):
        name = "tag_" + name
    # `site` is ours; a reading's own tag of that name keeps its value under another label.
    return "tag_site" if name == "site" else name


def label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(site: str, tags: dict[str, str]) -> str:
    pairs = [("site", site), *sorted((label_name(k), v) for k, v in tags.items())]
    return ",".join(f'{k}="{label_value(v)}"' for k, v in pairs)


def _number(value: float) -> str:
    return repr(float(value))


def exposition(latest: Iterable[Latest], sites: Iterable[SiteState]) -> Iterator[str]:
    """The lines of /metrics: one family per metric, samples grouped under their TYPE line."""
    families: dict[str, list[str]] = {}
    for item in latest:
        name = metric_name(item.metric)
        families.setdefault(name, []).append(
            f"{name}{{{_labels(item.site, item.tags)}}} {_number(item.value)}"
        )
    states = list(sites)
    up = "village_site_online"
    seen = "village_site_last_seen_seconds"
    families[up] = [
        f'{up}{{site="{label_value(s.site)}"}} {1 if s.status == "online" else 0}'
        for s in states
        if s.status is not None
    ]
    families[seen] = [
        f'{seen}{{site="{label_value(s.site)}"}} {s.last_seen_ms / 1000:.3f}'
        for s in states
        if s.last_seen_ms is not None
    ]
    for name in sorted(families):
        if not families[name]:
            continue
        yield f"# TYPE {name} gauge"
        yield from families[name]
