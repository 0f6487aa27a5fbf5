"""The arrangement for the network rows of the fault catalogue: agent and broker on either side of
the lab's veth.

    host ns:  mosquitto on 127.0.0.1 (the usual fixture) and the Collector, both unchanged;
              a delay relay process whose *listening* socket was made in the `far` namespace and
              whose onward sockets are made in the host's, so it joins the two without an
              interface or a route ever being added to the host
    gw ns:    the real agent (`ip netns exec`), broker URL far_addr:RELAY_PORT

Every byte between agent and broker crosses the veth that a test shapes or blackholes; the
relay -> broker hop is the host's loopback, which nothing touches.
"""

from __future__ import annotations

import contextlib
import json
import select
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from simulator.lab.netlab import Lab, LabError
from tests.support.mqtt_broker import Broker

RELAY_PORT = 1883  # the far namespace is the lab's own: any port is free there
_ROOT = Path(__file__).resolve().parents[2]


def in_gateway(lab: Lab) -> list[str]:
    """The argv prefix that runs a program in the gateway namespace (exec in place: same pid)."""
    return ["ip", "netns", "exec", lab.names["gw"]]


def _ready_line(proc: subprocess.Popen[str], what: str) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 10.0)
    line = proc.stdout.readline().strip() if ready else ""
    if not line.startswith("ready"):
        proc.kill()
        _, err = proc.communicate()
        raise LabError(f"{what} did not start: {err.strip()}")
    return line


class RelayProcess:
    """`simulator.delay_relay` listening on the far side of the lab, relaying to a host port."""

    def __init__(self, lab: Lab, target_port: int, *, delay_ms: float = 0.0) -> None:
        argv = [sys.executable, "-m", "simulator.lab.delay_relay"]
        argv += [
            "--listen",
            f"{lab.far_addr}:{RELAY_PORT}",
            "--connect",
            f"127.0.0.1:{target_port}",
        ]
        argv += ["--delay-ms", str(delay_ms), "--listen-netns", f"/run/netns/{lab.names['far']}"]
        self._proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=_ROOT
        )
        _ready_line(self._proc, "delay relay")
        self.counts: dict[str, int] = {}

    def stop(self) -> dict[str, int]:
        """Stop the relay; return its counts (accepted, refused, bytes_up, bytes_down)."""
        if self._proc.poll() is None:
            self._proc.terminate()
            out, _ = self._proc.communicate(timeout=10)
            self.counts = json.loads(out.strip().splitlines()[-1])
        return self.counts

    def __enter__(self) -> RelayProcess:
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._proc.poll() is None:
            self.stop()


def start_in_far(lab: Lab, argv: Sequence[str]) -> subprocess.Popen[str]:
    """Start a program that prints `ready ...` in the far namespace; the lab stops it on close."""
    proc = lab.popen("far", argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _ready_line(proc, argv[-1])
    return proc


@contextlib.contextmanager
def gateway_etc(lab: Lab, files: Mapping[str, str]) -> Iterator[dict[str, Path]]:
    """Files that `ip netns exec` bind-mounts over /etc/NAME for programs in the gateway namespace
    (resolv.conf, hosts). The directory is the lab's own and goes when the block ends."""
    directory = Path("/etc/netns") / lab.names["gw"]
    directory.mkdir(parents=True)
    try:
        paths = {}
        for name, text in files.items():
            paths[name] = directory / name
            paths[name].write_text(text, encoding="utf-8")
        yield paths
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def plain_listener(broker: Broker) -> str:
    """Give a TLS broker a second, plain listener on loopback for the collector (which speaks no
    TLS) and restart it; return that listener's URL. Listener options in mosquitto.conf belong to
    the `listener` line above them, so one appended at the end gets none of the TLS settings."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with broker.config_path.open("a", encoding="utf-8") as conf:
        conf.write(f"listener {port} 127.0.0.1\n")
    broker.restart()
    return f"mqtt://127.0.0.1:{port}"


def threads_and_fds(pid: int, samples: int = 10, gap_s: float = 0.1) -> tuple[int, int]:
    """The fewest threads and open descriptors seen over `samples` looks `gap_s` apart: what the
    process keeps, without the sockets and pipe a latency round holds for a moment."""
    proc = Path("/proc") / str(pid)
    seen = []
    for _ in range(samples):
        seen.append((len(list((proc / "task").iterdir())), len(list((proc / "fd").iterdir()))))
        time.sleep(gap_s)
    return min(t for t, _ in seen), min(f for _, f in seen)


def log_events(text: str, *names: str) -> list[dict[str, Any]]:
    """The agent's JSON log lines whose event is one of `names`, with `at` (epoch seconds) added."""
    found = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("event") in names:
            record["at"] = datetime.fromisoformat(record["timestamp"]).timestamp()
            found.append(record)
    return found
