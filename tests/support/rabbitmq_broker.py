"""A real RabbitMQ (Debian's `rabbitmq-server`, 3.10 in bookworm) with its MQTT plugin, on free
loopback ports with its own node name, data and log directories and its own epmd port, so the
machine's own RabbitMQ is never touched. RabbitMQ 3.10 speaks MQTT 3.1.1 only: it closes the
connection on an MQTT 5 CONNECT."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from tests.support.mqtt_broker import HOST, BrokerError, free_port

_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
_START_TIMEOUT_S = 60.0


@contextlib.contextmanager
def rabbitmq_mqtt(workdir: Path) -> Iterator[str]:
    """Run RabbitMQ until the block ends; yield its MQTT URL. Raise BrokerError if it is not
    installed or does not listen in time. Its epmd (started by Erlang, a daemon) is stopped too."""
    epmd = shutil.which("epmd", path="/usr/bin:/usr/lib/erlang/bin")
    if not _SERVER.exists() or epmd is None:
        raise BrokerError("rabbitmq-server is not installed (Debian package `rabbitmq-server`)")
    workdir.mkdir(parents=True, exist_ok=True)
    home = workdir / "home"
    home.mkdir(exist_ok=True)
    mqtt_port, amqp_port, dist_port, epmd_port = (free_port() for _ in range(4))
    (workdir / "rabbitmq.conf").write_text(
        f"listeners.tcp.default = {HOST}:{amqp_port}\n"
        f"mqtt.listeners.tcp.default = {HOST}:{mqtt_port}\n"
        "mqtt.allow_anonymous = true\n"
        "loopback_users = none\n"
    )
    (workdir / "enabled_plugins").write_text("[rabbitmq_mqtt].\n")
    env = {
        **os.environ,
        "HOME": str(home),
        "RABBITMQ_CONFIG_FILE": str(workdir / "rabbitmq"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(workdir / "enabled_plugins"),
        "RABBITMQ_MNESIA_BASE": str(workdir / "mnesia"),
        "RABBITMQ_LOG_BASE": str(workdir / "log"),
        "RABBITMQ_LOGS": "-",
        "RABBITMQ_PID_FILE": str(workdir / "pid"),
        "RABBITMQ_NODENAME": f"village-test-{mqtt_port}@{HOST}",
        "RABBITMQ_USE_LONGNAME": "true",
        "RABBITMQ_DIST_PORT": str(dist_port),
        "ERL_EPMD_PORT": str(epmd_port),
    }
    log_path = workdir / "rabbitmq.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(_SERVER)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:
            with contextlib.suppress(OSError), socket.create_connection((HOST, mqtt_port), 0.2):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise BrokerError(f"RabbitMQ did not listen for MQTT:\n{tail}")
            time.sleep(0.2)
        yield f"mqtt://{HOST}:{mqtt_port}"
    finally:
        # The server script runs beam.smp as its child, in the session started above.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, 15)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, 9)
            process.wait()
        subprocess.run(
            [epmd, "-port", str(epmd_port), "-kill"], capture_output=True, check=False, env=env
        )
