"""`village-agent status`: what the daemon is doing, read from its files while it runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.agent_proc import AgentProcess, write_config
from tests.support.mqtt_broker import Broker

REPO = Path(__file__).resolve().parents[2]


def _status(config: Path) -> tuple[int, dict[str, Any], str]:
    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "agent", "status", "--config", str(config), *extra]
        return subprocess.run(
            argv, capture_output=True, text=True, cwd=REPO, timeout=30, check=False
        )

    as_json = run("--json")
    return as_json.returncode, json.loads(as_json.stdout), run().stdout


def test_no_daemon_says_so_plainly(tmp_path: Path) -> None:
    """Without a daemon ever having run: exit 3 and a sentence saying it is not running."""
    config = write_config(tmp_path, broker_url="mqtt://127.0.0.1:9")
    code, report, text = _status(config)
    assert code == 3
    assert report["daemon"] == "never"
    assert report["backlog"] is None
    assert "NOT running" in text


def test_running_daemon_reports_broker_backlog_and_rounds(tmp_path: Path, broker: Broker) -> None:
    """With `village-agent run` up: running, broker connected, recent round and publish; after
    SIGTERM: stopped, with what it last reported."""
    config = write_config(tmp_path, broker_url=broker.url(), interval_s=0.3)
    with AgentProcess(config) as agent:
        agent.wait_status("last_ack_at", lambda v: v is not None)
        code, report, text = _status(config)
        assert code == 0, text
        assert report["daemon"] == "running"
        assert report["pid"] == agent.pid
        assert report["broker_state"] == "connected"
        assert (report["broker_protocol"], report["broker_protocol_why"]) == ("5", "default")
        assert report["last_error"] is None
        assert "connected (MQTT 5)" in text
        assert report["last_round_age_s"] < 5
        assert report["last_publish_age_s"] < 5
        assert isinstance(report["backlog"], int)
        assert report["uptime_s"] > 0
        assert "village-agent is running" in text
        assert agent.terminate() == 0
    code, report, text = _status(config)
    assert code == 3
    assert report["daemon"] == "stopped"
    assert report["backlog"] == 0
    assert "NOT running" in text


def test_status_on_a_tmpfs_survives_being_wiped_by_a_reboot(tmp_path: Path, broker: Broker) -> None:
    """With `status_dir` (the service's /run/village-agent) the file lives there and not on the
    card; a reboot empties it, and `status` then says stopped, not "never ran"."""
    run_dir = tmp_path / "run" / "village-agent"  # created by the daemon, as RuntimeDirectory= does
    config = write_config(tmp_path, broker_url=broker.url(), extra={"status_dir": str(run_dir)})
    with AgentProcess(config) as agent:
        agent.wait_status("last_ack_at", lambda v: v is not None)
        assert (run_dir / "status.json").is_file()
        assert not (agent.state_dir / "status.json").exists()
        code, report, _ = _status(config)
        assert (code, report["daemon"], report["pid"]) == (0, "running", agent.pid)
        assert agent.terminate() == 0
    (run_dir / "status.json").unlink()
    code, report, text = _status(config)
    assert (code, report["daemon"]) == (3, "stopped")
    assert "never" not in text


def test_unreachable_broker_shows_backlog_growing_and_the_error(tmp_path: Path) -> None:
    """A daemon that cannot reach its broker: status shows the backlog, its age, and the last error."""
    config = write_config(tmp_path, broker_url="mqtt://127.0.0.1:9", interval_s=0.2)
    with AgentProcess(config) as agent:
        agent.wait_status("backlog", lambda v: isinstance(v, int) and v > 0)
        agent.wait_status("last_error", bool)
        code, report, _text = _status(config)
        assert code == 0
        assert report["backlog"] > 0
        assert report["oldest_unsent_age_s"] is not None
        assert report["broker_state"] in ("unreachable", "connecting")
        assert "cannot reach the broker" in (report["last_error"] or "")
        assert os.path.exists(agent.state_dir / "buffer.sqlite")
