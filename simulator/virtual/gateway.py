"""One virtual gateway: the real agent, with fakes for the hardware and the network, in virtual time.

The agent is built and started by the same composition root as `village-agent run` (`start_agent`
with every probe in `PROBES`): the real probes' logic, the real SQLite buffer, the real outbox and
MQTT link, a real broker. Only what `Sources` names is faked: the clock, interface counters, ping,
DNS, uptime, disk space and the LAN's neighbours. A power cut abandons
the agent without a clean stop, as the kernel would: the connection dies, the database is closed with
whatever it had committed, and the next boot starts a new process state with a new boot id.
"""

from __future__ import annotations

import array
import bisect
import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from agent.config.schema import Config
from agent.daemon.compose import PROBES, ProbeFactory, Sources, build_link, start_agent
from agent.daemon.loop import drain_before_exit
from agent.daemon.rounds import Agent
from agent.daemon.state import mark_running
from simulator.fakes.gated_link import GatedLink
from simulator.fakes.measure import FakeTransport
from simulator.fakes.site import (
    FakeCounters,
    FakeDisk,
    FakeNeighbours,
    FakePinger,
    FakeResolver,
    Schedule,
)
from simulator.virtual.clock import Timeline, VirtualClock
from simulator.virtual.scenario import Scenario, agent_config

# The simulated site's modem (TEST-NET-1): `gateway` in latency.targets is this address, answered by
# the fake pinger like any target, instead of the host's own /proc/net/route.
FIRST_HOP = "192.0.2.1"


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayResult:
    """What the gateway itself knows at the end of a run; the collector knows the other half."""

    site: str
    epoch: str  # the buffer's seq series: the seqs below are of this epoch
    last_seq: int  # every seq from 1 to this was committed once
    backlog: int  # committed, still in the buffer
    dropped_by_bound: int  # committed, then dropped unsent to respect buffer.max_readings
    dropped_in_memory: int  # measured but never committed (disk full beyond the memory ring)
    boots: int
    truth: tuple[tuple[int, int, float], ...]  # (first_seq, last_seq, true time) per round
    boot_times: tuple[tuple[str, float], ...]  # (boot id, true time of that boot)

    def true_time(self, seq: int) -> float | None:
        """The true time the round that committed `seq` was measured, when known."""
        index = bisect.bisect_right(self.truth, (seq, float("inf"), 0.0)) - 1
        if index >= 0 and self.truth[index][0] <= seq <= self.truth[index][1]:
            return self.truth[index][2]
        return None


