"""A real RabbitMQ with its MQTT plugin, started by the tests in a directory of their own.

Everything the node writes or listens on is its own: Mnesia and log directories under `workdir`, a
node name nobody else uses, and free loopback ports for AMQP, MQTT, Erlang distribution and epmd.
The machine's own RabbitMQ (5672, 1883, epmd 4369) is never touched, nor its /etc/rabbitmq files.
Starting takes about ten seconds, which is why the tests share one node per session.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

import pytest

from tests.support.broker_process import BrokerProcess
from tests.support.mqtt_broker import HOST, BrokerError, _accepts_connections, _free_port

# Debian's /usr/sbin/rabbitmq-server insists on running as the `rabbitmq` user; the script it
# wraps runs the node as whoever calls it, with the directories the environment names.
_SERVER: Final = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
_EPMD: Final = Path("/usr/bin/epmd")
_START_TIMEOUT_SECONDS: Final = 60.0
_STOP_TIMEOUT_SECONDS: Final = 30.0


def find_rabbitmq() -> Path:
    """The RabbitMQ start script; raise BrokerError saying how to install it if there is none."""
    if not _SERVER.is_file():
        raise BrokerError(
            "rabbitmq-server is not installed: install Debian's `rabbitmq-server` package"
            " (`apt-get install rabbitmq-server`; tests/run does this)"
        )
    return _SERVER


@dataclass(frozen=True, slots=True, kw_only=True)
class RabbitPorts:
    """The node's listeners, all on 127.0.0.1."""

    amqp: int
    mqtt: int
    dist: int
    epmd: int


