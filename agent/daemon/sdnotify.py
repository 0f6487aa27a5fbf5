"""The sd_notify protocol, spoken directly to systemd's NOTIFY_SOCKET.

systemd passes the path of a unix datagram socket in NOTIFY_SOCKET; a service reports readiness,
liveness and a status line by sending newline-separated ``KEY=value`` assignments to it. That is
small enough to do without libsystemd, which keeps the daemon free of a native dependency.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

# The receiver reads promptly; this only bounds how long a wedged manager can hold the main loop.
SEND_TIMEOUT_S = 1.0


def socket_address(value: str) -> str | None:
    """Turn a NOTIFY_SOCKET value into an address for sendto, or None if we cannot use it.

    ``/path`` is a socket in the file system; ``@name`` is one in the abstract namespace, which
    Python addresses with a leading NUL byte. Other forms (vsock, relative paths) are not used on
    the gateways and are treated as absent.
    """
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    return None


def watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    """Return how often to ping the watchdog in seconds: half of WATCHDOG_USEC, or None if off.

    systemd sets WATCHDOG_PID to the process it expects pings from; a child that inherited the
    environment must not think the watchdog is its job. Half the timeout leaves a whole period of
    slack for one late iteration.
    """
    raw_pid = environ.get("WATCHDOG_PID")
    if raw_pid is not None:
        try:
            if int(raw_pid) != pid:
                return None
        except ValueError:
            return None
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    return usec / 1_000_000 / 2


class Notifier:
    """Report state to systemd; a no-op when the process was not started by a Type=notify unit.

    Every method returns True when the message was handed to the socket and False otherwise; none
    raises, because a failing notification must never take the daemon down (systemd's watchdog is
    what notices if pings stop arriving).
    """

    def __init__(self, address: str | None, *, watchdog_interval_s: float | None = None) -> None:
        """Open a datagram socket for ``address`` (as returned by socket_address); None disables."""
        self.watchdog_interval_s = watchdog_interval_s
        self._address = address
        self._sock: socket.socket | None = None
        if address is None:
            return
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        except OSError:
            # AF_UNIX forbidden by a sandbox, or out of descriptors: carry on without systemd.
            self._address = None
            return
        sock.settimeout(SEND_TIMEOUT_S)
        self._sock = sock

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> Notifier:
        """Build the notifier systemd asked for through the environment; no-op if NOTIFY_SOCKET is unset."""
        raw = environ.get("NOTIFY_SOCKET", "")
        address = socket_address(raw) if raw else None
        interval = watchdog_interval(environ, os.getpid()) if address is not None else None
        return cls(address, watchdog_interval_s=interval)

    @property
    def enabled(self) -> bool:
        """Whether messages go anywhere."""
        return self._sock is not None

    def ready(self, status: str | None = None) -> bool:
        """Tell systemd start-up is complete, optionally with a first status line."""
        if status is None:
            return self._send("READY=1")
        return self._send(f"READY=1\nSTATUS={_one_line(status)}")

    def watchdog(self) -> bool:
        """Ping the watchdog: the main loop is alive and healthy."""
        return self._send("WATCHDOG=1")

    def status(self, text: str) -> bool:
        """Set the line `systemctl status` shows."""
        return self._send(f"STATUS={_one_line(text)}")

    def stopping(self) -> bool:
        """Tell systemd a clean shutdown has begun."""
        return self._send("STOPPING=1")

    def close(self) -> None:
        """Release the socket; later messages are dropped."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _send(self, message: str) -> bool:
        if self._sock is None or self._address is None:
            return False
        try:
            # sendto on an unconnected socket: nothing to reconnect if systemd re-executes and
            # binds the socket anew.
            self._sock.sendto(message.encode("utf-8", "replace"), self._address)
        except OSError:
            return False
        return True


def _one_line(text: str) -> str:
    # A newline would start a new assignment and let status text forge READY=1 or WATCHDOG=1.
    return " ".join(text.splitlines())
