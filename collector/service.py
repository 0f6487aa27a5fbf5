"""The composition root: builds the collector from its config, the same way for `run` and `serve`.

`run` = subscriber -> ingest loop -> store, and the HTTP side reading the same database;
`serve` = the HTTP side alone. Failures that a person must fix come back as `Exit` with a message from
the catalogue; nothing here prints a traceback.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import structlog

from collector.alerts.loop import Alerts
from collector.alerts.webhook import webhook
from collector.clock import Clock, wall_ms
from collector.config import Config, read_password
from collector.confirm.loop import Confirmer
from collector.dashboard.registry import RegistryError, SiteInfo, load_registry
from collector.ingest.batcher import Ingest
from collector.ingest.subscriber import Subscriber
from collector.messages import Lang, text
from collector.store import (
    Database,
    Reader,
    SchemaTooNewError,
    Store,
    StoreError,
    migrate,
    open_database,
)
from collector.web.app import create_app
from collector.web.serve import HttpServer
from collector.web.settings import DashboardSettings

log = structlog.get_logger("collector")


@dataclass(frozen=True, slots=True, kw_only=True)
class Exit(Exception):
    """Stop the program with `status`, telling a person `message`."""

    status: int
    message: str


def _connector(config: Config, lang: Lang) -> Callable[[], Database]:
    def connect() -> Database:
        return open_database(config.database.url)

    return connect


def open_store(config: Config, clock: Clock, lang: Lang) -> Store:
    """Connect and bring the schema up to date. Raise Exit if the database cannot be used."""
    url = config.database.url
    try:
        store = Store(_connector(config, lang), clock)
        before, after = migrate(store.db, wall_ms(clock))
    except SchemaTooNewError as err:
        message = text("database.too_new", lang, url=url, found=err.found, known=err.known)
        raise Exit(status=os.EX_CONFIG, message=message) from err
    except StoreError as err:
        message = text("database.unusable", lang, url=url, error=err)
        raise Exit(status=os.EX_UNAVAILABLE, message=message) from err
    if before != after:
        log.info("database_migrated", engine=store.db.engine, version_from=before, version=after)
    return store


def site_registry(config: Config, lang: Lang) -> dict[str, SiteInfo]:
    """The sites file's names. Raise Exit if it cannot be used."""
    try:
        return load_registry(config.sites_file)
    except RegistryError as err:
        raise Exit(status=os.EX_CONFIG, message=text("sites.unusable", lang, error=err)) from err


def start_alerts(
    config: Config, clock: Clock, lang: Lang, stop: threading.Event
) -> threading.Thread:
    """The alert passes, in a thread with a database connection of its own."""
    try:
        db = open_database(config.database.url)
    except StoreError as err:
        message = text("database.unusable", lang, url=config.database.url, error=err)
        raise Exit(status=os.EX_UNAVAILABLE, message=message) from err
    url = config.alerts.webhook_url
    alerts = Alerts(
        db,
        clock=clock,
        offline_after_s=config.alerts.offline_after_s,
        send=webhook(url) if url else None,
        registry=site_registry(config, lang),
        lang=lang,
    )

    def work() -> None:
        try:
            alerts.run(stop, config.alerts.interval_s)
        finally:
            alerts.close()

    thread = threading.Thread(target=work, name="alerts", daemon=True)
    thread.start()
    return thread


def start_http(config: Config, lang: Lang, clock: Clock) -> HttpServer | None:
    """The HTTP side on `http.listen` with a database connection of its own; None when off."""
    if config.http.listen == "off":
        return None
    url = config.database.url
    try:
        reader = Reader(open_database(url))
    except StoreError as err:
        message = text("database.unusable", lang, url=url, error=err)
        raise Exit(status=os.EX_UNAVAILABLE, message=message) from err
    try:
        settings = DashboardSettings(
            registry=site_registry(config, lang),
            offline_after_s=config.alerts.offline_after_s,
            clock=clock,
        )
        server = HttpServer(create_app(reader, settings), config.http.listen)
    except (OSError, ValueError) as err:
        reader.close()
        message = text("http.unusable", lang, listen=config.http.listen, error=err)
        raise Exit(status=os.EX_UNAVAILABLE, message=message) from err
    server.start()
    return server


def start_confirmer(
    config: Config, clock: Clock, lang: Lang, stop: threading.Event, subscriber: Subscriber
) -> tuple[Confirmer, threading.Thread]:
    """The confirmer, in a thread with a database connection of its own, publishing through the
    subscriber's connection."""
    try:
        db = open_database(config.database.url)
    except StoreError as err:
        message = text("database.unusable", lang, url=config.database.url, error=err)
        raise Exit(status=os.EX_UNAVAILABLE, message=message) from err
    confirmer = Confirmer(
        db,
        clock=clock,
        publish=subscriber.publish_ack,
        interval_s=config.confirm.interval_s,
        give_up_s=config.confirm.give_up_s,
    )

    def work() -> None:
        try:
            confirmer.run(stop, config.confirm.check_s)
        finally:
            db.close()

    thread = threading.Thread(target=work, name="confirm", daemon=True)
    return confirmer, thread


def run(config: Config, clock: Clock, stop: threading.Event, lang: Lang) -> None:
    """Subscribe, store and acknowledge until `stop` is set. Raise Exit on what a person must fix."""
    store = open_store(config, clock, lang)
    http = start_http(config, lang, clock)
    alerts = start_alerts(config, clock, lang, stop)
    # The ingest loop tells the confirmer what it stored; the confirmer publishes through the
    # subscriber, which delivers to the ingest loop: built in this order, tied by `noted`.
    confirmer: Confirmer | None = None

    def noted(pairs: Iterable[tuple[str, str]]) -> None:
        if confirmer is not None:
            confirmer.note(pairs)

    ingest = Ingest(
        store=store,
        topic_prefix=config.broker.topic_prefix,
        clock=clock,
        retention_days=config.retention_days,
        stored=noted if config.confirm.enabled else None,
    )
    subscriber = Subscriber(
        config.broker,
        password=read_password(config.broker),
        deliver=ingest.deliver,
        clock=clock,
    )
    confirm_thread: threading.Thread | None = None
    if config.confirm.enabled:
        confirmer, confirm_thread = start_confirmer(config, clock, lang, stop, subscriber)
        confirm_thread.start()
    subscriber.start()
    log.info(
        "collector_started",
        broker=config.broker.url,
        client_id=config.broker.client_id,
        database=store.db.engine,
    )
    try:
        ingest.run(subscriber, stop)
    finally:
        subscriber.stop()
        stop.set()
        alerts.join(timeout=10)
        if confirm_thread is not None:
            confirm_thread.join(timeout=10)
        if http is not None:
            http.stop()
        store.close()
        totals = ingest.totals
        log.info(
            "collector_stopped",
            messages=totals.messages,
            inserted=totals.inserted,
            duplicates=totals.duplicates,
            rejected=totals.rejected,
            stale_acks=totals.stale_acks,
        )


def serve(config: Config, clock: Clock, stop: threading.Event, lang: Lang) -> None:
    """The HTTP side alone, from the database, until `stop` is set."""
    open_store(config, clock, lang).close()
    http = start_http(config, lang, clock)
    if http is None:
        return
    stop.wait()
    http.stop()
