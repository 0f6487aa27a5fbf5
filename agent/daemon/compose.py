"""The composition root: the one place that chooses the parts of an agent.

`village-agent run` and `once` pass `Sources.real(...)`; the simulator passes fakes for what stands
for hardware and the network (clock, counters, ping, DNS, uptime, disk, LAN neighbours). Both then
build every probe in `PROBES` and start the agent through `start_agent`, so a probe added to
`PROBES` runs in the daemon, in `once`, in the simulator and in the fleet alike, and the start-up
sequence exists once.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from agent import __version__
from agent.buffer.damage import Settings, Witness, open_checked, stand_in
from agent.buffer.errors import BufferError, Unwritable
from agent.buffer.store import Buffer, FreeBytes, disk_free_bytes
from agent.clock import Clock
from agent.config.load import config_digest
from agent.config.schema import Config
from agent.contract.control import encode_status
from agent.contract.telemetry import encode_telemetry
from agent.contract.topics import topic
from agent.daemon.rounds import Agent, AgentLink, Reopen
from agent.daemon.state import (
    StartKind,
    StatusRecord,
    classify_start,
    mark_running,
    read_marker,
    take_held_lost,
)
from agent.daemon.stopping import Stopping
from agent.files import LEDGER_FILE, buffer_path, status_path
from agent.history.journal import History
from agent.probes.base import Probe
from agent.probes.clients import ClientsProbe, Neighbours, system_neighbours
from agent.probes.dns import DnsProbe, Query, ResolverSource, query, resolv_conf_server
from agent.probes.latency import LatencyProbe, PingRound, real_ping
from agent.probes.route import default_gateway
from agent.probes.speedtest.budget import DataBudget
from agent.probes.speedtest.probe import MB, SpeedtestProbe
from agent.probes.speedtest.transport import HttpTransport, Transport
from agent.probes.system import DiskUsage, SystemProbe, Vcgencmd, disk_usage, run_vcgencmd
from agent.probes.throughput import CounterSource, ThroughputProbe, psutil_counters
from agent.probes.uptime import UptimeProbe, proc_uptime
from agent.publish.link import MqttLink, Will, splay_fraction
from agent.publish.outbox import Outbox
from agent.publish.protocol import ProtocolMemory
from agent.reading import Reading, Sample

log = structlog.get_logger("agent")


@dataclass(frozen=True, slots=True, kw_only=True)
class Sources:
    """What stands for the gateway's hardware and the village network. The defaults are the real
    ones; the simulator replaces them, never the probes' own logic."""

    clock: Clock
    counters: CounterSource = psutil_counters
    pinger: PingRound = real_ping
    first_hop: Callable[[], str | None] = default_gateway
    system_uptime: Callable[[], float] = proc_uptime
    proc: Path = Path("/proc")
    sys: Path = Path("/sys")
    disk: DiskUsage = disk_usage
    vcgencmd: Vcgencmd = run_vcgencmd
    neighbours: Neighbours = system_neighbours
    dns_query: Query = query
    resolver: ResolverSource = resolv_conf_server
    speedtest: Transport | None = None  # None: HTTP(S) for real, cut short by `stopping`
    free_bytes: FreeBytes = disk_free_bytes
    # The stop request goes to the probes that may block for long (the speed test).
    stopping: Stopping | None = None


ProbeFactory = Callable[[Config, Sources], Probe]


def dns_probe(config: Config, sources: Sources) -> DnsProbe:
    """Resolve the configured names, or by default the broker's host: the name a site must resolve."""
    names = config.dns.names
    if not names:
        host = config.broker.host
        try:
            ipaddress.ip_address(host)
        except ValueError:
            names = (host,)
    dns = config.dns
    return DnsProbe(
        names,
        server=dns.server,
        port=dns.port,
        timeout_s=dns.timeout_s,
        system_resolver=sources.resolver,
        ask=sources.dns_query,
    )


