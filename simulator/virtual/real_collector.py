"""The real collector (`python -m collector run`) in a child process, as the fleet's consumer.

The simulator writes it a config (the run's broker and topic prefix, the given database, no HTTP),
starts it, and proves it subscribed the only way that cannot race: a status message published now is
in its database. That probe stays in `sites` as `simulator-ready`; no reading is ever written for it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from collector.store import StoreError
from simulator.virtual.stored import Stored

PROBE_SITE = "simulator-ready"
# Virtual time starts at the scenario's date, which may be months before the real clock the
# collector's retention counts from: with its default of 90 days it would delete the run's readings.
RETENTION_DAYS = 36500
SESSION_EXPIRY_S = 300  # a client id per run: the broker should not queue for it long after


class CollectorError(Exception):
    """The collector could not be started, or stopped on its own."""


def absolute_url(url: str) -> str:
    """`sqlite:relative/x` taken from the working directory, as a person typing it means; the
    collector would take it from its config file's directory."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite" and not parts.path.startswith("/"):
        return f"sqlite://{Path(parts.path).resolve()}"
    return url


def write_config(directory: Path, *, broker_url: str, topic_prefix: str, database_url: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    config = {
        "broker": {
            "url": broker_url,
            "topic_prefix": topic_prefix,
            "client_id": f"village-collector-sim-{os.getpid()}",
            "session_expiry_s": SESSION_EXPIRY_S,
        },
        "database": {"url": database_url},
        "http": {"listen": "off"},
        "retention_days": RETENTION_DAYS,
        "log": {"level": "info"},
    }
    path = directory / "collector.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


class RealCollector:
    """Start with `with`: the collector runs, subscribed, until the block ends (SIGTERM: it finishes
    the batch in hand). `stored` reads its database meanwhile."""

    def __init__(
        self, directory: Path, *, broker_url: str, topic_prefix: str, database_url: str
    ) -> None:
        self.database_url = absolute_url(database_url)
        self._broker_url = broker_url
        self._prefix = topic_prefix
        self.config = write_config(
            directory,
            broker_url=broker_url,
            topic_prefix=topic_prefix,
            database_url=self.database_url,
        )
        self.log_path = directory / "collector.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._stored: Stored | None = None

    @property
    def stored(self) -> Stored:
        if self._stored is None:
            raise CollectorError("the collector is not running")
        self._stored.rejected = self.rejected()
        return self._stored

    def start(self, timeout_s: float = 30.0) -> RealCollector:
        """Start the collector and return once it stores what is published. Raise CollectorError
        if it exits or does not get there in time."""
        with self.log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "collector", "run", "--config", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        deadline = time.monotonic() + timeout_s
        try:
            self._wait_event("collector_started", deadline)  # the schema is migrated by then
            self._stored = Stored(self.database_url)
            self._probe(deadline)
        except (CollectorError, StoreError):
            self.stop()
            raise
        return self

    def _events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                out.append(event)
        return out

    def _check_running(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise CollectorError(f"the collector exited; its log ({self.log_path}):\n{tail}")

    def _wait_event(self, name: str, deadline: float) -> None:
        while not any(e.get("event") == name for e in self._events()):
            self._check_running()
            if time.monotonic() > deadline:
                raise CollectorError(f"no {name} from the collector; see {self.log_path}")
            time.sleep(0.1)

    def _probe(self, deadline: float) -> None:
        """Publish a status for PROBE_SITE (again each second) until it is in the database."""
        assert self._stored is not None
        parts = urlsplit(self._broker_url)
        client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
        client.loop_start()
        try:
            topic = f"{self._prefix}/{PROBE_SITE}/status"
            while True:
                body = {"state": "ready", "ts": int(time.time() * 1000)}
                client.publish(topic, json.dumps(body), qos=1).wait_for_publish(5)
                until = time.monotonic() + 1.0
                while time.monotonic() < until:
                    if self._stored.site_known(PROBE_SITE):
                        return
                    self._check_running()
                    time.sleep(0.05)
                if time.monotonic() > deadline:
                    raise CollectorError(f"the collector stored no probe; see {self.log_path}")
        finally:
            client.disconnect()
            client.loop_stop()

    def rejected(self) -> list[str]:
        """The messages the collector refused, from its log (`topic: reason`)."""
        return [
            f"{e.get('topic')}: {e.get('reason')}"
            for e in self._events()
            if e.get("event") == "payload_rejected"
        ]

    def stop(self, timeout_s: float = 30.0) -> None:
        if self._stored is not None:
            self._stored.rejected = self.rejected()
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def close(self) -> None:
        if self._stored is not None:
            self._stored.close()
            self._stored = None

    def __enter__(self) -> RealCollector:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
        self.close()
