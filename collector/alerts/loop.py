"""The alert pass: compare each site's states with the last ones reported, report each change once
(webhook and log), remember it. Runs every `alerts.interval_s` in a thread of `run`."""

from __future__ import annotations

import threading
from collections.abc import Mapping

import structlog

from collector.alerts.rules import KINDS, current_states
from collector.alerts.webhook import Send, SendError
from collector.clock import Clock, wall_ms
from collector.dashboard.registry import SiteInfo
from collector.messages import Lang, text
from collector.store.database import Database
from collector.store.reader import Reader
from collector.web.present import iso

log = structlog.get_logger("collector.alerts")


class Alerts:
    """Evaluates the alerts against the database `db` (a connection of its own)."""

    def __init__(
        self,
        db: Database,
        *,
        clock: Clock,
        offline_after_s: float,
        send: Send | None,
        registry: Mapping[str, SiteInfo],
        lang: Lang,
    ) -> None:
        self._db = db
        self._reader = Reader(db)
        self._clock = clock
        self._offline_after_ms = round(offline_after_s * 1000)
        self._send = send
        self._registry = registry
        self._lang = lang

    def _known(self) -> dict[tuple[str, str], str]:
        rows = self._db.execute("SELECT site, kind, state FROM alert_state")
        return {(str(s), str(k)): str(st) for s, k, st in rows}

    def _remember(self, site: str, kind: str, state: str, since: int) -> None:
        with self._db.transaction():
            self._db.execute(
                "INSERT INTO alert_state (site, kind, state, since) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (site, kind) DO UPDATE SET state = excluded.state, "
                "since = excluded.since",
                (site, kind, state, since),
            )

    def evaluate(self) -> int:
        """One pass. Return how many alerts were sent (or logged, without a webhook)."""
        now = wall_ms(self._clock)
        known = self._known()
        fired = 0
        for (site, kind), (state, since) in sorted(
            current_states(self._reader, now, self._offline_after_ms).items()
        ):
            before = known.get((site, kind))
            if before == state:
                continue
            bad, _good = KINDS[kind]
            if before is None and state != bad:
                self._remember(site, kind, state, since)  # first sight of a healthy site: no news
                continue
            info = self._registry.get(site)
            alert = {
                "site": site,
                "kind": kind,
                "state": state,
                "previous": before,
                "since": iso(since),
                "village": info.village if info else None,
                "regency": info.regency if info else None,
                "text": text(f"alert.{kind}.{state}", self._lang, site=site, since=iso(since)),
            }
            if self._send is not None:
                try:
                    self._send(alert)
                except SendError as err:
                    log.warning("alert_not_sent", site=site, kind=kind, state=state, error=str(err))
                    continue
            log.info("alert", site=site, kind=kind, state=state, previous=before, since=iso(since))
            self._remember(site, kind, state, since)
            fired += 1
        return fired

    def run(self, stop: threading.Event, interval_s: float) -> None:
        """Evaluate every `interval_s` until `stop` is set; a failing pass is logged, not fatal."""
        while not stop.wait(interval_s):
            try:
                self.evaluate()
            # The one catch-all here: a failing pass (database away) must not stop the ingest.
            except Exception as err:
                log.error("alerts_failed", error=repr(err))

    def close(self) -> None:
        self._db.close()