def speedtest_probe(config: Config, sources: Sources) -> SpeedtestProbe:
    test = config.speedtest
    budget = DataBudget(
        config.state_dir / LEDGER_FILE,
        per_day_bytes=int(test.budget_mb_per_day * MB),
        per_month_bytes=int(test.budget_mb_per_month * MB),
    )
    return SpeedtestProbe(
        test,
        site_id=config.site_id,
        clock=sources.clock,
        budget=budget,
        lan_interface=config.lan.interface,
        counters=sources.counters,
        transport=sources.speedtest or HttpTransport(stopping=sources.stopping),
    )


# One name per probe everywhere: registry key, config key, metric prefix.
PROBES: Mapping[str, ProbeFactory] = {
    "throughput": lambda c, src: ThroughputProbe(
        src.clock, interfaces=c.throughput.interfaces, source=src.counters
    ),
    "latency": lambda c, src: LatencyProbe(c.latency, pinger=src.pinger, first_hop=src.first_hop),
    "uptime": lambda c, src: UptimeProbe(src.clock, system_uptime=src.system_uptime),
    "system": lambda c, src: SystemProbe(
        disk_path=c.state_dir, proc=src.proc, sys=src.sys, disk=src.disk, vcgencmd=src.vcgencmd
    ),
    "dns": dns_probe,
    "clients": lambda c, src: ClientsProbe(
        c.lan.interface,
        wall=src.clock.wall,
        leases_file=c.lan.leases_file,
        neighbours=src.neighbours,
    ),
    # The only probe that may run for many seconds: it stops early when the agent is stopping.
    "speedtest": speedtest_probe,
}


def build_probes(
    config: Config, sources: Sources, registry: Mapping[str, ProbeFactory] = PROBES
) -> list[Probe]:
    return [factory(config, sources) for factory in registry.values()]


def open_buffer(
    config: Config,
    *,
    now: float,
    free_bytes: FreeBytes = disk_free_bytes,
    ran_before: bool = False,
    wall: Callable[[], float] = time.time,
) -> tuple[Buffer, list[Sample]]:
    """Open the site's buffer. A damaged file is moved aside (kept for a technician), what it
    still holds salvaged into a fresh one, and an event reading counts what was recovered and
    lost; the agent never crash-loops on it. Raise Unwritable when the disk refuses the writes
    this needs: the caller holds rounds in memory and calls again later."""
    path = buffer_path(config.state_dir)
    # seq must never be reused within an epoch: the status file witnesses the last seq given,
    # from outside the buffer's files.
    status = StatusRecord.read(status_path(config.state_dir, config.status_dir))
    mine = status is not None and status.site == config.site_id
    witness = Witness(
        last_seq=status.last_seq if status and mine else 0,
        backlog=status.backlog if status and mine else None,
        ran_before=ran_before,
    )
    settings = Settings(
        site=config.site_id,
        max_readings=config.buffer.max_readings,
        min_free_bytes=int(config.buffer.min_free_mb * 1024 * 1024),
        free_bytes=free_bytes,
        unconfirmed_max_readings=config.buffer.unconfirmed_max_readings,
        unconfirmed_max_days=config.buffer.unconfirmed_max_days,
        wall=wall,
    )
    buffer, moved = open_checked(path, settings, witness=witness, now=now)
    if moved is None:
        return buffer, []
    log.error(
        "buffer_corrupt_quarantined",
        error=moved.reason,
        moved_to=str(moved.moved_to),
        recovered=moved.recovered,
        lost=moved.lost,
        seq_continues=moved.last_seq,
    )
    event = Sample(
        metric="event.buffer_quarantined",
        value=float(moved.lost),
        tags={
            "file": moved.moved_to.name if moved.moved_to else "",
            "last_seq": str(moved.last_seq),
            "recovered": str(moved.recovered),
            "lost": str(moved.lost),
        },
    )
    return buffer, [event]


def build_link(config: Config, *, wall: Callable[[], float] = time.time) -> MqttLink:
    """The MQTT connection with its birth and last-will status messages, remembering in the state
    directory which MQTT version the broker takes (`wall` dates that memory)."""
    digest = config_digest(config)

    def status(state: str) -> bytes:
        return encode_status(state, site=config.site_id, version=__version__, config_digest=digest)

    prefix = config.broker.topic_prefix
    return MqttLink(
        config.broker,
        client_id=config.client_id,
        will=Will(
            topic=topic(prefix, config.site_id, "status"),
            online=status("online"),
            offline=status("offline"),
        ),
        splay_s=splay_fraction(config.site_id) * config.broker.splay_s,
        memory=ProtocolMemory(config.state_dir, wall=wall),
        ack_topic=topic(prefix, config.site_id, "ack"),
    )


