"""A real NATS server (Debian's `nats-server`, 2.9 in bookworm) with JetStream and its MQTT listener,
on free loopback ports with its own store directory: a broker that speaks MQTT 3.1.1 only."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from tests.support.mqtt_broker import HOST, BrokerError, free_port


@contextlib.contextmanager
def nats_mqtt(workdir: Path) -> Iterator[str]:
    """Run nats-server until the block ends; yield its MQTT URL. Raise BrokerError if it is not
    installed or does not listen within 10 s."""
    executable = shutil.which("nats-server", path="/usr/bin:/usr/sbin:/usr/local/bin")
    if executable is None:
        raise BrokerError("nats-server is not installed (Debian package `nats-server`)")
    workdir.mkdir(parents=True, exist_ok=True)
    mqtt_port, client_port = free_port(), free_port()
    config = workdir / "nats.conf"
    config.write_text(
        "server_name: village-test\n"
        f"listen: {HOST}:{client_port}\n"
        f'jetstream {{ store_dir: "{workdir / "js"}" }}\n'
        f"mqtt {{ listen: {HOST}:{mqtt_port} }}\n"
    )
    with (workdir / "nats.log").open("wb") as log:
        process = subprocess.Popen(
            [executable, "-c", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection((HOST, mqtt_port), 0.2):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                text = (workdir / "nats.log").read_text(errors="replace")[-2000:]
                raise BrokerError(f"nats-server did not listen for MQTT:\n{text}")
            time.sleep(0.05)
        yield f"mqtt://{HOST}:{mqtt_port}"
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
