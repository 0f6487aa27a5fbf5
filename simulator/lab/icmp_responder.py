"""Answer ICMP echo requests after an exact delay, dropping a seeded share: the far end of the lab.

Run it inside a throwaway network namespace (`simulator.netlab.Lab.start_responder` does): it turns
the kernel's own echo replies off there, or every request would be answered twice. It prints
`ready` once listening and, on SIGTERM, a JSON line `{"received": n, "dropped": n, "answered": n}`.

    python -m simulator.lab.icmp_responder --delay-ms 300 --loss 0.02 --seed 7 --family 4
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import select
import signal
import socket
import struct
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

_BLOCK = 100  # drops are dealt exactly per block of this many requests
_SO_TIMESTAMPNS = (64, 35)  # _NEW then _OLD (asm-generic numbers); the stdlib does not name them
# Wake this early and spin to the due time: a timed sleep overshoots by up to a few hundred
# microseconds on a loaded machine, and the lab promises delays exact to well under a millisecond.
_SPIN_NS = 1_000_000

_ECHO_IGNORE = {
    4: Path("/proc/sys/net/ipv4/icmp_echo_ignore_all"),
    6: Path("/proc/sys/net/ipv6/icmp/echo_ignore_all"),
}


class DropPlan:
    """Decide which requests to drop: exactly round(loss * 100) of every 100, at seeded positions.

    A coin flip per request would add its own sampling noise (±2 points at 10 % over 200 probes):
    the accuracy tests must see the pinger's error, not the coin's."""

    def __init__(self, loss: float, seed: int) -> None:
        if not 0.0 <= loss <= 1.0:
            raise ValueError(f"loss must be within 0..1, got {loss}")
        self._drops = round(loss * _BLOCK)
        self._rng = random.Random(seed)
        self._pending: list[bool] = []

    def drop(self) -> bool:
        if not self._pending:
            block = [True] * self._drops + [False] * (_BLOCK - self._drops)
            self._rng.shuffle(block)
            self._pending = block[::-1]
        return self._pending.pop()


# RFC 1071, written again on purpose rather than imported from agent.probes.ping.wire: this stands
# in for a real host's kernel, and a bug shared with the pinger would pass here and fail there.
def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def echo_reply(family: int, request: bytes) -> bytes | None:
    """Turn an ICMP echo request (without IP header) into its reply, or None if it is not one."""
    request_type, reply_type = (8, 0) if family == 4 else (128, 129)
    if len(request) < 8 or request[0] != request_type or request[1] != 0:
        return None
    body = bytes([reply_type, 0, 0, 0]) + request[4:]
    if family == 6:
        return body  # the kernel fills in the ICMPv6 checksum
    return body[:2] + struct.pack("!H", _checksum(body)) + body[4:]


class _Stopped(Exception):
    pass


def _stop(signum: int, frame: FrameType | None) -> None:
    raise _Stopped


@contextmanager
def _kernel_echo_off(family: int) -> Iterator[None]:
    path = _ECHO_IGNORE[family]
    before = path.read_text()
    path.write_text("1\n")
    try:
        yield
    finally:
        path.write_text(before)


def _open(family: int) -> socket.socket:
    if family == 4:
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        # ICMP_FILTER (SOL_RAW=255, option 1): a set bit blocks that type; pass echo requests only.
        sock.setsockopt(255, 1, struct.pack("=I", ~(1 << 8) & 0xFFFFFFFF))
    else:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        words = [0xFFFFFFFF] * 8
        words[128 >> 5] &= ~(1 << (128 & 31)) & 0xFFFFFFFF
        sock.setsockopt(socket.IPPROTO_ICMPV6, 1, struct.pack("=8I", *words))
    for option in _SO_TIMESTAMPNS:
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, 1)
            break
        except OSError:
            continue
    sock.setblocking(False)
    return sock


def _arrival(ancillary: list[tuple[int, int, bytes]]) -> int:
    """When the request reached the kernel, on the perf_counter clock, never earlier than it did;
    now when unknown.

    The kernel stamps on the wall clock. The wall clock is read before the monotonic one: a pause
    between the two readings then moves the converted arrival later, never earlier, so the reply
    can be late but never early, and the injected delay stays a true lower bound of every round
    trip through the lab."""
    wall = time.time_ns()
    now = time.perf_counter_ns()
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind in _SO_TIMESTAMPNS:
            seconds, nanoseconds = struct.unpack_from("=qq" if len(data) >= 16 else "=ll", data)
            waited = wall - (int(seconds) * 1_000_000_000 + int(nanoseconds))
            # A negative or huge wait means the wall clock was stepped: distrust the stamp.
            if 0 <= waited < 50_000_000:
                return now - waited
    return now


def serve(family: int, delay_ms: float, plan: DropPlan) -> dict[str, int]:
    """Answer requests until SIGTERM; return the counts."""
    counts = {"received": 0, "dropped": 0, "answered": 0, "send_failed": 0}
    delay_ns = round(delay_ms * 1e6)
    due: list[tuple[int, int, bytes, Any]] = []  # (due time, arrival order, reply, address)
    order = 0
    sock = _open(family)
    try:
        print("ready", flush=True)
        while True:
            now = time.perf_counter_ns()
            while due and due[0][0] <= now:
                _, _, reply, address = heapq.heappop(due)
                try:
                    sock.sendto(reply, address)
                    counts["answered"] += 1
                except OSError:
                    counts["send_failed"] += 1  # e.g. the lab blackholed the way back
            if due and due[0][0] - now < _SPIN_NS:
                continue
            # select takes a float timeout with microsecond resolution, unlike poll's milliseconds.
            timeout = (due[0][0] - now - _SPIN_NS) / 1e9 if due else None
            readable, _, _ = select.select([sock], [], [], timeout)
            while readable:
                try:
                    data, ancillary, _, address = sock.recvmsg(65535, socket.CMSG_SPACE(16))
                except BlockingIOError:
                    break
                arrived = _arrival(ancillary)
                if family == 4:
                    data = data[(data[0] & 0x0F) * 4 :]  # raw IPv4 sockets see the IP header
                answer = echo_reply(family, data)
                if answer is None:
                    continue
                counts["received"] += 1
                if plan.drop():
                    counts["dropped"] += 1
                    continue
                heapq.heappush(due, (arrived + delay_ns, order, answer, address))
                order += 1
    except _Stopped:
        return counts
    finally:
        sock.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--loss", type=float, default=0.0, help="share of requests dropped, 0..1")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--family", type=int, choices=(4, 6), default=4)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    plan = DropPlan(args.loss, args.seed)
    with _kernel_echo_off(args.family):
        counts = serve(args.family, args.delay_ms, plan)
    sys.stdout.write(json.dumps(counts) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
