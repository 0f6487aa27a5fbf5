"""gzip for the dashboard's pages, JSON and CSV: a thousand-row overview travels a slow provincial link
in a tenth of its size. waitress does not compress, so the app does, for clients that ask."""

from __future__ import annotations

import gzip

from flask import Flask, Response, request

_MIN_BYTES = 1024
_TYPES = ("text/html", "text/csv", "application/json", "text/css", "text/javascript")


def enable_gzip(app: Flask) -> None:
    @app.after_request
    def _gzip(response: Response) -> Response:
        if (
            response.direct_passthrough
            or response.status_code != 200
            or "Content-Encoding" in response.headers
            or "gzip" not in request.headers.get("Accept-Encoding", "")
            or not (response.mimetype or "").startswith(_TYPES)
        ):
            return response
        body = response.get_data()
        if len(body) < _MIN_BYTES:
            return response
        response.set_data(gzip.compress(body, compresslevel=6))
        response.headers["Content-Encoding"] = "gzip"
        response.vary.add("Accept-Encoding")
        return response
