"""The real daemon as a child process (`python -m agent run --config FILE`), as systemd starts it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
SITE = "bench-01"
PREFIX = "bench/v1"


def write_config(
    directory: Path,
    *,
    broker_url: str,
    interval_s: float,
    state_dir: Path,
    status_dir: Path | None = None,
    broker: dict[str, Any] | None = None,
) -> Path:
    """The sample config's settings, pointed at loopback: the latency probe pings 127.0.0.1 with
    the default count and spacing, the DNS probe has no name to resolve, no LAN interface. Give
    `status_dir` on tmpfs, as the sample config's /run/village-agent is."""
    directory.mkdir(parents=True, exist_ok=True)
    config = {
        "site_id": SITE,
        "state_dir": str(state_dir),
        "interval_s": interval_s,
        "broker": {"url": broker_url, "topic_prefix": PREFIX, "splay_s": 0, **(broker or {})},
        "latency": {"targets": ["127.0.0.1"]},
        "dns": {"names": []},
        "buffer": {"min_free_mb": 1},
    }
    if status_dir is not None:
        config["status_dir"] = str(status_dir)
    path = directory / "agent.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


class Daemon:
    """One agent process. Its log goes to `log_path`, which should be on tmpfs so that the log
    (journald's job on a gateway) does not count in the agent's own disk writes."""

    def __init__(self, config: Path, state_dir: Path, log_path: Path) -> None:
        self.state_dir = state_dir
        self.log_path = log_path
        status_dir = yaml.safe_load(config.read_text()).get("status_dir") or state_dir
        self._status_file = Path(status_dir) / "status.json"
        self._notify_path = config.parent / "notify.sock"
        self._notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._notify_path.unlink(missing_ok=True)
        self._notify.bind(str(self._notify_path))
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "NOTIFY_SOCKET": str(self._notify_path)}
        env.pop("WATCHDOG_USEC", None)
        with log_path.open("ab") as log:
            self.started = time.monotonic()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "agent", "run", "--config", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                env=env,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout_s: float = 60.0) -> float:
        """Seconds from exec to READY=1, which the daemon sends once its first round is committed.
        The socket is closed afterwards: later notifications fail at once and cost nothing."""
        self._notify.settimeout(0.2)
        deadline = self.started + timeout_s
        try:
            while time.monotonic() < deadline:
                try:
                    data = self._notify.recv(4096)
                except TimeoutError:
                    if self.proc.poll() is not None:
                        raise RuntimeError(f"the agent exited; see {self.log_path}") from None
                    continue
                if b"READY=1" in data.split(b"\n"):
                    return time.monotonic() - self.started
            raise RuntimeError(f"no READY within {timeout_s} s; see {self.log_path}")
        finally:
            self._notify.close()
            self._notify_path.unlink(missing_ok=True)

    def status(self) -> dict[str, Any]:
        try:
            data = json.loads(self._status_file.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def kill(self) -> None:
        """SIGKILL, as a power cut or the OOM killer ends it: no clean-up of any kind."""
        self.proc.kill()
        self.proc.wait()
        self._notify.close()
        self._notify_path.unlink(missing_ok=True)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def buffer_counts(state_dir: Path) -> tuple[int, int]:
    """(readings buffered, highest seq ever assigned), read as a technician's tool reads."""
    from agent.buffer.readonly import BufferView  # noqa: PLC0415 - only where the buffer is read

    with BufferView.open(state_dir, busy_timeout_s=5) as view, view.snapshot() as buffer:
        stats = buffer.stats()
    return stats.count, stats.last_seq


def telemetry_readings(topic: str, payload: bytes) -> int:
    """How many readings a message on the agent's topics carried (0 for status and events)."""
    from agent.contract.telemetry import decode_telemetry  # noqa: PLC0415 - only where telemetry is counted

    if not topic.endswith("/telemetry"):
        return 0
    return len(decode_telemetry(payload).readings)
