"""The daemon's main loop on the real clock: rounds on a fixed monotonic grid, link events and
publishing between them, systemd told at each step; and the short drain before exit."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

import structlog

from agent.buffer.errors import BufferError
from agent.clock import Clock
from agent.daemon.rounds import Agent

log = structlog.get_logger("agent")


class Notify(Protocol):
    """The part of the systemd notifier the loop uses."""

    def ready(self, status: str | None = None) -> bool: ...

    def watchdog(self) -> bool: ...

    def status(self, text: str) -> bool: ...

    def stopping(self) -> bool: ...


def run_loop(
    agent: Agent,
    *,
    clock: Clock,
    interval_s: float,
    should_stop: Callable[[], bool],
    notifier: Notify,
    watchdog_s: float | None,
    healthy: Callable[[], bool] = lambda: True,
) -> None:
    """The daemon's main loop on the real clock: rounds on a fixed monotonic grid, events between."""
    next_round = clock.monotonic()
    first = True
    while not should_stop():
        now = clock.monotonic()
        if now >= next_round:
            agent.round(should_stop)
            agent.write_status()
            if first:
                notifier.ready(agent.status_line())
                first = False
            else:
                notifier.status(agent.status_line())
            # Stay on the grid; after an overrun skip the missed slots instead of bunching rounds.
            missed = int((now - next_round) // interval_s)
            next_round += (missed + 1) * interval_s
        # At most 2 s: a stop is noticed that late at worst (its deadline counts from the
        # signal), and fewer wake-ups are most of what the agent costs between rounds.
        wait = max(0.0, min(next_round - clock.monotonic(), 2.0))
        if watchdog_s is not None:
            wait = min(wait, watchdog_s)
        agent.service(wait)
        # The watchdog hears from us only while the loop turns and the MQTT thread lives; if
        # either is stuck, systemd restarts the service.
        if healthy():
            notifier.watchdog()
    notifier.stopping()


def drain_before_exit(agent: Agent, *, timeout_s: float) -> None:
    """Give acknowledgements in flight a moment to arrive, so fewer readings are sent twice."""
    deadline = time.monotonic() + timeout_s
    while agent.outbox.in_flight and time.monotonic() < deadline:
        agent.service(0.05, send=False)
    try:
        agent.outbox.settle(now=True)
    except BufferError as err:
        # A card gone read-only: the rows stay in the file and go again after the restart.
        log.warning("buffer_delete_failed", error=str(err))
