"""The lab's arithmetic: GB/T 8170 rounding (the standard's own examples and an independent
implementation on fractions), reporting below the MDL, RD and recovery, HJ 168's t, and the
calibration fits against a straightforward calculation on fractions."""

from __future__ import annotations

from decimal import Decimal as D
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.analysis import numbers

# DOMAIN.md §4.4 (GB/T 8170-2008 examples)
GBT8170 = [
    ("12.1498", {"decimals": 0}, "12"),
    ("12.1498", {"decimals": 1}, "12.1"),
    ("10.5002", {"decimals": 0}, "11"),
    ("1.050", {"decimals": 1}, "1.0"),
    ("0.35", {"decimals": 1}, "0.4"),
    ("2500", {"decimals": -3}, "2E+3"),
    ("3500", {"decimals": -3}, "4E+3"),
    ("-0.0365", {"decimals": 3}, "-0.036"),
    ("15.4546", {"decimals": 0}, "15"),
    ("8.53459", {"significant_figures": 3}, "8.53"),
    ("28.175", {"decimals": 2}, "28.18"),
    ("28.165", {"decimals": 2}, "28.16"),
    ("9.995", {"significant_figures": 3}, "10.0"),
    ("0.0004567", {"significant_figures": 2}, "0.00046"),
]


@pytest.mark.parametrize(("value", "how", "expected"), GBT8170)
def test_the_standards_examples(value, how, expected):
    assert str(numbers.round_gbt8170(D(value), **how)) == expected


def reference_round(value: D, decimals: int) -> D:
    """GB/T 8170 rules 1–5 written out on exact fractions, digit by digit of the discarded part."""
    exact = Fraction(value)
    negative = exact < 0
    scaled = abs(exact) * Fraction(10) ** decimals
    kept = scaled.numerator // scaled.denominator
    rest = scaled - kept
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and kept % 2 == 1):
        kept += 1
    result = D(kept).scaleb(-decimals)
    return -result if negative else result


@given(st.decimals(min_value=D("-100000"), max_value=D("100000"), places=8, allow_nan=False), st.integers(0, 6))
def test_rounding_matches_the_rules_written_out(value, decimals):
    assert numbers.round_gbt8170(value, decimals=decimals) == reference_round(value, decimals)


@given(st.decimals(min_value=D("0.0001"), max_value=D("99999"), places=6, allow_nan=False), st.integers(0, 4))
def test_rounding_once_is_not_rounding_step_by_step_and_is_stable(value, decimals):
    once = numbers.round_gbt8170(value, decimals=decimals)
    assert numbers.round_gbt8170(once, decimals=decimals) == once  # idempotent
    assert abs(once - value) <= D(1).scaleb(-decimals) / 2


def test_rounding_needs_one_rule():
    with pytest.raises(ValueError):
        numbers.round_gbt8170(D("1.23"))
    with pytest.raises(ValueError):
        numbers.round_gbt8170(D("1.23"), decimals=1, significant_figures=2)


@pytest.mark.parametrize(("value", "style", "language", "expected"), [
    ("0.012", "mdl_l", "zh", "0.025L"),
    ("0.012", "nd", "zh", "未检出"),
    ("0.012", "nd", "en", "ND"),
    ("0.012", "lt_mdl", "en", "<0.025"),
    ("0.025", "mdl_l", "zh", "0.025"),
    ("0.12345", "mdl_l", "zh", "0.123"),
    ("0.1235", "mdl_l", "zh", "0.124"),
    ("-0.003", "mdl_l", "zh", "0.025L"),
])
def test_report_text_never_prints_a_number_below_the_mdl(value, style, language, expected):
    assert numbers.report_value(D(value), mdl=D("0.025"), style=style, decimals=3, significant_figures=None,
                                language=language) == expected


def test_report_text_with_a_power_of_ten():
    assert numbers.report_value(D("2500"), mdl=None, style="mdl_l", decimals=-3, significant_figures=None) == "2×10³"


def test_relative_deviation_and_recovery():
    rd = numbers.relative_deviation_pct(D("0.512"), D("0.498"))  # 0.014 / 1.010 × 100
    assert numbers.round_gbt8170(rd, decimals=3) == D("1.386")
    assert numbers.relative_deviation_pct(D("0"), D("0")) is None
    assert numbers.recovery_pct(D("1.020"), D("0.520"), D("0.500")) == D("100")
    with pytest.raises(ValueError):
        numbers.recovery_pct(D("1"), D("0.5"), D("0"))


@given(st.decimals(min_value=D("0"), max_value=D("1000"), places=4), st.decimals(min_value=D("0"),
                                                                                max_value=D("1000"), places=4))
def test_rd_is_symmetric_and_between_0_and_100(x1, x2):
    rd = numbers.relative_deviation_pct(x1, x2)
    assert rd == numbers.relative_deviation_pct(x2, x1)
    if x1 + x2 > 0:
        assert D(0) <= rd <= D(100)


