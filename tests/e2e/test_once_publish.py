"""`village-agent once --publish`: one round through the buffer to a real broker, PUBACK shown."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from agent.buffer.store import Buffer
from agent.cli.exits import EX_NOPERM, EX_TEMPFAIL, EX_UNAVAILABLE
from agent.contract.telemetry import decode_telemetry
from tests.support.agent_proc import AgentProcess, write_config
from tests.support.mqtt_broker import Broker, BrokerFactory

REPO = Path(__file__).resolve().parents[2]
TELEMETRY = "desa/test/test-site-01/telemetry"


def _once(config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "agent", "once", "--publish", "--config", str(config), *extra]
    return subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=90, check=False)


def _collect(broker: Broker) -> tuple[mqtt.Client, list[bytes]]:
    got: list[bytes] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="office")
    client.on_message = lambda _c, _u, message: got.append(message.payload)
    client.connect(broker.host, broker.port)
    client.subscribe(TELEMETRY, qos=1)
    client.loop_start()
    time.sleep(0.3)  # subscribed before anything is published
    return client, got


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_once_publish_shows_the_puback_and_empties_the_buffer(
    tmp_path: Path, broker: Broker
) -> None:
    """The round is acknowledged: seq range, bytes and PUBACK time printed; the broker got exactly
    those readings; the buffer holds none of them afterwards."""
    config = write_config(tmp_path / "site", broker_url=broker.url())
    office, got = _collect(broker)
    try:
        done = _once(config, "--lang", "en")
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        office.loop_stop()
        office.disconnect()
    assert done.returncode == 0, done.stderr
    shown = re.search(
        r"this round seq (\d+)\.\.(\d+); (\d+) readings in all \(from seq (\d+)\) in 1 messages, "
        r"([\d.]+ (?:B|KiB)); PUBACK after (\d+) ms",
        done.stdout,
    )
    assert shown is not None, done.stdout + done.stderr
    first, last = int(shown[1]), int(shown[2])
    assert first == 1 and last > first
    assert int(shown[3]) == last  # an empty buffer before: this round alone
    seqs = [r.seq for payload in got for r in decode_telemetry(payload).readings]
    assert seqs == list(range(first, last + 1))
    state = tmp_path / "site" / "state"
    buffer = Buffer.open(state / "buffer.sqlite", site="test-site-01", max_readings=1000)
    try:
        assert buffer.count == 0
    finally:
        buffer.close()
    indonesian = _once(config, "--lang", "id")
    assert indonesian.returncode == 0, indonesian.stderr
    assert "Terkirim: putaran ini seq" in indonesian.stdout
    assert f"seq {last + 1}.." in indonesian.stdout  # seqs continue, never reused


def test_once_publish_to_a_dead_broker_says_so_and_keeps_the_round(tmp_path: Path) -> None:
    """Nothing listens on the broker's port: a clear error, exit 69, the round kept in the buffer."""
    config = write_config(tmp_path / "site", broker_url=f"mqtt://127.0.0.1:{_free_port()}")
    start = time.monotonic()
    done = _once(config, "--lang", "en", "--timeout-s", "20")
    assert done.returncode == EX_UNAVAILABLE, done.stdout + done.stderr
    assert time.monotonic() - start < 20  # the refusal ends it, not the timeout
    assert "The broker cannot be reached" in done.stderr
    assert "stay in the buffer" in done.stderr
    state = tmp_path / "site" / "state"
    buffer = Buffer.open(state / "buffer.sqlite", site="test-site-01", max_readings=1000)
    try:
        assert buffer.count > 0
    finally:
        buffer.close()


def test_once_publish_refused_by_the_acl_exits_77(
    tmp_path: Path, broker_factory: BrokerFactory
) -> None:
    """The ACL denies telemetry (MQTT 5 negative PUBACK): the reason and exit 77."""
    broker = broker_factory(acl="topic write desa/test/+/status\n")
    config = write_config(tmp_path / "site", broker_url=broker.url())
    done = _once(config, "--lang", "en")
    assert done.returncode == EX_NOPERM, done.stdout + done.stderr
    assert "REFUSED the data: Not authorized" in done.stderr


def test_once_publish_while_the_daemon_runs_exits_75(tmp_path: Path, broker: Broker) -> None:
    """The daemon holds state_dir: once --publish leaves its buffer alone and says to stop it."""
    config = write_config(tmp_path / "site", broker_url=broker.url())
    with AgentProcess(config) as agent:
        agent.wait_status("broker_state", lambda state: state == "connected")
        done = _once(config, "--lang", "id")
        assert agent.terminate() == 0
    assert done.returncode == EX_TEMPFAIL, done.stdout + done.stderr
    assert "systemctl stop village-agent" in done.stderr
