"""The far end of a speed test: serves bytes fast and swallows uploads. For tests and the lab only.

    GET  /download[?bytes=N]   N bytes (default 1 GB) of zeros; honours `Range: bytes=A-B`
                               unless `ignore_range=1` is in the query
    POST /upload               reads the body (Content-Length or chunked), answers {"received": n}

    python -m simulator.lab.http_sink --host 10.77.0.2 --port 8080

It prints `ready PORT` once listening and, on SIGTERM, a JSON line with the bytes it served and took.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any
from urllib.parse import parse_qs, urlsplit

_BLOCK = bytes(256 * 1024)
_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")
DEFAULT_SIZE = 1_000_000_000


class _Counts:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.served = 0
        self.received = 0


class _Handler(BaseHTTPRequestHandler):
    server: SinkServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the tests read stdout for the ready line and the counts

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path != "/download":
            self.send_error(404)
            return
        query = parse_qs(parts.query)
        size = int(query.get("bytes", [str(DEFAULT_SIZE)])[0])
        start, end = 0, size - 1
        # ?ignore_range=1 plays a server that offers the whole file whatever was asked.
        honour = query.get("ignore_range", ["0"])[0] != "1"
        match = _RANGE.match(self.headers.get("Range", "") or "") if honour else None
        status = 200
        if match:
            start = int(match.group(1))
            end = min(size - 1, int(match.group(2))) if match.group(2) else size - 1
            status = 206
        length = max(0, end - start + 1)
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        left = length
        try:
            while left > 0:
                piece = _BLOCK[: min(len(_BLOCK), left)]
                self.wfile.write(piece)
                left -= len(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped at its time limit
        finally:
            with self.server.counts.lock:
                self.server.counts.served += length - left

    def do_POST(self) -> None:
        if urlsplit(self.path).path != "/upload":
            self.send_error(404)
            return
        received = 0
        try:
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                received = self._read_chunked()
            else:
                left = int(self.headers.get("Content-Length") or 0)
                while left > 0:
                    data = self.rfile.read(min(len(_BLOCK), left))
                    if not data:
                        break
                    received += len(data)
                    left -= len(data)
        except (ConnectionResetError, ValueError):
            self.close_connection = True
            return
        finally:
            with self.server.counts.lock:
                self.server.counts.received += received
        body = json.dumps({"received": received}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _read_chunked(self) -> int:
        received = 0
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return received
            left = size
            while left > 0:
                data = self.rfile.read(min(len(_BLOCK), left))
                if not data:
                    raise ConnectionResetError("body ended inside a chunk")
                received += len(data)
                left -= len(data)
            self.rfile.readline()


class SinkServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, port: int) -> None:
        super().__init__((host, port), _Handler)
        self.counts = _Counts()

    @property
    def port(self) -> int:
        return int(self.server_address[1])


@contextmanager
def serving(host: str = "127.0.0.1", port: int = 0) -> Iterator[SinkServer]:
    """Run a sink in a background thread of this process for the duration of the block."""
    server = SinkServer(host, port)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()


def _stop(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve and swallow bytes for speed tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _stop)
    server = SinkServer(args.host, args.port)
    print(f"ready {server.port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    sys.stdout.write(
        json.dumps({"served": server.counts.served, "received": server.counts.received}) + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
