"""The calculation from reading to result, per kind, with hand-computed numbers and every
intermediate value kept; the refusals (above the curve, wrong unit, missing blanks) and the
below-MDL flag on the raw, unrounded value."""

from __future__ import annotations

import json
from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.analysis.calculation import CurveFacts, ParameterRule, Refusal, calculate
from app.core.canonical import canonical_json

CURVE = CurveFacts(7, "CC26-00007", D("0.005"), D("0.2"), None, D("2.0"), "mg/L", "Abs")
DIRECT = ParameterRule("direct", "mg/L", D("0.025"), D("5"))
BY_CURVE = ParameterRule("curve", "mg/L", D("0.025"))
BLANK_CORRECTED = ParameterRule("curve_blank_corrected", "mg/L", D("0.025"))


def test_direct_is_the_reading_times_the_dilution():
    result = calculate(DIRECT, D("1.234"), "", D("10"), role="sample")
    assert result.value == D("12.340") and result.unit == "mg/L" and not result.below_mdl
    assert result.curve_id is None
    steps = result.intermediates
    assert steps["reading"] == "1.234" and steps["dilution_factor"] == "10" and steps["value"] == "12.340"
    assert steps["reading_unit"] == "mg/L" and steps["mdl"] == "0.025"
    json.loads(canonical_json(steps))  # storable as canonical JSON (no float anywhere)


def test_direct_converts_a_convertible_unit_and_keeps_the_step():
    result = calculate(DIRECT, D("512"), "µg/L", D("1"), role="sample")
    assert result.value == D("0.512")
    assert result.intermediates["reading_unit"] == "µg/L" and D(result.intermediates["reading_in_unit"]) == D("0.512")


def test_a_wrong_unit_is_refused_naming_both():
    with pytest.raises(Refusal) as refused:
        calculate(DIRECT, D("1"), "mg/kg", D("1"), role="sample")
    assert refused.value.code == "wrong_unit"
    assert refused.value.params == {"given": "mg/kg", "expected": "mg/L"}
    with pytest.raises(Refusal) as refused:
        calculate(BY_CURVE, D("0.2"), "mg/L", D("1"), role="sample", curve=CURVE)
    assert refused.value.code == "wrong_unit" and refused.value.params["expected"] == "Abs"


def test_direct_above_the_working_range_asks_for_dilution():
    with pytest.raises(Refusal) as refused:
        calculate(DIRECT, D("5.01"), "", D("1"), role="sample")
    assert refused.value.code == "above_working_range"
    assert calculate(DIRECT, D("5"), "", D("2"), role="sample").value == D("10")


def test_curve_reads_the_concentration_back_and_dilutes():
    # (0.205 − 0.005) / 0.2 = 1.0 mg/L; × 2 = 2.0 mg/L
    result = calculate(BY_CURVE, D("0.205"), "", D("2"), role="sample", curve=CURVE)
    assert result.value == D("2.0") and result.curve_id == 7
    steps = result.intermediates
    assert D(steps["concentration_on_curve"]) == D("1.0")
    assert steps["curve"]["code"] == "CC26-00007" and steps["curve"]["slope"] == "0.2"
    assert steps["reading_unit"] == "Abs"


def test_curve_in_another_concentration_unit_is_converted():
    curve = CurveFacts(8, "CC26-00008", D("0.005"), D("0.0002"), None, D("2000"), "µg/L", "Abs")
    result = calculate(BY_CURVE, D("0.205"), "Abs", D("1"), role="sample", curve=curve)
    assert result.value == D("1") and D(result.intermediates["concentration_on_curve"]) == D("1000")


def test_above_the_top_standard_refuses_dilute_and_remeasure():
    # 0.505 → 2.5 mg/L before dilution > 2.0: refused even with a dilution factor given
    with pytest.raises(Refusal) as refused:
        calculate(BY_CURVE, D("0.505"), "", D("5"), role="sample", curve=CURVE)
    assert refused.value.code == "above_calibration_range"
    assert D(str(refused.value.params["concentration"])) == D("2.5")
    # exactly the top standard is within the curve
    assert calculate(BY_CURVE, D("0.405"), "", D("1"), role="sample", curve=CURVE).value == D("2.0")


def test_blank_corrected_subtracts_the_mean_blank_response():
    # blanks 0.010 and 0.012: mean 0.011; 0.211 − 0.011 = 0.200; (0.200 − 0.005) / 0.2 = 0.975
    result = calculate(BLANK_CORRECTED, D("0.211"), "", D("1"), role="sample", curve=CURVE,
                       blank_responses=[D("0.010"), D("0.012")])
    assert result.value == D("0.975")
    steps = result.intermediates
    assert steps["blank_responses"] == ["0.010", "0.012"] and D(steps["blank_mean"]) == D("0.011")
    assert D(steps["corrected_response"]) == D("0.200")


def test_a_blank_is_not_corrected_by_itself_and_samples_need_blanks():
    blank = calculate(BLANK_CORRECTED, D("0.010"), "", D("1"), role="method_blank", curve=CURVE,
                      blank_responses=[D("0.010")])
    assert blank.value == D("0.025") and "blank_mean" not in blank.intermediates
    with pytest.raises(Refusal) as refused:
        calculate(BLANK_CORRECTED, D("0.211"), "", D("1"), role="sample", curve=CURVE)
    assert refused.value.code == "blank_missing"


def test_below_mdl_is_flagged_and_the_raw_value_kept_unrounded():
    # (0.009 − 0.005) / 0.2 = 0.02 < 0.025
    result = calculate(BY_CURVE, D("0.009"), "", D("1"), role="sample", curve=CURVE)
    assert result.below_mdl and result.value == D("0.02")
    assert result.intermediates["below_mdl"] is True
    # a long raw value stays as long as it is: no rounding in the calculation
    long = calculate(DIRECT, D("0.123456789012345"), "", D("1"), role="sample")
    assert long.value == D("0.123456789012345") and not long.below_mdl


def test_a_reading_the_curve_cannot_give_is_refused():
    flat = CurveFacts(9, "CC26-00009", D("0.005"), D("0"), None, D("2"), "mg/L", "Abs")
    with pytest.raises(Refusal) as refused:
        calculate(BY_CURVE, D("0.1"), "", D("1"), role="sample", curve=flat)
    assert refused.value.code == "reading_off_curve"


@given(st.decimals(min_value=D("0.001"), max_value=D("0.4"), places=4),
       st.sampled_from([D(1), D(2), D("2.5"), D(10), D(50)]))
def test_curve_value_is_exact_inverse_times_dilution(response, dilution):
    result = calculate(BY_CURVE, response, "", dilution, role="sample", curve=CURVE)
    assert result.value == (response - D("0.005")) / D("0.2") * dilution
