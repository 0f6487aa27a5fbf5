"""The command line as a technician meets it: config check, and log lines for journald or a terminal."""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import pytest
import structlog

from agent import logs


def _check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", "config", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_config_check_accepts_the_sample_and_names_what_it_read() -> None:
    """The documented sample passes, and the answer says which site and broker it configures."""
    sample = Path(__file__).resolve().parents[2] / "config" / "agent.yaml"
    done = _check(sample)
    assert done.returncode == 0, done.stderr
    assert "OK (site kukar-tenggarong-01, broker mqtts://collector.example.id:8883)" in done.stdout


def test_config_check_lists_every_problem_with_file_and_exits_78(tmp_path: Path) -> None:
    """A broken file gets its name, each key's path, the fix hint, and sysexits' EX_CONFIG."""
    bad = tmp_path / "agent.yaml"
    bad.write_text(
        "site_id: Desa 01\nstate_dir: /tmp/x\ninterval_s: fast\n"
        "broker:\n  url: http://x\n  topic_prefix: p\n  usernme: a\n"
    )
    done = _check(bad)
    assert done.returncode == 78
    assert str(bad) in done.stderr
    for key in ("site_id", "interval_s", "broker.url", "broker.usernme"):
        assert f"At '{key}'" in done.stderr, done.stderr
    assert "did you mean 'username'?" in done.stderr
    assert "village-agent config check FILE" in done.stderr
    assert done.stdout == ""


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """structlog's configuration is process-wide: later tests must not log into a closed pty."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def _log_one(stream: TextIO) -> None:
    logs.configure("info", stream=stream)
    structlog.get_logger("agent").info("broker_connected", host="collector.example.id")


def test_logs_are_json_lines_when_not_on_a_terminal() -> None:
    """journald gets one JSON object per line, with event, level and an ISO UTC timestamp."""
    out = io.StringIO()
    _log_one(out)
    record = json.loads(out.getvalue())
    assert record["event"] == "broker_connected"
    assert record["level"] == "info"
    assert record["host"] == "collector.example.id"
    assert record["timestamp"].endswith("Z")


def test_logs_are_readable_lines_on_a_terminal() -> None:
    """A technician at a console reads key=value text, not JSON."""
    leader, follower = pty.openpty()
    try:
        with os.fdopen(follower, "w", closefd=False) as tty:
            _log_one(tty)
            tty.flush()
        text = os.read(leader, 4096).decode()
    finally:
        os.close(leader)
        os.close(follower)
    assert "broker_connected" in text
    assert "host=collector.example.id" in text
    assert not text.lstrip().startswith("{")
