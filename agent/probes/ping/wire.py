"""What a ping round does on the wire and in the resolver: ICMP echo sockets, requests and the
matching of replies, TCP connect probes, errors in words, and name lookups that cannot stall it.

Which ICMP socket a process gets depends on capabilities, `net.ipv4.ping_group_range`, namespaces
and seccomp; trying is the only check that sees them all the way the kernel does. Requests carry a
random cookie so that another pinger's echoes on the same host are never taken for ours.
`agent.probes.ping` schedules these into a bounded round.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import socket
import struct
import threading
from dataclasses import dataclass, field
from typing import Any, Literal

Method = Literal["icmp-raw", "icmp-dgram", "tcp"]
Preference = Literal["auto", "icmp", "tcp"]

COOKIE_LEN = 8
_ECHO_REQUEST: dict[int, int] = {socket.AF_INET: 8, socket.AF_INET6: 128}
_ECHO_REPLY: dict[int, int] = {socket.AF_INET: 0, socket.AF_INET6: 129}
_PROTO: dict[int, int] = {
    socket.AF_INET: socket.IPPROTO_ICMP,
    socket.AF_INET6: socket.IPPROTO_ICMPV6,
}
_SOL_RAW = 255  # <linux/socket.h>; ICMP_FILTER lives at this level for raw IPv4 sockets
_ICMP_FILTER = 1  # same option number for ICMP_FILTER (SOL_RAW) and ICMP6_FILTER (IPPROTO_ICMPV6)
# The stdlib names none of the kernel's timestamping options; these are the asm-generic numbers,
# which ARM and x86 use. The _NEW option of each pair carries 64-bit time on every ABI (Linux
# >= 5.1, and 32-bit Raspberry Pi OS needs it past 2038); the _OLD one is tried next.
_SO_TIMESTAMPING = (65, 37)
_SO_TIMESTAMPNS = (64, 35)
# Software stamps both ways: the send stamped as the packet enters the interface's queue (so a
# queue on the gateway itself still counts as path delay, but our own wait for the CPU does not),
# the arrival as the packet reaches the stack. OPT_ID numbers the send stamps per socket;
# OPT_TSONLY returns them without a copy of the packet.
_SOF_TX_SCHED = 1 << 8
_SOF_RX_SOFTWARE = 1 << 3
_SOF_SOFTWARE = 1 << 4
_SOF_OPT_ID = 1 << 7
_SOF_OPT_TSONLY = 1 << 11
_TIMESTAMPING = _SOF_TX_SCHED | _SOF_RX_SOFTWARE | _SOF_SOFTWARE | _SOF_OPT_ID | _SOF_OPT_TSONLY
_SO_EE_ORIGIN_TIMESTAMPING = 4  # <linux/errqueue.h>
_SCM_TSTAMP_SCHED = 1
# The ancillary message that carries `struct sock_extended_err` on the error queue: IP_RECVERR
# (11) at SOL_IP, IPV6_RECVERR (25) at SOL_IPV6.
_RECVERR = {(socket.IPPROTO_IP, 11), (socket.IPPROTO_IPV6, 25)}
# A kernel receive stamp later than our own wake-up, or earlier by more than a stalled process
# plausibly lags, means the wall clock was stepped during the round trip. NTP daemons slew
# offsets below 128 ms instead of stepping, so a step that slips past this check is rare.
_MAX_WAKE_DELAY_NS = 100_000_000
ANCILLARY_SPACE = socket.CMSG_SPACE(48)  # room for one scm_timestamping (three timespecs)
ERRQUEUE_SPACE = socket.CMSG_SPACE(48) + socket.CMSG_SPACE(64)  # a send stamp and its key
_TCP_INFO_TOTAL_RETRANS = 100  # byte offset of tcpi_total_retrans in <linux/tcp.h> struct tcp_info
_REASONS = {
    errno.ENETUNREACH: "network unreachable",
    errno.EHOSTUNREACH: "no route to host",
    errno.ENETDOWN: "network down",
    errno.EHOSTDOWN: "host down",
    errno.EACCES: "not permitted",
    errno.EPERM: "not permitted",
    errno.EADDRNOTAVAIL: "no source address",
    errno.EINVAL: "no usable route",  # what a blackhole route answers to a local sender
}


def reason(err: int | None) -> str:
    """An errno in the words the readings and the log use."""
    err = err or errno.EIO
    return _REASONS.get(err, os.strerror(err).lower())


def open_icmp(family: int) -> tuple[Method, socket.socket, bool] | None:
    """Open the best ICMP socket this process may have, non-blocking, or None when only TCP is
    left. The flag says whether the kernel stamps the sends (see `send_stamps`)."""
    kinds: tuple[tuple[int, Method], ...] = (
        (socket.SOCK_RAW, "icmp-raw"),
        (socket.SOCK_DGRAM, "icmp-dgram"),
    )
    for kind, method in kinds:
        try:
            sock = socket.socket(family, kind, _PROTO[family])
        except OSError:
            # EPERM without CAP_NET_RAW, EACCES outside net.ipv4.ping_group_range, EAFNOSUPPORT
            # without IPv6: trying is the only check that sees capabilities, namespaces and
            # seccomp the same way the kernel does.
            continue
        sock.setblocking(False)
        if kind == socket.SOCK_RAW:
            _pass_only_echo_replies(sock, family)
        return method, sock, _stamp_in_kernel(sock)
    return None


def _pass_only_echo_replies(sock: socket.socket, family: int) -> None:
    # Every raw ICMP socket gets a copy of every ICMP packet the host receives; the kernel filter
    # keeps requests, errors and the rest of that traffic from waking the loop.
    reply = _ECHO_REPLY[family]
    try:
        if family == socket.AF_INET:
            sock.setsockopt(_SOL_RAW, _ICMP_FILTER, struct.pack("=I", ~(1 << reply) & 0xFFFFFFFF))
        else:
            words = [0xFFFFFFFF] * 8  # a set bit blocks that type
            words[reply >> 5] &= ~(1 << (reply & 31)) & 0xFFFFFFFF
            sock.setsockopt(socket.IPPROTO_ICMPV6, _ICMP_FILTER, struct.pack("=8I", *words))
    except OSError:
        pass  # an optimisation only: replies are matched in userspace anyway


def _stamp_in_kernel(sock: socket.socket) -> bool:
    """Ask the kernel to stamp sends and arrivals; else arrivals only. True when sends are
    stamped too.

    Our own clock readings around sendto() and recvmsg() include the time this process waited for
    the CPU, milliseconds on a busy Pi; the kernel's stamps do not. Both are wall-clock stamps
    (the kernel offers no other), so a round trip is one difference on one clock."""
    for option in _SO_TIMESTAMPING:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, option, _TIMESTAMPING)
            return True
    for option in _SO_TIMESTAMPNS:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, option, 1)
            return False
    return False


def _kernel_stamp(ancillary: list[tuple[int, int, bytes]]) -> int | None:
    """The software stamp in `ancillary` (SCM_TIMESTAMPNS or the first of SCM_TIMESTAMPING's three
    timespecs), in wall-clock nanoseconds."""
    for level, kind, data in ancillary:
        if level != socket.SOL_SOCKET:
            continue
        if kind in _SO_TIMESTAMPING:
            size = len(data) // 3
        elif kind in _SO_TIMESTAMPNS:
            size = len(data)
        else:
            continue
        # A 64-bit timespec is two int64; the old options on a 32-bit ABI give two int32.
        seconds, nanoseconds = struct.unpack_from("=qq" if size >= 16 else "=ll", data)
        if seconds or nanoseconds:
            return int(seconds) * 1_000_000_000 + int(nanoseconds)
    return None


def send_stamps(sock: socket.socket) -> list[tuple[int, int]]:
    """Read the send stamps the kernel queued on `sock`'s error queue: (key, wall-clock ns) pairs,
    the key counting this socket's sends from 0. Never blocks."""
    stamps: list[tuple[int, int]] = []
    while True:
        try:
            _, ancillary, _, _ = sock.recvmsg(0, ERRQUEUE_SPACE, socket.MSG_ERRQUEUE)
        except (BlockingIOError, InterruptedError):
            return stamps
        except OSError:
            return stamps  # nothing stamped can be read: the arrival stamp alone serves
        stamp = _kernel_stamp(ancillary)
        for level, kind, data in ancillary:
            if (level, kind) not in _RECVERR or len(data) < 16 or stamp is None:
                continue
            # struct sock_extended_err: errno, origin, type, code, pad, info, data
            _, origin, _, _, _, info, key = struct.unpack_from("=IBBBBII", data)
            if origin == _SO_EE_ORIGIN_TIMESTAMPING and info == _SCM_TSTAMP_SCHED:
                stamps.append((key, stamp))


