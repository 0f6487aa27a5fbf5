"""The store's write side: one transaction per batch of messages, engine differences behind `Database`.

Order inside a transaction: boots whose clock offset this batch reveals, then the readings (which take
their true time from `boots`), then older readings of a newly synced boot, then outages, sites,
alarms. The caller acknowledges the batch's messages only after `write` returned.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from collector.clock import Clock, wall_ms
from collector.store.database import Database
from collector.store.rows import OUTAGE_START, Alarm, ImportState, Parcel, Row, Status

BACKHAUL = "backhaul"  # outages the agent measured (event.outage_start / event.outage_end_s)
OFFLINE = "offline"  # outages seen by the broker: the site's status went offline
DAY_MS = 86_400_000
# An outage end whose computed start lies this close to a start already recorded closes that one.
_SAME_OUTAGE_MS = 60_000
_ATTEMPTS = 5


@dataclass(frozen=True, slots=True, kw_only=True)
class Written:
    inserted: int  # readings new to the database
    duplicates: int  # readings it already had (a redelivery, or another collector was first)


def boot_offsets(rows: Iterable[Row]) -> dict[tuple[str, str], int]:
    """Per (site, boot), wall minus monotonic time of the boot's first synced reading: what puts the
    boot's unsynced readings on true time."""
    offsets: dict[tuple[str, str], tuple[int, int]] = {}
    for row in rows:
        if row.synced:
            key = (row.site, row.boot_id)
            if key not in offsets or row.seq < offsets[key][0]:
                offsets[key] = (row.seq, row.raw_ts - row.mono_ms)
    return {key: offset for key, (_seq, offset) in offsets.items()}


