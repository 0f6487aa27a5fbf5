"""A picture of a run: per site, latency, throughput, backhaul outages and backlog over time (PNG).

matplotlib is an optional extra (`pip install village-agent[sim-report]`): it is imported only here,
and only when a report is drawn.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from simulator.fleet import SERIES_FILE, SUMMARY_FILE

REPORT_FILE = "report.png"
MAX_SITES = 12  # more rows than this are unreadable; the summary has every site


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


def draw(run_dir: Path, out: Path | None = None) -> Path:
    """Draw the run in run_dir to a PNG (default run_dir/report.png) and return its path."""
    summary, drawn = _load(run_dir)
    try:
        import matplotlib  # noqa: PLC0415 - optional and heavy: only a report needs it

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError as err:
        raise ReportError(
            "drawing a report needs matplotlib: pip install 'village-agent[sim-report]'"
        ) from err
    sites = sorted(drawn)[:MAX_SITES]
    if not sites:
        raise ReportError(f"{run_dir} has no readings to draw")
    panels = (
        ("latency.rtt_avg_ms", "RTT avg (ms)"),
        ("throughput.rx_bps", "WAN rx (Mbit/s)"),
        ("uptime.backhaul_up", "backhaul up"),
        ("buffer.backlog_readings", "backlog (readings)"),
    )
    fig, axes = plt.subplots(
        len(sites), len(panels), figsize=(16, 2.2 * len(sites) + 1), squeeze=False, sharex=True
    )
    start = min((p[0] for s in sites for m in drawn[s].values() for p in m[:1]), default=0.0)
    for row, site in enumerate(sites):
        info = summary.get("sites", {}).get(site, {})
        for col, (metric, label) in enumerate(panels):
            axis = axes[row][col]
            points = drawn[site].get(metric, [])
            hours = [(t - start) / 3600 for t, _ in points]
            values = [v / 1e6 if metric.endswith("_bps") else v for _, v in points]
            if metric == "uptime.backhaul_up":
                axis.fill_between(hours, values, step="post", alpha=0.5)
                axis.set_ylim(-0.1, 1.1)
            else:
                axis.plot(hours, values, linewidth=0.8)
            if row == 0:
                axis.set_title(label)
            if col == 0:
                axis.set_ylabel(
                    f"{site}\nlost {info.get('lost', '?')}, dropped {info.get('dropped_by_bound', '?')}",
                    fontsize=7,
                )
            if row == len(sites) - 1:
                axis.set_xlabel("virtual hours")
    totals = summary.get("totals", {})
    fig.suptitle(
        f"{summary.get('gateways')} gateways, {summary.get('hours')} h: "
        f"committed {totals.get('committed')}, delivered {totals.get('delivered')}, "
        f"lost {totals.get('lost')}, dropped by bound {totals.get('dropped_by_bound')}"
    )
    fig.tight_layout()
    target = out or run_dir / REPORT_FILE
    fig.savefig(target, dpi=90)
    plt.close(fig)
    return target
