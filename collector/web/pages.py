"""The dashboard's HTML pages: the overview (`/`) and a site's page (`/site/<id>`), server-rendered
with Jinja2; charts are inline SVG from `charts.py`."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby

from flask import Flask, abort, render_template, request
from markupsafe import Markup

from collector.dashboard.overview import (
    BACKHAUL_UP,
    Summary,
    latency_target,
    summaries,
    wan_iface,
)
from collector.dashboard.registry import SiteInfo
from collector.dashboard.state import NO_DATA, OFFLINE, ONLINE, site_state
from collector.messages import Lang, text
from collector.store.reader import Hourly, Outage, Reader, Value
from collector.store.schema import HOUR_MS
from collector.web import present
from collector.web.charts import Series, chart
from collector.web.settings import DashboardSettings

RANGES_MS = {"24h": 24 * HOUR_MS, "7d": 7 * 24 * HOUR_MS, "30d": 30 * 24 * HOUR_MS}


def _means(rollups: Sequence[Hourly], **tags: str) -> list[tuple[int, float]]:
    return [
        (h.hour_ms + HOUR_MS // 2, h.sum / h.count)
        for h in rollups
        if h.count and all(h.tags.get(k) == v for k, v in tags.items())
    ]


def _events(
    events: Sequence[Value], outages: Sequence[Outage], now_ms: int, lang: Lang
) -> list[tuple[int, str, str]]:
    """(when, what, detail), newest first."""
    out: list[tuple[int, str, str]] = []
    for e in events:
        if e.metric == "event.agent_start":
            out.append((e.ts_ms, text("dash.event.agent_start", lang), e.tags.get("reason", "")))
        elif e.metric.startswith("speedtest."):
            direction = "↓" if "download" in e.metric else "↑"
            out.append(
                (
                    e.ts_ms,
                    text("dash.event.speedtest", lang),
                    f"{direction} {present.rate(e.value)}",
                )
            )
        elif e.metric not in ("event.outage_start", "event.outage_end_s"):
            detail = ", ".join(f"{k}={v}" for k, v in sorted(e.tags.items()))
            out.append((e.ts_ms, e.metric, detail))
    for o in outages:
        key = "dash.event.outage" if o.kind == "backhaul" else "dash.event.offline"
        if o.ended_ms is None:
            detail = (
                text("dash.ongoing", lang)
                + f" ({present.duration((now_ms - o.started_ms) / 1000)})"
            )
        else:
            detail = text(
                "dash.duration", lang, d=present.duration((o.ended_ms - o.started_ms) / 1000)
            )
        out.append((o.started_ms, text(key, lang), detail))
    out.sort(key=lambda e: e[0], reverse=True)
    return out


def _site_charts(reader: Reader, site: str, start: int, end: int, lang: Lang) -> list[Markup]:
    latest = reader.latest_of(
        ("latency.rtt_avg_ms", "throughput.rx_bps", "clients.neighbours_count"), site
    )
    target, iface = latency_target(latest), wan_iface(latest)
    bands = [
        (o.started_ms, o.ended_ms if o.ended_ms is not None else end)
        for o in reader.outages(site, start, end)
    ]
    empty = text("dash.no_series", lang)

    def draw(title: str, series: list[Series], y_max: float | None = None) -> Markup:
        return chart(title, series, start=start, end=end, bands=bands, gap_ms=2 * HOUR_MS,
                     y_max=y_max, empty=empty)  # fmt: skip

    rtt = reader.hourly(site, "latency.rtt_avg_ms", start, end)
    loss = reader.hourly(site, "latency.loss_percent", start, end)
    rx = reader.hourly(site, "throughput.rx_bps", start, end)
    tx = reader.hourly(site, "throughput.tx_bps", start, end)
    up = reader.hourly(site, BACKHAUL_UP, start, end)
    target_tags = {"target": target} if target else {}
    iface_tags = {"iface": iface} if iface else {}
    return [
        draw(text("dash.latency", lang),
              [Series(label=f"{text('dash.latency', lang)} {target or ''}",
                      points=_means(rtt, **target_tags))]),
        draw(text("dash.loss", lang),
              [Series(label=text("dash.loss", lang), points=_means(loss, **target_tags))],
              y_max=100.0),
        draw(text("dash.throughput", lang),
              [Series(label=f"{text('dash.rx', lang)} {iface or ''}", points=_means(rx, **iface_tags)),
               Series(label=text("dash.tx", lang), points=_means(tx, **iface_tags))]),
        draw(text("dash.avail", lang),
              [Series(label=text("dash.avail", lang) + " (%)", bars=True,
                      points=[(p, v * 100) for p, v in _means(up)])],
              y_max=100.0),
    ]  # fmt: skip


def overview_cells(s: Summary, now_ms: int, lang: Lang) -> dict[str, object]:
    """One overview row's cells, formatted here: a thousand rows render fast without template calls."""
    flags = [
        text(key, lang)
        for key, on in (("dash.undervoltage", s.undervoltage), ("dash.disk_full", s.disk_full),
                        ("dash.hot", s.hot))
        if on
    ]  # fmt: skip
    return {
        "site": s.site,
        "village": s.info.village or "",
        "state": s.state,
        "state_word": text("dash.state." + s.state, lang),
        "since_v": s.since_ms or 0,
        "since_iso": present.iso(s.since_ms),
        "since": present.short_time(s.since_ms),
        "age_v": now_ms - s.last_seen_ms if s.last_seen_ms else 9e15,
        "age": present.ago(s.last_seen_ms, now_ms, lang),
        "latency": present.number(s.latency_ms),
        "loss": present.number(s.loss_percent, 1),
        "rx_v": s.rx_bps if s.rx_bps is not None else -1,
        "rx": present.rate(s.rx_bps),
        "tx_v": s.tx_bps if s.tx_bps is not None else -1,
        "tx": present.rate(s.tx_bps),
        "avail": [present.percent(a) for a in s.availability],
        "backlog": present.number(s.backlog_readings),
        "dropped": present.number(s.dropped_total),
        "flags": flags,
        "ok": "" if flags or s.state == NO_DATA else text("dash.ok", lang),
    }