def kernel_rtt_ns(
    rtt_ns: int,
    ancillary: list[tuple[int, int, bytes]],
    sent_wall_ns: int,
    sent_kernel_ns: int | None = None,
) -> int:
    """The round trip between the kernel's send and arrival stamps when there are believable ones,
    else from our wall-clock reading before sendto() to the arrival stamp, else `rtt_ns`
    (measured to this process's wake-up on the monotonic clock).

    Every one of them starts no later than the packet left and ends no earlier than the answer
    came: waiting for the CPU can only lengthen them, never shorten them below the path. That
    needs the send's monotonic reading taken before its wall-clock one (`sent_wall_ns`)."""
    arrived = _kernel_stamp(ancillary)
    if arrived is None:
        return rtt_ns
    stamped = arrived - sent_wall_ns
    if not 0 < stamped <= rtt_ns <= stamped + _MAX_WAKE_DELAY_NS:
        return rtt_ns
    if sent_kernel_ns is not None and sent_wall_ns <= sent_kernel_ns < arrived:
        return arrived - sent_kernel_ns
    return stamped


def available_method(preferred: Preference = "auto", family: int = socket.AF_INET) -> Method:
    """Return the method a round would use for `family`: raw ICMP when the process may open a raw
    socket, else datagram ICMP when ping_group_range admits its group, else TCP connect time."""
    if preferred == "tcp":
        return "tcp"
    opened = open_icmp(family)
    if opened is None:
        return "tcp"
    method, sock, _ = opened
    sock.close()
    return method


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def echo_request(family: int, ident: int, seq: int, payload: bytes) -> bytes:
    """An ICMP or ICMPv6 echo request carrying `payload`."""
    kind = _ECHO_REQUEST[family]
    # The kernel computes the ICMPv6 checksum (it covers a pseudo-header we do not see) and, for
    # datagram sockets, rewrites the identifier and the IPv4 checksum too; raw IPv4 needs ours.
    csum = _checksum(struct.pack("!BBHHH", kind, 0, 0, ident, seq) + payload)
    csum = csum if family == socket.AF_INET else 0
    return struct.pack("!BBHHH", kind, 0, csum, ident, seq) + payload


