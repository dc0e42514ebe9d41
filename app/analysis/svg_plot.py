"""Small SVG plots without a plotting library: calibration curves and control charts.

One fixed viewBox, so a plot scales to a phone's width and prints the same in a WeasyPrint PDF;
styles are presentation attributes (not CSS classes alone), so a PDF without the page's stylesheet
draws the same lines. Every text is escaped. Values stay Decimal up to the point where they
become pixel positions: only the drawing coordinates are floats.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

from markupsafe import Markup, escape

from app.analysis.numbers import Fit

if TYPE_CHECKING:
    from app.analysis.control_charts import Chart
    from app.analysis.models import CalibrationCurve, CalibrationPoint

WIDTH, HEIGHT = 640, 380
LEFT, RIGHT, TOP, BOTTOM = 72, 20, 20, 56
INK = "#1f2933"
GRID = "#d9dee3"
LINE = "#1565c0"
WARN = "#d98200"
BAD = "#c62828"
NICE_STEPS = (Decimal(1), Decimal(2), Decimal("2.5"), Decimal(5), Decimal(10))


def nice_ticks(low: Decimal, high: Decimal, count: int = 5) -> list[Decimal]:
    """About `count` round tick values (1, 2, 2.5, 5 × 10ⁿ) covering low..high."""
    if high < low:
        low, high = high, low
    if high == low:
        spread = abs(high) or Decimal(1)
        low, high = low - spread / 2, high + spread / 2
    raw = (high - low) / max(1, count)
    magnitude = Decimal(1).scaleb(raw.adjusted())
    step = next((s * magnitude for s in NICE_STEPS if s * magnitude >= raw), 10 * magnitude)
    first = (low / step).to_integral_value(rounding="ROUND_FLOOR") * step
    ticks = []
    value = first
    while value <= high + step / 1000 and len(ticks) < 4 * count + 2:
        ticks.append(value.normalize() if value != 0 else Decimal(0))
        value += step
    if ticks[-1] < high:
        ticks.append((ticks[-1] + step).normalize())
    return ticks


def tick_text(value: Decimal) -> str:
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


@dataclass
class Plot:
    """A plot area mapping data (Decimal) to the fixed viewBox; elements are added in order."""

    x_ticks: list[Decimal]
    y_ticks: list[Decimal]
    title: str = ""
    css_class: str = "plot"
    parts: list[str] = field(default_factory=list)

    @property
    def x_range(self) -> tuple[Decimal, Decimal]:
        return self.x_ticks[0], self.x_ticks[-1]

    @property
    def y_range(self) -> tuple[Decimal, Decimal]:
        return self.y_ticks[0], self.y_ticks[-1]

    def px(self, x: Decimal) -> float:
        low, high = self.x_range
        return LEFT + float((x - low) / (high - low)) * (WIDTH - LEFT - RIGHT)

    def py(self, y: Decimal) -> float:
        low, high = self.y_range
        return HEIGHT - BOTTOM - float((y - low) / (high - low)) * (HEIGHT - TOP - BOTTOM)

    def axes(self, x_label: str, y_label: str, *, x_tick_labels: Sequence[str] | None = None) -> None:
        bottom, left = HEIGHT - BOTTOM, LEFT
        for i, tick in enumerate(self.x_ticks):
            x = self.px(tick)
            label = x_tick_labels[i] if x_tick_labels is not None else tick_text(tick)
            self.parts.append(f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{bottom}" stroke="{GRID}" '
                              f'stroke-width="1"/>')
            self.parts.append(f'<text x="{x:.1f}" y="{bottom + 16}" font-size="11" text-anchor="middle" '
                              f'fill="{INK}">{escape(label)}</text>')
        for tick in self.y_ticks:
            y = self.py(tick)
            self.parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="{GRID}" '
                              f'stroke-width="1"/>')
            self.parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end" '
                              f'fill="{INK}">{escape(tick_text(tick))}</text>')
        self.parts.append(f'<line x1="{left}" y1="{bottom}" x2="{WIDTH - RIGHT}" y2="{bottom}" stroke="{INK}" '
                          f'stroke-width="1.2"/>')
        self.parts.append(f'<line x1="{left}" y1="{TOP}" x2="{left}" y2="{bottom}" stroke="{INK}" '
                          f'stroke-width="1.2"/>')
        self.parts.append(f'<text x="{(LEFT + WIDTH - RIGHT) / 2:.1f}" y="{HEIGHT - 12}" font-size="12" '
                          f'text-anchor="middle" fill="{INK}" class="x-label">{escape(x_label)}</text>')
        middle = (TOP + HEIGHT - BOTTOM) / 2
        self.parts.append(f'<text x="16" y="{middle:.1f}" font-size="12" text-anchor="middle" fill="{INK}" '
                          f'transform="rotate(-90 16 {middle:.1f})" class="y-label">{escape(y_label)}</text>')

    def polyline(self, points: Sequence[tuple[Decimal, Decimal]], *, colour: str = LINE, width: float = 1.5,
                 dash: str = "", css_class: str = "line") -> None:
        if len(points) < 2:
            return
        coordinates = " ".join(f"{self.px(x):.1f},{self.py(y):.1f}" for x, y in points)
        dashed = f' stroke-dasharray="{dash}"' if dash else ""
        self.parts.append(f'<polyline class="{css_class}" points="{coordinates}" fill="none" stroke="{colour}" '
                          f'stroke-width="{width}"{dashed}/>')

    def hline(self, y: Decimal, label: str, *, colour: str, dash: str = "", css_class: str = "limit") -> None:
        low, high = self.x_range
        self.polyline([(low, y), (high, y)], colour=colour, width=1.2, dash=dash, css_class=css_class)
        self.parts.append(f'<text x="{WIDTH - RIGHT - 4}" y="{self.py(y) - 4:.1f}" font-size="10" '
                          f'text-anchor="end" fill="{colour}">{escape(label)}</text>')

    def point(self, x: Decimal, y: Decimal, *, tip: str = "", colour: str = LINE, radius: float = 3.5,
              css_class: str = "point") -> None:
        title = f"<title>{escape(tip)}</title>" if tip else ""
        self.parts.append(f'<circle class="{css_class}" cx="{self.px(x):.1f}" cy="{self.py(y):.1f}" r="{radius}" '
                          f'fill="{colour}" stroke="#ffffff" stroke-width="1">{title}</circle>')

    def svg(self) -> Markup:
        title = f"<title>{escape(self.title)}</title>" if self.title else ""
        head = (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" '
                f'preserveAspectRatio="xMidYMid meet" role="img" class="{escape(self.css_class)}" '
                f'font-family="sans-serif" style="max-width:{WIDTH}px;height:auto">')
        return Markup(head + title + "".join(self.parts) + "</svg>")


# ---------------------------------------------------------------- calibration curve


def fit_response(fit: Fit, x: Decimal) -> Decimal:
    return fit.intercept + fit.slope * x + (fit.quadratic or Decimal(0)) * x * x


def curve_svg(curve: CalibrationCurve, points: Sequence[CalibrationPoint], *, x_label: str = "",
              y_label: str = "", title: str = "") -> Markup:
    """The standards as points and the fitted curve over 0..the top standard."""
    fit = Fit(curve.intercept, curve.slope, curve.quadratic, curve.r)
    return fit_svg(fit, [(p.concentration, p.response) for p in points],
                   x_label=x_label or curve.concentration_unit, y_label=y_label or curve.response_unit,
                   title=title or curve.code)


def fit_svg(fit: Fit, points: Sequence[tuple[Decimal, Decimal]], *, x_label: str, y_label: str,
            title: str = "") -> Markup:
    """A fit drawn with its points (also for a preview that was not saved)."""
    top = max((x for x, _ in points), default=Decimal(1))
    low = min([Decimal(0), *(x for x, _ in points)])
    steps = 40 if fit.quadratic else 1
    line = [(low + (top - low) * i / steps, fit_response(fit, low + (top - low) * i / steps))
            for i in range(steps + 1)]
    ys = [y for _, y in points] + [y for _, y in line]
    plot = Plot(nice_ticks(low, top), nice_ticks(min(ys), max(ys)), title=title, css_class="plot curve-plot")
    plot.axes(x_label, y_label)
    plot.polyline(line, css_class="fit")
    for x, y in points:
        plot.point(x, y, tip=f"{tick_text(x)} → {tick_text(y)}", colour=INK)
    return plot.svg()


# ---------------------------------------------------------------- control chart


def chart_svg(chart: Chart, *, y_label: str = "", title: str = "") -> Markup:
    """Points in run order, joined; centre, ±2s (warning) and ±3s (action) when a baseline is
    set; flagged points red with their rules in the tooltip."""
    values = [p.value for p in chart.points]
    lines = [chart.limits.centre, chart.limits.low_3s, chart.limits.high_3s] if chart.limits else []
    ys = values + lines or [Decimal(0), Decimal(1)]
    count = len(chart.points)
    x_ticks = nice_ticks(Decimal(1), Decimal(max(count, 2)), min(8, max(count, 2)))
    x_ticks = [t for t in x_ticks if t == t.to_integral_value()] or [Decimal(1), Decimal(2)]
    if len(x_ticks) < 2:
        x_ticks.append(x_ticks[0] + 1)
    plot = Plot(x_ticks, nice_ticks(min(ys), max(ys)), title=title, css_class="plot control-chart")
    plot.axes("#", y_label)
    if chart.limits:
        limits = chart.limits
        plot.hline(limits.high_3s, "+3s", colour=BAD, dash="6 4", css_class="limit-3s")
        plot.hline(limits.high_2s, "+2s", colour=WARN, dash="3 3", css_class="limit-2s")
        plot.hline(limits.centre, "x̄", colour=INK, css_class="centre")
        plot.hline(limits.low_2s, "−2s", colour=WARN, dash="3 3", css_class="limit-2s")
        plot.hline(limits.low_3s, "−3s", colour=BAD, dash="6 4", css_class="limit-3s")
    plot.polyline([(Decimal(i + 1), v) for i, v in enumerate(values)], colour=LINE, width=1.2, css_class="series")
    for i, p in enumerate(chart.points):
        rules = " ".join(sorted(p.flags))
        tip = f"#{i + 1} {p.batch_no} {tick_text(p.value)}" + (f" — {rules}" if rules else "")
        if p.flags:
            plot.point(Decimal(i + 1), p.value, tip=tip, colour=BAD, radius=5, css_class="point flagged")
        else:
            plot.point(Decimal(i + 1), p.value, tip=tip)
    return plot.svg()