def add_pages(app: Flask, reader: Reader, settings: DashboardSettings) -> None:
    def context(lang: Lang) -> dict[str, object]:
        return {
            "lang": lang,
            "t": present.translator(lang),
            "p": present,
            "now_ms": settings.now_ms(),
        }

    @app.get("/")
    def overview() -> str:
        lang = present.request_lang(request)
        now = settings.now_ms()
        rows = summaries(reader, settings.registry, now, settings.offline_after_ms)
        counts = {s: sum(1 for r in rows if r.state == s) for s in (ONLINE, OFFLINE, NO_DATA)}
        known = any(r.info.regency for r in rows)
        grouped: list[tuple[str | None, list[Summary]]] = []
        if known:
            by_regency = sorted(rows, key=lambda r: (r.info.regency is None, r.info.regency or ""))
            for regency, members in groupby(by_regency, key=lambda r: r.info.regency):
                grouped.append((regency, list(members)))
            grouped.sort(key=lambda g: (-sum(r.state == OFFLINE for r in g[1]), g[0] is None))
        else:
            grouped.append((None, rows))
        groups = [(name, [overview_cells(s, now, lang) for s in members])
                  for name, members in grouped]  # fmt: skip
        return render_template(
            "overview.html", groups=groups, counts=counts, total=len(rows), known=known,
            **context(lang),
        )  # fmt: skip

    @app.get("/site/<site>")
    def site_page(site: str) -> str:
        lang = present.request_lang(request)
        chosen = request.args.get("range", "24h")
        if chosen not in RANGES_MS:
            abort(400, text("dash.bad_param", lang, name="range", value=chosen))
        rows = {r.site: r for r in reader.site_rows()}
        if site not in rows and site not in settings.registry:
            abort(404, text("dash.unknown_site", lang, site=site))
        now = settings.now_ms()
        end = now - now % HOUR_MS + HOUR_MS
        start = end - RANGES_MS[chosen]
        row = rows.get(site)
        state = site_state(row, now, settings.offline_after_ms)
        events = _events(
            reader.events(site, start, end), reader.outages(site, start, end), now, lang
        )
        return render_template(
            "site.html",
            site=site,
            info=settings.registry.get(site) or SiteInfo(site=site),
            row=row,
            state=state,
            chosen=chosen,
            ranges=list(RANGES_MS),
            charts=_site_charts(reader, site, start, end, lang),
            events=events,
            confirmed=next(iter(reader.confirmations(site)), None),
            **context(lang),
        )
