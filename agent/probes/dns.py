"""DNS resolution time: one A query per configured name, straight to the resolver over UDP.

The probe sends its own minimal query instead of calling getaddrinfo: getaddrinfo cannot be
interrupted (a dead resolver would hold the round for the libc's retries, 5 s times attempts times
servers), goes through caches (nscd, the stub) that hide the resolver's time, and cannot be pointed at
a chosen server. A UDP socket with a deadline is bounded, times the resolver alone, and lets tests use
a fake resolver on loopback. The server is the configured one, else resolv.conf's first nameserver:
the one the gateway's own lookups try first.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from agent.reading import Sample

_TYPE_A = 1
_CLASS_IN = 1
_FLAG_RD = 0x0100  # recursion desired: the stub asks the resolver to do the work
_RCODES = {0: "noerror", 1: "formerr", 2: "servfail", 3: "nxdomain", 4: "notimp", 5: "refused"}

ResolverSource = Callable[[], str | None]


@dataclass(frozen=True, slots=True, kw_only=True)
class DnsAnswer:
    """One query's outcome. `elapsed_ms` is None when no answer came within the timeout."""

    name: str
    elapsed_ms: float | None
    rcode: str  # noerror, nxdomain, servfail, ..., or timeout / unreachable / badname
    addresses: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.rcode == "noerror" and bool(self.addresses)


class Query(Protocol):
    """One DNS query: `query` on the network, or the simulator's resolver."""

    def __call__(self, server: str, port: int, name: str, *, timeout_s: float) -> DnsAnswer: ...


def nameservers(path: Path = Path("/etc/resolv.conf")) -> list[str]:
    """The `nameserver` addresses of resolv.conf, in order, without an IPv6 scope (fe80::1%eth0
    names the interface, not the server). The only reader of resolv.conf: the probe and `diag`
    name the same servers."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    found: list[str] = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            found.append(fields[1].split("%")[0])
    return found


def resolv_conf_server(path: Path = Path("/etc/resolv.conf")) -> str | None:
    """The first nameserver, or None when there is none."""
    servers = nameservers(path)
    return servers[0] if servers else None


def encode_query(ident: int, name: str) -> bytes:
    """A DNS query message (RFC 1035 4.1) for the A records of `name`. Raise ValueError if the name
    cannot be encoded."""
    labels = name.rstrip(".").encode("idna").split(b".")
    if any(not 0 < len(label) < 64 for label in labels):
        raise ValueError(f"not a resolvable name: {name!r}")
    qname = b"".join(bytes([len(label)]) + label for label in labels) + b"\0"
    header = struct.pack("!HHHHHH", ident, _FLAG_RD, 1, 0, 0, 0)
    return header + qname + struct.pack("!HH", _TYPE_A, _CLASS_IN)


def _skip_name(message: bytes, offset: int) -> int:
    while True:
        length = message[offset]
        if length & 0xC0 == 0xC0:  # a compression pointer ends the name
            return offset + 2
        if length == 0:
            return offset + 1
        offset += 1 + length


def decode_answer(message: bytes) -> tuple[int, str, tuple[str, ...]]:
    """(id, rcode name, IPv4 addresses) of a response. Raise ValueError if it is malformed."""
    try:
        ident, flags, qdcount, ancount, _, _ = struct.unpack_from("!HHHHHH", message)
        if not flags & 0x8000:
            raise ValueError("not a response")
        offset = 12
        for _ in range(qdcount):
            offset = _skip_name(message, offset) + 4
        addresses: list[str] = []
        for _ in range(ancount):
            offset = _skip_name(message, offset)
            rtype, rclass, _ttl, length = struct.unpack_from("!HHIH", message, offset)
            offset += 10
            if rtype == _TYPE_A and rclass == _CLASS_IN and length == 4:
                addresses.append(socket.inet_ntoa(message[offset : offset + 4]))
            offset += length
    except (struct.error, IndexError) as err:
        raise ValueError("truncated DNS message") from err
    rcode = flags & 0x000F
    return ident, _RCODES.get(rcode, f"rcode{rcode}"), tuple(addresses)


def query(server: str, port: int, name: str, *, timeout_s: float) -> DnsAnswer:
    """Ask `server` for `name`'s A records; return within `timeout_s` whatever the resolver does."""
    # Unpredictable, so a stray or forged answer is not taken: os.urandom, as secrets uses, without
    # secrets' import of hmac (which loads OpenSSL's libcrypto, 3.5 MB of RSS).
    ident = int.from_bytes(os.urandom(2), "big")
    try:
        message = encode_query(ident, name)
    except (ValueError, UnicodeError):
        return DnsAnswer(name=name, elapsed_ms=None, rcode="badname")
    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        start = time.perf_counter_ns()
        deadline = start + int(timeout_s * 1e9)
        try:
            sock.connect((server, port))  # connected: the kernel drops datagrams from elsewhere
            sock.send(message)
            while (left := deadline - time.perf_counter_ns()) > 0:
                sock.settimeout(left / 1e9)
                data = sock.recv(4096)
                arrived = time.perf_counter_ns()
                try:
                    got, rcode, addresses = decode_answer(data)
                except ValueError:
                    continue
                if got == ident:
                    elapsed = (arrived - start) / 1e6
                    return DnsAnswer(
                        name=name, elapsed_ms=elapsed, rcode=rcode, addresses=addresses
                    )
        except TimeoutError:
            pass
        except OSError as err:
            # ICMP port unreachable (nothing listens) or no route: the resolver is not there.
            reason = "unreachable" if err.errno is not None else "error"
            return DnsAnswer(name=name, elapsed_ms=None, rcode=reason)
    return DnsAnswer(name=name, elapsed_ms=None, rcode="timeout")


class DnsProbe:
    """Per name: `dns.resolve_ms` when the resolver answered, `dns.success_bool` always."""

    name = "dns"

    def __init__(
        self,
        names: Sequence[str],
        *,
        server: str | None = None,
        port: int = 53,
        timeout_s: float = 2.0,
        system_resolver: ResolverSource = resolv_conf_server,
        ask: Query | None = None,
    ) -> None:
        self._names = tuple(names)
        self._ask: Query = ask or query
        self._server = server
        self._port = port
        self._timeout_s = timeout_s
        self._system_resolver = system_resolver

    def collect(self) -> list[Sample]:
        if not self._names:
            return []
        # Read resolv.conf every round: DHCP on the backhaul rewrites it.
        server = self._server or self._system_resolver()
        samples: list[Sample] = []
        for name in self._names:
            tags = {"name": name, "server": server or "none"}
            if server is None:
                answer = DnsAnswer(name=name, elapsed_ms=None, rcode="noserver")
            else:
                answer = self._ask(server, self._port, name, timeout_s=self._timeout_s)
            tags["rcode"] = answer.rcode
            if answer.elapsed_ms is not None:
                samples.append(
                    Sample(metric="dns.resolve_ms", value=round(answer.elapsed_ms, 3), tags=tags)
                )
            samples.append(
                Sample(metric="dns.success_bool", value=1.0 if answer.ok else 0.0, tags=tags)
            )
        return samples
