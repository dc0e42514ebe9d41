"""Propagation through dilutions (app.reference_materials.dilution), checked against an
independent straightforward float calculation written out here:

    c = c0 × Π(a_i / V_i)
    u_rel² = (U/k/c0)² + Σ((tol_a/√3)/a_i)² + Σ((tol_V/√3)/V_i)²

plus the mass-fraction parent with a density (c = w × V_a × ρ / V_f), the refusals, and the
rounding for display (U to two significant figures, half to even)."""

from __future__ import annotations

import math
from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from app.core.errors import DomainError
from app.reference_materials.dilution import (
    Device,
    DilutionStep,
    ParentValue,
    dilute,
    expanded_for_display,
    relative_u_certified,
)

D = Decimal
REL = 1e-9

# How many mL, mg/L, mg/kg and g/mL one of each unit is, written out independently of app.core.units.
VOLUME_ML = {"mL": 1.0, "μL": 1e-3, "L": 1e3}
MASS_G = {"g": 1.0, "mg": 1e-3}
CONCENTRATION_MG_L = {"mg/L": 1.0, "μg/mL": 1.0, "g/L": 1e3, "mg/mL": 1e3, "μg/L": 1e-3, "ng/mL": 1e-3}
FRACTION_MG_KG = {"mg/kg": 1.0, "μg/g": 1.0, "μg/kg": 1e-3, "ng/g": 1e-3, "g/kg": 1e3}
DENSITY_G_ML = {"g/mL": 1.0, "g/cm3": 1.0, "kg/L": 1.0}
# the same factors as exact powers of ten, to express a drawn amount in another unit exactly
EXPONENT = {"mL": 0, "μL": 3, "L": -3, "g": 0, "mg": 3}


def decimals(low: str, high: str, places: int) -> st.SearchStrategy[Decimal]:
    return st.decimals(min_value=D(low), max_value=D(high), places=places, allow_nan=False, allow_infinity=False)


def in_unit(amount_ml: Decimal, unit: str) -> Decimal:
    """`amount_ml` (mL or g) written in `unit`, exactly."""
    return amount_ml.scaleb(EXPONENT[unit])


def device(name: str, tolerance: Decimal, unit: str) -> Device:
    return Device(name, in_unit(tolerance, unit), unit, "A")


@st.composite
def steps(draw: st.DrawFn) -> tuple[DilutionStep, float, float, float, float, str]:
    """A volumetric step, and the same step in floats (mL): aliquot, final volume, tolerances."""
    final = draw(decimals("1", "2000", 2))
    aliquot = draw(decimals("0.01", str(final), 2))
    tol_aliquot = draw(st.one_of(st.just(D(0)), decimals("0", "0.5", 3)))
    tol_final = draw(st.one_of(st.just(D(0)), decimals("0", "2", 3)))
    aliquot_unit, final_unit = draw(st.sampled_from(("mL", "μL"))), draw(st.sampled_from(("mL", "L")))
    device_units = draw(st.tuples(st.sampled_from(("mL", "μL")), st.sampled_from(("mL", "L"))))
    output_unit = draw(st.sampled_from(sorted(CONCENTRATION_MG_L)))
    step = DilutionStep(
        aliquot=in_unit(aliquot, aliquot_unit), aliquot_unit=aliquot_unit,
        final_volume=in_unit(final, final_unit), final_volume_unit=final_unit,
        aliquot_devices=(device("吸量管", tol_aliquot, device_units[0]),),
        final_devices=(device("容量瓶", tol_final, device_units[1]),),
    )
    return step, float(aliquot), float(final), float(tol_aliquot), float(tol_final), output_unit


parents = st.tuples(
    decimals("0.0001", "100000", 4),  # value
    decimals("0.0001", "1000", 4),  # U
    decimals("0.5", "4", 2),  # k
    st.sampled_from(sorted(CONCENTRATION_MG_L)),
)


ZERO_TOLERANCE_STEP = (
    DilutionStep(D("0.01"), "mL", D("1.00"), "mL", (Device("吸量管", D("0"), "mL", "A"),),
                 (Device("容量瓶", D("0"), "mL", "A"),)),
    0.01, 1.0, 0.0, 0.0, "g/L",
)


