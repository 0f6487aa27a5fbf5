"""A tiny UDP DNS server that stands for the site's resolver: answers A queries after a chosen delay,
with NXDOMAIN, or never (a dead resolver).

    with DnsResponder(delay_s=0.05, address="192.0.2.7") as dns:
        DnsProbe(["a.example"], server="127.0.0.1", port=dns.port).collect()

    python -m simulator.lab.dns_responder --port 5353 --delay-ms 50
"""

from __future__ import annotations

import argparse
import heapq
import select
import socket
import struct
import threading
import time
from types import TracebackType
from typing import Literal

Mode = Literal["answer", "nxdomain", "silent"]


def _question_end(message: bytes) -> int:
    offset = 12
    while message[offset] != 0:
        offset += 1 + message[offset]
    return offset + 5  # the root label, then QTYPE and QCLASS


def build_reply(query: bytes, mode: Mode, address: str) -> bytes:
    """The response to `query`: one A record for `address`, or NXDOMAIN with no records."""
    ident, flags = struct.unpack_from("!HH", query)
    question = query[12 : _question_end(query)]
    rcode = 3 if mode == "nxdomain" else 0
    answers = 0 if mode == "nxdomain" else 1
    header = struct.pack("!HHHHHH", ident, 0x8180 | (flags & 0x0100) | rcode, 1, answers, 0, 0)
    body = header + question
    if answers:
        # A name pointer to the question (offset 12), type A, class IN, TTL 60, four bytes.
        body += struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + socket.inet_aton(address)
    return body


class DnsResponder:
    """Serves on 127.0.0.1 from a background thread; a context manager. `queries` counts requests."""

    def __init__(
        self,
        *,
        mode: Mode = "answer",
        delay_s: float = 0.0,
        address: str = "192.0.2.1",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._mode = mode
        self._delay_s = delay_s
        self._address = address
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((host, port))
        self._sock.setblocking(False)
        self.port: int = self._sock.getsockname()[1]
        self.queries = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="dns-responder", daemon=True)

    def __enter__(self) -> DnsResponder:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._sock.close()

    def _serve(self) -> None:
        due: list[tuple[float, int, bytes, tuple[str, int]]] = []
        order = 0
        while not self._stop.is_set():
            now = time.monotonic()
            while due and due[0][0] <= now:
                _, _, reply, peer = heapq.heappop(due)
                self._sock.sendto(reply, peer)
            timeout = min(0.05, max(0.0, due[0][0] - now)) if due else 0.05
            readable, _, _ = select.select([self._sock], [], [], timeout)
            if not readable:
                continue
            try:
                query, peer = self._sock.recvfrom(4096)
            except BlockingIOError:
                continue
            self.queries += 1
            if self._mode == "silent" or len(query) < 17:
                continue
            reply = build_reply(query, self._mode, self._address)
            heapq.heappush(due, (time.monotonic() + self._delay_s, order, reply, peer))
            order += 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A fake DNS resolver for tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--mode", choices=("answer", "nxdomain", "silent"), default="answer")
    parser.add_argument("--address", default="192.0.2.1")
    args = parser.parse_args(argv)
    responder = DnsResponder(
        mode=args.mode,
        delay_s=args.delay_ms / 1000,
        address=args.address,
        host=args.host,
        port=args.port,
    )
    with responder:
        print(f"ready {responder.port}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return 0


if __name__ == "__main__":
    raise SystemExit(main())
