"""`/api/sites`, `/api/site/<id>/series` and the CSV exports of a running `village-collector serve`
agree with the database, on SQLite and on PostgreSQL; CSV round-trips through the csv module."""

from __future__ import annotations

import csv
import gzip
import io
import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from collector.clock import SystemClock
from collector.store import Store, migrate, open_database
from collector.store.schema import HOUR_MS
from tests.support.collector_proc import CollectorProcess, free_port, write_config
from tests.support.dashboard_fill import fill_sites

SITES = ["kukar-01", "kukar-02", "paser-03"]


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    assert url.startswith("http://127.0.0.1:")
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 - checked above
    try:
        with urllib.request.urlopen(request, timeout=20) as response:  # noqa: S310
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def rows(database_url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    db = open_database(database_url)
    try:
        return db.execute(sql, params)
    finally:
        db.close()


@pytest.fixture
def served(tmp_path: Path, database_url: str) -> Any:
    """Three sites with six hours of rounds (an outage in the first, the last offline), served."""
    store = Store(lambda: open_database(database_url), SystemClock())
    migrate(store.db, 0)
    now = int(time.time() * 1000)
    start = now - now % HOUR_MS - 5 * HOUR_MS
    fill_sites(store, SITES[:1], start_ms=start, hours=6, outages=[(2.0, 1.0)])
    fill_sites(store, SITES[1:], start_ms=start, hours=6, offline=SITES[2:])
    store.close()
    listen = f"127.0.0.1:{free_port()}"
    config = write_config(tmp_path / "serve", broker_url="mqtt://127.0.0.1:1",
                          database_url=database_url, listen=listen)  # fmt: skip
    with CollectorProcess(config, command="serve").start(wait_connected=False) as serve:
        serve.wait_event("http_listening")
        yield f"http://{listen}", database_url, start
        assert serve.terminate() == 0


def test_api_sites_agrees_with_the_database(served: Any) -> None:
    """Each site's state, latency, backlog and 24 h availability are the database's figures; the
    JSON is gzipped for a client that asks."""
    base, database_url, _start = served
    status, headers, body = get(f"{base}/api/sites", {"Accept-Encoding": "gzip"})
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    sites = {s["site"]: s for s in json.loads(gzip.decompress(body))["sites"]}
    assert set(sites) == set(SITES)
    assert {s: v["state"] for s, v in sites.items()} == {
        "kukar-01": "online", "kukar-02": "online", "paser-03": "offline",
    }  # fmt: skip
    assert next(iter(sites)) == "paser-03"  # offline first
    for site, got in sites.items():
        (rtt,) = rows(database_url, "SELECT value FROM latest WHERE site = ? AND metric = ? "
                      "AND tags LIKE '%1.1.1.1%'", (site, "latency.rtt_avg_ms"))[0]  # fmt: skip
        assert got["latency_ms"] == pytest.approx(rtt)
        (backlog,) = rows(database_url, "SELECT value FROM latest WHERE site = ? AND metric = ?",
                          (site, "buffer.backlog_readings"))[0]  # fmt: skip
        assert got["backlog_readings"] == backlog
        up, count = rows(database_url, "SELECT sum(sum), sum(count) FROM rollups_hourly "
                         "WHERE site = ? AND metric = 'uptime.backhaul_up'", (site,))[0]  # fmt: skip
        assert got["availability_24h"] == pytest.approx(float(up) / int(count))
        assert got["since"] and got["version"] == "0.9.0"
    assert sites["kukar-01"]["availability_24h"] < 0.9 < sites["kukar-02"]["availability_24h"]


def test_series_agrees_with_the_readings_in_iso_and_epoch_seconds(served: Any) -> None:
    """The series of one metric between two times is the stored readings, whichever way the times
    are written; unknown sites and bad times are refused."""
    base, database_url, start = served
    end = start + 3 * HOUR_MS
    expected = rows(database_url, "SELECT ts, value, tags FROM readings WHERE site = 'kukar-01' "
                    "AND metric = 'latency.rtt_avg_ms' AND ts >= ? AND ts < ? ORDER BY ts, seq",
                    (start, end))  # fmt: skip
    iso_from = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start / 1000))
    iso_to = quote(time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(end / 1000)))
    for query in (f"from={iso_from}&to={iso_to}", f"from={start / 1000}&to={end / 1000}"):
        status, _h, body = get(f"{base}/api/site/kukar-01/series?metric=latency.rtt_avg_ms&{query}")
        assert status == 200
        points = json.loads(body)["points"]
        got = [(p["ts_ms"], p["value"], p["tags"]) for p in points]
        assert got == [(int(ts), float(v), json.loads(t)) for ts, v, t in expected]
        assert len(got) > 40
    assert get(f"{base}/api/site/nowhere-09/series?metric=x")[0] == 404
    assert get(f"{base}/api/site/kukar-01/series?metric=x&from=yesterday")[0] == 400


def test_csv_exports_round_trip(served: Any) -> None:
    """readings.csv holds every reading of the range as stored; availability.csv the month's rounds
    and share up per site; both parse back with the csv module."""
    base, database_url, start = served
    status, headers, body = get(f"{base}/site/kukar-01/readings.csv?from={start / 1000}"
                                f"&to={(start + 7 * HOUR_MS) / 1000}")  # fmt: skip
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    parsed = list(csv.DictReader(io.StringIO(body.decode("utf-8"))))
    stored = rows(database_url, "SELECT seq, ts, metric, tags, value FROM readings "
                  "WHERE site = 'kukar-01' ORDER BY ts, seq")  # fmt: skip
    assert [(int(r["seq"]), int(r["ts_ms"]), r["metric"], r["tags"], float(r["value"]))
            for r in parsed] == [(int(q), int(t), m, tg, float(v))
                                 for q, t, m, tg, v in stored]  # fmt: skip
    assert all(r["ts"].endswith("Z") and r["site"] == "kukar-01" for r in parsed)

    month = time.strftime("%Y-%m", time.gmtime(start / 1000))
    status, _h, body = get(f"{base}/availability.csv?month={month}")
    assert status == 200
    table = {r["site"]: r for r in csv.DictReader(io.StringIO(body.decode("utf-8")))}
    assert set(table) == set(SITES)
    up, count = rows(database_url, "SELECT sum(sum), sum(count) FROM rollups_hourly "
                     "WHERE site = 'kukar-01' AND metric = 'uptime.backhaul_up'")[0]  # fmt: skip
    assert int(table["kukar-01"]["rounds"]) == int(count)
    assert int(table["kukar-01"]["rounds_up"]) == round(float(up))
    assert float(table["kukar-01"]["availability_ratio"]) == pytest.approx(float(up) / int(count))
    assert get(f"{base}/availability.csv?month=2026-13")[0] == 400