@settings(max_examples=300, deadline=None)
@example(parent=(D("5.0127"), D("1"), D("0.52"), "g/L"), chain=[ZERO_TOLERANCE_STEP])  # found by hypothesis
@given(parent=parents, chain=st.lists(steps(), min_size=1, max_size=4))
def test_chained_dilutions_match_a_straightforward_calculation(parent, chain):
    value, expanded, k, unit = parent
    current = ParentValue("Pb", value, unit, relative_u_certified("Pb", value, expanded, k))
    expected_c = float(value) * CONCENTRATION_MG_L[unit]  # mg/L
    expected_u2 = (float(expanded) / float(k) / float(value)) ** 2
    for step, aliquot, final, tol_aliquot, tol_final, output_unit in chain:
        result = dilute(current, step, output_unit)
        # relative uncertainty never decreases through a dilution
        assert result.relative_u >= current.relative_u
        expected_c *= aliquot / final
        expected_u2 += (tol_aliquot / math.sqrt(3) / aliquot) ** 2 + (tol_final / math.sqrt(3) / final) ** 2
        assert result.unit == output_unit
        assert math.isclose(float(result.concentration), expected_c / CONCENTRATION_MG_L[output_unit], rel_tol=REL)
        assert math.isclose(float(result.relative_u), math.sqrt(expected_u2), rel_tol=REL)
        assert [line.component for line in result.budget] == ["parent", "aliquot", "final_volume"]
        current = ParentValue("Pb", result.concentration, result.unit, result.relative_u)


STORED_RELATIVE_U = D("0.03963998975205371937777029548332519109353")  # 40 digits, as a step stores it


@settings(max_examples=300, deadline=None)
@example(relative_u=STORED_RELATIVE_U, step_floats=None)
@given(
    # a parent that is itself a solution: its u_rel carries the full 40 digits of the arithmetic
    relative_u=st.integers(10**38, 10**40 - 1).map(lambda n: D(n).scaleb(-41)),
    step_floats=st.one_of(st.none(), steps()),
)
def test_relative_uncertainty_never_decreases_from_a_stored_solution(relative_u, step_floats):
    """Through glassware of zero tolerance (a perfect transfer) u_rel stays the parent's: the
    root sum of squares must not round it below the parent's own value."""
    if step_floats is None:
        exact = (Device("吸量管", D("0"), "mL", "A"),), (Device("容量瓶", D("0"), "mL", "A"),)
        step = DilutionStep(D("10"), "mL", D("100"), "mL", *exact)
        output_unit = "mg/L"
    else:
        step, output_unit = step_floats[0], step_floats[-1]
    result = dilute(ParentValue("Pb", D("12.3456"), "mg/L", relative_u), step, output_unit)
    assert result.relative_u >= relative_u


@settings(max_examples=200, deadline=None)
@given(
    fraction=decimals("0.001", "100000", 3), unit=st.sampled_from(sorted(FRACTION_MG_KG)),
    u_rel=decimals("0.0001", "0.2", 4), density=decimals("0.5", "2.5", 4),
    density_unit=st.sampled_from(sorted(DENSITY_G_ML)), density_u=decimals("0", "0.01", 4),
    step_floats=steps(),
)
def test_mass_fraction_parent_with_a_density(fraction, unit, u_rel, density, density_unit, density_u, step_floats):
    """c = w × V_a × ρ / V_f: a volume of a parent certified per kilogram weighs V_a × ρ."""
    volumetric, aliquot, final, tol_aliquot, tol_final, output_unit = step_floats
    step = DilutionStep(
        aliquot=volumetric.aliquot, aliquot_unit=volumetric.aliquot_unit, final_volume=volumetric.final_volume,
        final_volume_unit=volumetric.final_volume_unit, aliquot_devices=volumetric.aliquot_devices,
        final_devices=volumetric.final_devices, density=density, density_unit=density_unit,
        density_relative_u=density_u,
    )
    result = dilute(ParentValue("As", fraction, unit, u_rel), step, output_unit)
    rho = float(density) * DENSITY_G_ML[density_unit]
    expected_mg_l = float(fraction) * FRACTION_MG_KG[unit] * aliquot * rho / final
    assert math.isclose(float(result.concentration), expected_mg_l / CONCENTRATION_MG_L[output_unit], rel_tol=REL)
    expected_u = math.sqrt(float(u_rel) ** 2 + (tol_aliquot / math.sqrt(3) / aliquot) ** 2
                           + (tol_final / math.sqrt(3) / final) ** 2 + float(density_u) ** 2)
    assert math.isclose(float(result.relative_u), expected_u, rel_tol=REL)
    assert result.relative_u >= u_rel
    assert [line.component for line in result.budget] == ["parent", "aliquot", "final_volume", "density"]


