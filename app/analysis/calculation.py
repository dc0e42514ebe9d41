"""From an instrument's reading to a result, keeping every intermediate value (pure, no database).

The method version says how (`CalculationKind`):
- DIRECT: the instrument reads the concentration; value = reading (in the parameter's unit) ×
  dilution. A reading above the method's upper limit, when it has one, is refused: dilute.
- CURVE: concentration = the calibration curve read back at the response (`numbers.
  concentration_from_response`), × dilution.
- CURVE_BLANK_CORRECTED: the mean response of the batch's method blanks is subtracted from the
  response first (HJ 535-2009 §8: "扣除空白吸光度"); the blanks themselves, calibration blanks and
  CCV standards are read on the curve as they are (a blank corrected by itself is always zero).

A concentration before dilution above the curve's top standard is refused ("dilute and
re-measure", HJ methods' common clause): the curve says nothing about it. `below_mdl` compares
the full-precision value with the MDL; nothing is rounded here — GB/T 8170 rounding happens once,
at reporting (`numbers.report_value`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext
from typing import Any

from app.analysis import numbers
from app.analysis.models import CalculationKind, PositionRole
from app.core import units
from app.core.errors import InvalidInput

# roles whose response is corrected by the blanks in a blank-corrected method
BLANK_CORRECTED_ROLES = frozenset({PositionRole.SAMPLE.value, PositionRole.DUPLICATE.value,
                                   PositionRole.SPIKE.value, PositionRole.CRM.value})


class Refusal(Exception):
    """A reading the calculation cannot turn into a result; `code` is a row-problem code of
    `result_errors.ROW_PROBLEMS` and `params` its values."""

    def __init__(self, code: str, **params: Any) -> None:
        super().__init__(code)
        self.code = code
        self.params = params


@dataclass(frozen=True)
class CurveFacts:
    """What a calculation needs of a calibration curve: the fit, its range and its units."""

    id: int
    code: str
    intercept: Decimal
    slope: Decimal
    quadratic: Decimal | None
    range_high: Decimal
    concentration_unit: str
    response_unit: str

    @property
    def fit(self) -> numbers.Fit:
        return numbers.Fit(self.intercept, self.slope, self.quadratic, Decimal(0))


@dataclass(frozen=True)
class ParameterRule:
    """The method parameter's side: its unit, MDL and the top of its working range."""

    kind: str
    unit: str
    mdl: Decimal
    upper_limit: Decimal | None = None


@dataclass(frozen=True)
class Calculated:
    value: Decimal
    unit: str
    below_mdl: bool
    curve_id: int | None
    intermediates: dict[str, Any]


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _result(value: Decimal) -> Decimal:
    with localcontext() as context:
        context.prec = numbers.RESULT_PRECISION
        return +value


def _same_unit(given: str, expected: str) -> bool:
    return given.replace("µ", "μ").strip() == expected.replace("µ", "μ").strip()


def _in_unit(value: Decimal, given: str, expected: str) -> Decimal:
    """`value` in `given` expressed in `expected` (mg/L ↔ μg/L...), or a wrong-unit refusal."""
    if _same_unit(given, expected):
        return value
    try:
        return _result(units.convert(value, given, expected))
    except InvalidInput:
        raise Refusal("wrong_unit", given=given or "—", expected=expected or "—") from None


def calculate(rule: ParameterRule, reading: Decimal, reading_unit: str, dilution: Decimal, *, role: str,
              curve: CurveFacts | None = None, blank_responses: Sequence[Decimal] = ()) -> Calculated:
    """The result of one reading, with every step kept in `intermediates` (Decimals as text)."""
    steps: dict[str, Any] = {"kind": rule.kind, "reading": str(reading), "dilution_factor": str(dilution)}
    if rule.kind == CalculationKind.DIRECT.value:
        given_unit = reading_unit or rule.unit
        steps["reading_unit"] = given_unit
        concentration = _in_unit(reading, given_unit, rule.unit)
        if not _same_unit(given_unit, rule.unit):
            steps["reading_in_unit"] = str(concentration)
        if rule.upper_limit is not None and concentration > rule.upper_limit:
            raise Refusal("above_working_range", concentration=concentration, high=rule.upper_limit, unit=rule.unit)
        curve_id = None
    else:
        if curve is None:
            raise ValueError("a curve calculation needs the batch's curve")
        given_unit = reading_unit or curve.response_unit
        if not _same_unit(given_unit, curve.response_unit):
            raise Refusal("wrong_unit", given=given_unit or "—", expected=curve.response_unit or "—")
        steps["reading_unit"] = given_unit
        steps["curve"] = {"id": curve.id, "code": curve.code, "intercept": str(curve.intercept),
                          "slope": str(curve.slope), "quadratic": _text(curve.quadratic),
                          "range_high": str(curve.range_high), "concentration_unit": curve.concentration_unit}
        response = reading
        if rule.kind == CalculationKind.CURVE_BLANK_CORRECTED.value and role in BLANK_CORRECTED_ROLES:
            if not blank_responses:
                raise Refusal("blank_missing")
            blank_mean = numbers.mean(list(blank_responses))
            response = _result(reading - blank_mean)
            steps.update(blank_responses=[str(b) for b in blank_responses], blank_mean=str(blank_mean),
                         corrected_response=str(response))
        try:
            on_curve = numbers.concentration_from_response(curve.fit, response)
        except ValueError as why:
            raise Refusal("reading_off_curve", reading=reading, why=str(why)) from None
        steps["concentration_on_curve"] = str(on_curve)
        if on_curve > curve.range_high:
            raise Refusal("above_calibration_range", concentration=on_curve, high=curve.range_high,
                          unit=curve.concentration_unit)
        concentration = _in_unit(on_curve, curve.concentration_unit, rule.unit)
        if not _same_unit(curve.concentration_unit, rule.unit):
            steps["concentration_in_unit"] = str(concentration)
        curve_id = curve.id
    value = _result(concentration * dilution)
    below = rule.mdl > 0 and value < rule.mdl  # an MDL of 0: a direct reading, never "below"
    steps.update(value=str(value), unit=rule.unit, mdl=str(rule.mdl), below_mdl=below)
    return Calculated(value, rule.unit, below, curve_id, steps)
