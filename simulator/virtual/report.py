"""A picture of a run: per site, latency, throughput, backhaul outages and backlog over time (PNG).

One row per site, the same four panels in each, on one time axis: hours since the run started.
Backhaul outages (the agent's own `uptime.backhaul_up`) are shaded red, power cuts (stretches
without readings that end in a boot) grey, and other stretches without readings amber: rounds the
agent held in memory while the disk was full, committed later, which the simulator cannot date, or
purple where the buffer's bound dropped the oldest readings (`buffer.dropped_total` rose). The
shading is in every panel of the row, so a latency gap or a backlog ramp lines up with its cause;
lines break where there are no readings instead of drawing a straight line across a power cut.

matplotlib is an optional extra (`pip install village-agent[sim-report]`): it is imported only here,
and only when a report is drawn.
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.virtual.fleet import BOOTS_SERIES, SERIES_FILE, SUMMARY_FILE

REPORT_FILE = "report.png"
MAX_SITES = 12  # more rows than this are unreadable; the summary has every site
DOWN_COLOUR, OFF_COLOUR, HELD_COLOUR = "tab:red", "0.55", "tab:orange"
DROPPED_COLOUR = "tab:purple"
DROPPED = "buffer.dropped_total"
BACKHAUL = "uptime.backhaul_up"
# (metric, panel title, divisor): the panels of each row, left to right.
PANELS = (
    ("latency.rtt_avg_ms", "latency: RTT avg (ms)", 1.0),
    ("throughput.rx_bps", "throughput: WAN rx (Mbit/s)", 1e6),
    (BACKHAUL, "outages: backhaul and power", 1.0),
    ("buffer.backlog_readings", "backlog (readings in the buffer)", 1.0),
)

Points = Sequence[Sequence[float]]  # [(true time, value), ...] as series.json holds them
Span = tuple[float, float]


class ReportError(Exception):
    """The report cannot be drawn; the message says what to do."""


def _load(run_dir: Path) -> tuple[dict[str, Any], dict[str, dict[str, list[list[float]]]]]:
    try:
        summary = json.loads((run_dir / SUMMARY_FILE).read_text(encoding="utf-8"))
        drawn = json.loads((run_dir / SERIES_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ReportError(
            f"{run_dir} holds no readable run ({err}); make one with "
            "`python -m simulator run SCENARIO --broker URL --run-dir DIR`"
        ) from err
    return summary, drawn


def pick_sites(summary: dict[str, Any], drawn: dict[str, Any], limit: int = MAX_SITES) -> list[str]:
    """The sites worth a row, at most `limit`: the most lost first, then dropped, then the longest
    delivery delay (outages), then the most boots (power cuts); in site order when all fit."""
    sites = sorted(s for s in drawn if any(drawn[s].values()))
    if len(sites) <= limit:
        return sites
    info = summary.get("sites", {})

    def badness(site: str) -> tuple[float, ...]:
        s = info.get(site, {})
        dropped = (s.get("dropped_by_bound") or 0) + (s.get("dropped_in_memory") or 0)
        return (s.get("lost") or 0, dropped, s.get("worst_delay_s") or 0, s.get("boots") or 0)

    return sorted(sites, key=lambda s: tuple(-x for x in badness(s)))[:limit]


def interval_of(points: Points) -> float:
    """The measurement interval: the usual step between two readings (60 s when unknown)."""
    steps = [b[0] - a[0] for a, b in itertools.pairwise(points) if b[0] > a[0]]
    return statistics.median(steps) if steps else 60.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Spans:
    """Stretches of true time, (start, end), behind a row's shading."""

    down: list[Span]  # the backhaul was down
    off: list[Span]  # no readings, then a boot: a power cut
    held: list[Span]  # no readings without a boot: rounds held in memory (disk full)
    # No readings without a boot, and buffer.dropped_total rose across the gap: readings the buffer
    # bound dropped (gone for good, unlike held rounds, which arrive later undated).
    dropped: list[Span] = field(default_factory=list)


