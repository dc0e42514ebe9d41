"""The lab's arithmetic, exact where the standards say so: GB/T 8170-2008 rounding applied once at
reporting, reporting below the MDL (DOMAIN.md §4.3), duplicate relative deviation and spike
recovery (§4.2), the one-sided Student t of HJ 168-2020, and least-squares calibration fits.

Everything takes and returns `Decimal`; floats are used only inside the t quantile (an iterative
special function), whose result is rounded to the three decimals the standard's table prints.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, localcontext

WORK_PRECISION = 50  # digits carried inside a computation; results keep 28 significant digits
RESULT_PRECISION = 28

# DOMAIN.md §4.2 generic duplicate RD limits by concentration level (mg/L → max RD %), used when
# the method gives none (环境水质监测质量保证手册; verify)
GENERIC_RD_LIMITS: tuple[tuple[Decimal, Decimal], ...] = tuple(
    (Decimal(level), Decimal(limit)) for level, limit in (
        ("100", "1"), ("10", "2.5"), ("1", "5"), ("0.1", "10"), ("0.01", "20"), ("0.001", "30"), ("0.0001", "50")))

SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _result(value: Decimal) -> Decimal:
    with localcontext() as context:
        context.prec = RESULT_PRECISION
        return +value


# ---------------------------------------------------------------- rounding (GB/T 8170-2008)


def round_gbt8170(value: Decimal, *, decimals: int | None = None, significant_figures: int | None = None) -> Decimal:
    """四舍六入五成双, once, on the exact value: `quantize` with ROUND_HALF_EVEN is exactly the
    standard's rules 1–5 (a 5 followed by non-zero digits is above the half and rounds up; a
    negative value is rounded by its absolute value). `decimals` may be negative (to tens,
    hundreds...); give `decimals` or `significant_figures`, not both."""
    if (decimals is None) == (significant_figures is None):
        raise ValueError("give decimals or significant figures")
    if not value.is_finite():
        raise ValueError("a finite value is needed")
    with localcontext() as context:
        context.prec = WORK_PRECISION
        if decimals is not None:
            return value.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_EVEN)
        if significant_figures is None or significant_figures < 1:
            raise ValueError("at least one significant figure")
        if value.is_zero():
            return value.quantize(Decimal(1).scaleb(-(significant_figures - 1)))
        exponent = value.adjusted() - (significant_figures - 1)
        rounded = value.quantize(Decimal(1).scaleb(exponent), rounding=ROUND_HALF_EVEN)
        if rounded.adjusted() != value.adjusted():  # 9.995 → 10.00 carried into a new digit: drop the extra zero
            rounded = rounded.quantize(Decimal(1).scaleb(exponent + 1))
        return rounded


def format_decimal(value: Decimal) -> str:
    """Plain notation keeping significant trailing zeros; a value rounded to tens or more is
    written with a power of ten as GB/T 8170 does (2×10³)."""
    if value.as_tuple().exponent > 0:  # type: ignore[operator]
        sign, digits, exponent = value.as_tuple()
        coefficient = "".join(map(str, digits)) or "0"
        exponent = int(exponent) + len(coefficient) - 1
        mantissa = coefficient[0] + ("." + coefficient[1:] if len(coefficient) > 1 else "")
        return f"{'-' if sign else ''}{mantissa}×10{str(exponent).translate(SUPERSCRIPT)}"
    return format(value, "f")


def report_value(value: Decimal, *, mdl: Decimal | None, style: str, decimals: int | None,
                 significant_figures: int | None, language: str = "zh") -> str:
    """The text a report prints for a full-precision value (DOMAIN.md §4.3): below the MDL never
    a number but "0.025L" (water, HJ/T 91-2002), 未检出/ND, or "<0.025"; otherwise the value
    rounded once by the method's decimals or significant figures."""
    if mdl is not None and mdl > 0 and value < mdl:  # 0: a direct reading with no detection limit
        shown = format(mdl, "f")
        if style == "nd":
            return "未检出" if language.startswith("zh") else "ND"
        if style == "lt_mdl":
            return f"<{shown}"
        return f"{shown}L"
    if decimals is None and significant_figures is None:
        return format_decimal(value)
    return format_decimal(round_gbt8170(value, decimals=decimals, significant_figures=significant_figures))


