"""The real agent as a separate process, the way systemd runs it, for end-to-end tests."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from agent.buffer.readonly import BufferView

REPO = Path(__file__).resolve().parents[2]


def write_config(
    directory: Path,
    *,
    broker_url: str,
    site_id: str = "test-site-01",
    interval_s: float = 0.3,
    broker: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """A config for a fast-running agent: short interval, quick reconnects, loopback targets."""
    directory.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "site_id": site_id,
        "state_dir": str(directory / "state"),
        "interval_s": interval_s,
        "broker": {
            "url": broker_url,
            "topic_prefix": "desa/test",
            "splay_s": 0,
            "reconnect_min_s": 0.2,
            "reconnect_max_s": 1.0,
            "keepalive_s": 5,
            "connect_timeout_s": 3,
            "rejected_retry_s": 1,
            **(broker or {}),
        },
        "latency": {"targets": ["127.0.0.1"], "count": 2, "interval_s": 0.01, "timeout_s": 0.2},
        "buffer": {"min_free_mb": 1},
    }
    config.update(extra or {})
    path = directory / "agent.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    # transfer.key_file's default, next to the config, as install.sh creates it.
    key = directory / "transfer.key"
    if not key.exists():
        key.write_text(hashlib.sha256(str(directory).encode()).hexdigest() + "\n")
        key.chmod(0o600)
    return path


class AgentProcess:
    """`python -m agent run --config FILE` in a child process, its log kept in a file."""

    def __init__(
        self,
        config: Path,
        *,
        env: Mapping[str, str] | None = None,
        prefix: Sequence[str] = (),
    ) -> None:
        """`prefix` goes before the command, e.g. `ip netns exec NS`, which execs in place: `pid`
        stays the agent's own."""
        self.config = config
        self._env = dict(env or {})
        self._prefix = list(prefix)
        loaded = yaml.safe_load(config.read_text())
        self.state_dir = Path(loaded["state_dir"])
        self.status_file = Path(loaded.get("status_dir") or self.state_dir) / "status.json"
        self.log_path = config.parent / "agent.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> AgentProcess:
        log = self.log_path.open("ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("NOTIFY_SOCKET", None)
        env.update(self._env)
        self._proc = subprocess.Popen(
            [*self._prefix, sys.executable, "-m", "agent", "run", "--config", str(self.config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=env,
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def terminate(self, timeout_s: float = 15.0) -> int:
        """SIGTERM and wait; return the exit status."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGTERM)
        return self._proc.wait(timeout_s)

    def kill(self) -> None:
        """SIGKILL: what a crash or an OOM kill does; nothing gets to run."""
        assert self._proc is not None
        self._proc.kill()
        self._proc.wait(10)

    def pause(self) -> None:
        """SIGSTOP: the process hangs, as a wedged main loop would."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGSTOP)
        # The signal is delivered asynchronously: return once the kernel shows the process stopped
        # ("T" in /proc/PID/stat), so nothing the caller sees afterwards came from a running agent.
        stat = Path(f"/proc/{self._proc.pid}/stat")
        deadline = time.monotonic() + 10
        while stat.read_text().rsplit(")", 1)[1].split()[0] != "T":
            assert time.monotonic() < deadline, "the agent did not stop on SIGSTOP"
            time.sleep(0.01)

    def resume(self) -> None:
        assert self._proc is not None
        self._proc.send_signal(signal.SIGCONT)

    def wait(self, timeout_s: float) -> int:
        assert self._proc is not None
        return self._proc.wait(timeout_s)

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def status(self) -> dict[str, Any]:
        """This process's status file, or {} until it wrote one: a file left by an earlier
        process in the same state_dir does not count."""
        try:
            data = json.loads(self.status_file.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or self._proc is None or data.get("pid") != self._proc.pid:
            return {}
        return data

    def wait_status(self, key: str, predicate: Any, timeout_s: float = 15.0) -> dict[str, Any]:
        """Wait until status.json's `key` satisfies predicate; return the status."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            status = self.status()
            if key in status and predicate(status[key]):
                return status
            time.sleep(0.05)
        raise AssertionError(
            f"status {key} never matched; last status {self.status()}\n{self.log()}"
        )

    def __enter__(self) -> AgentProcess:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        if self.running():
            assert self._proc is not None
            self._proc.kill()
            self._proc.wait(10)


def buffer_state(state_dir: Path) -> tuple[int, set[int]]:
    """(last seq ever assigned, seqs still buffered), read the way a technician's tool reads."""
    with BufferView.open(state_dir) as view, view.snapshot() as buffer:
        stats = buffer.stats()
        remaining = {r.seq for r in buffer.oldest(limit=stats.count + 1)}
        return stats.last_seq, remaining


def buffer_epoch(state_dir: Path) -> str:
    """The id of the buffer's seq series, which the collector's ack must name."""
    with BufferView.open(state_dir) as view, view.snapshot() as buffer:
        return buffer.epoch


def wait_until(predicate: Any, timeout_s: float, message: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(message or "condition not met in time")
