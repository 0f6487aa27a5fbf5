"""systemd/village-agent.service: it verifies, and its sandbox exposure stays where we put it."""

import json
import shutil
from pathlib import Path

import pytest

from tests.support.systemd_unit import analyze, exposure, settings, verifiable_copy

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "village-agent.service"
EXEC_START = "/opt/village-agent/bin/village-agent"

# What `systemd-analyze security` may score the unit, at most. The daemon reads clock sync state
# from timesyncd's marker or timedated, never with adjtimex, so ProtectClock= can stay on.
EXPOSURE_MAX = 1.5

# Every check the unit fails on purpose, and why; anything else failing is a regression.
ACCEPTED = {
    "PrivateNetwork=": "it measures the host's own link",
    "RestrictAddressFamilies=~AF_(INET|INET6)": "MQTT, TCP and ICMP probes",
    "RestrictAddressFamilies=~AF_UNIX": "NOTIFY_SOCKET",
    "RestrictAddressFamilies=~AF_NETLINK": "interface and neighbour tables",
    "IPAddressDeny=": "broker and probe targets can be any unicast address",
    "AmbientCapabilities=": "CAP_NET_RAW for raw ICMP sockets",
    "CapabilityBoundingSet=~CAP_NET_(BIND_SERVICE|BROADCAST|RAW)": "CAP_NET_RAW",
    "PrivateUsers=": "would make CAP_NET_RAW useless in the host network namespace",
    "DeviceAllow=": "ProtectClock= itself adds char-rtc:r; PrivateDevices= hides the node anyway",
    "ProcSubset=": "/proc/stat, /proc/meminfo and boot_id are needed",
    "RootDirectory=/RootImage=": "runs from the host's /usr with its Python",
}

pytestmark = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


def test_unit_verifies_without_any_warning(tmp_path: Path) -> None:
    """systemd-analyze verify accepts every line: no unknown key, bad value or missing unit."""
    copy = verifiable_copy(UNIT.read_text(), EXEC_START, "village-agent", tmp_path)

    result = analyze("verify", str(copy), cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout + result.stderr == ""


def test_verify_would_catch_a_misspelled_setting(tmp_path: Path) -> None:
    """The check above is not vacuous: a typo in a setting makes verify speak up."""
    broken = UNIT.read_text().replace("ProtectHome=yes", "ProtectHomes=yes")
    copy = verifiable_copy(broken, EXEC_START, "village-agent", tmp_path)

    result = analyze("verify", str(copy), cwd=tmp_path)

    assert "ProtectHomes" in result.stdout + result.stderr


def test_exposure_is_within_the_documented_bound() -> None:
    """The offline security score passes the threshold and is at most EXPOSURE_MAX."""
    score = exposure(UNIT, EXPOSURE_MAX)

    assert score is not None and score <= EXPOSURE_MAX, score


def test_only_the_accepted_checks_fail() -> None:
    """Every check the unit fails is one we chose to fail, for the reason written in ACCEPTED."""
    result = analyze("security", "--offline=yes", "--json=short", str(UNIT))

    assert result.returncode == 0, result.stderr
    failing = {check["name"] for check in json.loads(result.stdout) if check["exposure"]}
    assert failing == set(ACCEPTED)


def test_lifecycle_settings_match_the_daemon() -> None:
    """Readiness, watchdog, restart policy and the EX_CONFIG exception are what the daemon expects."""
    unit = settings(UNIT.read_text())

    assert unit["Type"] == ["notify"]
    assert unit["NotifyAccess"] == ["main"]
    assert unit["WatchdogSec"] == ["60s"]
    assert unit["Restart"] == ["always"]
    assert unit["RestartPreventExitStatus"] == ["78"]
    assert unit["TimeoutStopSec"] == ["15s"]
    assert unit["ExecStart"] == [f"{EXEC_START} run --config /etc/village-agent/agent.yaml"]
    assert unit["User"] == ["village-agent"]
    assert unit["StateDirectory"] == ["village-agent"]


def test_only_cap_net_raw_is_granted_and_the_clock_is_protected() -> None:
    """CAP_NET_RAW is the only capability; no clock calls at all, not even reads."""
    unit = settings(UNIT.read_text())

    assert unit["CapabilityBoundingSet"] == ["CAP_NET_RAW"]
    assert unit["AmbientCapabilities"] == ["CAP_NET_RAW"]
    assert unit["ProtectClock"] == ["yes"]
    filters = unit["SystemCallFilter"]
    assert filters[0] == "@system-service"
    assert not any("clock_adjtime" in value.split() for value in filters)