# ---------------------------------------------------------------- QC arithmetic (DOMAIN.md §4.2)


def relative_deviation_pct(x1: Decimal, x2: Decimal) -> Decimal | None:
    """RD = |x1 − x2| / (x1 + x2) × 100 %; None when the sum is not positive (no meaningful RD)."""
    total = x1 + x2
    if total <= 0:
        return None
    with localcontext() as context:
        context.prec = WORK_PRECISION
        return _result(abs(x1 - x2) / total * 100)


def recovery_pct(spiked: Decimal, unspiked: Decimal, added: Decimal) -> Decimal:
    """P = (spiked − unspiked) / added × 100 %."""
    if added <= 0:
        raise ValueError("the amount added must be positive")
    with localcontext() as context:
        context.prec = WORK_PRECISION
        return _result((spiked - unspiked) / added * 100)


def rd_limit_pct(level: Decimal, limits: Sequence[tuple[Decimal, Decimal]] = ()) -> Decimal:
    """The maximum RD % for a duplicate pair at `level` (their mean): the limit of the highest
    level not above it; below the lowest level, the lowest level's limit. Without limits of the
    method, the generic table of DOMAIN.md §4.2."""
    table = sorted(limits or GENERIC_RD_LIMITS, key=lambda row: row[0], reverse=True)
    for threshold, limit in table:
        if level >= threshold:
            return limit
    return table[-1][1]


# ---------------------------------------------------------------- statistics


def mean(values: Sequence[Decimal]) -> Decimal:
    if not values:
        raise ValueError("no values")
    with localcontext() as context:
        context.prec = WORK_PRECISION
        return _result(sum(values, Decimal(0)) / len(values))


def std_dev(values: Sequence[Decimal]) -> Decimal:
    """Sample standard deviation (n − 1), as HJ 168-2020's S."""
    if len(values) < 2:
        raise ValueError("at least two values")
    with localcontext() as context:
        context.prec = WORK_PRECISION
        centre = sum(values, Decimal(0)) / len(values)
        variance = sum(((v - centre) ** 2 for v in values), Decimal(0)) / (len(values) - 1)
        return _result(variance.sqrt())


def _incomplete_beta(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b) by its continued fraction (modified Lentz)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    if x > (a + 1) / (a + b + 2):
        return 1.0 - _incomplete_beta(b, a, 1.0 - x)
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)) / a
    tiny = 1e-300
    f, c, d = 1.0, 1.0, 0.0
    for i in range(400):
        m = i // 2
        if i == 0:
            numerator = 1.0
        elif i % 2 == 0:
            numerator = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        else:
            numerator = -((a + m) * (a + b + m) * x) / ((a + 2 * m) * (a + 2 * m + 1))
        d = 1.0 + numerator * d
        d = tiny if abs(d) < tiny else d
        d = 1.0 / d
        c = 1.0 + numerator / c
        c = tiny if abs(c) < tiny else c
        f *= c * d
        if abs(1.0 - c * d) < 1e-15:
            break
    return front * (f - 1.0)


def _t_cdf(t: float, df: int) -> float:
    tail = 0.5 * _incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_one_sided_99(df: int) -> Decimal:
    """t(df, 0.99), one-sided, as HJ 168-2020 tabulates it (three decimals): 3.143 for df = 6."""
    if df < 1:
        raise ValueError("at least one degree of freedom")
    low, high = 0.0, 100.0
    for _ in range(200):
        middle = (low + high) / 2
        if _t_cdf(middle, df) < 0.99:
            low = middle
        else:
            high = middle
    return Decimal(repr(high)).quantize(Decimal("0.001"), rounding=ROUND_HALF_EVEN)


# ---------------------------------------------------------------- calibration fits


@dataclass(frozen=True)
class Fit:
    """response = intercept + slope·x (+ quadratic·x²); r is the correlation coefficient of a
    line, or √R² of a quadratic."""

    intercept: Decimal
    slope: Decimal
    quadratic: Decimal | None
    r: Decimal


