"""Which MQTT version to speak to a broker under `broker.protocol: auto`, remembered across restarts.

MQTT 5 first. A broker that refuses it (CONNACK "Unsupported protocol version", 3.1.1's return code 1,
or a close before any CONNACK, as RabbitMQ 3.10 does) and then answers a 3.1.1 CONNECT is remembered
as a 3.1.1 broker, keyed by its URL, in `mqtt_protocol.json` in the state directory; after a day MQTT
5 is tried again, since brokers get upgraded. This module is the only one that reads or writes that
file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from agent.config.schema import BrokerConfig
from agent.files import PROTOCOL_FILE, read_json, replace_json_durably

Version = Literal["5", "3.1.1"]

# How long a broker stays "3.1.1 only" before MQTT 5 is tried again.
RETRY_V5_AFTER_S = 86_400.0

# Why a version was chosen: the words `diag` and the status file use (catalogue keys end in these).
WHY_CONFIGURED = "configured"
WHY_DEFAULT = "default"
WHY_REMEMBERED = "remembered"
WHY_FALLBACK = "fallback"


@dataclass(frozen=True, slots=True, kw_only=True)
class Choice:
    """The version for the next connection, why, and since when (wall time) a fallback holds."""

    version: Version
    why: str
    since: float | None = None
    detail: str = ""


class ProtocolMemory:
    """The fallback decisions of `auto`, per broker URL; a file in `state_dir` or, without one, only
    in memory (`buffer import`, tests). `wall` is the injected wall clock."""

    def __init__(
        self,
        state_dir: Path | None,
        *,
        wall: Callable[[], float],
        retry_after_s: float = RETRY_V5_AFTER_S,
    ) -> None:
        self._path = None if state_dir is None else state_dir / PROTOCOL_FILE
        self._wall = wall
        self._retry_after_s = retry_after_s
        self._brokers: dict[str, dict[str, object]] = {}
        data = None if self._path is None else read_json(self._path)
        brokers = (data or {}).get("brokers")
        if isinstance(brokers, dict):
            self._brokers = {k: v for k, v in brokers.items() if isinstance(v, dict)}

    def choose(self, broker: BrokerConfig) -> Choice:
        """The version to connect with next."""
        if broker.protocol != "auto":
            return Choice(version=broker.protocol, why=WHY_CONFIGURED)
        entry = self._brokers.get(broker.url, {})
        since, detail = entry.get("since"), entry.get("detail")
        if entry.get("version") == "3.1.1" and isinstance(since, int | float):
            age = self._wall() - since
            # A wall clock stepped back (no RTC, fake-hwclock) makes the age negative: try 5 again
            # rather than trust a date that cannot be right.
            if 0 <= age < self._retry_after_s:
                return Choice(
                    version="3.1.1",
                    why=WHY_REMEMBERED,
                    since=float(since),
                    detail=detail if isinstance(detail, str) else "",
                )
        return Choice(version="5", why=WHY_DEFAULT)

    def fell_back(self, broker: BrokerConfig, detail: str) -> bool:
        """Record that `broker` refused MQTT 5 and took 3.1.1. Return True if this is news (it
        was not remembered before), so the caller logs it once. Raise OSError if the file cannot
        be written; the choice then holds in memory."""
        known = self._brokers.get(broker.url, {}).get("version") == "3.1.1"
        self._brokers[broker.url] = {"version": "3.1.1", "since": self._wall(), "detail": detail}
        self._save()
        return not known

    def v5_accepted(self, broker: BrokerConfig) -> bool:
        """Forget a fallback once the broker took MQTT 5. Return True if there was one."""
        if self._brokers.pop(broker.url, None) is None:
            return False
        self._save()
        return True

    def _save(self) -> None:
        if self._path is not None:
            replace_json_durably(self._path, {"brokers": self._brokers})
