"""A real NATS server with JetStream and its MQTT listener, started by the tests.

NATS speaks MQTT 3.1.1 only through JetStream, which needs a server name and a store directory: both
are the test's own, as are the client and MQTT ports (free loopback ports, never the machine's 4222).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Final

import pytest

from tests.support.broker_process import BrokerProcess
from tests.support.mqtt_broker import HOST, BrokerError, _accepts_connections, _free_port

_START_TIMEOUT_SECONDS: Final = 20.0
_STOP_TIMEOUT_SECONDS: Final = 10.0
_EXTRA_SEARCH_DIRS: Final = ("/usr/sbin", "/usr/local/sbin")
_READY_LINE: Final = re.compile(r"Server is ready")


def find_nats_server() -> Path:
    """The nats-server executable; raise BrokerError saying how to install it if there is none."""
    search_path = os.pathsep.join([os.environ.get("PATH", os.defpath), *_EXTRA_SEARCH_DIRS])
    found = shutil.which("nats-server", path=search_path)
    if found is None:
        raise BrokerError(
            "nats-server is not installed: install Debian's `nats-server` package"
            " (`apt-get install nats-server`; tests/run does this)"
        )
    return Path(found)


class NatsBroker(BrokerProcess):
    """One nats-server in `workdir`; it can be stopped and started again on the same ports with the
    same JetStream store, where NATS keeps MQTT sessions and retained messages."""

    host: Final = HOST
    name: Final = "nats"

    def __init__(
        self, *, executable: Path, workdir: Path, client_port: int, mqtt_port: int
    ) -> None:
        self.workdir: Final = workdir
        self.port: Final = mqtt_port
        self.client_port: Final = client_port
        self.config_path: Final = workdir / "nats.conf"
        self.log_path = workdir / "nats.log"
        self._executable = executable
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._log_offset = 0
        workdir.mkdir(parents=True, exist_ok=True)
        self._write_config()

    def url(self) -> str:
        """The agent's broker URL (MQTT listener)."""
        return f"mqtt://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def version(self) -> str:
        """The server's version, e.g. "2.9.10"."""
        out = subprocess.run(
            [str(self._executable), "--version"], capture_output=True, text=True, check=False
        ).stdout
        match = re.search(r"v(\d+\.\d+\.\d+)", out)
        return match.group(1) if match else "unknown"

    def start(self, timeout: float = _START_TIMEOUT_SECONDS) -> None:
        """Start the server; return once it says it is ready and its MQTT port accepts TCP."""
        if self.running:
            raise BrokerError(f"nats-server on port {self.port} is already running")
        self._log = self.log_path.open("ab")
        self._log_offset = self._log.tell()
        try:
            self._process = subprocess.Popen(
                [str(self._executable), "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
            )
            self._wait_ready(time.monotonic() + timeout)
        except BaseException:
            self.kill()
            raise

    def stop(self) -> None:
        """SIGTERM and wait; SIGKILL if it does not exit in time."""
        process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(_STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._close_log()

    def kill(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        self._close_log()

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<NatsBroker {self.url()} running={self.running} dir={self.workdir}>"

    def _write_config(self) -> None:
        # JSON is valid NATS config syntax, and quoting paths this way cannot go wrong.
        store = json.dumps(str(self.workdir / "jetstream"))
        lines = [
            f'server_name: "village_test_{self.port}"',
            f"host: {json.dumps(self.host)}",
            f"port: {self.client_port}",
            "debug: false",
            "logtime: true",
            f"jetstream {{ store_dir: {store} }}",
            f"mqtt {{ host: {json.dumps(self.host)}, port: {self.port} }}",
        ]
        self.config_path.write_text("\n".join(lines) + "\n")

    def _wait_ready(self, deadline: float) -> None:
        process = self._process
        assert process is not None
        while True:
            if process.poll() is not None:
                raise BrokerError(
                    f"nats-server exited with status {process.returncode} while starting:"
                    f"\n{self.log_tail()}"
                )
            if _READY_LINE.search(self.read_log()) and _accepts_connections(self.host, self.port):
                return
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"nats-server is not ready on port {self.port}:\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


def start_nats(workdir: Path) -> NatsBroker:
    """Start nats-server in `workdir` on free loopback ports. The caller must `close()` it."""
    executable = find_nats_server()
    client_port = _free_port()
    mqtt_port = _free_port()
    while mqtt_port == client_port:
        mqtt_port = _free_port()
    broker = NatsBroker(
        executable=executable, workdir=workdir, client_port=client_port, mqtt_port=mqtt_port
    )
    try:
        broker.start()
    except BaseException:
        broker.close()
        raise
    return broker


@pytest.fixture(scope="session")
def nats_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsBroker]:
    """One nats-server for the session; skipped only when Debian's `nats-server` is not installed."""
    try:
        find_nats_server()
    except BrokerError as err:
        pytest.skip(str(err))
    with start_nats(tmp_path_factory.mktemp("nats")) as broker:
        yield broker