class RabbitBroker(BrokerProcess):
    """One RabbitMQ node in `workdir`; it can be stopped and started again on the same ports with
    the same data, so retained messages and durable sessions survive a restart as in production."""

    host: Final = HOST
    name: Final = "rabbitmq"
    log_tail_lines = 40

    def __init__(self, *, workdir: Path, ports: RabbitPorts) -> None:
        self.workdir: Final = workdir
        self.ports: Final = ports
        self.port: Final = ports.mqtt
        self.log_path = workdir / "console.log"
        self._node = f"village-{secrets.token_hex(4)}@127.0.0.1"
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._log_offset = 0
        workdir.mkdir(parents=True, exist_ok=True)
        self._write_files()

    def url(self) -> str:
        """The agent's broker URL (MQTT listener)."""
        return f"mqtt://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def version(self) -> str:
        """The RabbitMQ version the Debian package installed, e.g. "3.10.8"."""
        plugins = sorted(Path("/usr/lib/rabbitmq/lib").glob("rabbitmq_server-*"))
        return plugins[-1].name.removeprefix("rabbitmq_server-") if plugins else "unknown"

    def start(self, timeout: float = _START_TIMEOUT_SECONDS) -> None:
        """Start the node; return once its MQTT listener accepts connections.

        Raise BrokerError with the log's tail if the node exits or is not listening in time.
        """
        if self.running:
            raise BrokerError(f"RabbitMQ on port {self.port} is already running")
        self._log = self.log_path.open("ab")
        self._log_offset = self._log.tell()
        try:
            self._process = subprocess.Popen(
                [str(find_rabbitmq())],
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env=self._environment(),
                cwd=self.workdir,
                # Its own process group: stopping the node also stops the shell that started it.
                start_new_session=True,
            )
            self._wait_listening(time.monotonic() + timeout)
        except BaseException:
            self.kill()
            raise

    def stop(self) -> None:
        """SIGTERM (an orderly shutdown of the node) and wait; SIGKILL if it takes too long."""
        self._signal_and_wait(signal.SIGTERM, _STOP_TIMEOUT_SECONDS)

    def kill(self) -> None:
        """SIGKILL the node, as a crash would."""
        self._signal_and_wait(signal.SIGKILL, _STOP_TIMEOUT_SECONDS)

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the node and the epmd it started on its own port."""
        self.stop()
        # epmd daemonizes and outlives the node; `-kill` on our port ends exactly that one.
        subprocess.run(
            [str(_EPMD), "-port", str(self.ports.epmd), "-kill"],
            env={**os.environ, "ERL_EPMD_PORT": str(self.ports.epmd)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
            timeout=10,
        )

    def read_log(self) -> str:
        """The console output since the last start, then the node's own log file."""
        node_logs = sorted((self.workdir / "log").glob("*.log"))
        return self.console_log() + "".join(p.read_text(errors="replace") for p in node_logs)

    def __repr__(self) -> str:
        return f"<RabbitBroker {self.url()} running={self.running} dir={self.workdir}>"

    def _environment(self) -> dict[str, str]:
        home = self.workdir / "home"
        home.mkdir(exist_ok=True)
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("RABBITMQ_", "ERL_"))
        }
        env.update(
            {
                # The Erlang cookie is created in $HOME: ours, not root's or rabbitmq's.
                "HOME": str(home),
                "RABBITMQ_CONF_ENV_FILE": str(self.workdir / "rabbitmq-env.conf"),
                "RABBITMQ_CONFIG_FILE": str(self.workdir / "rabbitmq.conf"),
                "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.workdir / "advanced.config"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.workdir / "enabled_plugins"),
                "RABBITMQ_MNESIA_BASE": str(self.workdir / "mnesia"),
                "RABBITMQ_LOG_BASE": str(self.workdir / "log"),
                "RABBITMQ_PID_FILE": str(self.workdir / "rabbitmq.pid"),
                "RABBITMQ_NODENAME": self._node,
                "RABBITMQ_USE_LONGNAME": "true",
                "RABBITMQ_NODE_IP_ADDRESS": self.host,
                "RABBITMQ_NODE_PORT": str(self.ports.amqp),
                "RABBITMQ_DIST_PORT": str(self.ports.dist),
                "ERL_EPMD_ADDRESS": self.host,
                # Erlang distribution listens on every address unless told: loopback only.
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
                "ERL_EPMD_PORT": str(self.ports.epmd),
            }
        )
        return env

    def _write_files(self) -> None:
        (self.workdir / "rabbitmq-env.conf").write_text("# empty: the tests set the environment\n")
        (self.workdir / "advanced.config").write_text("[].\n")
        (self.workdir / "enabled_plugins").write_text("[rabbitmq_mqtt].\n")
        lines = [
            f"listeners.tcp.1 = {self.host}:{self.ports.amqp}",
            f"mqtt.listeners.tcp.1 = {self.host}:{self.ports.mqtt}",
            # Anonymous MQTT clients act as the guest user, which may log in from loopback.
            "mqtt.allow_anonymous = true",
            "mqtt.vhost = /",
            "mqtt.exchange = amq.topic",
            "log.file.level = info",
            "log.console = true",
            "log.console.level = info",
            # A test machine's disk may be nearly full; the node must not block publishers then.
            "disk_free_limit.absolute = 1MB",
        ]
        (self.workdir / "rabbitmq.conf").write_text("\n".join(lines) + "\n")

    def _wait_listening(self, deadline: float) -> None:
        process = self._process
        assert process is not None
        while True:
            if process.poll() is not None:
                raise BrokerError(
                    f"RabbitMQ exited with status {process.returncode} while starting:"
                    f"\n{self.log_tail()}"
                )
            # The MQTT listener opens last, once the plugin has booted.
            if _accepts_connections(self.host, self.ports.mqtt):
                return
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"RabbitMQ is not listening on {self.host}:{self.ports.mqtt}:\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def _signal_and_wait(self, signum: signal.Signals, timeout: float) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signum)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None


def start_rabbitmq(workdir: Path) -> RabbitBroker:
    """Start a RabbitMQ node in `workdir` on free loopback ports. The caller must `close()` it."""
    find_rabbitmq()
    ports = _distinct_ports(4)
    broker = RabbitBroker(
        workdir=workdir,
        ports=RabbitPorts(amqp=ports[0], mqtt=ports[1], dist=ports[2], epmd=ports[3]),
    )
    try:
        broker.start()
    except BaseException:
        broker.close()
        raise
    return broker


def _distinct_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = _free_port()
        if port not in ports:
            ports.append(port)
    return ports


@pytest.fixture(scope="session")
def rabbitmq_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitBroker]:
    """One RabbitMQ node for the whole session (it takes seconds to start); skipped only when Debian's
    `rabbitmq-server` is not installed."""
    try:
        find_rabbitmq()
    except BrokerError as err:
        pytest.skip(str(err))
    with start_rabbitmq(tmp_path_factory.mktemp("rabbitmq")) as broker:
        yield broker
