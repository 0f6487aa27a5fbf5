"""The one table the benchmark prints: metric, value, goal, status."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MET, SHORT, INFO, SKIP = "met", "SHORT", "-", "skipped"


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    metric: str
    value: str
    goal: str = ""
    status: str = INFO


def judged(
    metric: str,
    value: float,
    unit: str,
    *,
    at_most: float | None = None,
    at_least: float | None = None,
    digits: int = 1,
) -> Row:
    """A row with a goal: `met` or `SHORT` against the bound."""
    shown = f"{value:,.{digits}f} {unit}".strip()
    if at_most is not None:
        return Row(
            metric=metric,
            value=shown,
            goal=f"<= {at_most:,g} {unit}".strip(),
            status=MET if value <= at_most else SHORT,
        )
    assert at_least is not None
    return Row(
        metric=metric,
        value=shown,
        goal=f">= {at_least:,g} {unit}".strip(),
        status=MET if value >= at_least else SHORT,
    )


def info(metric: str, value: float | str, unit: str = "", digits: int = 1) -> Row:
    shown = value if isinstance(value, str) else f"{value:,.{digits}f}"
    return Row(metric=metric, value=f"{shown} {unit}".strip())


def render(rows: Sequence[Row], machine: str) -> str:
    """A Markdown table (it reads in a terminal and pastes into the README as it is)."""
    head = ("metric", "value", "goal", "status")
    cells = [head, *((r.metric, r.value, r.goal, r.status) for r in rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(4)]

    def line(c: Sequence[str]) -> str:
        return "| " + " | ".join(c[i].ljust(widths[i]) for i in range(4)) + " |"

    out = [line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(c) for c in cells[1:]]
    out.append(f"\nmachine: {machine}")
    return "\n".join(out)
