"""The agent's MQTT link behind a simulated network that can be cut.

While the simulated network between the site and the broker is down there is no connection at all:
the current `MqttLink` is aborted (as a dead backhaul would leave it) and no new one is started until
the network returns. Everything else, the real paho client and the real broker included, is real.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from agent.publish.link import Disconnected, LinkEvent, MqttLink


class GatedLink:
    """Stands where `MqttLink` stands (the agent's `AgentLink`: the outbox's `Link` and its events)."""

    def __init__(self, factory: Callable[[], MqttLink]) -> None:
        self._factory = factory
        self._link: MqttLink | None = None
        self._spill: deque[LinkEvent] = deque()

    def set_reachable(self, reachable: bool) -> None:
        """Open or cut the simulated network; a cut is noticed by the agent as a lost connection."""
        if reachable and self._link is None:
            self._link = self._factory()
            self._link.start()
        elif not reachable and self._link is not None:
            link, self._link = self._link, None
            link.abort()
            # Acknowledgements that arrived before the cut were real: the agent still gets them.
            event = link.next_event(0)
            while event is not None:
                self._spill.append(event)
                event = link.next_event(0)
            self._spill.append(Disconnected(0, "simulated network cut", 0.0))

    @property
    def connected(self) -> bool:
        return self._link is not None and self._link.connected

    def publish(
        self, topic: str, payload: bytes, *, retain: bool = False
    ) -> tuple[int, int] | None:
        if self._link is None:
            return None
        return self._link.publish(topic, payload, retain=retain)

    def next_event(self, timeout_s: float) -> LinkEvent | None:
        if self._spill:
            return self._spill.popleft()
        if self._link is None:
            return None
        return self._link.next_event(timeout_s)

    def abort(self) -> None:
        """The power goes: the connection dies without a word and nothing more is heard from it."""
        if self._link is not None:
            self._link.abort()
            self._link = None
        self._spill.clear()

    def stop(self, timeout_s: float = 2.0) -> None:
        if self._link is not None:
            self._link.stop(timeout_s)
            self._link = None