def _sums(points: Sequence[tuple[Decimal, Decimal]], minimum: int) -> None:
    if len(points) < minimum:
        raise ValueError(f"at least {minimum} points")
    if len({x for x, _ in points}) < minimum:
        raise ValueError(f"at least {minimum} different concentrations")


def linear_fit(points: Sequence[tuple[Decimal, Decimal]]) -> Fit:
    """Least squares through (concentration, response) points."""
    _sums(points, 2)
    with localcontext() as context:
        context.prec = WORK_PRECISION
        n = Decimal(len(points))
        sx = sum((x for x, _ in points), Decimal(0))
        sy = sum((y for _, y in points), Decimal(0))
        sxx = sum((x * x for x, _ in points), Decimal(0))
        syy = sum((y * y for _, y in points), Decimal(0))
        sxy = sum((x * y for x, y in points), Decimal(0))
        spread_x = n * sxx - sx * sx
        spread_y = n * syy - sy * sy
        covariance = n * sxy - sx * sy
        slope = covariance / spread_x
        intercept = (sy - slope * sx) / n
        if spread_y == 0:
            raise ValueError("every response is the same")
        r = covariance / (spread_x * spread_y).sqrt()
        return Fit(_result(intercept), _result(slope), None, _result(r))


def _solve3(matrix: list[list[Decimal]], vector: list[Decimal]) -> list[Decimal]:
    """Gaussian elimination with partial pivoting (3 × 3 normal equations)."""
    rows = [row[:] + [v] for row, v in zip(matrix, vector, strict=True)]
    size = len(rows)
    for col in range(size):
        pivot = max(range(col, size), key=lambda r: abs(rows[r][col]))
        if rows[pivot][col] == 0:
            raise ValueError("the points do not determine a quadratic")
        rows[col], rows[pivot] = rows[pivot], rows[col]
        for r in range(col + 1, size):
            factor = rows[r][col] / rows[col][col]
            rows[r] = [a - factor * b for a, b in zip(rows[r], rows[col], strict=True)]
    solution = [Decimal(0)] * size
    for r in reversed(range(size)):
        solution[r] = (rows[r][size] - sum((rows[r][c] * solution[c] for c in range(r + 1, size)), Decimal(0))) \
            / rows[r][r]
    return solution


def quadratic_fit(points: Sequence[tuple[Decimal, Decimal]]) -> Fit:
    """Least squares y = a + b·x + c·x² (where the method allows a quadratic curve)."""
    _sums(points, 3)
    with localcontext() as context:
        context.prec = WORK_PRECISION
        def power(x: Decimal, k: int) -> Decimal:  # Decimal refuses 0 ** 0
            return Decimal(1) if k == 0 else x ** k

        powers = [sum((power(x, k) for x, _ in points), Decimal(0)) for k in range(5)]
        moments = [sum((y * power(x, k) for x, y in points), Decimal(0)) for k in range(3)]
        matrix = [[powers[i + j] for j in range(3)] for i in range(3)]
        a, b, c = _solve3(matrix, moments)
        mean_y = sum((y for _, y in points), Decimal(0)) / len(points)
        total = sum(((y - mean_y) ** 2 for _, y in points), Decimal(0))
        if total == 0:
            raise ValueError("every response is the same")
        residual = sum(((y - (a + b * x + c * x * x)) ** 2 for x, y in points), Decimal(0))
        r_squared = max(Decimal(0), 1 - residual / total)
        return Fit(_result(a), _result(b), _result(c), _result(r_squared.sqrt()))


def concentration_from_response(fit: Fit, response: Decimal) -> Decimal:
    """The concentration that gives `response` on the curve (on the rising branch of a quadratic)."""
    with localcontext() as context:
        context.prec = WORK_PRECISION
        if not fit.quadratic:
            if fit.slope == 0:
                raise ValueError("a flat curve cannot be read back")
            return _result((response - fit.intercept) / fit.slope)
        a, b, c = fit.intercept - response, fit.slope, fit.quadratic
        discriminant = b * b - 4 * c * a
        if discriminant < 0:
            raise ValueError("the response is outside what the curve can give")
        root = discriminant.sqrt()
        for x in ((-b + root) / (2 * c), (-b - root) / (2 * c)):
            if b + 2 * c * x > 0:
                return _result(x)
        raise ValueError("the response is on the falling side of the curve")
