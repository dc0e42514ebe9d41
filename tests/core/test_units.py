"""Units of measure (app.core.units): exact conversion within a dimension, the spellings a lab
types, and no silent conversion across dimensions (mg/kg into mg/L needs a density)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.errors import DomainError
from app.core.units import UNITS, Dimension, convert, is_dimension, parse_unit, to_base

D = Decimal


@pytest.mark.parametrize("value, source, target, expected", [
    ("1", "mg/L", "μg/L", "1000"),
    ("1", "μg/mL", "mg/L", "1"),
    ("1000", "mg/L", "g/L", "1"),
    ("1234.5678", "ng/L", "mg/L", "0.0012345678"),
    ("0.1", "mL", "L", "0.0001"),
    ("250", "μL", "mL", "0.25"),
    ("1.5", "L", "mL", "1500"),
    ("2.5", "kg", "mg", "2500000"),
    ("0.000001", "g", "μg", "1"),
    ("0.5", "%", "mg/kg", "5000"),
    ("8.010", "μg/kg", "ng/g", "8.010"),
    ("85.1", "μg/kg", "mg/kg", "0.0851"),
    ("1.0075", "g/cm3", "g/mL", "1.0075"),
    ("1", "kg/L", "g/mL", "1"),
])
def test_conversions_are_exact(value, source, target, expected):
    result = convert(D(value), source, target)
    assert isinstance(result, Decimal)
    # equal as Decimals: no binary float on the way (0.1 mL is 0.0001 L, not 0.000100000000000000005)
    assert result == D(expected)


@pytest.mark.parametrize("typed, symbol", [
    ("ug/L", "μg/L"),
    ("µg/L", "μg/L"),  # U+00B5 MICRO SIGN
    ("μg/L", "μg/L"),  # U+03BC GREEK SMALL LETTER MU
    ("ug/ml", "μg/mL"),
    ("ml", "mL"),
    ("l", "L"),
    ("uL", "μL"),
    ("µl", "μL"),
    (" mg / L ", "mg/L"),
    ("mg/l", "mg/L"),
    ("ug/kg", "μg/kg"),
    ("g/cm3", "g/cm3"),
])
def test_spellings_a_lab_types_are_one_unit(typed, symbol):
    assert parse_unit(typed).symbol == symbol
    assert parse_unit(typed) == UNITS[symbol]


def test_the_same_value_in_every_spelling_converts_alike():
    assert convert(D("5"), "ug/L", "mg/L") == convert(D("5"), "µg/L", "mg/L") == D("0.005")
    assert convert(D("5"), "ml", "L") == convert(D("5"), "mL", "L") == D("0.005")


@pytest.mark.parametrize("typed", ["mg/m3", "", "   ", "ppm", "furlong", "mg/", "/L", "mol/L"])
def test_unknown_units_are_refused(typed):
    with pytest.raises(DomainError) as caught:
        parse_unit(typed)
    assert caught.value.code == "unknown_unit"
    with pytest.raises(DomainError) as caught:
        convert(D("1"), typed, "mg/L")
    assert caught.value.code == "unknown_unit"


def test_unknown_unit_names_what_was_typed():
    with pytest.raises(DomainError) as caught:
        parse_unit("mg/m3")
    assert "mg/m3" in caught.value.message("en") and "mg/m3" in caught.value.message("zh_CN")


def test_mass_fraction_into_concentration_needs_a_density():
    with pytest.raises(DomainError) as caught:
        convert(D("1"), "mg/kg", "mg/L")
    error = caught.value
    assert error.code == "incompatible_units"
    assert error.message("en") == "mg/kg cannot be converted into mg/L without a density."
    assert "需要密度" in error.message("zh_CN")
    with pytest.raises(DomainError) as caught:
        convert(D("1"), "μg/L", "μg/kg")
    assert "without a density" in caught.value.message("en")
    with pytest.raises(DomainError) as caught:
        convert(D("10"), "g", "mL")
    assert "without a density" in caught.value.message("en")


def test_other_dimensions_do_not_convert_and_get_no_density_hint():
    with pytest.raises(DomainError) as caught:
        convert(D("1"), "mg/L", "mL")
    assert caught.value.code == "incompatible_units"
    assert "density" not in caught.value.message("en")


def test_g_per_litre_is_read_as_a_concentration():
    assert parse_unit("g/L").dimension == Dimension.MASS_CONCENTRATION
    assert convert(D("1.2"), "g/L", "mg/L") == D("1200")


def test_base_units_and_dimension_checks():
    assert to_base(D("2"), "L") == (D("2000"), Dimension.VOLUME)
    assert to_base(D("3"), "μg/L") == (D("0.003"), Dimension.MASS_CONCENTRATION)
    assert to_base(D("1"), "%") == (D("10000"), Dimension.MASS_FRACTION)
    assert is_dimension("ml", Dimension.VOLUME)
    assert is_dimension("ug/kg", Dimension.MASS_FRACTION, Dimension.MASS_CONCENTRATION)
    assert not is_dimension("mg/kg", Dimension.MASS_CONCENTRATION)
    assert not is_dimension("bogus", Dimension.VOLUME)


def _same_dimension_pairs() -> list[tuple[str, str]]:
    return [(a, b) for a in UNITS for b in UNITS if UNITS[a].dimension == UNITS[b].dimension]


@settings(max_examples=500, deadline=None)
@given(
    value=st.decimals(min_value=D("-1e12"), max_value=D("1e12"), places=12, allow_nan=False, allow_infinity=False),
    pair=st.sampled_from(_same_dimension_pairs()),
)
def test_round_trip_within_a_dimension_is_exact(value, pair):
    there, back = pair
    assert convert(convert(value, there, back), back, there) == value


@settings(max_examples=200, deadline=None)
@given(
    value=st.decimals(min_value=D("0.000001"), max_value=D("1e9"), places=6, allow_nan=False, allow_infinity=False),
    pair=st.sampled_from(_same_dimension_pairs()),
)
def test_conversion_agrees_with_the_base_units(value, pair):
    source, target = pair
    converted = convert(value, source, target)
    assert to_base(converted, target)[0] == to_base(value, source)[0]