def packed_address(family: int, text: str) -> bytes:
    """The address in network byte order, without an IPv6 scope."""
    return socket.inet_pton(family, text.split("%", 1)[0])


@dataclass(frozen=True, slots=True)
class EchoMark:
    """What marks one target's echo requests, so that only replies to them count: a random
    identifier, first sequence number and payload cookie."""

    ident: int = field(default_factory=lambda: random.randrange(0x10000))
    seq0: int = field(default_factory=lambda: random.randrange(0x10000))
    cookie: bytes = field(default_factory=lambda: random.randbytes(COOKIE_LEN))

    def request(self, family: int, index: int) -> bytes:
        """The echo request for probe number `index`."""
        return echo_request(family, self.ident, (self.seq0 + index) & 0xFFFF, self.cookie)

    def index_of(
        self, data: bytes, source: str, family: int, method: Method, peer: bytes
    ) -> int | None:
        """The probe number `data` answers when it is an echo reply to one of ours, from the
        address asked (`peer`, packed) and, on raw sockets, with our identifier. Else None."""
        if family == socket.AF_INET and method == "icmp-raw":
            data = data[(data[0] & 0x0F) * 4 :]  # raw IPv4 sockets see the IP header
        if len(data) < 8 + COOKIE_LEN:
            return None
        kind, _, _, ident, seq = struct.unpack_from("!BBHHH", data)
        if (
            kind != _ECHO_REPLY[family]
            or data[8 : 8 + COOKIE_LEN] != self.cookie
            or (method == "icmp-raw" and ident != self.ident)
            or packed_address(family, source) != peer
        ):
            return None  # someone else's echo (the kernel owns datagram sockets' identifiers)
        index: int = (seq - self.seq0) & 0xFFFF
        return index