class Store:
    """Writes parcels; keeps which boots' offsets are already in the database."""

    def __init__(self, connect: Callable[[], Database], clock: Clock) -> None:
        self._connect = connect
        self.db = connect()
        self._clock = clock
        self._known_boots: set[tuple[str, str]] = set()

    def reconnect(self) -> None:
        """A new connection after the database went away. Raise StoreError if it is still away."""
        with contextlib.suppress(Exception):
            self.db.close()
        self.db = self._connect()
        self._known_boots.clear()

    def close(self) -> None:
        self.db.close()

    def write(self, parcel: Parcel) -> Written:
        """Store a parcel in one transaction. Raise StoreError if the database cannot take it."""
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                with self.db.transaction():
                    written, boots = self._write(parcel)
            except self.db.transient:
                if attempt == _ATTEMPTS:
                    raise
                continue
            self._known_boots.update(boots)
            return written
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _write(self, parcel: Parcel) -> tuple[Written, set[tuple[str, str]]]:
        now = wall_ms(self._clock)
        synced_now: list[tuple[str, str, int]] = []
        for (site, boot), offset in sorted(boot_offsets(parcel.rows).items()):
            if (site, boot) in self._known_boots:
                continue
            self.db.execute(
                "INSERT INTO boots (site, boot_id, offset_ms) VALUES (?, ?, ?) "
                "ON CONFLICT (site, boot_id) DO NOTHING",
                (site, boot, offset),
            )
            (stored,) = self.db.execute(
                "SELECT offset_ms FROM boots WHERE site = ? AND boot_id = ?", (site, boot)
            )[0]
            synced_now.append((site, boot, int(stored)))
        inserted = self.db.insert_readings(parcel.rows, now) if parcel.rows else None
        for site, boot, offset in synced_now:
            self.db.correct_boot(site, boot, offset)
        if inserted is not None:
            for site, metric, ts, value in inserted.outage_events:
                self._outage_event(site, metric, ts, value)
        self._seen(parcel.seen, now)
        for status in parcel.statuses:
            self._status(status)
        self._alarms(parcel.alarms, now)
        self._imports(parcel.imports)
        count = inserted.count if inserted is not None else 0
        written = Written(inserted=count, duplicates=len(parcel.rows) - count)
        return written, {(site, boot) for site, boot, _ in synced_now}

    def _outage_event(self, site: str, metric: str, ts: int, value: float) -> None:
        if metric == OUTAGE_START:
            # The end may have arrived first (QoS 1 does not keep order across messages).
            closed = self.db.execute(
                "SELECT 1 FROM outages WHERE site = ? AND kind = ? AND ended >= ? AND started <= ?",
                (site, BACKHAUL, ts, ts + _SAME_OUTAGE_MS),
            )
            if not closed:
                self.db.execute(
                    "INSERT INTO outages (site, kind, started, ended) VALUES (?, ?, ?, NULL) "
                    "ON CONFLICT (site, kind, started) DO NOTHING",
                    (site, BACKHAUL, ts),
                )
            return
        started = ts - round(value * 1000)
        open_rows = self.db.execute(
            "SELECT started FROM outages WHERE site = ? AND kind = ? AND ended IS NULL "
            "AND started <= ? ORDER BY started DESC LIMIT 1",
            (site, BACKHAUL, ts),
        )
        if open_rows:
            self.db.execute(
                "UPDATE outages SET ended = ? WHERE site = ? AND kind = ? AND started = ?",
                (ts, site, BACKHAUL, open_rows[0][0]),
            )
        else:
            self.db.execute(
                "INSERT INTO outages (site, kind, started, ended) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (site, kind, started) DO UPDATE SET ended = excluded.ended",
                (site, BACKHAUL, started, ts),
            )

    def _seen(self, seen: Mapping[str, int], now: int) -> None:
        g = self.db.greatest
        self.db.executemany(
            "INSERT INTO sites (site, last_seen, last_seq) VALUES (?, ?, ?) "
            f"ON CONFLICT (site) DO UPDATE SET last_seen = {g}(COALESCE(sites.last_seen, 0), "
            f"excluded.last_seen), last_seq = {g}(COALESCE(sites.last_seq, 0), excluded.last_seq)",
            [(site, now, seq) for site, seq in sorted(seen.items())],
        )

    def _status(self, status: Status) -> None:
        before = self.db.execute("SELECT status FROM sites WHERE site = ?", (status.site,))
        previous = before[0][0] if before else None
        self.db.execute(
            "INSERT INTO sites (site, status, version, config, status_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (site) DO UPDATE SET status = excluded.status, "
            "version = COALESCE(excluded.version, sites.version), "
            "config = COALESCE(excluded.config, sites.config), status_at = excluded.status_at",
            (status.site, status.state, status.version, status.config, status.at_ms),
        )
        if status.state == "offline" and previous != "offline":
            self.db.execute(
                "INSERT INTO outages (site, kind, started, ended) VALUES (?, ?, ?, NULL) "
                "ON CONFLICT (site, kind, started) DO NOTHING",
                (status.site, OFFLINE, status.at_ms),
            )
        elif status.state == "online" and previous == "offline":
            self.db.execute(
                "UPDATE outages SET ended = ? WHERE site = ? AND kind = ? AND ended IS NULL",
                (status.at_ms, status.site, OFFLINE),
            )

    def _alarms(self, alarms: Sequence[Alarm], now: int) -> None:
        self.db.executemany(
            "INSERT INTO alarms (site, event, ts, detail, received) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (site, event, ts) DO NOTHING",
            [(a.site, a.event, a.ts, a.detail, now) for a in alarms],
        )

    def _imports(self, imports: Sequence[ImportState]) -> None:
        self.db.executemany(
            "INSERT INTO sites (site, import_state) VALUES (?, ?) "
            "ON CONFLICT (site) DO UPDATE SET import_state = excluded.import_state",
            [(i.site, i.state) for i in imports],
        )

    def maintain(self, retention_days: float) -> int:
        """Delete raw readings older than the retention (rollups stay), and put on true time any
        reading whose boot synced while another collector held it. Return rows deleted."""
        cutoff = wall_ms(self._clock) - round(retention_days * DAY_MS)
        with self.db.transaction():
            before = self.db.execute("SELECT count(*) FROM readings WHERE ts < ?", (cutoff,))
            self.db.execute("DELETE FROM readings WHERE ts < ?", (cutoff,))
            # Readings whose boot never synced have no true time: they go by their arrival.
            untimed = self.db.execute(
                "SELECT count(*) FROM readings WHERE ts IS NULL AND received < ?", (cutoff,)
            )
            self.db.execute("DELETE FROM readings WHERE ts IS NULL AND received < ?", (cutoff,))
            pending = self.db.execute(
                "SELECT DISTINCT r.site, r.boot_id, b.offset_ms FROM readings r JOIN boots b "
                "ON b.site = r.site AND b.boot_id = r.boot_id WHERE r.ts IS NULL"
            )
            for site, boot, offset in pending:
                self.db.correct_boot(str(site), str(boot), int(offset))
        return int(before[0][0]) + int(untimed[0][0])
