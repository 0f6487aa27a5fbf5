"""`status` and `diag` show the collector's confirmation from the daemon's status file."""

from __future__ import annotations

from pathlib import Path

from agent.cli.status import render_text, report
from agent.config.load import load_config
from agent.config.schema import Config
from agent.daemon.state import StatusRecord
from agent.diag.base import DiagInputs
from agent.diag.confirm import check_confirm
from agent.diag.messages import LANGS, words
from agent.files import status_path
from simulator.virtual.clock import Timeline, VirtualClock
from tests.support.agent_proc import write_config

NOW = 1_800_000_000.0


def _setup(tmp_path: Path, record: StatusRecord | None) -> tuple[Config, Path]:
    file = write_config(tmp_path, broker_url="mqtt://127.0.0.1:9")
    config = load_config(file)
    if record is not None:
        config.state_dir.mkdir(parents=True, exist_ok=True)
        record.write(status_path(config.state_dir, config.status_dir))
    return config, file


def _diag(config: Config, file: Path) -> tuple[str, str, list[str]]:
    clock = VirtualClock(Timeline(NOW))
    found = check_confirm(DiagInputs(config=config, config_file=file, clock=clock), {}, 1.0)
    return found.status, found.key, [words(found, lang)[0] for lang in LANGS]


def test_without_a_collector_ack_both_say_readings_go_on_the_brokers_ack(tmp_path: Path) -> None:
    """No collector ack ever: status and diag say readings are deleted on the broker's ack."""
    config, file = _setup(tmp_path, StatusRecord(pid=1, confirm_seen=False, updated_at=NOW))
    text = render_text(report(config, now=NOW))
    assert "no collector confirmation seen" in text
    status, key, said = _diag(config, file)
    assert (status, key) == ("pass", "confirm.none")
    assert "broker's acknowledgement" in said[1]


def test_a_confirmation_with_a_gap_shows_through_age_and_missing(tmp_path: Path) -> None:
    """Stored through seq N, the age of the last ack, the missing ranges and the unconfirmed."""
    record = StatusRecord(
        pid=1,
        updated_at=NOW,
        confirm_seen=True,
        confirmed_epoch="e1",
        confirmed_through=178,
        confirm_missing="179-334",
        last_confirm_at=NOW - 120,
        unconfirmed=412,
    )
    config, file = _setup(tmp_path, record)
    out = report(config, now=NOW)
    assert out["confirm"]["through"] == 178
    assert out["confirm"]["last_ack_age_s"] == 120
    text = render_text(out)
    assert "stored through seq 178 (epoch e1), last ack 2 min ago" in text
    assert "179-334" in text and "412 readings delivered" in text
    status, key, said = _diag(config, file)
    assert (status, key) == ("warn", "confirm.repairing")
    assert all("179-334" in line for line in said)


def test_released_readings_are_a_warning(tmp_path: Path) -> None:
    """Readings released unconfirmed may not be stored: diag says so, in both languages."""
    record = StatusRecord(
        pid=1, updated_at=NOW, confirm_seen=True, confirmed_through=5, unconfirmed_released_total=7
    )
    config, file = _setup(tmp_path, record)
    status, key, said = _diag(config, file)
    assert (status, key) == ("warn", "confirm.released")
    assert all("7" in line for line in said)


def test_no_status_yet_is_unknown(tmp_path: Path) -> None:
    """Before the daemon reported anything, diag cannot tell."""
    config, file = _setup(tmp_path, None)
    assert _diag(config, file)[:2] == ("warn", "confirm.unknown")
