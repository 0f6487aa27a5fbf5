"""Active throughput: one HTTP(S) download and one upload, each capped by time and by bytes.

Standard library only (`http.client`, TLS verified with the system's CAs). What a test cost is read
from the kernel's TCP statistics (TCP_INFO: payload bytes both ways and segment counts, so headers and
ACKs are included), not guessed from the body; the budget is charged with that.

The download asks for exactly the bytes it may use (`Range: bytes=0-N`); an endpoint that ignores
Range and offers more is refused at once, because data already in flight after an early close still
crosses the metered link.
"""

from __future__ import annotations

import contextlib
import http.client
import math
import socket
import ssl
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, Protocol
from urllib.parse import urlsplit

from agent.daemon.stopping import Stopped, Stopping

Direction = Literal["download", "upload"]

CHUNK = 64 * 1024
# A test cut short by a stop measured nothing worth a rate; it still cost what crossed the link.
STOPPED = "stopped: the agent is shutting down"
# Worst case used for reservations: 66 header bytes (Ethernet, IPv4, TCP with timestamps) per
# data segment of ~1360-1448 bytes, plus an ACK for every segment the other way: under 10 %.
OVERHEAD_RATIO = 0.10
# TCP and TLS handshakes, certificate chain, HTTP headers, the DNS lookup of the host.
PER_CONNECTION_BYTES = 64 * 1024
HEADER_BYTES_PER_SEGMENT = 66
_TCP_INFO_LEN = 232
# Offsets in Linux's struct tcp_info (<linux/tcp.h>): u64 bytes_received, u32 segs_out, u32 segs_in,
# u64 bytes_sent (Linux >= 4.19).
_BYTES_RECEIVED, _SEGS_OUT, _SEGS_IN, _BYTES_SENT = 128, 136, 140, 200


def wire_bytes(body: int) -> int:
    """The most a transfer of `body` payload bytes can cost on the link."""
    return math.ceil(body * (1 + OVERHEAD_RATIO)) + PER_CONNECTION_BYTES


def body_allowance(wire: int) -> int:
    """The largest payload whose worst-case cost fits in `wire` bytes."""
    return max(0, math.floor((wire - PER_CONNECTION_BYTES) / (1 + OVERHEAD_RATIO)))


@dataclass(frozen=True, slots=True, kw_only=True)
class Transfer:
    """One direction's outcome. `cost_bytes` is what crossed the link, headers included."""

    direction: Direction
    body_bytes: int
    seconds: float  # from the first payload byte to the last, as the receiver saw it
    cost_bytes: int
    error: str | None = None

    @property
    def bps(self) -> float | None:
        if self.error is not None or self.seconds <= 0 or self.body_bytes <= 0:
            return None
        return self.body_bytes * 8 / self.seconds


class Transport(Protocol):
    """Moves test data. The simulator passes a fake with a chosen rate."""

    def transfer(
        self, direction: Direction, url: str, *, max_bytes: int, max_seconds: float
    ) -> Transfer: ...


