"""Charts drawn on the server as inline SVG: no chart library, nothing for the browser to fetch.

A chart is a time axis from `start` to `end`, one or more line series (points (ms, value); a gap
longer than `gap_ms` breaks the line), and shaded bands (outages) behind them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

WIDTH, HEIGHT = 900, 180
LEFT, RIGHT, TOP, BOTTOM = 56, 10, 10, 24
COLOURS = ("#1f6fb2", "#d9601a", "#2e8b57")


@dataclass(frozen=True, slots=True, kw_only=True)
class Series:
    label: str
    points: Sequence[tuple[int, float]]
    bars: bool = False  # one bar per point (hourly availability) instead of a line


def _label(value: float) -> str:
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.3g}"


def _tick(ms: int, span_ms: int) -> str:
    moment = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return moment.strftime("%H:%M" if span_ms <= 2 * 86_400_000 else "%d %b")


def chart(
    title: str,
    series: Sequence[Series],
    *,
    start: int,
    end: int,
    bands: Sequence[tuple[int, int]] = (),
    gap_ms: int,
    y_max: float | None = None,
    empty: str = "",
) -> Markup:
    """One chart as an `<svg>` element, with a `<title>` for screen readers."""
    span = max(1, end - start)
    values = [v for s in series for _, v in s.points]
    top = y_max if y_max is not None else max([*values, 0.0]) * 1.1 or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(ms: int) -> float:
        return LEFT + (min(max(ms, start), end) - start) / span * plot_w

    def y(value: float) -> float:
        return TOP + plot_h - min(max(value, 0.0), top) / top * plot_h

    out = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>',
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" class="plot"/>',
    ]
    for b_start, b_end in bands:
        x0, x1 = x(b_start), x(b_end)
        out.append(
            f'<rect x="{x0:.1f}" y="{TOP}" width="{max(x1 - x0, 1.5):.1f}" height="{plot_h}" '
            'class="band"/>'
        )
    for fraction in (0.0, 0.5, 1.0):
        value = top * fraction
        out.append(
            f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
            f'class="grid"/><text x="{LEFT - 4}" y="{y(value) + 4:.1f}" class="ylab">'
            f"{_label(value)}</text>"
        )
    for i in range(5):
        ms = start + span * i // 4
        anchor = ("start", "middle", "middle", "middle", "end")[i]
        out.append(
            f'<text x="{x(ms):.1f}" y="{HEIGHT - 6}" text-anchor="{anchor}" class="xlab">'
            f"{_tick(ms, span)}</text>"
        )
    for n, s in enumerate(series):
        colour = COLOURS[n % len(COLOURS)]
        legend = (
            f'<text x="{LEFT + 8 + 260 * n}" y="{TOP + 14}" fill="{colour}" class="legend">'
            f"{escape(s.label)}</text>"
        )
        if s.bars:  # points are mid-hour: a bar covers its hour
            for ms, value in s.points:
                x0, x1 = x(ms - 1_800_000), x(ms + 1_800_000)
                out.append(
                    f'<rect x="{x0:.1f}" y="{y(value):.1f}" width="{max(1.0, x1 - x0 - 0.5):.1f}" '
                    f'height="{TOP + plot_h - y(value):.1f}" fill="{colour}" opacity="0.7"/>'
                )
            out.append(legend)
            continue
        path: list[str] = []
        previous: int | None = None
        for i, (ms, value) in enumerate(s.points):
            move = previous is None or ms - previous > gap_ms
            path.append(f"{'M' if move else 'L'}{x(ms):.1f} {y(value):.1f}")
            following = s.points[i + 1][0] if i + 1 < len(s.points) else None
            if move and (following is None or following - ms > gap_ms):
                # A point with no neighbour draws no line: mark it.
                out.append(
                    f'<circle cx="{x(ms):.1f}" cy="{y(value):.1f}" r="2.5" fill="{colour}"/>'
                )
            previous = ms
        if path:
            out.append(f'<path d="{" ".join(path)}" stroke="{colour}" class="line"/>')
        out.append(legend)
    if not values and empty:
        out.append(
            f'<text x="{LEFT + plot_w / 2}" y="{TOP + plot_h / 2}" text-anchor="middle" '
            f'class="empty">{escape(empty)}</text>'
        )
    out.append("</svg>")
    return Markup("".join(out))  # noqa: S704 - every text in it went through escape()