@settings(max_examples=200, deadline=None)
@given(
    concentration=decimals("0.01", "10000", 2), mass=decimals("0.01", "50", 3), density=decimals("0.8", "2", 3),
    final=decimals("100", "1000", 1), mass_unit=st.sampled_from(("g", "mg")),
)
def test_weighed_aliquot_of_a_concentration_parent_occupies_its_volume(concentration, mass, density, final,
                                                                       mass_unit):
    """c = c0 × (m / ρ) / V_f: a weighed aliquot of a solution certified per litre."""
    balance = Device("分析天平", D("0.0002"), "g", "I")
    flask = Device("容量瓶", D("0.15"), "mL", "A")
    step = DilutionStep(aliquot=in_unit(mass, mass_unit), aliquot_unit=mass_unit, final_volume=final,
                        final_volume_unit="mL", aliquot_devices=(balance,), final_devices=(flask,),
                        density=density, density_unit="g/mL")
    result = dilute(ParentValue("Cu", concentration, "mg/L", D("0.004")), step, "mg/L")
    expected = float(concentration) * float(mass) / float(density) / float(final)
    assert math.isclose(float(result.concentration), expected, rel_tol=REL)
    expected_u = math.sqrt(0.004 ** 2 + (0.0002 / math.sqrt(3) / float(mass)) ** 2
                           + (0.15 / math.sqrt(3) / float(final)) ** 2)
    assert math.isclose(float(result.relative_u), expected_u, rel_tol=REL)


# ---------------------------------------------------------------- examples


PIPETTE = Device("10 mL 单标线吸量管", D("0.020"), "mL", "A")
FLASK = Device("100 mL 单标线容量瓶", D("0.10"), "mL", "A")
NH3N = ParentValue("NH3-N", D("1000"), "mg/L", D("0.0035"))


def volumetric(aliquot: str = "10", final: str = "100", **changes) -> DilutionStep:
    step = DilutionStep(aliquot=D(aliquot), aliquot_unit="mL", final_volume=D(final), final_volume_unit="mL",
                        aliquot_devices=(PIPETTE,), final_devices=(FLASK,))
    return replace(step, **changes)


def refusal(act) -> DomainError:
    with pytest.raises(DomainError) as caught:
        act()
    return caught.value


def test_the_nh3n_stock_solution_of_the_demo():
    """1000 mg/L (U = 7 mg/L, k = 2), 10 mL → 100 mL: 100 mg/L with u_rel 0.00373."""
    result = dilute(NH3N, volumetric(), "mg/L")
    assert result.concentration == D("100")
    assert result.relative_u.quantize(D("0.000001")) == D("0.003731")
    assert expanded_for_display(result.concentration, result.relative_u) == ("100.00", "0.75")
    working = dilute(ParentValue("NH3-N", result.concentration, "mg/L", result.relative_u),
                     volumetric("5", "500", aliquot_devices=(Device("5 mL 吸量管", D("0.015"), "mL", "A"),),
                                final_devices=(Device("500 mL 容量瓶", D("0.25"), "mL", "A"),)), "mg/L")
    assert working.concentration == D("1.00") and working.relative_u > result.relative_u


@pytest.mark.parametrize("changes, what", [
    ({"aliquot": D("0")}, "Aliquot"),
    ({"aliquot": D("-5")}, "Aliquot"),
    ({"final_volume": D("0")}, "Final volume"),
    ({"final_volume": D("-100")}, "Final volume"),
    ({"aliquot_devices": (Device("吸量管", D("-0.02"), "mL"),)}, "A tolerance"),
])
def test_non_positive_amounts_are_refused(changes, what):
    error = refusal(lambda: dilute(NH3N, volumetric(**changes), "mg/L"))
    assert error.code == "non_positive_amount"
    assert error.message("en").startswith(what)


def test_a_non_positive_parent_value_is_refused():
    error = refusal(lambda: dilute(ParentValue("NH3-N", D("0"), "mg/L", D("0.01")), volumetric(), "mg/L"))
    assert error.code == "non_positive_amount"
    error = refusal(lambda: relative_u_certified("Cu", D("-1"), D("0.02"), D("2")))
    assert error.code == "non_positive_amount"