def tcp_cost(sock: socket.socket) -> int | None:
    """Bytes the connection put on the link both ways, or None where TCP_INFO lacks the fields."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_LEN)
    except OSError:
        return None
    if len(info) < _BYTES_SENT + 8:
        return None
    (received,) = struct.unpack_from("=Q", info, _BYTES_RECEIVED)
    segs_out, segs_in = struct.unpack_from("=II", info, _SEGS_OUT)
    (sent,) = struct.unpack_from("=Q", info, _BYTES_SENT)
    return int(received + sent + (segs_out + segs_in) * HEADER_BYTES_PER_SEGMENT)


def _unread_window(sock: socket.socket) -> int:
    # After an early close the sender may still have up to our receive window in flight; the
    # window never exceeds the receive buffer, which autotuning grows and getsockopt reports.
    try:
        return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
    except OSError:
        return 0


class HttpTransport:
    """Real transfers over http.client; `timeout_s` bounds every blocking socket call."""

    def __init__(
        self, *, context: ssl.SSLContext | None = None, stopping: Stopping | None = None
    ) -> None:
        # Made at the first https test: the system's CA store costs 1.2 MB of RSS to hold.
        self._context = context
        # SIGTERM must end the agent within seconds; a test may have up to max_seconds to run.
        self._stopping = stopping or Stopping()

    def _connect(self, url: str, timeout_s: float) -> tuple[http.client.HTTPConnection, str]:
        parts = urlsplit(url)
        host = parts.hostname or ""
        path = parts.path or "/"
        if parts.query:
            path += f"?{parts.query}"
        conn: http.client.HTTPConnection
        if parts.scheme == "https":
            if self._context is None:
                self._context = ssl.create_default_context()
            conn = http.client.HTTPSConnection(
                host, parts.port, timeout=timeout_s, context=self._context
            )
        else:
            conn = http.client.HTTPConnection(host, parts.port, timeout=timeout_s)
        conn.connect()
        return conn, path

    def transfer(
        self, direction: Direction, url: str, *, max_bytes: int, max_seconds: float
    ) -> Transfer:
        conn: http.client.HTTPConnection | None = None
        started = time.perf_counter()

        def cut_short() -> None:
            if conn is None or conn.sock is None:
                raise Stopped  # still connecting or not begun: nothing to shut down yet
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)  # the blocked recv/send returns at once

        try:
            with self._stopping.interrupts(cut_short):
                conn, path = self._connect(url, timeout_s=max_seconds)
                if direction == "download":
                    return self._download(conn, path, max_bytes, max_seconds)
                return self._upload(conn, path, max_bytes, max_seconds, started)
        except Stopped:
            sock = conn.sock if conn is not None else None
            cost = tcp_cost(sock) if sock is not None else None
            return Transfer(
                direction=direction,
                body_bytes=0,
                seconds=0.0,
                cost_bytes=cost or 0,
                error=STOPPED,
            )
        except (OSError, http.client.HTTPException, ValueError) as err:
            cost = tcp_cost(conn.sock) if conn is not None and conn.sock is not None else None
            return Transfer(
                direction=direction,
                body_bytes=0,
                seconds=0.0,
                cost_bytes=cost if cost is not None else PER_CONNECTION_BYTES,
                error=STOPPED if self._stopping() else f"{type(err).__name__}: {err}",
            )
        finally:
            if conn is not None:
                conn.close()

    def _download(
        self, conn: http.client.HTTPConnection, path: str, max_bytes: int, max_seconds: float
    ) -> Transfer:
        conn.request("GET", path, headers={"Range": f"bytes=0-{max_bytes - 1}"})
        response = conn.getresponse()
        length = response.getheader("Content-Length")
        if response.status not in (200, 206):
            raise ValueError(f"download answered HTTP {response.status} {response.reason}")
        if length is None or int(length) > max_bytes:
            raise ValueError("the download endpoint ignores Range; it would exceed the budget")
        sock = conn.sock
        deadline = time.perf_counter() + max_seconds
        first_at = last_at = 0.0
        body = first_size = 0
        complete = False
        while (left := deadline - time.perf_counter()) > 0 and not self._stopping():
            sock.settimeout(left)
            try:
                data = response.read1(CHUNK)
            except TimeoutError:
                break  # the time limit fell while waiting for data: the normal end of a slow test
            if not data:
                complete = not self._stopping()  # a stop shuts the socket: EOF, but not the end
                break
            last_at = time.perf_counter()
            if not first_at:
                first_at, first_size = last_at, len(data)
            body += len(data)
        cost = tcp_cost(sock)
        if cost is None:
            cost = wire_bytes(body)
        if not complete:
            cost += _unread_window(sock)
        # The first read's bytes arrived before the clock started: rate over what came after.
        return Transfer(
            direction="download",
            body_bytes=body - first_size,
            seconds=last_at - first_at,
            cost_bytes=cost,
            error=STOPPED if not complete and self._stopping() else None,
        )

    def _upload(
        self,
        conn: http.client.HTTPConnection,
        path: str,
        max_bytes: int,
        max_seconds: float,
        started: float,
    ) -> Transfer:
        sock = conn.sock
        deadline = time.perf_counter() + max_seconds
        sent = 0
        began = 0.0
        block = bytes(CHUNK)

        def chunks() -> Iterator[bytes]:
            nonlocal sent, began
            began = time.perf_counter()
            while sent < max_bytes and time.perf_counter() < deadline and not self._stopping():
                piece = block[: min(CHUNK, max_bytes - sent)]
                sent += len(piece)
                yield piece

        # Chunked encoding lets the body stop at the time limit and still end cleanly, so the
        # server's answer marks the moment the last byte arrived.
        conn.request("POST", path, body=chunks(), encode_chunked=True)
        sock.settimeout(max(1.0, max_seconds))
        response = conn.getresponse()
        response.read()
        finished = time.perf_counter()
        if response.status >= 300:
            raise ValueError(f"upload answered HTTP {response.status} {response.reason}")
        cost = tcp_cost(sock)
        return Transfer(
            direction="upload",
            body_bytes=sent,
            seconds=finished - (began or started),
            cost_bytes=cost if cost is not None else wire_bytes(sent),
            error=STOPPED if sent < max_bytes and self._stopping() else None,
        )
