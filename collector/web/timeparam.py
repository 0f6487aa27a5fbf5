"""Times in query strings: ISO 8601 (UTC when no offset is given) or epoch seconds."""

from __future__ import annotations

import datetime as dt


class BadTime(ValueError):
    """Neither ISO 8601 nor a number of seconds."""


def parse_time(value: str) -> int:
    """Milliseconds since the epoch. Raise BadTime."""
    try:
        return round(float(value) * 1000)
    except ValueError:
        pass
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as err:
        raise BadTime(value) from err
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return round(moment.timestamp() * 1000)


def month_bounds(value: str) -> tuple[int, int]:
    """`YYYY-MM` -> (first ms of the month, first ms of the next), UTC. Raise BadTime."""
    try:
        first = dt.datetime.strptime(value, "%Y-%m").replace(tzinfo=dt.UTC)
    except ValueError as err:
        raise BadTime(value) from err
    following = (first + dt.timedelta(days=32)).replace(day=1)
    return round(first.timestamp() * 1000), round(following.timestamp() * 1000)
