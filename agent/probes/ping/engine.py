"""Latency measurement: ICMP echo or TCP connect time to several targets at once, in a bounded time.

`ping_round` probes every target concurrently from one poll loop and returns within
`(count - 1) * interval_s + timeout_s`, whatever the targets, the resolver or the link do: the
agent's main loop must never block longer than that. RTTs come from the kernel's own send and
arrival stamps where it gives them (`wire.kernel_rtt_ns`), else from `time.perf_counter_ns()`,
the real monotonic clock: a round trip is a property of the real network, not of an injected
clock. Each way of measuring starts no later than the probe left and ends no earlier than its
answer came, so a busy CPU can lengthen a measured round trip but never shorten it.
"""

from __future__ import annotations

import errno
import itertools
import math
import select
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.probes.ping import wire
from agent.probes.ping.wire import Method, Preference, available_method

__all__ = ["Method", "PingResult", "Preference", "available_method", "ping_round"]


@dataclass(frozen=True, slots=True, kw_only=True)
class PingResult:
    """One target's round. `sent` counts the probes the round accounted for: a target that could
    not be resolved accounts for all of them as lost, so it reads as 100 % loss, not as no data."""

    target: str
    address: str | None
    method: Method
    sent: int
    rtts_ms: tuple[float, ...]
    error: str | None = None

    @property
    def received(self) -> int:
        return len(self.rtts_ms)

    @property
    def loss_ratio(self) -> float | None:
        return None if self.sent == 0 else (self.sent - self.received) / self.sent

    @property
    def rtt_min_ms(self) -> float | None:
        return min(self.rtts_ms) if self.rtts_ms else None

    @property
    def rtt_avg_ms(self) -> float | None:
        return sum(self.rtts_ms) / len(self.rtts_ms) if self.rtts_ms else None

    @property
    def rtt_max_ms(self) -> float | None:
        return max(self.rtts_ms) if self.rtts_ms else None

    @property
    def jitter_ms(self) -> float | None:
        """Mean absolute difference of consecutive RTTs (RFC 3550 style, without its smoothing)."""
        if len(self.rtts_ms) < 2:
            return None
        steps = [abs(b - a) for a, b in itertools.pairwise(self.rtts_ms)]
        return sum(steps) / len(steps)


@dataclass(slots=True)
class _Target:
    name: str
    lookup: wire.Lookup | None = None
    family: int = 0
    sockaddr: tuple[Any, ...] = ()
    address: str | None = None
    packed: bytes = b""
    method: Method = "tcp"
    sock: socket.socket | None = None
    start_ns: int | None = None  # when the first probe is due; None until resolved
    failed: bool = False  # nothing can be sent: every probe counts as lost
    sent_ns: list[int] = field(default_factory=list)
    sent_wall_ns: list[int] = field(default_factory=list)
    stamps_sends: bool = False  # the kernel stamps this target's sends on its error queue
    send_keys: dict[int, int] = field(default_factory=dict)  # kernel's send key: probe index
    sent_kernel_ns: dict[int, int] = field(default_factory=dict)  # probe index: send stamp
    outcome: dict[int, int | None] = field(default_factory=dict)  # probe index: RTT, None: lost
    error: str | None = None
    mark: wire.EchoMark = field(default_factory=wire.EchoMark)


def _stamp_send(target: _Target) -> None:
    # Monotonic first, wall clock second: the wall stamp is then the later of the two, so a
    # kernel arrival stamp minus it can never exceed the monotonic round trip for a reason as
    # harmless as being descheduled between the two readings.
    target.sent_ns.append(time.perf_counter_ns())
    target.sent_wall_ns.append(time.time_ns())


