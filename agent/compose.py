"""The composition root: the one place that chooses real parts for the daemon.

The simulator builds the same `Agent` from the same pieces, swapping only what stands for hardware and
the network (clock, counter sources, pinger).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

import structlog

from agent import __version__
from agent.budget import LEDGER_FILE, DataBudget
from agent.buffer import (
    Buffer,
    CorruptBuffer,
    FreeBytes,
    disk_free_bytes,
    last_seq_of,
    quarantine,
)
from agent.clock import Clock
from agent.config import Config, config_digest
from agent.daemon import Agent, EventSource
from agent.mqtt_link import MqttLink, Will, splay_fraction
from agent.payload import encode_status
from agent.probes.base import Probe
from agent.probes.clients import ClientsProbe
from agent.probes.dns import DnsProbe
from agent.probes.latency import LatencyProbe
from agent.probes.speedtest import MB, SpeedtestProbe
from agent.probes.system import SystemProbe
from agent.probes.throughput import ThroughputProbe
from agent.probes.uptime import UptimeProbe
from agent.reading import Sample
from agent.shipper import Link, Shipper
from agent.speedtest import HttpTransport
from agent.status import STATUS_FILE, read_json
from agent.stopping import Stopping

log = structlog.get_logger("agent")

BUFFER_FILE = "buffer.sqlite"

# The stop request goes to the probes that may block for long (the speed test).
ProbeFactory = Callable[[Config, Clock, Stopping | None], Probe]


def dns_probe(config: Config) -> DnsProbe:
    """Resolve the configured names, or by default the broker's host: the name a site must resolve."""
    names = config.dns.names
    if not names:
        host = config.broker.host
        try:
            ipaddress.ip_address(host)
        except ValueError:
            names = (host,)
    dns = config.dns
    return DnsProbe(names, server=dns.server, port=dns.port, timeout_s=dns.timeout_s)


def speedtest_probe(
    config: Config, clock: Clock, stopping: Stopping | None = None
) -> SpeedtestProbe:
    test = config.speedtest
    budget = DataBudget(
        config.state_dir / LEDGER_FILE,
        per_day_bytes=int(test.budget_mb_per_day * MB),
        per_month_bytes=int(test.budget_mb_per_month * MB),
    )
    return SpeedtestProbe(
        test,
        site_id=config.site_id,
        clock=clock,
        budget=budget,
        lan_interface=config.lan.interface,
        transport=HttpTransport(stopping=stopping),
    )


# One name per probe everywhere: registry key, config key, metric prefix.
PROBES: Mapping[str, ProbeFactory] = {
    "throughput": lambda c, clock, _: ThroughputProbe(clock, interfaces=c.throughput.interfaces),
    "latency": lambda c, clock, _: LatencyProbe(c.latency),
    "uptime": lambda c, clock, _: UptimeProbe(clock),
    "system": lambda c, clock, _: SystemProbe(disk_path=c.state_dir),
    "dns": lambda c, clock, _: dns_probe(c),
    "clients": lambda c, clock, _: ClientsProbe(
        c.lan.interface, wall=clock.wall, leases_file=c.lan.leases_file
    ),
    # The only probe that may run for many seconds: it stops early when the agent is stopping.
    "speedtest": speedtest_probe,
}


def build_probes(config: Config, clock: Clock, stopping: Stopping | None = None) -> list[Probe]:
    return [factory(config, clock, stopping) for factory in PROBES.values()]


def open_buffer(
    config: Config, *, now: float, free_bytes: FreeBytes = disk_free_bytes
) -> tuple[Buffer, list[Sample]]:
    """Open the site's buffer. A damaged file is moved aside (kept for a technician) and a fresh one
    started, with an event reading so the office learns of it; the agent never crash-loops on it."""
    path = buffer_path(config.state_dir)

    def opened() -> Buffer:
        return Buffer.open(
            path,
            site=config.site_id,
            max_readings=config.buffer.max_readings,
            min_free_bytes=int(config.buffer.min_free_mb * 1024 * 1024),
            free_bytes=free_bytes,
        )

    try:
        return opened(), []
    except CorruptBuffer as err:
        moved = quarantine(path, now)
        # seq must never be reused, or the collector's (site, seq) dedupe would drop new readings
        # as repeats: continue after the highest seq the damaged file or the status file knew.
        seed = max(last_seq_of(moved), last_seq_in_status(status_path(config)))
        log.error(
            "buffer_corrupt_quarantined", error=str(err), moved_to=str(moved), seq_continues=seed
        )
        buffer = opened()
        buffer.continue_seq_after(seed)
        event = Sample(
            metric="event.buffer_quarantined",
            value=1.0,
            tags={"file": moved.name, "last_seq": str(seed)},
        )
        return buffer, [event]


def last_seq_in_status(status_file: Path) -> int:
    data = read_json(status_file) or {}
    value = data.get("last_seq")
    return value if isinstance(value, int) else 0


def status_path(config: Config) -> Path:
    """Where the daemon keeps its status snapshot and `status`/`diag` read it."""
    return (config.status_dir or config.state_dir) / STATUS_FILE


def buffer_path(state_dir: Path) -> Path:
    return state_dir / BUFFER_FILE


def telemetry_topic(config: Config) -> str:
    return f"{config.broker.topic_prefix}/{config.site_id}/telemetry"


def event_topic(config: Config) -> str:
    return f"{config.broker.topic_prefix}/{config.site_id}/event"


def status_topic(config: Config) -> str:
    return f"{config.broker.topic_prefix}/{config.site_id}/status"


def build_link(config: Config) -> MqttLink:
    """The MQTT connection with its birth and last-will status messages."""
    digest = config_digest(config)

    def status(state: str) -> bytes:
        return encode_status(state, site=config.site_id, version=__version__, config_digest=digest)

    return MqttLink(
        config.broker,
        client_id=config.client_id,
        will=Will(topic=status_topic(config), online=status("online"), offline=status("offline")),
        splay_s=splay_fraction(config.site_id) * config.broker.splay_s,
    )


class AgentLink(Link, EventSource, Protocol):
    """What the agent needs of its broker connection: an `MqttLink`, or the simulator's stand-in
    that cuts it when the simulated network is down."""


def build_agent(
    config: Config,
    *,
    clock: Clock,
    boot_id: str,
    link: AgentLink,
    probes: list[Probe],
    buffer: Buffer,
    start_samples: list[Sample],
) -> Agent:
    """Assemble one site's agent from its parts; `run` and the simulator both come through here."""
    shipper = Shipper(
        buffer,
        link,
        site=config.site_id,
        topic=telemetry_topic(config),
        batch_max=config.broker.batch_max_readings,
        window=config.broker.inflight_max,
        compress=config.broker.compression,
        payload_schema=config.broker.payload_schema,
        event_topic=event_topic(config),
        retry_rejected_s=config.broker.rejected_retry_s,
    )
    return Agent(
        site=config.site_id,
        clock=clock,
        boot_id=boot_id,
        probes=probes,
        buffer=buffer,
        shipper=shipper,
        events=link,
        status_file=status_path(config),
        trust_wall_clock=config.clock.trust_wall_clock,
        start_samples=start_samples,
        config_digest=config_digest(config),
    )