@given(st.decimals(min_value=D("0"), max_value=D("100"), places=4), st.decimals(min_value=D("0.001"),
                                                                               max_value=D("100"), places=4))
def test_an_exact_spike_recovers_100_percent(unspiked, added):
    assert numbers.recovery_pct(unspiked + added, unspiked, added) == 100


def test_rd_limit_by_level():
    assert numbers.rd_limit_pct(D("5")) == D("5")  # the 1 mg/L order
    assert numbers.rd_limit_pct(D("150")) == D("1")
    assert numbers.rd_limit_pct(D("0.00001")) == D("50")
    method = [(D("2.0"), D("20")), (D("0"), D("25"))]  # CODMn (GJW-03-SSG-005)
    assert numbers.rd_limit_pct(D("1.5"), method) == D("25")
    assert numbers.rd_limit_pct(D("3.1"), method) == D("20")


# HJ 168-2020 (DOMAIN.md §4.3): n = 7 → 3.143 ... n = 21 → 2.528
@pytest.mark.parametrize(("n", "t"), [(7, "3.143"), (8, "2.998"), (9, "2.896"), (10, "2.821"), (11, "2.764"),
                                      (12, "2.718"), (15, "2.624"), (21, "2.528")])
def test_t_values_of_hj168(n, t):
    assert numbers.t_one_sided_99(n - 1) == D(t)


def test_mean_and_sample_standard_deviation():
    values = [D(v) for v in ("0.021", "0.025", "0.019", "0.023", "0.027", "0.022", "0.024")]
    assert numbers.mean(values) == D("0.023")
    # deviations −2, 2, −4, 0, 4, −1, 1 (× 0.001): Σ(x − x̄)² = 42e-6, / (n − 1) = 7e-6
    assert numbers.std_dev(values) == D("7E-6").sqrt()
    with pytest.raises(ValueError):
        numbers.std_dev([D("1")])


def fraction_line(points):
    n = len(points)
    xs, ys = [Fraction(x) for x, _ in points], [Fraction(y) for _, y in points]
    mx, my = sum(xs) / n, sum(ys) / n
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sxy / sxx
    return my - slope * mx, slope


CURVE = [(D("0"), D("0.003")), (D("0.5"), D("0.052")), (D("1.0"), D("0.101")), (D("2.0"), D("0.199")),
         (D("4.0"), D("0.401")), (D("6.0"), D("0.598"))]


def test_linear_fit_matches_a_calculation_on_fractions():
    fit = numbers.linear_fit(CURVE)
    intercept, slope = fraction_line(CURVE)
    assert abs(Fraction(fit.slope) - slope) < Fraction(1, 10 ** 20)
    assert abs(Fraction(fit.intercept) - intercept) < Fraction(1, 10 ** 20)
    assert D("0.9999") < fit.r <= 1
    assert fit.quadratic is None
    back = numbers.concentration_from_response(fit, D("0.300"))
    assert abs(back - D("3.0")) < D("0.02")


@given(st.lists(st.tuples(st.integers(0, 1000), st.integers(-1000, 100000)), min_size=3, max_size=12,
                unique_by=lambda p: p[0]))
def test_linear_fit_on_any_points(raw):
    points = [(D(x) / 100, D(y) / 1000) for x, y in raw]
    if len({y for _, y in points}) == 1:
        with pytest.raises(ValueError):
            numbers.linear_fit(points)
        return
    fit = numbers.linear_fit(points)
    intercept, slope = fraction_line(points)
    assert abs(Fraction(fit.slope) - slope) <= abs(slope) * Fraction(1, 10 ** 18) + Fraction(1, 10 ** 18)
    assert abs(Fraction(fit.intercept) - intercept) <= abs(intercept) * Fraction(1, 10 ** 18) + Fraction(1, 10 ** 18)
    assert -1 <= fit.r <= 1


def test_quadratic_fit_recovers_an_exact_parabola_and_reads_back():
    points = [(D(x), D("0.01") + D("0.2") * D(x) - D("0.005") * D(x) ** 2) for x in ("0", "1", "2", "4", "6", "8")]
    fit = numbers.quadratic_fit(points)
    assert abs(fit.intercept - D("0.01")) < D("1E-20")
    assert abs(fit.slope - D("0.2")) < D("1E-20")
    assert abs(fit.quadratic - D("-0.005")) < D("1E-20")
    assert fit.r == 1
    response = D("0.01") + D("0.2") * 5 - D("0.005") * 25
    assert abs(numbers.concentration_from_response(fit, response) - 5) < D("1E-20")


def test_fits_refuse_too_few_or_identical_points():
    with pytest.raises(ValueError):
        numbers.linear_fit([(D("1"), D("0.1"))])
    with pytest.raises(ValueError):
        numbers.linear_fit([(D("1"), D("0.1")), (D("1"), D("0.2"))])
    with pytest.raises(ValueError):
        numbers.quadratic_fit(CURVE[:2])