def tcp_socket(family: int) -> socket.socket:
    """A non-blocking TCP socket for one connect-time probe. Raise OSError if none can be had."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    # Close with a RST: no FIN exchange and no TIME_WAIT on either side, fewer packets on a
    # metered link and nothing for the far end to keep.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return sock


def tcp_round_trip(sock: socket.socket, err: int) -> tuple[bool, str | None]:
    """Whether a finished connect (`err` from connect_ex or SO_ERROR) proves one clean round trip,
    and the error in words when it failed."""
    if err not in (0, errno.ECONNREFUSED):
        return False, reason(err)
    # A handshake and a refusal both prove the round trip. But when the kernel had to resend
    # the SYN, the time includes its retransmission timeout (1 s): the first try was lost.
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_TOTAL_RETRANS + 4)
    if len(info) >= _TCP_INFO_TOTAL_RETRANS + 4:
        (retransmits,) = struct.unpack_from("=I", info, _TCP_INFO_TOTAL_RETRANS)
        if retransmits:
            return False, None
    return True, None


class Wakeup:
    """A pipe that resolver threads ring to wake the poll loop. Closed under a lock, so a thread
    that outlives its round never writes into a descriptor number the process has since reused."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._lock = threading.Lock()
        self._closed = False

    def fileno(self) -> int:
        return self._read

    def ring(self) -> None:
        with self._lock:
            if not self._closed:
                # A full pipe has been rung often enough to wake the loop.
                with contextlib.suppress(BlockingIOError):
                    os.write(self._write, b"\0")

    def drain(self) -> None:
        try:
            while os.read(self._read, 512):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        with self._lock:
            self._closed = True
            os.close(self._read)
            os.close(self._write)


@dataclass(slots=True)
class Lookup:
    """A name lookup running in its own thread; read the fields once `done` is set."""

    done: threading.Event = field(default_factory=threading.Event)
    family: int = 0
    sockaddr: tuple[Any, ...] = ()
    error: str | None = None


def start_lookup(name: str, wakeup: Wakeup) -> Lookup:
    """Resolve `name` in a daemon thread that rings `wakeup` when done; a literal address is
    done at once, without touching the network or starting a thread."""
    box = Lookup()
    try:
        info = socket.getaddrinfo(name, None, flags=socket.AI_NUMERICHOST)[0]
    except (OSError, UnicodeError):
        pass
    else:
        box.family, box.sockaddr = info[0], tuple(info[4])
        box.done.set()
        return box
    thread = threading.Thread(
        target=_resolve, args=(name, box, wakeup), name=f"resolve-{name}", daemon=True
    )
    thread.start()
    return box


def _resolve(name: str, box: Lookup, wakeup: Wakeup) -> None:
    # getaddrinfo cannot be interrupted; the round abandons this thread at its deadline and the
    # thread ends on the resolver's own timeout (seconds), so dead DNS leaves few threads behind.
    try:
        infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
        family, _, _, _, sockaddr = next(
            i for i in infos if i[0] in (socket.AF_INET, socket.AF_INET6)
        )
        box.family, box.sockaddr = family, tuple(sockaddr)
    except (OSError, UnicodeError, StopIteration):
        box.error = "name not resolved"
    box.done.set()
    wakeup.ring()
