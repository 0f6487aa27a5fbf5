"""Dashboard server time and bytes: `python -m bench.dashboard`.

A database filled through the collector's own writer (no MQTT): 1,000 sites x 2 virtual hours of
rounds every 5 minutes, plus one site x 30 days with outages. Each page is requested through the
real Flask app (as waitress would call it) with `Accept-Encoding: gzip`; the time is the median of
`BENCH_DASHBOARD_REPEAT` (default 5) requests, the bytes are those sent. `BENCH_DASHBOARD_PG=1`
runs it on a PostgreSQL cluster of its own too.
"""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from bench.table import Row, info, judged, render
from collector.clock import SystemClock
from collector.dashboard.registry import SiteInfo
from collector.store import Reader, Store, migrate, open_database
from collector.store.schema import HOUR_MS
from collector.web.app import create_app
from collector.web.settings import DashboardSettings
from tests.support.dashboard_fill import fill_sites

SITES = 1_000
LONG_SITE = "kukar-long-0001"
REGENCIES = ("Kutai Kartanegara", "Paser", "Berau", "Kutai Barat", "Kutai Timur", "Mahakam Ulu")
PAGES = {
    "overview /": "/",
    "site page, 24 h": f"/site/{LONG_SITE}?range=24h",
    "site page, 30 d": f"/site/{LONG_SITE}?range=30d",
    "/api/sites": "/api/sites",
}


def fill(url: str) -> tuple[int, float]:
    """Readings written and seconds taken."""
    began = time.monotonic()
    store = Store(lambda: open_database(url), SystemClock())
    migrate(store.db, 0)
    now = int(time.time() * 1000)
    sites = [f"site-{n:04d}" for n in range(SITES)]
    offline = sites[::20]
    count = fill_sites(store, sites, start_ms=now - 2 * HOUR_MS, hours=2, offline=offline)
    count += fill_sites(store, [LONG_SITE], start_ms=now - 30 * 24 * HOUR_MS, hours=30 * 24,
                        outages=[(30.0, 5.0), (200.0, 26.0), (600.0, 2.0), (700.0, 3.5)])  # fmt: skip
    store.close()
    return count, time.monotonic() - began


def measure(url: str, label: str) -> list[Row]:
    count, took = fill(url)
    registry = {
        f"site-{n:04d}": SiteInfo(site=f"site-{n:04d}", village=f"Desa {n}",
                                  regency=REGENCIES[n % len(REGENCIES)])
        for n in range(0, SITES, 3)
    }  # fmt: skip
    app = create_app(Reader(open_database(url)), DashboardSettings(registry=registry))
    client = app.test_client()
    rows = [info(f"{label}: readings filled", count, "", 0), info(f"{label}: fill time", took, "s")]
    repeat = int(os.environ.get("BENCH_DASHBOARD_REPEAT", "5"))
    for name, path in PAGES.items():
        times, size, raw = [], 0, 0
        for _ in range(repeat):
            began = time.perf_counter()
            response = client.get(path, headers={"Accept-Encoding": "gzip"})
            times.append((time.perf_counter() - began) * 1000)
            assert response.status_code == 200, (path, response.status_code)
            size = len(response.get_data())
            raw = len(client.get(path).get_data())
        rows.append(judged(f"{label}: {name} server time", statistics.median(times), "ms",
                           at_most=300))  # fmt: skip
        goal = 300 if name.startswith("overview") else None
        if goal:
            rows.append(judged(f"{label}: {name} bytes (gzip)", size / 1000, "KB", at_most=goal))
        else:
            rows.append(info(f"{label}: {name} bytes (gzip)", size / 1000, "KB"))
        rows.append(info(f"{label}: {name} bytes (uncompressed)", raw / 1000, "KB"))
    return rows


def main() -> None:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as scratch:
        rows += measure(f"sqlite://{Path(scratch)}/collector.sqlite", "SQLite")
    if os.environ.get("BENCH_DASHBOARD_PG") == "1":
        from tests.support.pg_server import PostgresServer  # noqa: PLC0415

        server = PostgresServer().start()
        try:
            rows += measure(server.create_database("bench_dashboard"), "PostgreSQL")
        finally:
            server.stop()
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(render(rows, machine))


if __name__ == "__main__":
    main()