def _value_at(points: Points, t: float) -> float:
    """A step series' value at time t: the last point at or before t (0 before the first)."""
    index = bisect.bisect_right([p[0] for p in points], t)
    return float(points[index - 1][1]) if index else 0.0


def spans(points: Points, interval: float, boots: Sequence[float], dropped: Points = ()) -> Spans:
    """From the backhaul series, the boot times and `buffer.dropped_total`: a reading of 0 holds
    until the next round; a step longer than 1.5 intervals is a power cut if a boot ends it,
    readings dropped by the buffer bound if the dropped count rose across it, else rounds held in
    memory."""
    out = Spans(down=[], off=[], held=[])
    for (t, value), (after, _) in zip(points, [*points[1:], (math.inf, 0.0)], strict=True):
        until = after
        if after - t > 1.5 * interval:
            if after != math.inf:
                booted = any(t < boot <= after for boot in boots)
                bound = _value_at(dropped, after) > _value_at(dropped, t)
                kind = out.off if booted else out.dropped if bound else out.held
                kind.append((t + interval, after))
            until = t + interval
        if value < 0.5:
            if out.down and math.isclose(out.down[-1][1], t):
                out.down[-1] = (out.down[-1][0], until)
            else:
                out.down.append((t, until))
    return out


def broken(
    points: Points, interval: float, start: float, divisor: float
) -> tuple[list[float], list[float]]:
    """(hours, values) with a NaN wherever readings stop for more than 1.5 intervals, so the line
    breaks there."""
    hours: list[float] = []
    values: list[float] = []
    last: float | None = None
    for t, value in points:
        if last is not None and t - last > 1.5 * interval:
            hours.append((last + interval - start) / 3600)
            values.append(math.nan)
        hours.append((t - start) / 3600)
        values.append(value / divisor)
        last = t
    return hours, values


def _row_label(site: str, info: dict[str, Any]) -> str:
    delay = info.get("worst_delay_s")
    return (
        f"{site}\nlost {info.get('lost', '?')}, dropped {info.get('dropped_by_bound', '?')}\n"
        f"boots {info.get('boots', '?')}, worst delay "
        f"{'-' if delay is None else f'{delay / 60:,.0f} min'}"
    )


