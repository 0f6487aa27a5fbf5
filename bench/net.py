"""Loopback plumbing for the benchmarks: a quiet mosquitto of our own, a byte-counting TCP relay
between a client and it, and a subscriber that counts what was published."""

from __future__ import annotations

import contextlib
import selectors
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt

HOST = "127.0.0.1"
# IPv4 (20) + TCP (20) + the timestamp option Linux puts on every segment (12).
HEADER_BYTES = 52
# struct tcp_info: tcpi_segs_out and tcpi_segs_in (linux/tcp.h, since 4.2).
_SEGS_OFFSET = 136


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


class Broker:
    """mosquitto on a free loopback port, logging only errors (the tests' broker logs every
    packet, which would cost the drain and fleet figures the broker's own disk writes)."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        conf = workdir / "mosquitto.conf"
        conf.write_text(
            "\n".join(
                [
                    "per_listener_settings false",
                    "persistence false",
                    "log_dest stderr",
                    "log_type error",
                    "set_tcp_nodelay true",
                    "max_queued_messages 100000",
                    "user root",
                    "allow_anonymous true",
                    f"listener {self.port} {HOST}",
                ]
            )
            + "\n"
        )
        self._log = (workdir / "mosquitto.log").open("ab")
        self.proc = subprocess.Popen(
            ["/usr/sbin/mosquitto", "-c", str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), 0.2):
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on {self.port}; see {workdir}/mosquitto.log")

    def url(self, port: int | None = None) -> str:
        return f"mqtt://{HOST}:{port or self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@dataclass(frozen=True, slots=True, kw_only=True)
class Wire:
    """Bytes between the client and the relay: TCP payload each way and segments both ways."""

    up: int
    down: int
    segments: int

    @property
    def total(self) -> int:
        """Payload plus IPv4/TCP headers: what the link carries (a real link adds its framing)."""
        return self.up + self.down + self.segments * HEADER_BYTES

    def __sub__(self, other: Wire) -> Wire:
        return Wire(
            up=self.up - other.up,
            down=self.down - other.down,
            segments=self.segments - other.segments,
        )


def _segments(sock: socket.socket) -> int:
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    out, seg_in = struct.unpack_from("II", info, _SEGS_OFFSET)
    return int(out + seg_in)


class Relay:
    """Accept on a loopback port and forward to `target_port`, counting every byte and segment
    on the client's side. Exact, unlike /proc/net/dev of lo, which sees every process."""

    def __init__(self, target_port: int) -> None:
        self._target = target_port
        self._listener = socket.create_server((HOST, 0))
        self._listener.setblocking(False)
        self.port = int(self._listener.getsockname()[1])
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._peer: dict[socket.socket, socket.socket] = {}
        self._clients: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._up = self._down = self._closed_segments = 0
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name="relay", daemon=True)
        self._thread.start()

    def wire(self) -> Wire:
        with self._lock:
            live = 0
            for sock in self._clients:
                with contextlib.suppress(OSError):
                    live += _segments(sock)
            return Wire(up=self._up, down=self._down, segments=self._closed_segments + live)

    def _accept(self) -> None:
        client, _ = self._listener.accept()
        try:
            upstream = socket.create_connection((HOST, self._target), 5)
        except OSError:
            client.close()
            return
        for sock in (client, upstream):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
            self._selector.register(sock, selectors.EVENT_READ)
        with self._lock:
            self._peer[client], self._peer[upstream] = upstream, client
            self._clients.add(client)

    def _close(self, sock: socket.socket) -> None:
        with self._lock:
            for one in (sock, self._peer.get(sock)):
                if one is None or one not in self._peer:
                    continue
                if one in self._clients:
                    with contextlib.suppress(OSError):
                        self._closed_segments += _segments(one)
                    self._clients.discard(one)
                self._selector.unregister(one)
                del self._peer[one]
                one.close()

    def _forward(self, sock: socket.socket) -> None:
        try:
            data = sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            self._close(sock)
            return
        with self._lock:
            if sock in self._clients:
                self._up += len(data)
            else:
                self._down += len(data)
            peer = self._peer.get(sock)
        if peer is not None:
            # Blocking for the rest: loopback peers read promptly and the amounts are small.
            peer.setblocking(True)
            try:
                peer.sendall(data)
            except OSError:
                self._close(sock)
            else:
                peer.setblocking(False)

    def _loop(self) -> None:
        while not self._stop:
            for key, _ in self._selector.select(0.2):
                if key.fileobj is self._listener:
                    self._accept()
                else:
                    self._forward(key.fileobj)  # type: ignore[arg-type]

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        for sock in list(self._peer):
            self._close(sock)
        self._listener.close()


class Counter:
    """Subscribe to `topic_filter` straight on the broker and count messages and bytes; `values`
    tells how many readings a message carried."""

    def __init__(self, port: int, topic_filter: str, values: Callable[[str, bytes], int]) -> None:
        self._values = values
        self._lock = threading.Lock()
        self.messages = self.bytes = self.topic_bytes = self.readings = 0
        self.first_at: float | None = None
        self.last_at: float | None = None
        self.samples: list[tuple[str, bytes]] = []
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-{port}")
        self._client.on_message = self._on_message
        subscribed = threading.Event()
        self._client.on_subscribe = lambda *_a: subscribed.set()
        self._client.on_connect = lambda c, *_a: c.subscribe(topic_filter, qos=1)
        self._client.connect(HOST, port)
        self._client.loop_start()
        if not subscribed.wait(10):
            raise RuntimeError("the counting subscriber could not subscribe")

    def _on_message(self, _c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        count = self._values(msg.topic, msg.payload)
        with self._lock:
            now = time.monotonic()
            self.first_at = self.first_at or now
            self.last_at = now
            self.messages += 1
            self.bytes += len(msg.topic.encode()) + len(msg.payload)
            if count:
                self.topic_bytes += len(msg.topic.encode())
            self.readings += count
            if count and len(self.samples) < 200:
                self.samples.append((msg.topic, msg.payload))

    def snapshot(self) -> tuple[int, int, int]:
        """(messages, topic+payload bytes, readings) so far."""
        with self._lock:
            return self.messages, self.bytes, self.readings

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()
