"""The collector's configuration: these dataclasses are the schema, the sample and the docs' list.

Each field's metadata holds its one-line doc and an optional check; `config/collector.yaml` shows every
key, and a test keeps it in step with this module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from agent.config.messages import Said
from agent.config.schema import broker_url_problem, topic_prefix_problem
from collector.config.strict import meta

DEFAULT_DATABASE = "sqlite:///var/lib/village-collector/collector.sqlite"
DEFAULT_LISTEN = "127.0.0.1:8080"

_GROUP = re.compile(r"^[A-Za-z0-9_.-]+$")


def _group(value: str) -> str | None:
    if _GROUP.match(value):
        return None
    return Said("group.invalid", value=repr(value))


def _database_url(value: str) -> str | None:
    scheme = urlsplit(value).scheme
    if scheme == "sqlite":
        return None if urlsplit(value).path else Said("database.no_file", value=repr(value))
    if scheme in ("postgresql", "postgres"):
        return None
    return Said("database.scheme", value=repr(value))


def _listen(value: str) -> str | None:
    if value == "off":
        return None
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        return Said("listen.invalid", value=repr(value))
    return None


def _positive(value: float) -> str | None:
    return None if value > 0 else Said("number.positive", value=value)


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerConfig:
    url: str = field(
        metadata=meta("mqtt://host[:port] or mqtts://host[:port] (TLS)", broker_url_problem)
    )
    topic_prefix: str = field(
        metadata=meta(
            "the agents' broker.topic_prefix: topics are {prefix}/{site}/...", topic_prefix_problem
        )
    )
    client_id: str = field(
        default="village-collector",
        metadata=meta("fixed, so the broker keeps this collector's session; one per collector"),
    )
    username: str | None = field(default=None, metadata=meta("user name at the broker"))
    password_file: Path | None = field(
        default=None, metadata=meta("file holding the password (mode 0600 or 0640)")
    )
    ca_file: Path | None = field(
        default=None, metadata=meta("CA bundle for mqtts://; default: the system's CAs")
    )
    shared_group: str | None = field(
        default=None,
        metadata=meta(
            "subscribe as $share/NAME/...: collectors with one NAME split the load", _group
        ),
    )
    protocol: Literal["5", "3.1.1"] = field(
        default="5", metadata=meta("MQTT version; 3.1.1 for brokers without MQTT 5")
    )
    session_expiry_s: int = field(
        default=7 * 86400,
        metadata=meta("the broker queues for this collector this long while it is down", _positive),
    )
    keepalive_s: int = field(default=30, metadata=meta("MQTT keepalive", _positive))

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme == "mqtts"

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or (8883 if self.tls else 1883)


@dataclass(frozen=True, slots=True, kw_only=True)
class DatabaseConfig:
    url: str = field(
        default=DEFAULT_DATABASE,
        metadata=meta("sqlite:///path (embedded) or postgresql://user@host/db", _database_url),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpConfig:
    listen: str = field(
        default=DEFAULT_LISTEN,
        metadata=meta("HOST:PORT for the dashboard and /metrics, or off", _listen),
    )


def _webhook_url(value: str) -> str | None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return Said("url.http", value=repr(value))
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertsConfig:
    offline_after_s: float = field(
        default=900.0,
        metadata=meta("a site without a reading for this long is offline", _positive),
    )
    webhook_url: str | None = field(
        default=None,
        metadata=meta("each alert is POSTed here as JSON; none: the log only", _webhook_url),
    )
    interval_s: float = field(
        default=15.0, metadata=meta("how often `run` evaluates the alerts", _positive)
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfirmConfig:
    enabled: bool = field(
        default=True,
        metadata=meta("publish per site, retained, what is stored ({prefix}/{site}/ack)"),
    )
    check_s: float = field(
        default=15.0,
        metadata=meta("how often the sites that received readings are rechecked", _positive),
    )
    interval_s: float = field(
        default=900.0,
        metadata=meta("a site's ack without a gap is published at most this often", _positive),
    )
    give_up_s: float = field(
        default=2 * 86400.0,
        metadata=meta("a gap missing this long is given up (counted, logged)", _positive),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class LogConfig:
    level: Literal["debug", "info", "warning", "error"] = field(
        default="info", metadata=meta("least important log level shown")
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    broker: BrokerConfig = field(metadata=meta("where the agents publish"))
    database: DatabaseConfig = field(
        default_factory=DatabaseConfig, metadata=meta("where readings are stored")
    )
    http: HttpConfig = field(default_factory=HttpConfig, metadata=meta("the HTTP side"))
    retention_days: float = field(
        default=90.0,
        metadata=meta("raw readings older than this are deleted; hourly rollups stay", _positive),
    )
    log: LogConfig = field(default_factory=LogConfig, metadata=meta("logging"))
    alerts: AlertsConfig = field(
        default_factory=AlertsConfig, metadata=meta("offline, back online, backhaul, under-voltage")
    )
    confirm: ConfirmConfig = field(
        default_factory=ConfirmConfig,
        metadata=meta("the acks that tell each site what the collector stored"),
    )
    sites_file: Path | None = field(
        default=None,
        metadata=meta("YAML list naming the sites (site, village, regency, lat, lon, contact)"),
    )
