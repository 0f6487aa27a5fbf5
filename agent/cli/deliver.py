"""`village-agent once --publish`: one round through the buffer to the broker, with the PUBACK shown.

The round goes the daemon's way (buffer, outbox, link), so what it proves is what the daemon does:
the backlog goes first, oldest first, then this round. It holds the state directory's lock, as the
daemon does: two processes sending from one buffer would each delete the other's rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.buffer.errors import BufferError
from agent.cli.exits import EX_NOPERM, EX_OK, EX_SOFTWARE, EX_TEMPFAIL, EX_UNAVAILABLE
from agent.cli.run import hold_state_lock
from agent.cli.units import human_bytes
from agent.clock import Clock, read_boot_id
from agent.config.schema import Config
from agent.contract.telemetry import decode_telemetry
from agent.daemon.compose import build_agent, build_link, open_buffer
from agent.probes.base import Probe
from agent.publish.link import Acked, ConnectFailed, LinkEvent, MqttLink

Say = Callable[..., None]  # (key, **args): print one line from the CLI catalogue


@dataclass(slots=True)
class _Sent:
    at: float
    size: int
    seqs: tuple[int, ...]


@dataclass(slots=True)
class Delivery:
    """What was sent, what came back, and the first hard refusal."""

    sent: dict[tuple[int, int], _Sent] = field(default_factory=dict)
    acked_seqs: set[int] = field(default_factory=set)
    acked_bytes: int = 0
    acked_messages: int = 0
    rtt_ms: list[float] = field(default_factory=list)
    refused: str | None = None  # a negative PUBACK's reason
    unreachable: str | None = None  # the first failed connection's reason
    login_refused: bool = False


class WatchedLink:
    """The real link, seen from the side: each publish's time, size and seqs, and each PUBACK."""

    def __init__(self, link: MqttLink, clock: Clock, seen: Delivery) -> None:
        self._link = link
        self._clock = clock
        self.seen = seen

    @property
    def connected(self) -> bool:
        return self._link.connected

    def publish(
        self, topic: str, payload: bytes, *, retain: bool = False
    ) -> tuple[int, int] | None:
        handle = self._link.publish(topic, payload, retain=retain)
        if handle is not None and not retain:
            seqs = tuple(r.seq for r in decode_telemetry(payload).readings)
            self.seen.sent[handle] = _Sent(at=self._clock.monotonic(), size=len(payload), seqs=seqs)
        return handle

    def next_event(self, timeout_s: float) -> LinkEvent | None:
        event = self._link.next_event(timeout_s)
        if isinstance(event, Acked):
            sent = self.seen.sent.get((event.generation, event.mid))
            if sent is not None and event.ok:
                self.seen.acked_seqs.update(sent.seqs)
                self.seen.acked_bytes += sent.size
                self.seen.acked_messages += 1
                self.seen.rtt_ms.append((self._clock.monotonic() - sent.at) * 1000)
            elif sent is not None:
                self.seen.refused = event.reason
        elif isinstance(event, ConnectFailed) and self.seen.unreachable is None:
            self.seen.unreachable = event.reason
            self.seen.login_refused = event.refused
        return event


def publish_round(
    config: Config, probes: list[Probe], *, clock: Clock, timeout_s: float, say: Say
) -> int:
    """Commit one round to the buffer, send until its readings are acknowledged, print the result.
    Return the exit status: 0 acknowledged, 69 broker unreachable or no PUBACK in time, 77 refused,
    75 the daemon holds the state directory, 70 the buffer cannot be used."""
    config.state_dir.mkdir(parents=True, exist_ok=True)
    lock = hold_state_lock(config.state_dir)
    if lock is None:
        say("once.daemon_running", state_dir=str(config.state_dir))
        return EX_TEMPFAIL
    seen = Delivery()
    link = build_link(config)
    try:
        buffer, start_samples = open_buffer(config, now=clock.wall())
    except BufferError as err:
        say("once.buffer_unusable", error=str(err))
        lock.close()
        return EX_SOFTWARE
    watched = WatchedLink(link, clock, seen)
    agent = build_agent(
        config,
        clock=clock,
        boot_id=read_boot_id(),
        link=watched,
        probes=probes,
        buffer=buffer,
        start_samples=start_samples,
    )
    try:
        appended = agent.round().appended
        if appended is None or appended.last_seq is None:
            say("once.buffer_unusable", error=agent.last_buffer_error or "-")
            return EX_SOFTWARE
        first, last = appended.first_seq or appended.last_seq, appended.last_seq
        link.start()
        deadline = time.monotonic() + timeout_s
        while last not in seen.acked_seqs and time.monotonic() < deadline:
            agent.service(wait_s=0.1)
            if seen.refused is not None or seen.unreachable is not None:
                break
        agent.service()
        agent.outbox.settle(now=True)
        return _report(seen, first=first, last=last, timeout_s=timeout_s, say=say)
    finally:
        link.stop(timeout_s=2.0)
        buffer.close()
        lock.close()


def _report(seen: Delivery, *, first: int, last: int, timeout_s: float, say: Say) -> int:
    if last in seen.acked_seqs:
        ours = sorted(s for s in seen.acked_seqs)
        rtt = seen.rtt_ms[-1] if seen.rtt_ms else 0.0
        say(
            "once.published",
            first=first,
            last=last,
            sent_first=ours[0],
            messages=seen.acked_messages,
            readings=len(ours),
            size=human_bytes(seen.acked_bytes),
            rtt_ms=round(rtt),
        )
        return EX_OK
    if seen.refused is not None:
        say("once.refused", reason=seen.refused)
        return EX_NOPERM
    if seen.unreachable is not None:
        key = "once.login_refused" if seen.login_refused else "once.unreachable"
        say(key, reason=seen.unreachable)
        return EX_NOPERM if seen.login_refused else EX_UNAVAILABLE
    say("once.no_ack", seconds=round(timeout_s), first=first, last=last)
    return EX_UNAVAILABLE
