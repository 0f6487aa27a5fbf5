"""The simulator's default state root: a fresh temporary directory per run, kept on request."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from simulator.virtual.report import Spans, spans
from tests.support.mqtt_broker import Broker

REPO = Path(__file__).resolve().parents[2]


def _run(broker: Broker, cwd: Path, *extra: str) -> tuple[dict[str, Any], str]:
    done = subprocess.run(
        [
            sys.executable, "-m", "simulator", "run", "power-cuts", "--hours", "2",
            "--broker", broker.url(), "--topic-prefix", "sim/root", *extra,
        ],
        capture_output=True, text=True, timeout=240, check=False, cwd=cwd,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary, done.stderr


def test_a_second_run_starts_clean_and_leaves_nothing_behind(
    tmp_path: Path, broker: Broker
) -> None:
    """Two runs in a row from the same directory: both lose nothing, and no state is left there;
    --keep-state keeps the temporary directory and says where."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    first, _ = _run(broker, checkout)
    second, _ = _run(broker, checkout)
    for summary in (first, second):
        assert summary["totals"]["lost"] == 0 and summary["totals"]["committed"] > 0
    assert list(checkout.iterdir()) == []
    _kept, said = _run(broker, checkout, "--keep-state")
    where = re.search(r"state kept in (\S+)", said)
    assert where is not None, said
    kept = Path(where[1])
    try:
        assert any(kept.rglob("buffer.sqlite"))
    finally:
        shutil.rmtree(kept, ignore_errors=True)


def test_report_tells_dropped_by_the_bound_from_held_in_memory() -> None:
    """A gap after which buffer.dropped_total rose is readings dropped by the bound, not held."""
    backhaul = [(0, 1), (60, 1), (600, 1), (660, 1), (1200, 1), (1260, 1)]
    dropped = [(0, 0), (60, 0), (600, 0), (660, 0), (1200, 480), (1260, 480)]
    found = spans(backhaul, 60, boots=[0], dropped=dropped)
    assert found == Spans(down=[], off=[], held=[(120, 600)], dropped=[(720, 1200)])
