"""Support for the fault catalogue run: counting readings and the summary table."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from agent_proc import AgentProcess, buffer_state

from simulator.collector import Collector


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultRow:
    fault: str
    injected: str
    committed: int
    delivered: int
    lost: int
    duplicated: int


ROWS: list[FaultRow] = []


def tally(
    fault: str, injected: str, agent: AgentProcess, collector: Collector, site: str
) -> FaultRow:
    """Count what the agent committed against what arrived; record the row for the summary.

    Readings still in the buffer at the end are not lost: they wait for the next connection.
    Readings the buffer dropped to respect its bound are counted there, not here.
    """
    last_seq, remaining = buffer_state(agent.state_dir)
    committed = set(range(1, last_seq + 1))
    report = collector.completeness(site, committed)
    lost = len(set(report.lost) - remaining)
    row = FaultRow(
        fault=fault,
        injected=injected,
        committed=len(committed),
        delivered=report.delivered,
        lost=lost,
        duplicated=report.duplicates,
    )
    ROWS.append(row)
    return row


def record(
    fault: str, injected: str, *, committed: int, delivered: int, lost: int, duplicated: int
) -> None:
    """A row from a run that counted for itself (the simulator's virtual-time scenarios)."""
    ROWS.append(
        FaultRow(
            fault=fault,
            injected=injected,
            committed=committed,
            delivered=delivered,
            lost=lost,
            duplicated=duplicated,
        )
    )


def table(rows: list[FaultRow]) -> list[str]:
    header = ("fault", "injected by", "committed", "delivered", "lost", "duplicated")
    cells = [header] + [
        (r.fault, r.injected, str(r.committed), str(r.delivered), str(r.lost), str(r.duplicated))
        for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = []
    for n, row in enumerate(cells):
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A small tmpfs of our own at `path`, unmounted afterwards."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def can_mount(tmp: Path) -> tuple[bool, str]:
    probe = tmp / "mount-probe"
    probe.mkdir(exist_ok=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        return False, f"cannot mount a tmpfs here: {result.stderr.strip()}"
    subprocess.run(["umount", str(probe)], check=False)
    return True, ""
