"""waitress, the production WSGI server, on `http.listen`, in threads of this process."""

from __future__ import annotations

import threading

import structlog
from flask import Flask
from waitress.server import create_server

log = structlog.get_logger("collector.web")


def split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


class HttpServer:
    """Binds at construction (so a taken port fails at start, not later), serves in a thread."""

    def __init__(self, app: Flask, listen: str, *, threads: int = 4) -> None:
        host, port = split_listen(listen)
        # OSError from here: the address is taken or not ours; the caller says so and exits.
        self._server = create_server(app, host=host, port=port, threads=threads, ident=None)
        self._thread = threading.Thread(target=self._server.run, name="http", daemon=True)
        self.listen = listen

    def start(self) -> None:
        self._thread.start()
        log.info("http_listening", listen=self.listen)

    def stop(self) -> None:
        self._server.close()
