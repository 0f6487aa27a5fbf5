"""A hostile or old MQTT broker on a free loopback port: the behaviours a real mosquitto will not
show on demand (refusing MQTT 5, never acknowledging, announcing a huge packet, a DISCONNECT with
a chosen reason). It speaks just enough MQTT to get there; every connection is recorded.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal, Self

HOST = "127.0.0.1"
_CONNECT, _PUBLISH, _PINGREQ, _DISCONNECT = 1, 3, 12, 14


@dataclass(slots=True)
class Seen:
    """One client connection as the fake saw it."""

    protocol_level: int = 0  # 4: MQTT 3.1.1, 5: MQTT 5
    max_packet_size: int | None = None  # the CONNECT's Maximum Packet Size property (MQTT 5)
    publishes: list[tuple[str, bytes]] = field(default_factory=list)


@dataclass(frozen=True, slots=True, kw_only=True)
class Behaviour:
    """What the fake does. `refuse_v5`: answer an MQTT 5 CONNECT with a 3.1.1 CONNACK return code
    1 ("connack"), or close without a word ("close"). `puback`: acknowledge PUBLISHes on the
    connections whose index (from 0) it names, or on all (`None`). `huge_publish`: after CONNACK,
    announce a PUBLISH of this many bytes and stream it. `disconnect_reason`: after CONNACK, send
    an MQTT 5 DISCONNECT with this reason code."""

    refuse_v5: Literal["connack", "close"] | None = None
    puback: frozenset[int] | None = None
    huge_publish: int | None = None
    disconnect_reason: int | None = None


class FakeBroker:
    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.seen: list[Seen] = []
        self.sent_bytes = 0
        self._listener = socket.create_server((HOST, 0))
        self._listener.settimeout(0.2)
        self.port: int = self._listener.getsockname()[1]
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accepter = threading.Thread(target=self._accept, daemon=True)

    def url(self) -> str:
        return f"mqtt://{HOST}:{self.port}"

    def __enter__(self) -> Self:
        self._accepter.start()
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self._stopping.set()
        self._accepter.join(2)
        for thread in self._threads:
            thread.join(2)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            seen = Seen()
            index = len(self.seen)
            self.seen.append(seen)
            thread = threading.Thread(target=self._serve, args=(conn, seen, index), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket, seen: Seen, index: int) -> None:
        conn.settimeout(0.2)
        with contextlib.closing(conn), contextlib.suppress(OSError, ConnectionError):
            while not self._stopping.is_set():
                packet = self._read_packet(conn)
                if packet is None:
                    return
                kind, flags, body = packet
                if kind == _CONNECT:
                    if not self._connect(conn, seen, body):
                        return
                elif kind == _PUBLISH:
                    self._publish(conn, seen, index, flags, body)
                elif kind == _PINGREQ:
                    conn.sendall(b"\xd0\x00")
                elif kind == _DISCONNECT:
                    return

    def _connect(self, conn: socket.socket, seen: Seen, body: bytes) -> bool:
        name_len = struct.unpack("!H", body[:2])[0]
        at = 2 + name_len
        seen.protocol_level = body[at]
        at += 4  # level, flags, keepalive
        v5 = seen.protocol_level == 5
        if v5:
            length, at = _varint(body, at)
            seen.max_packet_size = _max_packet_size(body[at : at + length])
        if v5 and self.behaviour.refuse_v5 == "close":
            return False
        if v5 and self.behaviour.refuse_v5 == "connack":
            conn.sendall(b"\x20\x02\x00\x01")
            return False
        conn.sendall(b"\x20\x03\x00\x00\x00" if v5 else b"\x20\x02\x00\x00")
        if self.behaviour.disconnect_reason is not None and v5:
            conn.sendall(bytes([0xE0, 2, self.behaviour.disconnect_reason, 0]))
            return False
        if self.behaviour.huge_publish is not None:
            self._stream_huge(conn, self.behaviour.huge_publish)
            return False
        return True

    def _stream_huge(self, conn: socket.socket, size: int) -> None:
        header = b"\x30" + _encode_varint(size) + b"\x00\x01x"
        conn.settimeout(5)
        conn.sendall(header)
        chunk = b"\x00" * 65536
        left = size - 3
        while left > 0 and not self._stopping.is_set():
            sent = conn.send(chunk[: min(left, len(chunk))])
            self.sent_bytes += sent
            left -= sent

    def _publish(
        self, conn: socket.socket, seen: Seen, index: int, flags: int, body: bytes
    ) -> None:
        topic_len = struct.unpack("!H", body[:2])[0]
        topic = body[2 : 2 + topic_len].decode()
        at = 2 + topic_len
        qos = (flags >> 1) & 3
        mid = 0
        if qos:
            mid = struct.unpack("!H", body[at : at + 2])[0]
            at += 2
        if seen.protocol_level == 5:
            length, at = _varint(body, at)
            at += length
        seen.publishes.append((topic, body[at:]))
        acks = self.behaviour.puback
        if qos and (acks is None or index in acks):
            conn.sendall(b"\x40\x02" + struct.pack("!H", mid))

    def _read_packet(self, conn: socket.socket) -> tuple[int, int, bytes] | None:
        first = self._read(conn, 1)
        if not first:
            return None
        length, multiplier = 0, 1
        while True:
            byte = self._read(conn, 1)
            if not byte:
                return None
            length += (byte[0] & 127) * multiplier
            multiplier *= 128
            if not byte[0] & 128:
                break
        body = self._read(conn, length) if length else b""
        if body is None:
            return None
        return first[0] >> 4, first[0] & 15, body

    def _read(self, conn: socket.socket, size: int) -> bytes | None:
        data = b""
        while len(data) < size:
            if self._stopping.is_set():
                return None
            try:
                more = conn.recv(size - len(data))
            except TimeoutError:
                continue
            if not more:
                return None
            data += more
        return data


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value, multiplier = 0, 1
    while True:
        byte = data[at]
        at += 1
        value += (byte & 127) * multiplier
        multiplier *= 128
        if not byte & 128:
            return value, at


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value % 128, value // 128
        out.append(byte | (128 if value else 0))
        if not value:
            return bytes(out)


# MQTT 5 property identifiers a CONNECT may carry, and the size of their values (-1: a string or
# binary with a 2-byte length; -2: a user property, two strings).
_PROPERTY_SIZES = {
    0x11: 4,
    0x21: 2,
    0x22: 2,
    0x27: 4,
    0x19: 1,
    0x17: 1,
    0x15: -1,
    0x16: -1,
    0x26: -2,
}


def _max_packet_size(properties: bytes) -> int | None:
    at = 0
    found = None
    while at < len(properties):
        ident = properties[at]
        at += 1
        size = _PROPERTY_SIZES[ident]
        if size == 4 and ident == 0x27:
            found = struct.unpack("!I", properties[at : at + 4])[0]
        if size > 0:
            at += size
        else:
            for _ in range(-size):
                at += 2 + struct.unpack("!H", properties[at : at + 2])[0]
    return found
