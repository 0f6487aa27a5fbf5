"""The Flask application. Routes read through a `Reader`, never the writer's connection: /metrics,
/healthz, and the dashboard (pages in `pages.py`, JSON and CSV in `data.py`, gzip in `compress.py`)."""

from __future__ import annotations

from flask import Flask, Response

from collector import __version__
from collector.bridge.prometheus import CONTENT_TYPE, exposition
from collector.confirm.metrics import confirmation_lines
from collector.store.reader import Reader
from collector.web.compress import enable_gzip
from collector.web.data import add_data
from collector.web.pages import add_pages
from collector.web.settings import DashboardSettings


def create_app(reader: Reader, settings: DashboardSettings | None = None) -> Flask:
    app = Flask("collector.web")
    app.json.sort_keys = False  # type: ignore[attr-defined]  # keep the documented field order
    dashboard = settings if settings is not None else DashboardSettings()

    @app.get("/metrics")
    def metrics() -> Response:
        lines = [
            *exposition(reader.latest(), reader.sites()),
            *confirmation_lines(reader.confirmations()),
        ]
        body = "\n".join(lines) + "\n"
        return Response(body, mimetype=None, content_type=CONTENT_TYPE)

    @app.get("/healthz")
    def healthz() -> Response:
        return Response(f"village-collector {__version__}\n", content_type="text/plain")

    add_pages(app, reader, dashboard)
    add_data(app, reader, dashboard)
    enable_gzip(app)
    return app
