"""The agent's configuration: one schema (these dataclasses) drives validation, the sample and the docs.

Reading a file into these is `agent.config.load`'s job."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from agent.config.convert import TEXT_MAX_BYTES, Check, meta, shown, text_problem
from agent.config.messages import Said

_SITE_ID = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
_TOPIC_BAD = re.compile(r"[#+\x00]")
# The longest topic is {prefix}/{site_id}/telemetry; a site id has at most 64 characters.
_TOPIC_TAIL_BYTES = 1 + 64 + 1 + len("telemetry")
# `buffer import` connects as {client_id}-import.
_CLIENT_ID_TAIL_BYTES = len("-import")


def _positive(value: float) -> str | None:
    return None if value > 0 else Said("number.positive", value=value)


def _at_least(low: float) -> Check:
    def check(value: float) -> str | None:
        return None if value >= low else Said("number.at_least", low=low, value=value)

    return check


def _between(low: float, high: float) -> Check:
    def check(value: float) -> str | None:
        return (
            None
            if low <= value <= high
            else Said("number.between", low=low, high=high, value=value)
        )

    return check


def site_id_problem(value: str) -> str | None:
    """What keeps `value` from being a site id (a topic level of its own), or None. The config and
    `buffer import` check with it."""
    if _SITE_ID.fullmatch(value):
        return None
    return Said("site_id.invalid", value=shown(value))


def _client_id(value: str) -> str | None:
    if len(value.encode("utf-8")) + _CLIENT_ID_TAIL_BYTES > TEXT_MAX_BYTES:
        return Said("client_id.long", max=TEXT_MAX_BYTES - _CLIENT_ID_TAIL_BYTES)
    return None


def broker_url_problem(value: str) -> str | None:
    """What is wrong with a broker URL, or None. The agent and the collector both check with it."""
    try:
        parts = urlsplit(value)
    except ValueError:  # "Invalid IPv6 URL": an unclosed '['
        return Said("url.not_url", value=shown(value))
    if parts.scheme not in ("mqtt", "mqtts"):
        return Said("url.scheme", value=repr(value))
    if not parts.hostname:
        return Said("url.no_host", value=repr(value))
    try:
        _ = parts.port
    except ValueError:
        return Said("url.port", value=repr(value))
    if parts.username or parts.password:
        return Said("url.credentials")
    return None


def _payload_schema(value: int) -> str | None:
    if value in (1, 2):
        return None
    return Said("schema.payload", value=value)


def topic_prefix_problem(value: str) -> str | None:
    """What keeps a topic prefix from carrying the contract's topics, or None (agent and collector)."""
    problem = text_problem(value, TEXT_MAX_BYTES - _TOPIC_TAIL_BYTES)
    if problem is not None:
        return problem
    if _TOPIC_BAD.search(value) or "" in value.split("/"):
        return Said("topic.levels", value=shown(value))
    if any(level.startswith("$") for level in value.split("/")):
        # Brokers keep `$...` topics for themselves ($SYS, $share): a publish there is dropped.
        return Said("topic.dollar", value=shown(value))
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerConfig:
    url: str = field(
        metadata=meta("mqtt://host[:port] or mqtts://host[:port] (TLS)", broker_url_problem)
    )
    topic_prefix: str = field(
        metadata=meta("topics are {prefix}/{site_id}/...", topic_prefix_problem)
    )
    protocol: Literal["auto", "5", "3.1.1"] = field(
        default="auto",
        metadata=meta(
            "MQTT version; auto: 5, and 3.1.1 for a broker that refuses 5 (remembered, 5 retried daily)"
        ),
    )
    client_id: str | None = field(
        default=None, metadata=meta("default: village-agent-{site_id}", _client_id)
    )
    username: str | None = field(default=None, metadata=meta("user name at the broker"))
    password_file: Path | None = field(
        default=None, metadata=meta("file holding the password (mode 0600 or 0640)")
    )
    ca_file: Path | None = field(
        default=None, metadata=meta("CA bundle for mqtts://; default: the system's CAs")
    )
    cert_file: Path | None = field(default=None, metadata=meta("client certificate (PEM)"))
    key_file: Path | None = field(
        default=None, metadata=meta("client key (PEM, not readable by all, not encrypted)")
    )
    allow_plaintext: bool = field(
        default=False,
        metadata=meta("true accepts sending the password over mqtt:// in clear text (test labs)"),
    )
    keepalive_s: int = field(default=60, metadata=meta("MQTT keepalive", _between(5, 65_535)))
    compression: bool = field(default=True, metadata=meta("zlib-compress telemetry payloads"))
    payload_schema: int = field(
        default=2,
        metadata=meta(
            "telemetry layout: 2 (compact), or 1 for collectors that read only 1", _payload_schema
        ),
    )
    batch_max_readings: int = field(default=500, metadata=meta("readings per message", _positive))
    inflight_max: int = field(default=4, metadata=meta("messages awaiting PUBACK", _positive))
    reconnect_min_s: float = field(
        default=2.0, metadata=meta("first reconnect delay", _between(0.01, 86_400))
    )
    reconnect_max_s: float = field(
        default=300.0, metadata=meta("longest reconnect delay", _between(0.01, 86_400))
    )
    connect_timeout_s: float = field(
        default=15.0, metadata=meta("TCP+TLS+CONNECT limit", _between(0.1, 3_600))
    )
    ack_timeout_s: float | None = field(
        default=None,
        metadata=meta(
            "a message without PUBACK this long drops the connection and is sent again; "
            "default: 3 x keepalive_s",
            _between(0.1, 86_400),
        ),
    )
    rejected_retry_s: float = field(
        default=60.0,
        metadata=meta("after the broker refuses a message (MQTT 5), wait this long", _positive),
    )
    splay_s: float = field(
        default=10.0,
        metadata=meta(
            "first connect waits a per-site share of this, so sites do not stampede",
            _between(0, 3_600),
        ),
    )

    @property
    def ack_timeout(self) -> float:
        """Seconds a published message may wait for its PUBACK before the connection is dropped."""
        return self.ack_timeout_s if self.ack_timeout_s is not None else 3.0 * self.keepalive_s

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
class LatencyConfig:
    targets: tuple[str, ...] = field(
        default=("gateway", "1.1.1.1"),
        metadata=meta("addresses or names to measure round trips to; gateway: the first hop"),
    )
    count: int = field(default=10, metadata=meta("probes per target per round", _positive))
    loss_window: int = field(
        default=100,
        metadata=meta("loss_window_percent covers this many last probes; >= count", _positive),
    )
    interval_s: float = field(default=0.2, metadata=meta("gap between probes", _positive))
    timeout_s: float = field(
        default=2.0, metadata=meta("a reply later than this is lost", _positive)
    )
    method: Literal["auto", "icmp", "tcp"] = field(
        default="auto", metadata=meta("auto: ICMP when permitted, else TCP connect time")
    )
    tcp_port: int = field(
        default=443, metadata=meta("port for the TCP connect-time method", _between(1, 65_535))
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ThroughputConfig:
    interfaces: tuple[str, ...] = field(
        default=(), metadata=meta("interfaces to count; empty: all but loopback")
    )


def _http_url(value: str) -> str | None:
    try:
        parts = urlsplit(value)
    except ValueError:
        parts = urlsplit("")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return Said("url.http", value=repr(value))
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class DnsConfig:
    names: tuple[str, ...] = field(
        default=(), metadata=meta("names to resolve each round; empty: the broker's host name")
    )
    server: str | None = field(
        default=None, metadata=meta("resolver address; default: first nameserver in resolv.conf")
    )
    port: int = field(default=53, metadata=meta("resolver UDP port", _between(1, 65_535)))
    timeout_s: float = field(
        default=2.0, metadata=meta("an answer later than this counts as failed", _positive)
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class LanConfig:
    interface: str | None = field(
        default=None, metadata=meta("the hotspot's LAN interface; unset: no clients.* readings")
    )
    leases_file: Path | None = field(
        default=None, metadata=meta("dnsmasq leases file, counted with the neighbour table")
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class SpeedtestConfig:
    enabled: bool = field(default=False, metadata=meta("run scheduled active speed tests"))
    url_download: str | None = field(
        default=None, metadata=meta("HTTP(S) URL of a large file; must honour Range", _http_url)
    )
    url_upload: str | None = field(
        default=None, metadata=meta("HTTP(S) URL that accepts a POST and discards it", _http_url)
    )
    max_seconds: float = field(
        default=10.0, metadata=meta("time limit per direction", _at_least(1.0))
    )
    max_mb: float = field(default=10.0, metadata=meta("byte limit per direction, MB", _positive))
    budget_mb_per_day: float = field(
        default=50.0,
        metadata=meta("speed tests never use more than this per UTC day, MB", _at_least(0)),
    )
    budget_mb_per_month: float = field(
        default=500.0, metadata=meta("... nor more than this per UTC month, MB", _at_least(0))
    )
    runs_per_day: int = field(
        default=2, metadata=meta("at most this many scheduled tests a day", _positive)
    )
    busy_threshold_bps: float = field(
        default=2_000_000.0, metadata=meta("LAN rx+tx above this defers a test", _positive)
    )
    retry_after_s: float = field(
        default=900.0, metadata=meta("a deferred test is tried again after this", _positive)
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class BufferConfig:
    max_readings: int = field(
        default=1_000_000,
        metadata=meta("oldest readings are dropped (and counted) beyond this", _positive),
    )
    min_free_mb: float = field(
        default=20.0,
        metadata=meta("stop writing before the disk has less free than this", _at_least(0)),
    )
    unconfirmed_max_readings: int = field(
        default=20_000,
        metadata=meta(
            "readings the broker acknowledged, kept until the collector confirms them; the "
            "oldest beyond this are released (and counted)",
            _positive,
        ),
    )
    unconfirmed_max_days: float = field(
        default=7.0,
        metadata=meta("delivered readings still unconfirmed after this are released", _positive),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ClockConfig:
    trust_wall_clock: bool = field(
        default=False, metadata=meta("true only when the gateway has a battery-backed RTC")
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class LogConfig:
    level: Literal["debug", "info", "warning", "error"] = field(
        default="info", metadata=meta("least important log level shown")
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferConfig:
    key_file: Path = field(
        default=Path("transfer.key"),
        metadata=meta(
            "the site's secret that signs `buffer export` files and checks them at import "
            "(relative: next to this file); never copied into an export"
        ),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    site_id: str = field(
        metadata=meta("the site's id: lower-case letters, digits, dashes", site_id_problem)
    )
    state_dir: Path = field(metadata=meta("the buffer and the run marker live here"))
    status_dir: Path | None = field(
        default=None,
        metadata=meta(
            "the status file, rewritten every round, lives here: a tmpfs such as "
            "/run/village-agent spares the SD card (default: state_dir)"
        ),
    )
    interval_s: float = field(
        metadata=meta("base measurement interval, seconds", _between(0.1, 86_400))
    )
    broker: BrokerConfig = field(metadata=meta("the provincial collector"))
    latency: LatencyConfig = field(default_factory=LatencyConfig, metadata=meta("round trips"))
    throughput: ThroughputConfig = field(
        default_factory=ThroughputConfig, metadata=meta("interface counters")
    )
    dns: DnsConfig = field(default_factory=DnsConfig, metadata=meta("name resolution time"))
    lan: LanConfig = field(default_factory=LanConfig, metadata=meta("the hotspot's LAN side"))
    speedtest: SpeedtestConfig = field(
        default_factory=SpeedtestConfig, metadata=meta("active throughput tests")
    )
    buffer: BufferConfig = field(default_factory=BufferConfig, metadata=meta("the durable buffer"))
    clock: ClockConfig = field(default_factory=ClockConfig, metadata=meta("wall clock trust"))
    log: LogConfig = field(default_factory=LogConfig, metadata=meta("logging"))
    transfer: TransferConfig = field(
        default_factory=TransferConfig, metadata=meta("export files carried on a USB stick")
    )

    @property
    def client_id(self) -> str:
        return self.broker.client_id or f"village-agent-{self.site_id}"
