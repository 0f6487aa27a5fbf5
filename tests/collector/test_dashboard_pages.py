"""The site page over 30 days and the overview of a province in real chromium, from a `serve` process
on a database filled through the collector's writer: outages shaded, events listed, ranges switch.
With UPDATE_DOCS_SCREENSHOTS=1 its screenshots become the README's (docs/dashboard-*.png)."""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pytest
import yaml

from collector.clock import SystemClock
from collector.store import Store, migrate, open_database
from collector.store.schema import HOUR_MS
from tests.support.chromium import dump_dom, find_chromium, screenshot
from tests.support.collector_proc import CollectorProcess, free_port, write_config
from tests.support.dashboard_fill import fill_sites

DOCS = Path(__file__).resolve().parents[2] / "docs"
LONG = "kukar-tenggarong-01"
REGENCIES = ("Kutai Kartanegara", "Paser", "Berau")

pytestmark = pytest.mark.skipif(find_chromium() is None, reason="chromium is not installed")


def test_site_page_shows_thirty_days_with_outages_and_events(tmp_path: Path) -> None:
    """30 days of one site: four charts per range with the outages as bands, the agent restarts
    and outages (with durations) and speed tests in the event list; the overview lists all sites."""
    url = f"sqlite://{tmp_path}/collector.sqlite"
    store = Store(lambda: open_database(url), SystemClock())
    migrate(store.db, 0)
    now = int(time.time() * 1000)
    start = now - now % HOUR_MS - 30 * 24 * HOUR_MS + HOUR_MS
    fill_sites(store, [LONG], start_ms=start, hours=30 * 24 - 0.5, interval_s=900,
               outages=[(100.0, 6.0), (400.0, 30.0), (700.0, 4.0), (716.0, 1.5)])  # fmt: skip
    others = [f"{r.split()[-1].lower()}-desa-{n:02d}" for n, r in
              enumerate(REGENCIES * 4)]  # fmt: skip
    fill_sites(store, others, start_ms=now - 2 * HOUR_MS, hours=2, offline=others[::5])
    store.close()
    registry = [
        {
            "site": LONG,
            "village": "Tenggarong Seberang",
            "regency": REGENCIES[0],
            "lat": -0.41,
            "lon": 117.02,
            "contact": "Pak Budi, 0812-0000-0000",
        }
    ]
    registry += [{"site": s, "village": f"Desa {n + 1}", "regency": REGENCIES[n % 3]}
                 for n, s in enumerate(others)]  # fmt: skip
    sites_file = tmp_path / "sites.yaml"
    sites_file.write_text(yaml.safe_dump(registry), encoding="utf-8")
    listen = f"127.0.0.1:{free_port()}"
    config = write_config(tmp_path / "serve", broker_url="mqtt://127.0.0.1:1",
                          database_url=url, listen=listen)  # fmt: skip
    config.write_text(config.read_text() + f"sites_file: {sites_file}\n", encoding="utf-8")
    shots = tmp_path / "screenshots"
    shots.mkdir()
    base = f"http://{listen}"
    with CollectorProcess(config, command="serve").start(wait_connected=False) as serve:
        serve.wait_event("http_listening")
        dom = dump_dom(f"{base}/site/{LONG}?range=30d&lang=en")
        assert dom.count('<svg class="chart"') == 4
        assert dom.count('class="band"') == 4 * 4  # four outages on each chart
        assert "power_cut" in dom and "Backhaul down" in dom and "lasted 30 h 00 m" in dom
        assert "Speed test" in dom and "Pak Budi" in dom
        screenshot(f"{base}/site/{LONG}?range=30d&lang=en", shots / "site-30d.png",
                   size="1366,1500")  # fmt: skip
        day = dump_dom(f"{base}/site/{LONG}?range=24h&lang=id")
        assert day.count('<svg class="chart"') == 4 and "Kejadian" in day
        assert 'class="band"' in day  # the outage of the last day
        screenshot(f"{base}/site/{LONG}?range=7d&lang=en", shots / "site-7d.png",
                   size="1366,1500")  # fmt: skip

        overview = dump_dom(f"{base}/?lang=en")
        listed = re.findall(r'data-site="([^"]+)" data-state="([^"]+)"', overview)
        assert {s for s, _ in listed} == {LONG, *others}
        assert {s for s, st in listed if st == "offline"} == set(others[::5])
        screenshot(f"{base}/?lang=en", shots / "overview.png")
        assert serve.terminate() == 0
    if os.environ.get("UPDATE_DOCS_SCREENSHOTS") == "1":  # else a test run would dirty the tree
        DOCS.mkdir(exist_ok=True)
        shutil.copyfile(shots / "overview.png", DOCS / "dashboard-overview.png")
        shutil.copyfile(shots / "site-30d.png", DOCS / "dashboard-site.png")
