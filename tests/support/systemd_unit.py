"""What the unit-file tests of the agent and the collector share: systemd-analyze without colours
or a pager, a copy of a unit that `verify` can check, a unit's settings, and its exposure score."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path


def analyze(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run systemd-analyze without colours or a pager."""
    return subprocess.run(
        ["systemd-analyze", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        env={**os.environ, "SYSTEMD_COLORS": "0", "SYSTEMD_PAGER": "cat"},
    )


def verifiable_copy(unit_text: str, exec_start: str, name: str, directory: Path) -> Path:
    """The unit (`name`.service) with ExecStart= pointing at a stand-in executable, since verify
    checks that the program exists."""
    fake = directory / name
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    assert f"ExecStart={exec_start} " in unit_text
    copy = directory / f"{name}.service"
    copy.write_text(unit_text.replace(f"ExecStart={exec_start} ", f"ExecStart={fake} "))
    return copy


def settings(unit_text: str) -> dict[str, list[str]]:
    """Each key of the unit and its values in order (keys like SystemCallFilter= repeat)."""
    found: dict[str, list[str]] = {}
    for line in unit_text.splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def exposure(unit: Path, threshold: float) -> float | None:
    """The unit's offline exposure score, or None when `systemd-analyze security` fails the
    threshold or prints no score."""
    result = analyze("security", "--offline=yes", f"--threshold={round(threshold * 10)}", str(unit))
    found = re.search(
        rf"Overall exposure level for {re.escape(unit.name)}: (\d+\.\d)", result.stdout
    )
    if result.returncode != 0 or found is None:
        return None
    return float(found.group(1))
