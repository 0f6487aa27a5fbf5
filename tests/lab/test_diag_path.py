"""`diag`'s path check in a chain of namespaces: gateway, three routers, destination."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.diag.path import Hop, classify
from simulator.lab.netlab import netns_available
from tests.support.agent_proc import write_config

REPO = Path(__file__).resolve().parents[2]
DST = "10.90.3.2"
needs_netns = pytest.mark.skipif(not netns_available()[0], reason=netns_available()[1])


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def _sysctl(ns: str, key: str, value: str) -> None:
    path = "/proc/sys/" + key.replace(".", "/")
    write = "import sys; open(sys.argv[1], 'w').write(sys.argv[2])"
    _ip("netns", "exec", ns, sys.executable, "-c", write, path, value)


@contextlib.contextmanager
def built_chain() -> Iterator[list[str]]:
    """ns0 (the gateway) - ns1 - ns2 - ns3 (routers, hops 1 to 3) - ns4 (the destination, hop 4).
    Link i joins ns i (10.90.i.1) and ns i+1 (10.90.i.2)."""
    names = [f"vp-{os.getpid()}-{i}" for i in range(5)]
    made: list[str] = []
    try:
        for name in names:
            _ip("netns", "add", name)
            made.append(name)
            _ip("-n", name, "link", "set", "lo", "up")
        for i in range(4):
            left, right = names[i], names[i + 1]
            _ip("-n", left, "link", "add", f"r{i}a", "type", "veth", "peer", "name", f"r{i}b",
                "netns", right)  # fmt: skip
            _ip("-n", left, "addr", "add", f"10.90.{i}.1/24", "dev", f"r{i}a")
            _ip("-n", right, "addr", "add", f"10.90.{i}.2/24", "dev", f"r{i}b")
            _ip("-n", left, "link", "set", f"r{i}a", "up")
            _ip("-n", right, "link", "set", f"r{i}b", "up")
        for i in range(4):  # towards the destination
            _ip("-n", names[i], "route", "add", "default", "via", f"10.90.{i}.2")
        for i in range(2, 5):  # back towards the gateway
            _ip("-n", names[i], "route", "add", "10.90.0.0/24", "via", f"10.90.{i - 1}.1")
        for name in names[1:4]:
            _sysctl(name, "net.ipv4.ip_forward", "1")
        yield names
    finally:
        for name in made:
            subprocess.run(["ip", "netns", "del", name], check=False, timeout=30)


@pytest.fixture
def chain() -> Iterator[list[str]]:
    """The chain of namespaces, deleted after the test."""
    with built_chain() as names:
        yield names


def _path_check(ns: str, config: Path) -> dict[str, Any]:
    argv = ["ip", "netns", "exec", ns, sys.executable, "-m", "agent", "diag", "--json"]
    argv += ["--config", str(config), "--lang", "en"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=90, cwd=REPO, env=env, check=False
    )
    assert done.stdout, done.stderr
    checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    found: dict[str, Any] = checks["path"]
    return found


@pytest.mark.netns
@needs_netns
def test_path_check_names_the_hop_after_which_the_path_breaks(
    tmp_path: Path, chain: list[str]
) -> None:
    """The whole chain: destination reached in 4 hops. Hop 3 no longer forwarding (a dead link past
    hop 2): "the path breaks after hop 2" with hop 2's address."""
    config = write_config(
        tmp_path, broker_url=f"mqtt://{DST}:1883", extra={"latency": {"targets": [DST]}}
    )
    whole = _path_check(chain[0], config)
    assert (whole["status"], whole["key"]) == ("pass", "path.ok"), whole
    assert "in 4 hops" in whole["detail"]
    assert "1 10.90.0.2 (modem)" in whole["detail"]
    _sysctl(chain[3], "net.ipv4.ip_forward", "0")
    cut = _path_check(chain[0], config)
    assert cut["key"] == "path.breaks", cut
    assert "breaks after hop 2 (10.90.1.2, backhaul)" in cut["detail"]
    assert "3 " not in cut["detail"].split(": ", 1)[1]  # no hop 3 listed


def test_hops_are_named_lan_first_hop_backhaul_beyond() -> None:
    """Before the modem LAN, the modem first hop, private/CGNAT behind it backhaul, public beyond."""
    hops = [
        Hop(ttl=1, address="192.168.8.1", reached=False),
        Hop(ttl=2, address="192.168.1.1", reached=False),
        Hop(ttl=3, address="100.72.0.1", reached=False),
        Hop(ttl=4, address="10.20.0.1", reached=False),
        Hop(ttl=5, address="1.1.1.1", reached=True),
    ]
    kinds = [kind for _hop, kind in classify(hops, "192.168.1.1")]
    assert kinds == ["lan", "first_hop", "backhaul", "backhaul", "beyond"]
    assert classify(hops[2:], None)[0][1] == "first_hop"  # no known modem: the first to answer