def draw(run_dir: Path, out: Path | None = None) -> Path:
    """Draw the run in run_dir to a PNG (default run_dir/report.png) and return its path."""
    summary, drawn = _load(run_dir)
    try:
        import matplotlib  # noqa: PLC0415 - optional and heavy: only a report needs it

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
        from matplotlib.patches import Patch  # noqa: PLC0415
        from matplotlib.ticker import MaxNLocator  # noqa: PLC0415
    except ImportError as err:
        raise ReportError(
            "drawing a report needs matplotlib: pip install 'village-agent[sim-report]'"
        ) from err
    sites = pick_sites(summary, drawn)
    if not sites:
        raise ReportError(f"{run_dir} has no readings to draw")
    fig, axes = plt.subplots(
        len(sites),
        len(PANELS),
        figsize=(18, 2.3 * len(sites) + 1.6),
        squeeze=False,
        sharex=True,
        layout="constrained",
    )
    # Hours fall on 1, 2, 3 or 6 (a day reads 0, 3, 6 ... 24); the panels share the axis.
    axes[0][0].xaxis.set_major_locator(MaxNLocator(nbins=9, steps=[1, 2, 3, 6, 10]))
    start = min(m[0][0] for s in sites for m in drawn[s].values() if m)
    infos = summary.get("sites", {})
    for row, site in enumerate(sites):
        backhaul = drawn[site].get(BACKHAUL, [])
        interval = interval_of(backhaul)
        boots = [t for t, _ in drawn[site].get(BOOTS_SERIES, [])]
        found = spans(backhaul, interval, boots, drawn[site].get(DROPPED, []))
        shading = (
            (found.down, DOWN_COLOUR, 0.18),
            (found.off, OFF_COLOUR, 0.35),
            (found.held, HELD_COLOUR, 0.25),
            (found.dropped, DROPPED_COLOUR, 0.25),
        )
        for col, (metric, title, divisor) in enumerate(PANELS):
            axis = axes[row][col]
            if metric == BACKHAUL:
                _draw_outages(axis, found, start)
            else:
                for spans_of, colour, alpha in shading:
                    for begin, end in spans_of:
                        axis.axvspan((begin - start) / 3600, (end - start) / 3600, color=colour,
                                     alpha=alpha, linewidth=0)  # fmt: skip
                hours, values = broken(drawn[site].get(metric, []), interval, start, divisor)
                # The backlog changes once a round and holds: a step, not a slope.
                style = "steps-post" if metric.startswith("buffer.") else "default"
                axis.plot(hours, values, linewidth=0.8, color="tab:blue", drawstyle=style)
                # From zero, so that noise of a few ms does not look like a swing; a flat zero (no
                # backlog) gets a scale of its own instead of hiding on the axis.
                top = max((v for v in values if not math.isnan(v)), default=0.0)
                axis.set_ylim(0, top * 1.08 if top > 0 else 1.0)
                axis.grid(alpha=0.3)
            if row == 0:
                axis.set_title(title, fontsize=11)
            if row == len(sites) - 1:
                axis.set_xlabel("hours since the start (virtual time)")
        axes[row][0].set_ylabel(_row_label(site, infos.get(site, {})), fontsize=9)
    totals = summary.get("totals", {})
    shown = len(sites)
    everyone = len(infos) or shown
    which = (
        ""
        if shown == everyone
        else f"\n{shown} of {everyone} sites shown: the most lost, dropped, delayed, rebooted first"
    )
    gateways = summary.get("gateways")
    fig.suptitle(
        f"{gateways} gateway{'' if gateways == 1 else 's'}, {summary.get('hours')} virtual hours: "
        f"committed {totals.get('committed', 0):,}, delivered {totals.get('delivered', 0):,}, "
        f"lost {totals.get('lost', 0):,}, dropped by bound {totals.get('dropped_by_bound', 0):,}"
        f"{which}",
        fontsize=13,
    )
    fig.legend(
        handles=[
            Patch(color=DOWN_COLOUR, alpha=0.5, label="backhaul down"),
            Patch(color=OFF_COLOUR, alpha=0.7, label="power off (no readings until a boot)"),
            Patch(
                color=HELD_COLOUR,
                alpha=0.5,
                label="held in memory while the disk was full (sent later, no true time)",
            ),
            Patch(
                color=DROPPED_COLOUR,
                alpha=0.5,
                label="dropped by the buffer bound (oldest readings, gone)",
            ),
        ],
        loc="outside lower center",
        ncols=4,
        fontsize=9,
    )
    target = out or run_dir / REPORT_FILE
    fig.savefig(target, dpi=80)
    plt.close(fig)
    return target


def _draw_outages(axis: Any, found: Spans, start: float) -> None:
    """Bars like a timetable: when the backhaul was down, the power off, rounds held in memory."""
    lanes = (
        (2, found.down, DOWN_COLOUR),
        (1, found.off, OFF_COLOUR),
        (0, found.held, HELD_COLOUR),
        (0, found.dropped, DROPPED_COLOUR),
    )
    for y, spans_of, colour in lanes:
        bars = [((b - start) / 3600, (e - b) / 3600) for b, e in spans_of]
        axis.broken_barh(bars, (y - 0.3, 0.6), color=colour)
    axis.set_ylim(-0.6, 2.9)
    axis.set_yticks([0, 1, 2], ["held /\ndropped", "power\noff", "backhaul\ndown"])

    def hours(of: list[Span]) -> float:
        return sum(e - b for b, e in of) / 3600

    said = f"down {hours(found.down):.1f} h, off {hours(found.off):.1f} h"
    if found.held:
        said += f", held {hours(found.held):.1f} h"
    if found.dropped:
        said += f", dropped {hours(found.dropped):.1f} h"
    axis.text(0.99, 0.97, said, transform=axis.transAxes, ha="right", va="top", fontsize=8,
              color="0.3")  # fmt: skip
