"""The dashboard in a real headless chromium, against a real collector fed over a real mosquitto with
the agent's own encoded payloads: every site with its state and since-when, a site going offline and
back, each transition's alert reaching a webhook exactly once, also across a collector restart."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.agent_proc import wait_until
from tests.support.chromium import dump_dom, find_chromium, screenshot
from tests.support.collector_proc import PREFIX, CollectorProcess, free_port
from tests.support.mqtt_broker import Broker
from tests.support.site_publisher import SitePublisher
from tests.support.webhook_sink import WebhookSink

DOCS = Path(__file__).resolve().parents[2] / "docs"
SITES = ["kukar-tenggarong-01", "kukar-loa-kulu-02", "paser-batu-sopang-03", "berau-talisayan-04"]
REGISTRY = [
    {"site": SITES[0], "village": "Tenggarong Seberang", "regency": "Kutai Kartanegara",
     "lat": -0.41, "lon": 117.02, "contact": "Pak Budi"},
    {"site": SITES[1], "village": "Loa Kulu", "regency": "Kutai Kartanegara"},
    {"site": SITES[2], "village": "Batu Sopang", "regency": "Paser"},
]  # fmt: skip  # SITES[3] is not in the registry: it must still appear

pytestmark = pytest.mark.skipif(find_chromium() is None, reason="chromium is not installed")


def dashboard_config(directory: Path, broker: Broker, listen: str, webhook_url: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    sites_file = directory / "sites.yaml"
    sites_file.write_text(yaml.safe_dump(REGISTRY, allow_unicode=True), encoding="utf-8")
    config = {
        "broker": {"url": broker.url(), "topic_prefix": PREFIX, "client_id": "dash-test",
                   "keepalive_s": 5},
        "database": {"url": f"sqlite://{directory}/collector.sqlite"},
        "http": {"listen": listen},
        "alerts": {"offline_after_s": 2, "webhook_url": webhook_url, "interval_s": 0.3},
        "sites_file": str(sites_file),
        "log": {"level": "info"},
    }  # fmt: skip
    path = directory / "collector.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def api_sites(listen: str) -> dict[str, dict[str, Any]]:
    with urllib.request.urlopen(f"http://{listen}/api/sites", timeout=10) as response:
        return {s["site"]: s for s in json.load(response)["sites"]}


def states(listen: str) -> dict[str, str]:
    return {site: s["state"] for site, s in api_sites(listen).items()}


def rows_of(dom: str) -> list[tuple[str, str]]:
    """(site, state) of each overview row, in page order."""
    return re.findall(r'<tr class="r[^"]*" data-site="([^"]+)" data-state="([^"]+)"', dom)


def alerts_for(sink: WebhookSink, site: str, kind: str = "offline") -> list[str]:
    return [a["state"] for a in sink.received if a["site"] == site and a["kind"] == kind]


def test_overview_and_site_pages_follow_sites_going_offline_and_back(
    tmp_path: Path, broker: Broker
) -> None:
    """Every site shows with its state and since-when; a retained `offline` and a silent publisher
    turn sites offline (listed first), a new `online` brings one back; each transition reaches the
    webhook once, and a restarted collector does not send them again."""
    listen = f"127.0.0.1:{free_port()}"
    base = f"http://{listen}"
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with WebhookSink() as sink:
        config = dashboard_config(tmp_path / "collector", broker, listen, sink.url)
        publisher = SitePublisher(broker.host, broker.port, PREFIX, SITES)
        collector = CollectorProcess(config).start()
        try:
            collector.wait_event("http_listening")
            for site in SITES:
                publisher.status(site, "online")
            publisher.start()
            wait_until(lambda: set(states(listen).values()) == {"online"}
                       and len(states(listen)) == 4, 20, collector.log())  # fmt: skip

            dom = dump_dom(f"{base}/?lang=en")
            assert sorted(rows_of(dom)) == sorted((s, "online") for s in SITES)
            assert "Kutai Kartanegara (2)" in dom and "Paser (1)" in dom
            assert "Regency not known (1)" in dom  # the site missing from the registry
            since = api_sites(listen)[SITES[0]]["since"]
            assert since and since[:16].replace("T", " ") in dom  # since-when, to the minute
            screenshot(f"{base}/?lang=en", shots / "overview-online.png")

            # A retained offline status (what the broker's last will says) and a silent publisher.
            publisher.active -= {SITES[1], SITES[2]}
            publisher.status(SITES[1], "offline")
            wait_until(lambda: states(listen)[SITES[1]] == "offline"
                       and states(listen)[SITES[2]] == "offline", 20)  # fmt: skip
            wait_until(lambda: alerts_for(sink, SITES[1]) == ["offline"]
                       and alerts_for(sink, SITES[2]) == ["offline"], 10, str(sink.received))  # fmt: skip
            dom = dump_dom(f"{base}/?lang=id")
            order = rows_of(dom)
            assert ("kukar-loa-kulu-02", "offline") in order
            assert order.index((SITES[1], "offline")) < order.index((SITES[0], "online"))
            assert "luring" in dom and "Kabupaten" in dom  # Indonesian
            screenshot(f"{base}/?lang=en", shots / "overview.png")

            # Back online: a new birth message and telemetry again.
            publisher.status(SITES[1], "online")
            publisher.active.add(SITES[1])
            wait_until(lambda: states(listen)[SITES[1]] == "online", 20)
            wait_until(lambda: alerts_for(sink, SITES[1]) == ["offline", "online"], 10,
                       str(sink.received))  # fmt: skip
            time.sleep(1.5)  # several more passes: nothing fires twice
            assert alerts_for(sink, SITES[1]) == ["offline", "online"]
            assert alerts_for(sink, SITES[2]) == ["offline"]
            assert alerts_for(sink, SITES[0]) == []
            first = next(a for a in sink.received if a["site"] == SITES[1])
            assert first["village"] == "Loa Kulu" and first["text"].startswith(SITES[1])

            dom = dump_dom(f"{base}/site/{SITES[0]}?lang=en")
            assert dom.count('<svg class="chart"') == 4
            assert 'data-state="online"' in dom and "0.9.0" in dom and "cfg-01" in dom
            assert "Tenggarong Seberang" in dom and "Agent version" in dom
            screenshot(f"{base}/site/{SITES[0]}?lang=en", shots / "site.png", size="1366,1400")

            # A restart: the alert states are in the database, nothing is sent again.
            received = len(sink.received)
            assert collector.terminate() == 0
            collector.start()
            collector.wait_event("http_listening")
            time.sleep(1.5)
            assert len(sink.received) == received, sink.received[received:]
            assert collector.terminate() == 0
        finally:
            publisher.close()
            if collector.running():
                collector.kill()
    for name in ("overview.png", "site.png"):
        assert (shots / name).stat().st_size > 10_000
