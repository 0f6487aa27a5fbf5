"""The latency engine on loopback: TCP connect time, raw ICMP, name failures, statistics."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.probes.ping.engine import PingResult, available_method, ping_round

ROOT = Path(__file__).resolve().parents[2]
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="raw ICMP sockets need root")


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield server.getsockname()[1]


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_tcp_handshake_counts_as_reply(listening_port: int) -> None:
    """A completed TCP handshake with a listening port is a reply with its RTT."""
    [result] = ping_round(
        ["127.0.0.1"],
        count=3,
        interval_s=0.01,
        timeout_s=1.0,
        method="tcp",
        tcp_port=listening_port,
    )
    assert result.method == "tcp"
    assert result.address == "127.0.0.1"
    assert (result.sent, result.received, result.error) == (3, 3, None)
    assert all(0 < rtt < 50 for rtt in result.rtts_ms)


def test_tcp_refusal_counts_as_reply(closed_port: int) -> None:
    """A RST from a closed port proves the round trip just as well as a handshake."""
    [v4, v6] = ping_round(
        ["127.0.0.1", "::1"], count=3, interval_s=0.01, timeout_s=1.0, method="tcp",
        tcp_port=closed_port,
    )  # fmt: skip
    for result in (v4, v6):
        assert (result.sent, result.received, result.loss_ratio) == (3, 3, 0.0)


def test_unanswered_tcp_probes_are_lost_within_the_round_bound() -> None:
    """A target that never answers costs at most (count - 1) * interval + timeout."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = server.getsockname()[1]
        # Fill the accept queue: the kernel then drops further SYNs without any answer.
        fillers = [socket.create_connection(("127.0.0.1", port), timeout=2.0)]
        started = time.monotonic()
        [result] = ping_round(
            ["127.0.0.1"], count=3, interval_s=0.1, timeout_s=0.4, method="tcp", tcp_port=port
        )
        elapsed = time.monotonic() - started
        for filler in fillers:
            filler.close()
    assert (result.sent, result.received, result.loss_ratio) == (3, 0, 1.0)
    assert 0.55 <= elapsed <= 0.6 + 0.15


@needs_root
@pytest.mark.parametrize("address", ["127.0.0.1", "::1"])
def test_icmp_raw_echo_to_loopback(address: str) -> None:
    """As root, echo requests go out on a raw socket and every reply is counted once."""
    [result] = ping_round([address], count=5, interval_s=0.01, timeout_s=1.0, method="icmp")
    assert result.method == "icmp-raw"
    assert (result.sent, result.received, result.error) == (5, 5, None)
    assert all(0 < rtt < 50 for rtt in result.rtts_ms)


@needs_root
def test_concurrent_targets_keep_their_own_replies() -> None:
    """Several targets in one round each get exactly their own replies."""
    results = ping_round(["127.0.0.1", "::1", "127.0.0.2"], count=4, interval_s=0.01)
    assert [r.target for r in results] == ["127.0.0.1", "::1", "127.0.0.2"]
    assert [(r.sent, r.received) for r in results] == [(4, 4)] * 3


@needs_root
def test_available_method_prefers_raw_icmp_as_root() -> None:
    """With CAP_NET_RAW the raw socket wins, for IPv4 and IPv6."""
    assert available_method() == "icmp-raw"
    assert available_method("icmp", socket.AF_INET6) == "icmp-raw"


def test_available_method_honours_tcp() -> None:
    """Asking for TCP gets TCP, whatever the privileges."""
    assert available_method("tcp") == "tcp"


_RESOLVING_CHILD = """
import dataclasses, json, socket, sys, time
from agent.probes.ping.engine import ping_round
if sys.argv[1] == "dead":
    # A resolver that takes queries and never answers.
    dead = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dead.bind(("127.0.0.1", 53))
started = time.monotonic()
[result] = ping_round(["nothing-here.invalid"], count=3, interval_s=0.1, timeout_s=0.5)
print(json.dumps({"elapsed": time.monotonic() - started, **dataclasses.asdict(result)}))
"""


def _resolve_in_private_network(tmp_path: Path, dns: str) -> tuple[float, PingResult]:
    """Run a round in a private network and mount namespace whose resolver is on its own
    loopback, so no DNS query can leave the machine."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) for a private network namespace")
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\noptions timeout:5 attempts:2\n")
    setup = f'mount --bind {resolv} /etc/resolv.conf && ip link set lo up && exec "$@"'
    argv = ["unshare", "--net", "--mount", "--", "sh", "-c", setup, "sh"]
    done = subprocess.run(
        [*argv, sys.executable, "-c", _RESOLVING_CHILD, dns],
        capture_output=True, text=True, timeout=30, cwd=ROOT, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot build a private network namespace: {done.stderr.strip()[-300:]}")
    fields = json.loads(done.stdout)
    elapsed = fields.pop("elapsed")
    return elapsed, PingResult(**{**fields, "rtts_ms": tuple(fields["rtts_ms"])})


def test_unresolvable_name_is_full_loss_with_reason(tmp_path: Path) -> None:
    """A name that cannot be resolved reads as 100 % loss with the reason, never as no data."""
    elapsed, result = _resolve_in_private_network(tmp_path, "refusing")
    assert result.address is None
    assert result.error == "name not resolved"
    assert (result.sent, result.received, result.loss_ratio) == (3, 0, 1.0)
    assert elapsed <= 0.2 + 0.5 + 0.15


def test_dead_resolver_cannot_stall_the_round(tmp_path: Path) -> None:
    """A resolver that never answers costs the round no more than its time bound."""
    elapsed, result = _resolve_in_private_network(tmp_path, "dead")
    assert result.error == "name resolution timed out"
    assert (result.sent, result.received, result.loss_ratio) == (3, 0, 1.0)
    assert elapsed <= 0.2 + 0.5 + 0.15


def test_statistics_of_a_round() -> None:
    """min/avg/max, loss and jitter (mean absolute difference of consecutive RTTs)."""
    result = PingResult(
        target="t", address="192.0.2.1", method="tcp", sent=5, rtts_ms=(10.0, 20.0, 15.0, 15.0)
    )
    assert result.received == 4
    assert result.loss_ratio == pytest.approx(0.2)
    assert (result.rtt_min_ms, result.rtt_max_ms) == (10.0, 20.0)
    assert result.rtt_avg_ms == pytest.approx(15.0)
    assert result.jitter_ms == pytest.approx((10 + 5 + 0) / 3)


def test_statistics_undefined_without_replies() -> None:
    """Without replies the RTT figures are None and loss is total; without probes loss is None."""
    lost = PingResult(target="t", address=None, method="tcp", sent=3, rtts_ms=())
    assert (lost.rtt_min_ms, lost.rtt_avg_ms, lost.rtt_max_ms, lost.jitter_ms) == (None,) * 4
    assert lost.loss_ratio == 1.0
    single = PingResult(target="t", address=None, method="tcp", sent=1, rtts_ms=(7.0,))
    assert single.jitter_ms is None
    assert PingResult(target="t", address=None, method="tcp", sent=0, rtts_ms=()).loss_ratio is None


@pytest.mark.parametrize(
    "kwargs", [{"count": 0}, {"interval_s": -1.0}, {"timeout_s": 0.0}, {"tcp_port": 0}]
)
def test_impossible_parameters_are_refused(kwargs: dict[str, float]) -> None:
    """Parameters that cannot describe a round raise ValueError before anything is sent."""
    with pytest.raises(ValueError):
        ping_round(["127.0.0.1"], **kwargs)  # type: ignore[arg-type]
