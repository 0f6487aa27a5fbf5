"""A TCP relay that holds every chunk for a fixed one-way delay, in both directions.

netem is missing from the kernels this runs on, so a VSAT's ~600 ms round trip is made here, in
userspace: each chunk read from one side is written to the other `delay` later, kept in a heap
ordered by due time. End of stream travels with the same delay. Memory is bounded: a side that has
too much waiting is not read until the other side drains it, so TCP's own flow control pushes back.

It can listen inside another network namespace (`--listen-netns /run/netns/NAME`) while it connects
onward from its own: that is how a lab's far end reaches a broker on the host's loopback, without
an interface or a route ever being added to the host. It prints `ready PORT` once listening and, on
SIGTERM, a JSON line `{"accepted": n, "refused": n, "bytes_up": n, "bytes_down": n}`.

    python -m simulator.lab.delay_relay --listen 10.77.0.2:1883 --connect 127.0.0.1:40123 \
        --delay-ms 300 --listen-netns /run/netns/va-1-0-far
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import heapq
import itertools
import json
import os
import selectors
import signal
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import FrameType

_CLONE_NEWNET = 0x40000000  # <linux/sched.h>
_CHUNK = 65536
# Bytes waiting (in the heap or unwritten) per direction before the relay stops reading that side.
_HIGH_WATER = 256 * 1024


@contextlib.contextmanager
def network_namespace(path: str | None) -> Iterator[None]:
    """Create sockets inside the namespace at `path` (None: stay) within the block.

    setns(2) moves only the calling thread, and a socket stays in the namespace it was made in, so
    one thread can listen in one namespace and connect from another. Python 3.11 has no os.setns.
    """
    if path is None:
        yield
        return
    libc = ctypes.CDLL(None, use_errno=True)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(target, _CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {path}: {os.strerror(ctypes.get_errno())}")
        try:
            yield
        finally:
            if libc.setns(home, _CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back to the relay's own namespace")
    finally:
        os.close(target)
        os.close(home)


@dataclass(slots=True, eq=False)
class _Pipe:
    """One direction of one connection."""

    src: socket.socket
    dst: socket.socket
    unwritten: bytearray = field(default_factory=bytearray)
    waiting: int = 0  # bytes in the heap or unwritten
    read_eof: bool = False  # the source said end of stream
    eof_due: bool = False  # ...and its delay has passed: shut the destination once drained
    done: bool = False


@dataclass(slots=True, eq=False)
class _Conn:
    up: _Pipe  # client -> target
    down: _Pipe  # target -> client
    closed: bool = False


class Relay:
    """Relays connections accepted on `listener` to `target` with `delay_s` each way."""

    def __init__(self, listener: socket.socket, target: tuple[str, int], delay_s: float) -> None:
        self._listener = listener
        self._target = target
        self._delay = delay_s
        self._selector = selectors.DefaultSelector()
        self._selector.register(listener, selectors.EVENT_READ, None)
        self._due: list[tuple[float, int, _Pipe, _Conn, bytes | None]] = []
        self._order = itertools.count()
        self._owners: dict[socket.socket, _Conn] = {}
        self.counts = {"accepted": 0, "refused": 0, "bytes_up": 0, "bytes_down": 0}

    def serve(self, stopping: list[bool]) -> None:
        """Run until `stopping[0]` is set (by a signal handler)."""
        while not stopping[0]:
            now = time.monotonic()
            while self._due and self._due[0][0] <= now:
                _, _, pipe, conn, data = heapq.heappop(self._due)
                if not conn.closed:
                    self._deliver(pipe, conn, data)
            timeout = 0.2 if not self._due else min(0.2, max(0.0, self._due[0][0] - now))
            for key, mask in self._selector.select(timeout):
                if key.fileobj is self._listener:
                    self._accept()
                elif isinstance(key.fileobj, socket.socket):
                    self._ready(key.fileobj, mask)
        for owner in list(self._owners.values()):
            self._close(owner)

    def _ready(self, sock: socket.socket, mask: int) -> None:
        conn = self._owners.get(sock)
        if conn is None or conn.closed:
            return
        outgoing, incoming = (conn.up, conn.down) if sock is conn.up.src else (conn.down, conn.up)
        if mask & selectors.EVENT_READ:
            self._read(outgoing, conn)
        if mask & selectors.EVENT_WRITE and not conn.closed:
            self._flush(incoming, conn)

    def _accept(self) -> None:
        client, _ = self._listener.accept()
        self.counts["accepted"] += 1
        try:
            onward = socket.create_connection(self._target, timeout=5.0)
        except OSError:
            self.counts["refused"] += 1
            client.close()
            return
        conn = _Conn(up=_Pipe(src=client, dst=onward), down=_Pipe(src=onward, dst=client))
        for sock in (client, onward):
            sock.setblocking(False)
            # MQTT's packets are small: Nagle would add its own delay to the one asked for.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._owners[sock] = conn
            self._selector.register(sock, selectors.EVENT_READ, None)

    def _read(self, pipe: _Pipe, conn: _Conn) -> None:
        try:
            data = pipe.src.recv(_CHUNK)
        except BlockingIOError:
            return
        except OSError:
            self._close(conn)
            return
        if data:
            self.counts["bytes_up" if pipe is conn.up else "bytes_down"] += len(data)
            pipe.waiting += len(data)
        else:
            pipe.read_eof = True
        due = time.monotonic() + self._delay
        heapq.heappush(self._due, (due, next(self._order), pipe, conn, data or None))
        self._interest(conn)

    def _deliver(self, pipe: _Pipe, conn: _Conn, data: bytes | None) -> None:
        if data is None:
            pipe.eof_due = True
        else:
            pipe.unwritten += data
        self._flush(pipe, conn)

    def _flush(self, pipe: _Pipe, conn: _Conn) -> None:
        try:
            while pipe.unwritten:
                sent = pipe.dst.send(pipe.unwritten)
                del pipe.unwritten[:sent]
                pipe.waiting -= sent
        except BlockingIOError:
            pass
        except OSError:
            self._close(conn)
            return
        if pipe.eof_due and not pipe.unwritten and not pipe.done:
            pipe.done = True
            with contextlib.suppress(OSError):
                pipe.dst.shutdown(socket.SHUT_WR)
        if conn.up.done and conn.down.done:
            self._close(conn)
            return
        self._interest(conn)

    def _interest(self, conn: _Conn) -> None:
        for outgoing, incoming in ((conn.up, conn.down), (conn.down, conn.up)):
            events = 0
            if not outgoing.read_eof and outgoing.waiting < _HIGH_WATER:
                events |= selectors.EVENT_READ
            if incoming.unwritten:
                events |= selectors.EVENT_WRITE
            sock = outgoing.src
            registered = sock in self._selector.get_map()
            if events and registered:
                self._selector.modify(sock, events, None)
            elif events:
                self._selector.register(sock, events, None)
            elif registered:
                # A selector cannot hold a socket waiting for nothing; it comes back when due.
                self._selector.unregister(sock)

    def _close(self, conn: _Conn) -> None:
        conn.closed = True
        for sock in (conn.up.src, conn.down.src):
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(sock)
            self._owners.pop(sock, None)
            sock.close()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--listen", required=True, help="HOST:PORT; port 0 picks a free one")
    parser.add_argument("--connect", required=True, help="HOST:PORT to relay to")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="one-way delay")
    parser.add_argument("--listen-netns", help="listen inside this namespace (a /run/netns path)")
    args = parser.parse_args(argv)
    stopping = [False]

    def stop(_signum: int, _frame: FrameType | None) -> None:
        stopping[0] = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    host, port = _address(args.listen)
    with network_namespace(args.listen_netns):
        listener = socket.create_server((host, port), backlog=64)
    relay = Relay(listener, _address(args.connect), args.delay_ms / 1000)
    sys.stdout.write(f"ready {listener.getsockname()[1]}\n")
    sys.stdout.flush()
    try:
        relay.serve(stopping)
    finally:
        listener.close()
    sys.stdout.write(json.dumps(relay.counts) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