def test_an_aliquot_larger_than_the_final_volume_is_refused():
    error = refusal(lambda: dilute(NH3N, volumetric("10", "5"), "mg/L"))
    assert error.code == "aliquot_exceeds_final_volume"
    assert "10 mL" in error.message("en") and "5 mL" in error.message("en")
    # the same amounts in different units are compared as volumes: 0.1 L > 50 mL
    step = DilutionStep(D("0.1"), "L", D("50"), "mL", (PIPETTE,), (FLASK,))
    assert refusal(lambda: dilute(NH3N, step, "mg/L")).code == "aliquot_exceeds_final_volume"
    # equal is allowed (a transfer without dilution)
    assert dilute(NH3N, volumetric("100", "100"), "mg/L").concentration == D("1000")


def test_a_weighed_aliquot_occupying_more_than_the_flask_is_refused():
    step = DilutionStep(D("60"), "g", D("50"), "mL", (Device("天平", D("0.01"), "g"),), (FLASK,), density=D("1.00"))
    assert refusal(lambda: dilute(NH3N, step, "mg/L")).code == "aliquot_exceeds_final_volume"


@pytest.mark.parametrize("changes, what", [
    ({"aliquot_devices": ()}, "aliquot"),
    ({"final_devices": ()}, "final volume"),
])
def test_glassware_is_required(changes, what):
    error = refusal(lambda: dilute(NH3N, volumetric(**changes), "mg/L"))
    assert error.code == "glassware_required"
    assert what in error.message("en")


def test_a_mass_fraction_parent_measured_by_volume_needs_a_density():
    srm = ParentValue("As", D("8.010"), "μg/kg", D("0.0042"))
    error = refusal(lambda: dilute(srm, volumetric(), "μg/L"))
    assert error.code == "density_required"
    assert "μg/kg" in error.message("en") and "volume" in error.message("en")
    result = dilute(srm, volumetric(density=D("1.0000")), "μg/L")
    assert result.concentration == D("0.801")
    assert refusal(lambda: dilute(srm, volumetric(density=D("0")), "μg/L")).code == "non_positive_amount"


def test_a_concentration_parent_weighed_needs_a_density():
    step = DilutionStep(D("1.0"), "g", D("100"), "mL", (Device("天平", D("0.0002"), "g"),), (FLASK,))
    error = refusal(lambda: dilute(NH3N, step, "mg/L"))
    assert error.code == "density_required"
    assert "mass" in error.message("en")


def test_a_certified_value_without_u_or_k_is_refused():
    for expanded, k in ((None, D("2")), (D("0.02"), None), (None, None)):
        error = refusal(lambda expanded=expanded, k=k: relative_u_certified("Cu", D("1.00"), expanded, k))
        assert error.code == "uncertainty_required"
        assert "Cu" in error.message("en") and "Cu" in error.message("zh_CN")
    assert relative_u_certified("Cu", D("1.00"), D("0.02"), D("2")) == D("0.01")


def test_units_that_do_not_fit_a_dilution_are_refused():
    assert refusal(lambda: dilute(NH3N, volumetric(), "mg/kg")).code == "incompatible_units"
    assert refusal(lambda: dilute(NH3N, volumetric(), "mg/m3")).code == "unknown_unit"
    step = DilutionStep(D("10"), "mL", D("100"), "g", (PIPETTE,), (Device("天平", D("0.01"), "g"),))
    assert refusal(lambda: dilute(NH3N, step, "mg/L")).code == "incompatible_units"


# ---------------------------------------------------------------- display


@pytest.mark.parametrize("value, relative_u, k, shown", [
    ("100", "0.00373", "2", ("100.00", "0.75")),  # U = 0.746
    ("100", "0.0498", "2", ("100", "10")),  # U = 9.96 rounds up to 10: still two figures
    ("1.000", "0.0498", "2", ("1.00", "0.10")),  # U = 0.0996 → 0.10
    ("1234.5", "0.0403", "2", ("1230", "100")),  # U = 99.5 → 1.0 × 10²; the value to the tens
    ("100", "0.003725", "2", ("100.00", "0.74")),  # U = 0.745: half to even, down
    ("100", "0.003775", "2", ("100.00", "0.76")),  # U = 0.755: half to even, up
    ("12.345", "0.00486", "2", ("12.34", "0.12")),  # the value half to even at U's place
    ("12.355", "0.00486", "2", ("12.36", "0.12")),
    ("50.0", "0.01", "3", ("50.0", "1.5")),  # k = 3
    ("5", "0", "2", ("5", "0")),
])
def test_expanded_for_display(value, relative_u, k, shown):
    assert expanded_for_display(D(value), D(relative_u), D(k)) == shown


def test_display_default_coverage_factor_is_two():
    assert expanded_for_display(D("100"), D("0.00373")) == ("100.00", "0.75")
