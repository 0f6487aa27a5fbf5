"""SIGTERM ends the agent cleanly within 10 s, even while a speed test stalls and the broker is mute."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from agent.buffer.readonly import BufferView
from agent.daemon.rounds import measure
from agent.daemon.stopping import Stopping
from agent.files import RUN_MARKER, read_json
from agent.probes.speedtest.transport import STOPPED, HttpTransport
from agent.reading import Sample
from tests.support.agent_proc import AgentProcess, wait_until, write_config


@contextmanager
def stalled_http() -> Iterator[tuple[int, threading.Event]]:
    """A download endpoint that promises a body and never sends it: the slowest link there is."""
    server = socket.create_server(("127.0.0.1", 0))
    asked = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            held.append(conn)
            conn.recv(4096)
            conn.sendall(b"HTTP/1.1 206 Partial Content\r\nContent-Length: 1000\r\n\r\n")
            asked.set()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], asked
    finally:
        server.close()
        for conn in held:
            conn.close()


@contextmanager
def mute_broker() -> Iterator[int]:
    """Accepts TCP and never answers CONNECT, as a hung broker or a half-dead VSAT link does."""
    server = socket.create_server(("127.0.0.1", 0), backlog=16)
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


def test_sigterm_during_a_stalled_speed_test_exits_zero_within_ten_seconds(
    tmp_path: Path,
) -> None:
    """The speed test gives up at once, the round is kept, and the clean-stop marker is written."""
    with stalled_http() as (http_port, asked), mute_broker() as broker_port:
        config = write_config(
            tmp_path,
            broker_url=f"mqtt://127.0.0.1:{broker_port}",
            interval_s=60,
            broker={"connect_timeout_s": 15, "reconnect_min_s": 30, "reconnect_max_s": 60},
            extra={
                "speedtest": {
                    "enabled": True,
                    "url_download": f"http://127.0.0.1:{http_port}/download",
                    "max_seconds": 60,
                    "max_mb": 1,
                    # Slots every ~90 s: most of today's are already due, so the first round tests.
                    "runs_per_day": 960,
                },
            },
        )
        with AgentProcess(config) as agent:
            assert asked.wait(20), agent.log()
            time.sleep(0.5)
            began = time.monotonic()
            code = agent.terminate(timeout_s=15)
            took = time.monotonic() - began
        assert code == 0, agent.log()
        assert took < 10.0, (took, agent.log())
        with BufferView.open(agent.state_dir) as view, view.snapshot() as buffer:
            kept = buffer.oldest(limit=buffer.stats().count + 1)
        failed = [r.tags for r in kept if r.metric == "event.speedtest_failed"]
        rates = [r for r in kept if r.metric.startswith("speedtest.") and r.metric.endswith("_bps")]
        assert rates == []  # a test cut short reports no rate
        assert any("stopped" in tags["error"] for tags in failed), failed
        marker = read_json(agent.state_dir / RUN_MARKER) or {}
        assert marker.get("clean") is True, marker


def test_sigterm_right_after_start_is_a_clean_stop(tmp_path: Path) -> None:
    """A signal while the agent is still starting up ends in exit 0, not death by signal."""
    with mute_broker() as broker_port:
        config = write_config(tmp_path, broker_url=f"mqtt://127.0.0.1:{broker_port}")
        with AgentProcess(config) as agent:
            # The lock file appears once cmd_run runs, i.e. after the handlers are installed.
            wait_until((agent.state_dir / "agent.lock").exists, 20, agent.log())
            assert agent.terminate(timeout_s=15) == 0, agent.log()


class _Probe:
    def __init__(self, name: str, stopping: Stopping | None = None) -> None:
        self.name = name
        self.ran = False
        self._stopping = stopping

    def collect(self) -> list[Sample]:
        self.ran = True
        if self._stopping is not None:
            self._stopping.request(time.monotonic())
        return [Sample(metric=f"{self.name}.x_total", value=1.0)]


def test_a_stop_during_a_round_keeps_what_was_measured_and_skips_the_rest() -> None:
    """Probes after the stop request do not run; the readings already taken are returned."""
    stopping = Stopping()
    first, second = _Probe("first", stopping), _Probe("second")
    samples, failed = measure([first, second], stopping)
    assert [s.metric for s in samples] == ["first.x_total"]
    assert failed == []
    assert not second.ran


def test_a_hook_registered_after_the_stop_runs_at_once() -> None:
    """Blocking I/O that starts after SIGTERM is cut short immediately, not after its timeout."""
    stopping = Stopping()
    calls: list[str] = []
    with stopping.interrupts(lambda: calls.append("early")):
        stopping.request(1.0)
        stopping.request(2.0)
    with stopping.interrupts(lambda: calls.append("late")):
        pass
    assert calls == ["early", "late"]
    assert stopping.at == 1.0


@contextmanager
def sigalrm_requests(stopping: Stopping, after_s: float) -> Iterator[None]:
    """A real signal, delivered while the test's main thread is blocked, as SIGTERM would be."""
    previous = signal.signal(signal.SIGALRM, lambda *_: stopping.request(time.monotonic()))
    signal.setitimer(signal.ITIMER_REAL, after_s)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_a_stop_during_the_tls_handshake_abandons_the_speed_test_at_once() -> None:
    """No socket to shut down yet: the hook leaves the handshake at once, nothing is measured."""
    stopping = Stopping()
    with mute_broker() as port, sigalrm_requests(stopping, 0.3):
        transport = HttpTransport(stopping=stopping)
        began = time.monotonic()
        result = transport.transfer(
            "download", f"https://127.0.0.1:{port}/x", max_bytes=10**6, max_seconds=30
        )
        took = time.monotonic() - began
    assert result.error == STOPPED
    assert result.bps is None
    assert took < 3.0, took


def test_a_transfer_asked_for_after_the_stop_does_not_start() -> None:
    """The upload after a stopped download costs nothing and waits for nothing."""
    stopping = Stopping()
    stopping.request(time.monotonic())
    with stalled_http() as (port, asked):
        began = time.monotonic()
        result = HttpTransport(stopping=stopping).transfer(
            "upload", f"http://127.0.0.1:{port}/upload", max_bytes=10**6, max_seconds=30
        )
        assert time.monotonic() - began < 1.0
        assert not asked.is_set()
    assert (result.error, result.cost_bytes, result.body_bytes) == (STOPPED, 0, 0)
