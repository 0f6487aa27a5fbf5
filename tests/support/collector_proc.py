"""The real collector as a child process (`python -m collector run`), the way systemd runs it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from collector.store import open_database

REPO = Path(__file__).resolve().parents[2]
PREFIX = "desa/test"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_config(
    directory: Path,
    *,
    broker_url: str,
    database_url: str,
    client_id: str = "village-collector-test",
    listen: str = "off",
    broker: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    config = {
        "broker": {
            "url": broker_url,
            "topic_prefix": PREFIX,
            "client_id": client_id,
            "keepalive_s": 5,
            **(broker or {}),
        },
        "database": {"url": database_url},
        "http": {"listen": listen},
        "log": {"level": "info"},
        **(extra or {}),
    }
    path = directory / "collector.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


class CollectorProcess:
    """`python -m collector run --config FILE` in a child process, its log kept in a file."""

    def __init__(self, config: Path, *, command: str = "run") -> None:
        self.config = config
        self.command = command
        self.log_path = config.parent / f"collector-{command}.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._offset = 0

    def start(self, *, wait_connected: bool = True) -> CollectorProcess:
        self._offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "collector", self.command, "--config", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        if wait_connected:
            self.wait_event("broker_connected")
        return self

    def events(self) -> list[dict[str, Any]]:
        """The JSON log lines this process (since its last start) wrote."""
        with self.log_path.open("rb") as log:
            log.seek(self._offset)
            text = log.read().decode(errors="replace")
        out = []
        for line in text.splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                out.append(event)
        return out

    def wait_event(self, name: str, timeout_s: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for event in self.events():
                if event.get("event") == name:
                    return event
            assert self.running(), f"collector exited:\n{self.log()}"
            time.sleep(0.05)
        raise AssertionError(f"no {name} in the collector's log:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL: nothing gets to run, not even a final commit."""
        assert self._proc is not None
        self._proc.kill()
        self._proc.wait(10)

    def terminate(self, timeout_s: float = 20.0) -> int:
        assert self._proc is not None
        self._proc.send_signal(signal.SIGTERM)
        return self._proc.wait(timeout_s)

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def __enter__(self) -> CollectorProcess:
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.running():
            self.kill()


def stored_seqs(database_url: str) -> dict[str, list[int]]:
    """site -> every seq in `readings`, in order, repeats included (the key forbids them)."""
    db = open_database(database_url)
    try:
        rows = db.execute("SELECT site, seq FROM readings ORDER BY site, seq")
    finally:
        db.close()
    out: dict[str, list[int]] = {}
    for site, seq in rows:
        out.setdefault(str(site), []).append(int(seq))
    return out