def build_agent(
    config: Config,
    *,
    clock: Clock,
    boot_id: str,
    link: AgentLink,
    probes: list[Probe],
    buffer: Buffer,
    start_samples: list[Sample],
    reopen: Reopen | None = None,
    opened: bool = True,
    lost_unrecorded: int = 0,
    history: History | None = None,
) -> Agent:
    """Assemble one site's agent from its parts."""
    broker = config.broker

    def encode(readings: Sequence[Reading], epoch: str) -> bytes:
        return encode_telemetry(
            config.site_id,
            readings,
            epoch=epoch,
            compress=broker.compression,
            schema=broker.payload_schema,
        )

    prefix = broker.topic_prefix
    outbox = Outbox(
        buffer,
        link,
        topic=topic(prefix, config.site_id, "telemetry"),
        encode=encode,
        broker=broker,
    )
    return Agent(
        config,
        clock=clock,
        boot_id=boot_id,
        probes=probes,
        outbox=outbox,
        link=link,
        start_samples=start_samples,
        reopen=reopen,
        opened=opened,
        lost_unrecorded=lost_unrecorded,
        history=history,
    )


def start_agent(
    config: Config,
    sources: Sources,
    *,
    boot_id: str,
    link: AgentLink,
    registry: Mapping[str, ProbeFactory] = PROBES,
) -> tuple[Agent, StartKind]:
    """The start-up sequence `run` and the simulator share: judge the last stop from the run
    marker, mark this run as not yet cleanly stopped, open the buffer (quarantining a damaged
    one) and build the agent with every probe in `registry`, its first round carrying an
    `event.agent_start` reading with the reason. A full or read-only disk does not stop it: the
    agent starts with the rounds held in memory and opens the buffer once the disk takes writes.
    Raise BufferError when the buffer cannot be used for another reason."""
    marker = read_marker(config.state_dir)
    try:
        mark_running(config.state_dir, boot_id, clean=False)
    except OSError as err:
        # A full or read-only card: measure on in the same degraded mode as when it happens while
        # running, rather than exit and be restarted into the same wall.
        log.warning("run_marker_not_saved", error=err.strerror)
    start = classify_start(marker, boot_id)

    def reopen() -> tuple[Buffer, list[Sample]]:
        return open_buffer(
            config,
            now=sources.clock.wall(),
            free_bytes=sources.free_bytes,
            ran_before=marker is not None,
            wall=sources.clock.wall,
        )

    status = StatusRecord.read(status_path(config.state_dir, config.status_dir))
    late: Reopen | None = None
    try:
        buffer, start_samples = reopen()
    except Unwritable as err:
        log.error("buffer_not_opened", error=str(err), message="readings wait in memory")
        mine = status is not None and status.site == config.site_id
        last_seq, epoch = (status.last_seq, status.epoch) if status and mine else (0, "")
        standing = stand_in(config.site_id, last_seq=last_seq, epoch=epoch)
        buffer, start_samples, late = standing, [], reopen
    held = take_held_lost(config.state_dir, status)
    if held:
        # A loss is never silent: the readings the last run held in memory and could not write.
        log.warning("held_readings_lost", readings=held)
        start_samples.append(Sample(metric="event.buffer_held_lost", value=float(held)))
        if late is None:
            try:
                buffer.add_dropped(held)
                held = 0
            except BufferError as err:
                log.warning("buffer_drop_count_not_saved", error=str(err))
    start_samples.append(
        Sample(metric="event.agent_start", value=1.0, tags={"reason": start.reason})
    )
    agent = build_agent(
        config,
        clock=sources.clock,
        boot_id=boot_id,
        link=link,
        probes=build_probes(config, sources, registry),
        buffer=buffer,
        start_samples=start_samples,
        reopen=reopen,
        opened=late is None,
        lost_unrecorded=held,
        history=History(config.state_dir, lan_interface=config.lan.interface),
    )
    return agent, start
