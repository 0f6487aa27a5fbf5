"""Why the agent started: first start, clean restart, crash, reboot or power cut, from the run marker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.daemon.state import classify_start, mark_running
from agent.files import RUN_MARKER, read_json
from simulator.virtual.collector import Collector
from tests.support.agent_proc import AgentProcess, wait_until, write_config
from tests.support.mqtt_broker import Broker

SITE = "test-site-01"
PREFIX = "desa/test"
BOOT = "6f1c8a52-0c1e-4d5b-9a77-3c2f0e4b1a10"
OTHER_BOOT = "0b9e4c3d-7a21-4f68-8d15-e2a6b7c9d003"


@pytest.mark.parametrize(
    ("marker", "reason", "previous"),
    [
        (None, "first_start", None),
        ({"boot_id": BOOT, "clean": True, "pid": 1}, "restart", BOOT),
        ({"boot_id": BOOT, "clean": False, "pid": 1}, "crash", BOOT),
        ({"boot_id": OTHER_BOOT, "clean": True, "pid": 1}, "reboot", OTHER_BOOT),
        ({"boot_id": OTHER_BOOT, "clean": False, "pid": 1}, "power_cut", OTHER_BOOT),
        # Only a literal true is a clean stop; a marker that names no boot is not this boot's.
        ({"boot_id": BOOT, "clean": "true"}, "crash", BOOT),
        ({}, "power_cut", None),
    ],
)
def test_classify_start(marker: dict[str, Any] | None, reason: str, previous: str | None) -> None:
    """Each marker/boot combination gives its reason and the previous run's boot id."""
    start = classify_start(marker, BOOT)
    assert (start.reason, start.previous_boot_id) == (reason, previous)


def test_the_marker_written_by_mark_running_is_read_back(tmp_path: Path) -> None:
    """mark_running's file classifies as crash while running and as restart after a clean stop."""
    assert classify_start(read_json(tmp_path / RUN_MARKER), BOOT).reason == "first_start"
    mark_running(tmp_path, BOOT, clean=False)
    assert classify_start(read_json(tmp_path / RUN_MARKER), BOOT).reason == "crash"
    mark_running(tmp_path, BOOT, clean=True)
    assert classify_start(read_json(tmp_path / RUN_MARKER), BOOT).reason == "restart"
    assert classify_start(read_json(tmp_path / RUN_MARKER), OTHER_BOOT).reason == "reboot"


def _start_reasons(collector: Collector) -> list[str]:
    return [r.tags["reason"] for r in collector.readings(SITE) if r.metric == "event.agent_start"]


def test_kill_9_reads_as_crash_and_sigterm_as_restart(tmp_path: Path, broker: Broker) -> None:
    """A real agent: first start, kill -9 then start (crash), SIGTERM then start (restart)."""
    config = write_config(tmp_path, broker_url=broker.url())
    with Collector(broker.url(), PREFIX) as collector:
        expected: list[str] = []
        for reason, stop in (("first_start", "kill"), ("crash", "term"), ("restart", "term")):
            expected.append(reason)
            with AgentProcess(config) as agent:
                wait_until(
                    lambda: _start_reasons(collector) == expected,
                    20,
                    f"start reasons {_start_reasons(collector)}, wanted {expected}\n{agent.log()}",
                )
                if stop == "kill":
                    agent.kill()
                else:
                    assert agent.terminate() == 0, agent.log()
    assert not collector.rejected
