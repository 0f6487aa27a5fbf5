"""The sd_notify client, and the daemon's main loop, against real unix datagram sockets standing
in for systemd."""

import itertools
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.clock import SystemClock
from agent.config.load import load_config
from agent.config.schema import Config
from agent.daemon.compose import build_agent, build_link, open_buffer
from agent.daemon.loop import run_loop
from agent.daemon.sdnotify import Notifier, watchdog_interval
from agent.reading import Sample
from tests.support.agent_proc import write_config
from tests.support.mqtt_broker import Broker

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


# -- the daemon's own main loop --------------------------------------------------------------------
# systemd kills the service when no ping arrives within WATCHDOG_USEC; the loop pings every half.
WATCHDOG_USEC = 600_000
WATCHDOG_TIMEOUT_S = WATCHDOG_USEC / 1_000_000


class HangingProbe:
    """A probe that measures at once until told to hang, then blocks until released."""

    name = "hang"

    def __init__(self) -> None:
        self.hang = threading.Event()
        self.hung = threading.Event()  # set while a collect() is blocked
        self.release = threading.Event()

    def collect(self) -> list[Sample]:
        if self.hang.is_set():
            self.hung.set()
            # Bounded, so a failing test cannot leave the loop thread wedged for ever.
            self.release.wait(30)
            self.hung.clear()
        return [Sample(metric="hang.value", value=1.0)]


def _datagrams(sock: socket.socket, seconds: float) -> Iterator[tuple[float, str]]:
    """Each datagram that arrives within `seconds`, with its monotonic arrival time."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            message = sock.recv(4096).decode()
        except TimeoutError:
            return
        yield time.monotonic(), message


def listen(sock: socket.socket, seconds: float) -> list[tuple[float, str]]:
    """Every datagram that arrives within `seconds`, with its monotonic arrival time."""
    return list(_datagrams(sock, seconds))


def receive_until(sock: socket.socket, wanted: str, timeout_s: float = 10.0) -> list[str]:
    """Datagrams up to and including the first equal to (or starting with) `wanted`."""
    heard = []
    for _, message in _datagrams(sock, timeout_s):
        heard.append(message)
        if message.startswith(wanted):
            return heard
    raise AssertionError(f"{wanted!r} never arrived; heard {heard}")


class Daemon:
    """The real agent in `run_loop` on its own thread, wired as `village-agent run` wires it.

    The buffer is opened, and the agent built, on that thread: SQLite connections belong to the
    thread that made them, as in the daemon, where everything runs on the main thread."""

    def __init__(self, config: Config, probe: HangingProbe, notifier: Notifier) -> None:
        self.config = config
        self.probe = probe
        self.notifier = notifier
        self.link = build_link(config)
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.thread: threading.Thread | None = None

    def start(self, *, healthy: Callable[[], bool] | None = None) -> None:
        self.thread = threading.Thread(
            target=self._main, args=(healthy,), name="run-loop", daemon=True
        )
        self.thread.start()

    def _main(self, healthy: Callable[[], bool] | None) -> None:
        config, link, clock = self.config, self.link, SystemClock()
        try:
            buffer, start_samples = open_buffer(config, now=clock.wall())
            agent = build_agent(
                config,
                clock=clock,
                boot_id=str(uuid.uuid4()),
                link=link,
                probes=[self.probe],
                buffer=buffer,
                start_samples=start_samples,
            )
            link.start()
            try:
                run_loop(
                    agent,
                    clock=clock,
                    interval_s=config.interval_s,
                    should_stop=self.stop.is_set,
                    notifier=self.notifier,
                    watchdog_s=self.notifier.watchdog_interval_s,
                    healthy=healthy or (lambda: link.alive),
                )
            finally:
                link.stop(2.0)
                buffer.close()
        except BaseException as err:  # handed to the test thread by finish()
            self.errors.append(err)

    @property
    def looping(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def finish(self) -> None:
        """Ask the loop to stop and wait for it, as SIGTERM does; raise what the loop raised."""
        self.stop.set()
        self.probe.release.set()
        if self.thread is not None:
            self.thread.join(15)
            assert not self.thread.is_alive(), "run_loop did not stop"
        if self.errors:
            raise self.errors[0]


@pytest.fixture
def daemon(
    tmp_path: Path, broker: Broker, path_socket: tuple[socket.socket, dict[str, str]]
) -> Iterator[tuple[Daemon, socket.socket]]:
    """The agent from the composition root: a real buffer on tmp_path, a real MQTT link to a real
    broker, the notifier systemd's environment asks for with WatchdogSec=0.6s, and one probe the
    test controls."""
    sock, environ = path_socket
    environ = {**environ, "WATCHDOG_USEC": str(WATCHDOG_USEC), "WATCHDOG_PID": str(os.getpid())}
    config_file = write_config(
        tmp_path / "site",
        broker_url=broker.url(),
        interval_s=0.2,
        extra={"clock": {"trust_wall_clock": True}},  # no timedatectl calls in the rounds
    )
    config = load_config(config_file)
    config.state_dir.mkdir(parents=True)
    notifier = Notifier.from_environ(environ)
    assert notifier.watchdog_interval_s == WATCHDOG_TIMEOUT_S / 2
    running = Daemon(config, HangingProbe(), notifier)
    try:
        yield running, sock
    finally:
        running.finish()
        notifier.close()


def test_run_loop_stops_pinging_while_a_probe_hangs(
    daemon: tuple[Daemon, socket.socket],
) -> None:
    """The real run_loop: READY, pings within WatchdogSec, none while a probe hangs, STOPPING."""
    running, sock = daemon
    probe = running.probe
    running.start()

    first = receive_until(sock, "READY=1")
    assert first == [first[-1]], "nothing may come before READY"
    assert first[-1].startswith("READY=1\nSTATUS=broker ")
    healthy = listen(sock, 3 * WATCHDOG_TIMEOUT_S)
    pings = [at for at, message in healthy if message == "WATCHDOG=1"]
    assert len(pings) >= 3, healthy
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    assert max(gaps) < WATCHDOG_TIMEOUT_S, gaps

    probe.hang.set()
    assert probe.hung.wait(10), "the loop never reached the hanging probe"
    drain(sock)  # pings sent before the probe blocked
    stuck = listen(sock, 2.5 * WATCHDOG_TIMEOUT_S)
    assert "WATCHDOG=1" not in [message for _, message in stuck], stuck
    assert running.looping

    probe.hang.clear()
    probe.release.set()
    after = receive_until(sock, "WATCHDOG=1")
    # The round that hung finishes and reports its status before the loop pings again.
    assert after[0].startswith("STATUS=broker "), after

    running.finish()
    assert drain(sock)[-1:] == ["STOPPING=1"]


def test_run_loop_sends_no_pings_while_unhealthy(
    daemon: tuple[Daemon, socket.socket],
) -> None:
    """healthy() False (the MQTT thread died): rounds go on with READY and STATUS, but no WATCHDOG."""
    running, sock = daemon
    running.start(healthy=lambda: False)

    receive_until(sock, "READY=1")
    heard = [message for _, message in listen(sock, 3 * WATCHDOG_TIMEOUT_S)]
    assert sum(m.startswith("STATUS=") for m in heard) >= 3, heard
    running.finish()
    heard += drain(sock)

    assert "WATCHDOG=1" not in heard
    assert heard[-1] == "STOPPING=1"
