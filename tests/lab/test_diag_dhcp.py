"""`diag`'s hotspot DHCP check on a namespace LAN, with and without a dnsmasq the test starts."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simulator.lab.netlab import Lab, netns_available
from tests.support.agent_proc import write_config

needs_netns = pytest.mark.skipif(not netns_available()[0], reason=netns_available()[1])
DNSMASQ = shutil.which("dnsmasq") or (
    "/usr/sbin/dnsmasq" if Path("/usr/sbin/dnsmasq").exists() else None
)


@pytest.fixture
def lab() -> Iterator[Lab]:
    with Lab() as built:
        yield built


def _dhcp_line(lab: Lab, config: Path, lang: str = "en") -> dict[str, Any]:
    argv = [sys.executable, "-m", "agent", "diag", "--json", "--config", str(config)]
    done = lab.run("gw", [*argv, "--lang", lang], check=False, timeout=90)
    assert done.stdout, done.stderr
    found: dict[str, Any] = {c["name"]: c for c in json.loads(done.stdout)["checks"]}["dhcp"]
    return found


@pytest.mark.netns
@needs_netns
@pytest.mark.skipif(DNSMASQ is None, reason="dnsmasq is not installed (tests/run installs it)")
def test_dhcp_check_reports_the_offer_or_the_silence(tmp_path: Path, lab: Lab) -> None:
    """No server on the hotspot LAN: "no DHCP server answers on veth-gw" (fail). A dnsmasq on the
    LAN: pass, with its address, the offered address, the lease and the DNS it hands out."""
    config = write_config(
        tmp_path, broker_url="mqtt://127.0.0.1:9", extra={"lan": {"interface": "veth-gw"}}
    )
    silent = _dhcp_line(lab, config)
    assert (silent["status"], silent["key"]) == ("fail", "dhcp.silent"), silent
    assert "No DHCP server answers on veth-gw" in silent["detail"]
    assert "Tidak ada server DHCP" in _dhcp_line(lab, config, "id")["detail"]
    assert DNSMASQ is not None
    lab.popen(
        "far",
        [
            DNSMASQ, "--no-daemon", "--port=0", "--conf-file=/dev/null", "--user=root",
            "--interface=veth-far", "--bind-interfaces", "--leasefile-ro",
            f"--pid-file={tmp_path / 'dnsmasq.pid'}",
            "--dhcp-range=10.77.0.100,10.77.0.150,2h", "--dhcp-option=6,10.77.0.53",
        ],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(0.5)  # dnsmasq binds its port
    offered = _dhcp_line(lab, config)
    assert (offered["status"], offered["key"]) == ("pass", "dhcp.ok"), offered
    detail = offered["detail"]
    assert re.search(r"DHCP server 10\.77\.0\.2 on veth-gw offers 10\.77\.0\.1\d\d,", detail), (
        detail
    )
    assert "lease 120 min" in detail and "DNS 10.77.0.53" in detail
