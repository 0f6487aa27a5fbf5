"""The webhook: one alert as JSON in an HTTP POST, with the standard library and a short timeout."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Protocol

TIMEOUT_S = 5.0


class SendError(Exception):
    """The webhook did not take the alert; it is sent again on the next pass."""


class Send(Protocol):
    def __call__(self, alert: Mapping[str, object]) -> None:
        """Deliver one alert. Raise SendError if it was not taken."""
        ...


def webhook(url: str, timeout_s: float = TIMEOUT_S) -> Send:
    """A sender that POSTs each alert to `url`; any status outside 2xx is a failure."""

    def send(alert: Mapping[str, object]) -> None:
        body = json.dumps(alert, ensure_ascii=False).encode()
        request = urllib.request.Request(  # noqa: S310 - the URL's scheme is checked by the config
            url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
                status = response.status
        except (urllib.error.URLError, OSError, ValueError) as err:
            raise SendError(str(err)) from err
        if not 200 <= status < 300:
            raise SendError(f"HTTP {status}")

    return send
