"""The Flask application. Routes read through a `Reader`, never the writer's connection; the dashboard
joins this app as templates and routes of its own."""

from __future__ import annotations

from flask import Flask, Response

from collector import __version__
from collector.bridge.prometheus import CONTENT_TYPE, exposition
from collector.store.reader import Reader


def create_app(reader: Reader) -> Flask:
    app = Flask("collector.web")

    @app.get("/metrics")
    def metrics() -> Response:
        body = "\n".join(exposition(reader.latest(), reader.sites())) + "\n"
        return Response(body, mimetype=None, content_type=CONTENT_TYPE)

    @app.get("/healthz")
    def healthz() -> Response:
        return Response(f"village-collector {__version__}\n", content_type="text/plain")

    return app
