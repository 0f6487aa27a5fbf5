"""The agent's stop request: set once by the signal handler, seen by the loop and by blocking I/O.

A flag alone cannot end a blocking read: the speed test may wait many seconds for a stalled server,
and SIGTERM must end the agent within 10 s. So code that blocks registers a hook for as long as it
blocks. The signal handler runs in the main thread between bytecodes, also while a `recv` there is
interrupted (PEP 475 retries it after the handler): a hook that shuts the socket down makes that
very `recv` return at once, and a hook that raises `Stopped` leaves a call that has no socket yet.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager


class Stopped(Exception):
    """Raised by a hook, from inside the signal handler, to abandon a blocking call that has no
    socket to shut down yet (a TCP connect, a TLS handshake): like KeyboardInterrupt, it leaves
    the call at once. Also raised on entering `interrupts` when the stop was already requested."""


class Stopping:
    """Whether the agent is stopping, and since when (monotonic seconds)."""

    def __init__(self) -> None:
        self.at: float | None = None
        self._hooks: list[Callable[[], None]] = []

    def __call__(self) -> bool:
        return self.at is not None

    def request(self, now: float) -> None:
        """Ask everything to stop; the first request's time counts."""
        if self.at is not None:
            return
        self.at = now
        for hook in list(self._hooks):
            hook()

    @contextmanager
    def interrupts(self, hook: Callable[[], None]) -> Iterator[None]:
        """Run `hook` if a stop is requested inside this block (at once if it already was)."""
        if self.at is not None:
            hook()
        self._hooks.append(hook)
        try:
            yield
        finally:
            self._hooks.remove(hook)
