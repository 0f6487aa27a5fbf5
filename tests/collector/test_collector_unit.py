"""systemd/village-collector.service: it verifies, and its sandbox exposure stays where we put it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

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


def analyze(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        env={**os.environ, "SYSTEMD_COLORS": "0", "SYSTEMD_PAGER": "cat"},
    )


def settings() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def test_unit_verifies_without_any_warning(tmp_path: Path) -> None:
    """systemd-analyze verify accepts every line (ExecStart pointed at a stand-in program)."""
    fake = tmp_path / "village-collector"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    text = UNIT.read_text()
    assert f"ExecStart={EXEC_START} " in text
    copy = tmp_path / "village-collector.service"
    copy.write_text(text.replace(f"ExecStart={EXEC_START} ", f"ExecStart={fake} "))

    result = analyze("verify", str(copy), cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout + result.stderr == ""


def test_exposure_is_within_the_documented_bound() -> None:
    """The offline security score is at most EXPOSURE_MAX."""
    result = analyze(
        "security", "--offline=yes", f"--threshold={round(EXPOSURE_MAX * 10)}", str(UNIT)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    found = re.search(r"Overall exposure level for village-collector\.service: (\d+\.\d)",
                      result.stdout)  # fmt: skip
    assert found, result.stdout
    assert float(found.group(1)) <= EXPOSURE_MAX


def test_only_the_accepted_checks_fail() -> None:
    """Every check the unit fails is one chosen, for the reason in ACCEPTED."""
    result = analyze("security", "--offline=yes", "--json=short", str(UNIT))
    assert result.returncode == 0, result.stderr
    failing = {check["name"] for check in json.loads(result.stdout) if check["exposure"]}
    assert failing == set(ACCEPTED)


def test_lifecycle_settings_match_the_program() -> None:
    """Restarts always except on EX_CONFIG, the state directory holds the embedded database, and
    no capability is granted."""
    unit = settings()
    assert unit["ExecStart"] == [f"{EXEC_START} run --config /etc/village-collector/collector.yaml"]
    assert unit["Restart"] == ["always"]
    assert unit["RestartPreventExitStatus"] == [str(os.EX_CONFIG)]
    assert unit["StateDirectory"] == ["village-collector"]
    assert unit["User"] == ["village-collector"]
    assert unit["CapabilityBoundingSet"] == [""]
