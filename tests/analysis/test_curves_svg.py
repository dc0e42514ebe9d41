"""The SVG plots: round ticks covering the data, text escaped, a fixed viewBox, the fitted line
(a quadratic as a polyline of many points), every point drawn inside the plot area."""

from __future__ import annotations

import re
from decimal import Decimal as D

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.analysis import numbers, svg_plot


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.decimals(min_value=D("-1000"), max_value=D("1000"), places=3),
       st.decimals(min_value=D("0"), max_value=D("500"), places=3))
def test_ticks_are_round_and_cover_the_range(low, width):
    high = low + width
    ticks = svg_plot.nice_ticks(low, high)
    assert ticks[0] <= low and ticks[-1] >= high and 2 <= len(ticks) <= 22
    steps = {b - a for a, b in zip(ticks, ticks[1:], strict=False)}
    assert len(steps) == 1
    step = steps.pop()
    assert step.normalize().as_tuple().digits[0] in (1, 2, 5)


def test_text_is_escaped_and_the_view_box_is_fixed():
    points = [(D("0"), D("0.01")), (D("1"), D("0.27")), (D("2"), D("0.55"))]
    svg = svg_plot.fit_svg(numbers.linear_fit(points), points, x_label="<script>alert(1)</script>",
                           y_label='Abs "420 nm"', title="A & B")
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "A &amp; B" in svg
    assert 'viewBox="0 0 640 380"' in svg and svg.count("<circle") == 3


def test_points_fall_inside_the_plot_area_and_a_quadratic_is_a_smooth_line():
    points = [(D("0"), D("0.002")), (D("1"), D("0.29")), (D("2"), D("0.54")), (D("4"), D("0.95"))]
    fit = numbers.quadratic_fit(points)
    svg = svg_plot.fit_svg(fit, points, x_label="mg/L", y_label="Abs")
    for cx, cy in re.findall(r'cx="([\d.]+)" cy="([\d.]+)"', svg):
        assert svg_plot.LEFT <= float(cx) <= svg_plot.WIDTH - svg_plot.RIGHT
        assert svg_plot.TOP <= float(cy) <= svg_plot.HEIGHT - svg_plot.BOTTOM
    line = re.search(r'class="fit" points="([^"]+)"', svg).group(1)
    assert len(line.split()) == 41
    assert "<svg" in svg_plot.fit_svg(numbers.linear_fit(points[:2]), points[:2], x_label="", y_label="")
