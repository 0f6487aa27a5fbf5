"""The dashboard's data for machines: `/api/sites`, `/api/site/<id>/series` (JSON) and the CSV exports
`/site/<id>/readings.csv` and `/availability.csv`. Times in ISO 8601 UTC beside epoch milliseconds."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence

from flask import Flask, Response, abort, jsonify, request

from collector.dashboard.overview import BACKHAUL_UP, Summary, summaries
from collector.messages import text
from collector.store.reader import Reader
from collector.store.schema import HOUR_MS
from collector.web import present
from collector.web.settings import DashboardSettings
from collector.web.timeparam import BadTime, month_bounds, parse_time

_DAY_MS = 24 * HOUR_MS
READING_COLUMNS = ("site", "epoch", "seq", "ts", "ts_ms", "synced", "metric", "tags", "value")
AVAILABILITY_COLUMNS = (
    "site", "village", "regency", "month", "rounds", "rounds_up", "availability_ratio",
)  # fmt: skip


def site_object(s: Summary) -> dict[str, object]:
    """One site as `/api/sites` lists it."""
    return {
        "site": s.site,
        "village": s.info.village,
        "regency": s.info.regency,
        "state": s.state,
        "since": present.iso(s.since_ms) or None,
        "last_seen": present.iso(s.last_seen_ms) or None,
        "version": s.version,
        "config": s.config,
        "latency_ms": s.latency_ms,
        "loss_percent": s.loss_percent,
        "rx_bps": s.rx_bps,
        "tx_bps": s.tx_bps,
        "availability_24h": s.availability[0],
        "availability_7d": s.availability[1],
        "availability_30d": s.availability[2],
        "backlog_readings": s.backlog_readings,
        "dropped_total": s.dropped_total,
        "undervoltage": s.undervoltage,
        "disk_full": s.disk_full,
        "temperature_celsius": s.temperature_celsius,
    }


def _csv(rows: Iterable[Sequence[object]], header: Sequence[str], name: str) -> Response:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    response = Response(out.getvalue(), content_type="text/csv; charset=utf-8")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def add_data(app: Flask, reader: Reader, settings: DashboardSettings) -> None:
    def known(site: str) -> None:
        if site not in settings.registry and all(r.site != site for r in reader.site_rows()):
            abort(404, text("dash.unknown_site", present.request_lang(request), site=site))

    def window(default_ms: int) -> tuple[int, int]:
        now = settings.now_ms()
        try:
            end = parse_time(request.args["to"]) if "to" in request.args else now
            start = parse_time(request.args["from"]) if "from" in request.args else end - default_ms
        except BadTime as err:
            lang = present.request_lang(request)
            abort(400, text("dash.bad_param", lang, name="from/to", value=err))
        return start, end

    @app.get("/api/sites")
    def api_sites() -> Response:
        now = settings.now_ms()
        rows = summaries(reader, settings.registry, now, settings.offline_after_ms)
        return jsonify({"generated": present.iso(now), "sites": [site_object(s) for s in rows]})

    @app.get("/api/site/<site>/series")
    def api_series(site: str) -> Response:
        known(site)
        metric = request.args.get("metric", "")
        if not metric:
            abort(
                400, text("dash.bad_param", present.request_lang(request), name="metric", value="")
            )
        start, end = window(_DAY_MS)
        points = [
            {"ts": present.iso(r.ts_ms), "ts_ms": r.ts_ms, "tags": json.loads(r.tags),
             "value": r.value}
            for r in reader.readings(site, start, end, (metric,))
        ]  # fmt: skip
        return jsonify(
            {"site": site, "metric": metric, "from": present.iso(start), "to": present.iso(end),
             "points": points}
        )  # fmt: skip

    @app.get("/site/<site>/readings.csv")
    def readings_csv(site: str) -> Response:
        known(site)
        start, end = window(_DAY_MS)
        rows = (
            (r.site, r.epoch, r.seq, present.iso(r.ts_ms), r.ts_ms, int(r.synced), r.metric,
             r.tags, repr(r.value))
            for r in reader.readings(site, start, end)
        )  # fmt: skip
        return _csv(rows, READING_COLUMNS, f"{site}-readings.csv")

    @app.get("/availability.csv")
    def availability_csv() -> Response:
        month = request.args.get("month") or present.iso(settings.now_ms())[:7]
        try:
            start, end = month_bounds(month)
        except BadTime:
            lang = present.request_lang(request)
            abort(400, text("dash.bad_param", lang, name="month", value=month))
        sums = reader.hourly_sums(BACKHAUL_UP, [start], end)
        sites = sorted(set(sums) | set(settings.registry) | {r.site for r in reader.site_rows()})
        rows = []
        for site in sites:
            info = settings.registry.get(site)
            up, count = (sums.get(site) or [(0.0, 0)])[0]
            ratio = f"{up / count:.6f}" if count else ""
            rows.append(
                (site, info.village if info else "", info.regency if info else "", month, count,
                 round(up), ratio)
            )  # fmt: skip
        return _csv(rows, AVAILABILITY_COLUMNS, f"availability-{month}.csv")