class Gateway:
    """A site's gateway on a shared timeline; `step()` once per measurement interval."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        site_id: str,
        state_dir: Path,
        broker_url: str,
        topic_prefix: str,
        timeline: Timeline,
        seed: int,
        probes: Mapping[str, ProbeFactory] = PROBES,
    ) -> None:
        self.site = site_id
        self._registry = probes
        self.scenario = scenario
        self.config: Config = agent_config(
            scenario,
            site_id=site_id,
            state_dir=state_dir,
            broker_url=broker_url,
            topic_prefix=topic_prefix,
        )
        self.timeline = timeline
        self.clock = VirtualClock(
            timeline,
            hwclock_save_s=scenario.hwclock_save_h * 3600,
            drift_ppm=scenario.clock_drift_ppm,
        )
        self.schedule = Schedule(scenario)
        self._seed = f"{seed}:{site_id}"
        self._rng = random.Random(f"{self._seed}:gateway")
        self._disk = FakeDisk(self.schedule, timeline.now)
        self.agent: Agent | None = None
        self._link: GatedLink | None = None
        self.boots = 0
        self.boot_id = ""
        self.boot_true: dict[str, float] = {}  # boot id -> true time of that boot
        # When each round was committed, as flat arrays: a list of tuples cost 150 B a round,
        # which in a 72 h outage run was the process's only growing memory.
        self._truth_seqs = array.array("q")  # first seq, last seq, first seq, ...
        self._truth_times = array.array("d")
        self._dropped_in_memory = 0
        self._acked_earlier = 0  # telemetry messages the broker acknowledged in earlier boots

    # -- power ----------------------------------------------------------------------------------
    def boot(self, *, sync_after_s: float | None = 0.0) -> None:
        """Power on: a new boot id, the clock from fake-hwclock, the agent started as `run` does."""
        if self.boots:
            self.clock.power_on(sync_after_s=sync_after_s)
        self.boots += 1
        boot_id = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
        self.boot_id = boot_id
        self.boot_true[boot_id] = self.clock.true_time()
        config = self.config
        config.state_dir.mkdir(parents=True, exist_ok=True)
        self._link = GatedLink(lambda: build_link(config))
        self._link.set_reachable(self.schedule.broker_reachable(self.clock.true_time()))
        self.agent, _start = start_agent(
            config,
            self._sources(boot_id),
            boot_id=boot_id,
            link=self._link,
            registry=self._registry,
        )

    def _sources(self, boot_id: str) -> Sources:
        """The fakes for this boot; the probes themselves are the agent's own, from its registry.
        Fresh fakes per boot: the kernel's interface counters start again at zero."""
        now = self.timeline.now

        def rng(part: str) -> random.Random:
            return random.Random(f"{self._seed}:{boot_id}:{part}")

        # No /proc or /sys of a Pi here: the system probe reads an empty tree (those readings are
        # absent, as on a kernel without them) and the fake card for disk space.
        no_files = self.config.state_dir / "no-hardware"
        return Sources(
            clock=self.clock,
            counters=FakeCounters(self.scenario, self.schedule, now, rng("counters")),
            pinger=FakePinger(self.scenario, self.schedule, now, rng("ping")),
            first_hop=lambda: FIRST_HOP,
            system_uptime=self.clock.monotonic,
            proc=no_files,
            sys=no_files,
            disk=self._disk.usage,
            vcgencmd=lambda: None,
            neighbours=FakeNeighbours(self.scenario, now, rng("neighbours")),
            dns_query=FakeResolver(self.scenario, self.schedule, now, rng("dns")),
            resolver=lambda: FIRST_HOP,
            speedtest=FakeTransport(rate_bps=self.scenario.link.resolved().down_mbit * 1e6),
            free_bytes=self._disk,
        )

    @property
    def acked_messages(self) -> int:
        """Telemetry messages the broker acknowledged, over every boot of this run."""
        current = 0 if self.agent is None else self.agent.outbox.stats.messages_acked
        return self._acked_earlier + current

    def power_cut(self) -> None:
        """The power goes: no clean stop, no flush, no offline message; committed rows survive."""
        agent, link = self.agent, self._link
        if agent is None or link is None:
            return
        self._dropped_in_memory += self._memory_losses(agent)
        self._acked_earlier += agent.outbox.stats.messages_acked
        link.abort()
        agent.buffer.close()
        self.agent, self._link = None, None
        self.clock.power_off()

    @staticmethod
    def _memory_losses(agent: Agent) -> int:
        dropped = agent.dropped_total()
        return int(dropped) - agent.buffer.stats().dropped_total

    # -- time -----------------------------------------------------------------------------------
    def step(self) -> None:
        """One measurement interval at the timeline's current time: power, network, one round."""
        now = self.clock.true_time()
        cut = self.schedule.active("power_cut", now)
        if cut is not None and self.agent is not None:
            self.power_cut()
        elif cut is None and self.agent is None:
            ended = self.schedule.last_ended("power_cut", now)
            self.boot(sync_after_s=ended.ntp_sync_after_s if ended else 0.0)
        if self.agent is None or self._link is None:
            return
        self._link.set_reachable(self.schedule.broker_reachable(now))
        step = self.schedule.active("clock_step", now)
        self.clock.wall_step_s = step.step_s if step is not None else 0.0
        result = self.agent.round()
        appended = result.appended
        if (
            appended is not None
            and appended.first_seq is not None
            and appended.last_seq is not None
            and appended.last_seq - appended.first_seq + 1 == result.samples
        ):
            # Only a round committed on its own is dated here; rounds that waited in memory for disk
            # space are committed together later and carry their own stamps.
            self._truth_seqs.extend((appended.first_seq, appended.last_seq))
            self._truth_times.append(now)
        self.agent.service(0)

    def service(self) -> int:
        """Handle what the link delivered and send more; return messages still awaiting PUBACK."""
        if self.agent is None:
            return 0
        self.agent.service(0)
        return self.agent.outbox.in_flight

    def settled(self) -> bool:
        """Nothing more will move right now: no connection, or nothing in flight."""
        return (
            self.agent is None
            or self._link is None
            or not self._link.connected
            or self.agent.outbox.in_flight == 0
        )

    def should_connect(self) -> bool:
        return self.agent is not None and self.schedule.broker_reachable(self.clock.true_time())

    def connected(self) -> bool:
        return self._link is not None and self._link.connected

    def restore(self) -> None:
        """End of the run: power and network back, so the backlog can drain."""
        if self.agent is None:
            self.boot(sync_after_s=0.0)
        if self._link is not None:
            self._link.set_reachable(True)

    def backlog(self) -> int:
        return 0 if self.agent is None else self.agent.backlog()

    def finish(self) -> GatewayResult:
        """Stop cleanly (status written, offline said) and report what the gateway knows."""
        if self.agent is None:
            self.restore()
        agent, link = self.agent, self._link
        assert agent is not None and link is not None
        drain_before_exit(agent, timeout_s=1.0)  # the daemon's own stop: acked rows are deleted
        agent.write_status()
        agent.close_history()
        stats = agent.buffer.stats()
        dropped_in_memory = self._dropped_in_memory + self._memory_losses(agent)
        link.stop(1.0)
        mark_running(self.config.state_dir, self.boot_id, clean=True)
        agent.buffer.close()
        self.agent, self._link = None, None
        return GatewayResult(
            site=self.site,
            epoch=stats.epoch,
            last_seq=stats.last_seq,
            backlog=stats.count,
            dropped_by_bound=stats.dropped_total,
            dropped_in_memory=dropped_in_memory,
            boots=self.boots,
            truth=tuple(
                (int(first), int(last), when)
                for first, last, when in zip(
                    self._truth_seqs[0::2], self._truth_seqs[1::2], self._truth_times, strict=True
                )
            ),
            boot_times=tuple(self.boot_true.items()),
        )
