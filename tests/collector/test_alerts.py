"""Alerts with an injected clock on a real SQLite store: each transition once, the first healthy
sight silent, a webhook failure retried on the next pass, the state kept across a new `Alerts`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from collector.alerts.loop import Alerts
from collector.alerts.webhook import SendError, webhook
from collector.store import Store, migrate, open_database
from collector.store.rows import OUTAGE_START, Parcel, Row, Status
from tests.support.webhook_sink import WebhookSink


class Clock:
    def __init__(self, wall: float) -> None:
        self.now = wall

    def wall(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now


def reading(site: str, seq: int, metric: str, value: float, ts_ms: int) -> Row:
    return Row(site=site, epoch="", seq=seq, raw_ts=ts_ms, synced=True, boot_id="b", mono_ms=seq,
               metric=metric, tags="{}", value=value)  # fmt: skip


def test_each_transition_fires_once_and_a_failed_post_is_retried(tmp_path: Path) -> None:
    """online (silent) -> silent past offline_after_s (offline, once) -> webhook down (retried)
    -> reading again (online, once); backhaul down and under-voltage fire from the data."""
    url = f"sqlite://{tmp_path}/c.sqlite"
    clock = Clock(1_800_000_000.0)
    store = Store(lambda: open_database(url), clock)
    migrate(store.db, 0)
    at = int(clock.now * 1000)
    store.write(Parcel(rows=(reading("a-01", 1, "uptime.backhaul_up", 1, at),),
                       statuses=(Status(site="a-01", state="online", version="1", config="c",
                                        at_ms=at),), seen={"a-01": 1}))  # fmt: skip
    sent: list[Mapping[str, object]] = []
    failing = [0]

    def send(alert: Mapping[str, object]) -> None:
        if failing[0]:
            failing[0] -= 1
            raise SendError("down")
        sent.append(alert)

    def alerts() -> Alerts:
        return Alerts(open_database(url), clock=clock, offline_after_s=60, send=send,
                      registry={}, lang="en")  # fmt: skip

    first = alerts()
    assert first.evaluate() == 0  # a healthy site seen for the first time: no news
    clock.now += 61
    assert first.evaluate() == 1
    assert first.evaluate() == 0
    assert [(a["kind"], a["state"]) for a in sent] == [("offline", "offline")]
    assert sent[0]["text"] == "a-01 offline since 2027-01-15T08:00:00Z"
    first.close()

    # A new Alerts (a restarted collector) remembers; the webhook fails once, then takes it.
    second = alerts()
    clock.now += 5
    now = int(clock.now * 1000)
    store.write(Parcel(rows=(reading("a-01", 2, OUTAGE_START, 1, now),
                             reading("a-01", 3, "system.undervoltage_now_bool", 1, now)),
                       seen={"a-01": 3}))  # fmt: skip
    failing[0] = 1
    assert second.evaluate() == 2  # the online alert failed; backhaul and under-voltage went
    assert second.evaluate() == 1  # retried: back online
    assert second.evaluate() == 0
    assert sorted((a["kind"], a["state"]) for a in sent[1:]) == [
        ("backhaul", "down"), ("offline", "online"), ("undervoltage", "on"),
    ]  # fmt: skip
    second.close()
    store.close()


def test_webhook_posts_json_and_reports_a_refusal() -> None:
    """The stdlib sender POSTs the alert as JSON; an HTTP 500 is a SendError."""
    with WebhookSink() as sink:
        post = webhook(sink.url, timeout_s=5)
        post({"site": "a-01", "kind": "offline", "state": "offline"})
        assert sink.received == [{"site": "a-01", "kind": "offline", "state": "offline"}]
        sink.fail_next = 1
        try:
            post({"site": "a-01"})
        except SendError as err:
            assert "500" in str(err)
        else:
            raise AssertionError("a 500 must not count as delivered")