class _Round:
    def __init__(
        self,
        names: Sequence[str],
        *,
        count: int,
        interval_s: float,
        timeout_s: float,
        preference: Preference,
        tcp_port: int,
    ) -> None:
        self.start = time.perf_counter_ns()
        self.count = count
        self.interval = round(interval_s * 1e9)
        self.timeout = round(timeout_s * 1e9)
        self.deadline = self.start + (count - 1) * self.interval + self.timeout
        self.preference: Preference = preference
        self.tcp_port = tcp_port
        self.poller = select.poll()
        self.wakeup = wire.Wakeup()
        self.poller.register(self.wakeup, select.POLLIN)
        self.icmp: dict[int, _Target] = {}
        self.tcp: dict[int, tuple[_Target, int, socket.socket]] = {}
        self.targets = [_Target(name) for name in names]
        for target in self.targets:
            target.lookup = wire.start_lookup(target.name, self.wakeup)
            if target.lookup.done.is_set() and target.lookup.error is None:
                self._ready(target, target.lookup.family, target.lookup.sockaddr)

    def _ready(self, target: _Target, family: int, sockaddr: tuple[Any, ...]) -> None:
        target.lookup = None
        target.family, target.sockaddr = family, sockaddr
        target.address = str(sockaddr[0])
        target.packed = wire.packed_address(family, target.address)
        target.start_ns = time.perf_counter_ns()
        opened = None if self.preference == "tcp" else wire.open_icmp(family)
        if opened is not None:
            target.method, target.sock, target.stamps_sends = opened
            self.icmp[target.sock.fileno()] = target
            self.poller.register(target.sock, select.POLLIN)

    def _fail(self, target: _Target, why: str) -> None:
        target.lookup = None
        target.failed, target.error = True, why
        target.method = available_method(self.preference, socket.AF_INET)

    def _probe_deadline(self, target: _Target, index: int) -> int:
        return min(target.sent_ns[index] + self.timeout, self.deadline)

    def run(self) -> None:
        while (now := time.perf_counter_ns()) < self.deadline:
            wake = self.deadline
            for target in self.targets:
                wake = min(wake, self._step(target, now))
            if all(self._settled(target, now) for target in self.targets):
                return
            for fd, _ in self.poller.poll(max(0, math.ceil((wake - now) / 1e6))):
                if fd == self.wakeup.fileno():
                    self.wakeup.drain()
                elif fd in self.icmp:
                    self._receive(self.icmp[fd])
                elif fd in self.tcp:
                    self._connected(fd)

    def _step(self, target: _Target, now: int) -> int:
        """Do what is due for `target`; return when it next needs attention."""
        if target.lookup is not None:
            if target.lookup.done.is_set():
                if target.lookup.error is not None:
                    self._fail(target, target.lookup.error)
                else:
                    self._ready(target, target.lookup.family, target.lookup.sockaddr)
            elif now >= self.start + self.timeout:
                self._fail(target, "name resolution timed out")
            else:
                return self.start + self.timeout
        if target.failed or target.start_ns is None:
            return self.deadline
        while len(target.sent_ns) < self.count:
            due = target.start_ns + len(target.sent_ns) * self.interval
            if due > now:
                break
            self._send(target)
        wake = self.deadline
        if len(target.sent_ns) < self.count:
            wake = target.start_ns + len(target.sent_ns) * self.interval
        for index in range(len(target.sent_ns)):
            if index not in target.outcome:
                expires = self._probe_deadline(target, index)
                if expires > now:
                    wake = min(wake, expires)
        for fd, (owner, index, sock) in list(self.tcp.items()):
            if owner is target and self._probe_deadline(target, index) <= now:
                self._drop_tcp(fd, sock)
        return wake

    def _settled(self, target: _Target, now: int) -> bool:
        """True when nothing `target` could still do would change its result."""
        if target.failed:
            return True
        if target.start_ns is None or len(target.sent_ns) < self.count:
            return False
        return all(
            index in target.outcome or self._probe_deadline(target, index) <= now
            for index in range(self.count)
        )

    def _send(self, target: _Target) -> None:
        index = len(target.sent_ns)
        if target.sock is None:
            self._send_tcp(target, index)
            return
        packet = target.mark.request(target.family, index)
        _stamp_send(target)
        try:
            target.sock.sendto(packet, target.sockaddr)
        except OSError as exc:
            target.error = wire.reason(exc.errno)
            target.outcome[index] = None
            return
        # The kernel numbers the stamps of the sends that reached its queue. Should a failed send
        # have taken a number too, every later stamp lands one probe early, before that probe's
        # own wall-clock stamp, and is refused: the round falls back to the wall-clock stamps.
        target.send_keys[len(target.send_keys)] = index

    def _receive(self, target: _Target) -> None:
        assert target.sock is not None
        if target.stamps_sends:
            # Queued during sendto(), so a probe's stamp is here before its reply can be.
            for key, stamp in wire.send_stamps(target.sock):
                index = target.send_keys.get(key)
                if index is not None and stamp >= target.sent_wall_ns[index]:
                    target.sent_kernel_ns[index] = stamp
        while True:
            try:
                data, ancillary, _, source = target.sock.recvmsg(2048, wire.ANCILLARY_SPACE)
            except BlockingIOError:
                return
            except OSError as exc:
                # A datagram ICMP socket reports an ICMP error (unreachable) this way.
                target.error = wire.reason(exc.errno)
                return
            now = time.perf_counter_ns()
            index = target.mark.index_of(
                data, str(source[0]), target.family, target.method, target.packed
            )
            if index is None or index >= len(target.sent_ns) or index in target.outcome:
                continue  # not an answer to us, or a duplicate, which counts once
            rtt = wire.kernel_rtt_ns(
                now - target.sent_ns[index],
                ancillary,
                target.sent_wall_ns[index],
                target.sent_kernel_ns.get(index),
            )
            if target.sent_ns[index] + rtt <= self._probe_deadline(target, index):
                target.outcome[index] = rtt

    def _send_tcp(self, target: _Target, index: int) -> None:
        try:
            sock = wire.tcp_socket(target.family)
        except OSError as exc:
            _stamp_send(target)
            target.outcome[index] = None
            target.error = wire.reason(exc.errno)
            return
        _stamp_send(target)
        err = sock.connect_ex((target.sockaddr[0], self.tcp_port, *target.sockaddr[2:]))
        if err == errno.EINPROGRESS:
            self.tcp[sock.fileno()] = (target, index, sock)
            self.poller.register(sock, select.POLLOUT)
        else:  # loopback completes (or refuses) the handshake inside connect()
            self._tcp_outcome(target, index, sock, err)
            sock.close()

    def _connected(self, fd: int) -> None:
        target, index, sock = self.tcp[fd]
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        self._tcp_outcome(target, index, sock, err)
        self._drop_tcp(fd, sock)

    def _tcp_outcome(self, target: _Target, index: int, sock: socket.socket, err: int) -> None:
        now = time.perf_counter_ns()
        target.outcome[index] = None
        proved, error = wire.tcp_round_trip(sock, err)
        if error is not None:
            target.error = error
        if proved and now <= self._probe_deadline(target, index):
            target.outcome[index] = now - target.sent_ns[index]

    def _drop_tcp(self, fd: int, sock: socket.socket) -> None:
        self.poller.unregister(fd)
        del self.tcp[fd]
        sock.close()

    def close(self) -> None:
        for fd, (_, _, sock) in list(self.tcp.items()):
            self._drop_tcp(fd, sock)
        for target in self.targets:
            if target.sock is not None:
                target.sock.close()
        self.wakeup.close()

    def results(self) -> list[PingResult]:
        return [
            PingResult(
                target=t.name,
                address=t.address,
                method=t.method,
                sent=self.count if t.failed else len(t.sent_ns),
                rtts_ms=tuple(rtt / 1e6 for _, rtt in sorted(t.outcome.items()) if rtt is not None),
                error=t.error,
            )
            for t in self.targets
        ]


def ping_round(
    targets: Sequence[str],
    *,
    count: int = 5,
    interval_s: float = 0.2,
    timeout_s: float = 2.0,
    method: Preference = "auto",
    tcp_port: int = 443,
) -> list[PingResult]:
    """Send `count` probes `interval_s` apart to every target at once; a reply later than
    `timeout_s` is a loss. Return one result per target, in order, within
    `(count - 1) * interval_s + timeout_s`. Raise ValueError for impossible parameters."""
    if not 1 <= count <= 0xFFFF:
        raise ValueError(f"count must be 1..65535, got {count}")
    if interval_s < 0 or timeout_s <= 0:
        raise ValueError("interval_s must be >= 0 and timeout_s > 0")
    if not 0 < tcp_port < 0x10000:
        raise ValueError(f"tcp_port must be 1..65535, got {tcp_port}")
    probe = _Round(
        targets,
        count=count,
        interval_s=interval_s,
        timeout_s=timeout_s,
        preference=method,
        tcp_port=tcp_port,
    )
    try:
        probe.run()
    finally:
        probe.close()
    return probe.results()
