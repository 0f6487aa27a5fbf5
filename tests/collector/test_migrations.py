"""Migrations: a database of an older schema is brought up to date, its data kept and carried into
what the newer schema adds; a database newer than the collector is refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from collector.clock import SystemClock
from collector.store import Store, migrate, open_database, schema_version
from collector.store.schema import HOUR_MS, LATEST_VERSION, MIGRATIONS
from tests.support.collector_proc import REPO, write_config

T0 = 1_800_000_000_000


def test_an_older_database_is_upgraded_and_its_readings_rolled_up(database_url: str) -> None:
    """A version-1 database with readings in it gets the rollups and latest values of version 2,
    computed from the readings it already held."""
    db = open_database(database_url)
    try:
        assert migrate(db, 0, MIGRATIONS[:1]) == (0, 1)
        db.executemany(
            "INSERT INTO readings (site, epoch, seq, ts, raw_ts, synced, boot_id, mono_ms, metric, "
            "tags, value, received) VALUES (?, '', ?, ?, ?, ?, 'b', 0, 'uptime.system_s', '{}', ?, 0)",
            [
                ("s1", 1, T0, T0, True, 5.0),
                ("s1", 2, T0 + 1, T0 + 1, True, 7.0),
                ("s1", 3, None, 10, False, 9.0),
            ],
        )
    finally:
        db.close()

    store = Store(lambda: open_database(database_url), SystemClock())
    try:
        assert migrate(store.db, 0) == (1, LATEST_VERSION)
        assert schema_version(store.db) == LATEST_VERSION
        assert store.db.execute("SELECT hour, count, sum, min, max FROM rollups_hourly") == [
            (T0 - T0 % HOUR_MS, 2, 12.0, 5.0, 7.0)
        ]
        assert store.db.execute("SELECT seq, value FROM latest") == [(3, 9.0)]
        assert store.db.execute("SELECT count(*) FROM readings")[0][0] == 3
        versions = store.db.execute("SELECT version FROM schema_version ORDER BY version")
        assert [v for (v,) in versions] == [m.number for m in MIGRATIONS]
    finally:
        store.close()


def test_a_newer_database_is_refused_in_words(tmp_path: Path) -> None:
    """A collector older than its database exits 78 saying to upgrade, and writes nothing."""
    url = f"sqlite://{tmp_path}/collector.sqlite"
    db = open_database(url)
    migrate(db, 0)
    db.execute(
        "INSERT INTO schema_version (version, about, applied_at) VALUES (?, 'from the future', 0)",
        (LATEST_VERSION + 1,),
    )
    db.close()
    config = write_config(tmp_path, broker_url="mqtt://127.0.0.1:9", database_url=url)
    result = subprocess.run(
        [sys.executable, "-m", "collector", "run", "--config", str(config), "--lang", "en"],
        capture_output=True, text=True, cwd=REPO, check=False, timeout=60,
    )  # fmt: skip
    assert result.returncode == 78
    assert f"schema version {LATEST_VERSION + 1}" in result.stderr
    assert "upgrade village-collector" in result.stderr
    assert "Traceback" not in result.stderr
