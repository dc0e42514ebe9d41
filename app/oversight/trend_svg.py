"""Monthly trend charts for the quality dashboard, drawn with the analysis plots' SVG helper
(app/analysis/svg_plot.py: same viewBox, presentation attributes, escaped text), so the charts
need no JavaScript and print the same."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal

from markupsafe import Markup, escape

from app.analysis.svg_plot import BAD, INK, LINE, WARN, Plot, nice_ticks

COLOURS = (LINE, BAD, WARN, INK)


def month_label(first: date) -> str:
    return first.strftime("%y-%m")


def monthly_svg(months: Sequence[date], series: Sequence[tuple[str, str, Sequence[int]]], *, title: str,
                y_label: str) -> Markup:
    """One line per series (key, label, counts per month), a point per month with its count as a
    tooltip, and a legend; `title` is the chart's accessible name."""
    count = len(months)
    top = max([1, *(max(values, default=0) for _, _, values in series)])
    y_ticks = [t for t in nice_ticks(Decimal(0), Decimal(top), 4) if t == t.to_integral_value()] or [Decimal(0)]
    if len(y_ticks) < 2:
        y_ticks = [Decimal(0), Decimal(max(top, 1))]
    x_ticks = [Decimal(i + 1) for i in range(count)] if count > 1 else [Decimal(1), Decimal(2)]
    plot = Plot(x_ticks, y_ticks, title=title, css_class="plot trend-chart")
    labels = [month_label(m) for m in months] + ([""] if count == 1 else [])
    plot.axes("", y_label, x_tick_labels=labels)
    for n, (key, label, values) in enumerate(series):
        colour = COLOURS[n % len(COLOURS)]
        points = [(Decimal(i + 1), Decimal(v)) for i, v in enumerate(values)]
        plot.polyline(points, colour=colour, width=2, css_class=f"series series-{key}")
        for (x, y), first in zip(points, months, strict=False):
            plot.point(x, y, tip=f"{label} {first:%Y-%m}: {y}", colour=colour, css_class=f"point point-{key}")
        legend_y = 14 + 14 * n
        plot.parts.append(f'<rect x="{plot.px(x_ticks[0]) + 4:.1f}" y="{legend_y - 8}" width="10" height="10" '
                          f'fill="{colour}"/>')
        plot.parts.append(f'<text x="{plot.px(x_ticks[0]) + 18:.1f}" y="{legend_y + 1}" font-size="11" '
                          f'fill="{INK}" class="legend">{escape(label)}</text>')
    # an accessible name for screen readers besides the <title>
    return Markup(str(plot.svg()).replace('role="img"', f'role="img" aria-label="{escape(title)}"', 1))
