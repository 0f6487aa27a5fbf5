"""The sd_notify client against real unix datagram sockets standing in for systemd."""

import os
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.sdnotify import Notifier, watchdog_interval

# How long the test listens for a ping that must not come; no threshold of the code under test.
SILENCE_S = 0.3


@pytest.fixture
def path_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, dict[str, str]]]:
    """A datagram socket bound in the file system, and the environment systemd would set."""
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        yield sock, {"NOTIFY_SOCKET": str(path)}


@pytest.fixture
def abstract_socket() -> Iterator[tuple[socket.socket, dict[str, str]]]:
    """A datagram socket in the abstract namespace, named the way systemd writes it (@name)."""
    name = f"village-agent-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        yield sock, {"NOTIFY_SOCKET": "@" + name}


def drain(sock: socket.socket) -> list[str]:
    """Every datagram already queued on the socket."""
    sock.setblocking(False)
    messages = []
    try:
        while True:
            messages.append(sock.recv(4096).decode())
    except BlockingIOError:
        return messages
    finally:
        sock.setblocking(True)


def test_every_message_arrives_on_a_path_socket(
    path_socket: tuple[socket.socket, dict[str, str]],
) -> None:
    """READY=1 with its status, WATCHDOG=1, STATUS= and STOPPING=1 arrive as separate datagrams."""
    sock, environ = path_socket
    notifier = Notifier.from_environ(environ)

    assert notifier.ready("broker connected, backlog 0 readings")
    assert notifier.watchdog()
    assert notifier.status("broker down, backlog 12 readings")
    assert notifier.stopping()

    assert drain(sock) == [
        "READY=1\nSTATUS=broker connected, backlog 0 readings",
        "WATCHDOG=1",
        "STATUS=broker down, backlog 12 readings",
        "STOPPING=1",
    ]


def test_messages_arrive_on_an_abstract_socket(
    abstract_socket: tuple[socket.socket, dict[str, str]],
) -> None:
    """An @name NOTIFY_SOCKET reaches the abstract-namespace socket of that name."""
    sock, environ = abstract_socket
    notifier = Notifier.from_environ(environ)

    assert notifier.ready()
    assert notifier.watchdog()

    assert drain(sock) == ["READY=1", "WATCHDOG=1"]


def test_status_text_cannot_forge_other_assignments(
    path_socket: tuple[socket.socket, dict[str, str]],
) -> None:
    """Newlines in a status line are flattened, so the text cannot smuggle in READY=1."""
    sock, environ = path_socket
    notifier = Notifier.from_environ(environ)

    notifier.status("disk full\nREADY=1")

    assert drain(sock) == ["STATUS=disk full READY=1"]


def test_without_notify_socket_everything_is_a_no_op() -> None:
    """Outside systemd nothing is sent, nothing raises, and there is no watchdog to feed."""
    notifier = Notifier.from_environ({"WATCHDOG_USEC": "60000000"})

    assert not notifier.enabled
    assert notifier.watchdog_interval_s is None
    assert not notifier.ready("x")
    assert not notifier.watchdog()
    assert not notifier.status("x")
    assert not notifier.stopping()


def test_a_missing_receiver_returns_false_instead_of_raising(tmp_path: Path) -> None:
    """Sending to a socket path nobody listens on reports failure through the return value."""
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": str(tmp_path / "gone")})

    assert notifier.enabled
    assert not notifier.ready()
    assert not notifier.watchdog()


def test_a_closed_notifier_drops_messages(
    path_socket: tuple[socket.socket, dict[str, str]],
) -> None:
    """After close() the notifier sends nothing and still does not raise."""
    sock, environ = path_socket
    notifier = Notifier.from_environ(environ)

    notifier.close()

    assert not notifier.watchdog()
    assert drain(sock) == []


@pytest.mark.parametrize("value", ["relative/notify", "@", "vsock:2:1234", ""])
def test_unusable_notify_socket_values_disable_the_notifier(value: str) -> None:
    """NOTIFY_SOCKET values that are neither absolute paths nor @names leave a no-op notifier."""
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": value, "WATCHDOG_USEC": "60000000"})

    assert not notifier.enabled
    assert notifier.watchdog_interval_s is None


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"WATCHDOG_USEC": "60000000"}, 30.0),
        ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": str(os.getpid())}, 30.0),
        ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "not-a-pid"}, None),
        ({"WATCHDOG_USEC": "3000000"}, 1.5),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "sixty"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval_is_half_the_timeout_for_our_pid(
    environ: dict[str, str], expected: float | None
) -> None:
    """Half of WATCHDOG_USEC in seconds, unless WATCHDOG_PID names another process or it is invalid."""
    assert watchdog_interval(environ, os.getpid()) == expected


def test_from_environ_reads_the_watchdog_interval(
    path_socket: tuple[socket.socket, dict[str, str]],
) -> None:
    """A notifier built under a unit with WatchdogSec=60s pings every 30 s."""
    _, environ = path_socket
    environ = {**environ, "WATCHDOG_USEC": "60000000", "WATCHDOG_PID": str(os.getpid())}

    assert Notifier.from_environ(environ).watchdog_interval_s == 30.0


def test_pings_stop_when_the_main_loop_hangs(
    path_socket: tuple[socket.socket, dict[str, str]],
) -> None:
    """One ping per healthy iteration, none for a failed one, and silence once the loop is stuck."""
    sock, environ = path_socket
    notifier = Notifier.from_environ(environ)
    iterations_healthy = [True, True, False, True]
    hung = threading.Event()
    unblock = threading.Event()

    def main_loop() -> None:
        for healthy in iterations_healthy:
            if healthy:
                notifier.watchdog()
        hung.set()
        # A probe that never returns: the loop cannot reach its next ping.
        unblock.wait()

    loop = threading.Thread(target=main_loop, daemon=True)
    loop.start()
    try:
        assert hung.wait(timeout=10)
        assert drain(sock) == ["WATCHDOG=1"] * 3

        sock.settimeout(SILENCE_S)
        with pytest.raises(TimeoutError):
            sock.recv(4096)
        assert loop.is_alive()
    finally:
        unblock.set()
        loop.join(timeout=10)
