"""systemd/village-collector.service: it verifies, and its sandbox exposure stays where we put it."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.support.systemd_unit import analyze, exposure, settings, verifiable_copy

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "village-collector.service"
EXEC_START = "/opt/village-collector/bin/village-collector"
EXPOSURE_MAX = 1.2

# Every check the unit fails on purpose, and why; anything else failing is a regression.
ACCEPTED = {
    "PrivateNetwork=": "it talks to the broker and the database, and serves /metrics",
    "RestrictAddressFamilies=~AF_(INET|INET6)": "MQTT, PostgreSQL, HTTP",
    "RestrictAddressFamilies=~AF_UNIX": "journald, a local PostgreSQL's socket",
    "IPAddressDeny=": "the broker and the database may be at any address",
    "DeviceAllow=": "ProtectClock= itself adds char-rtc:r; PrivateDevices= hides the node anyway",
    "RootDirectory=/RootImage=": "runs from the host's /usr with its Python",
}

pytestmark = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


def test_unit_verifies_without_any_warning(tmp_path: Path) -> None:
    """systemd-analyze verify accepts every line (ExecStart pointed at a stand-in program)."""
    copy = verifiable_copy(UNIT.read_text(), EXEC_START, "village-collector", tmp_path)

    result = analyze("verify", str(copy), cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout + result.stderr == ""


def test_exposure_is_within_the_documented_bound() -> None:
    """The offline security score is at most EXPOSURE_MAX."""
    score = exposure(UNIT, EXPOSURE_MAX)
    assert score is not None and score <= EXPOSURE_MAX, score


def test_only_the_accepted_checks_fail() -> None:
    """Every check the unit fails is one chosen, for the reason in ACCEPTED."""
    result = analyze("security", "--offline=yes", "--json=short", str(UNIT))
    assert result.returncode == 0, result.stderr
    failing = {check["name"] for check in json.loads(result.stdout) if check["exposure"]}
    assert failing == set(ACCEPTED)


def test_lifecycle_settings_match_the_program() -> None:
    """Restarts always except on EX_CONFIG, the state directory holds the embedded database, and
    no capability is granted."""
    unit = settings(UNIT.read_text())
    assert unit["ExecStart"] == [f"{EXEC_START} run --config /etc/village-collector/collector.yaml"]
    assert unit["Restart"] == ["always"]
    assert unit["RestartPreventExitStatus"] == [str(os.EX_CONFIG)]
    assert unit["StateDirectory"] == ["village-collector"]
    assert unit["User"] == ["village-collector"]
    assert unit["CapabilityBoundingSet"] == [""]
