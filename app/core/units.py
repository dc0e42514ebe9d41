"""Units of measure for amounts and concentrations, with exact Decimal conversion.

A unit belongs to one dimension (volume, mass, mass concentration, mass fraction, density);
conversion within a dimension is exact (powers of ten). Across dimensions there is no silent
conversion: mg/kg into mg/L needs a density, which the caller supplies explicitly
(`fraction_to_concentration`). Spellings a lab types (ug/L, µg/L, μg/L; ml, mL) are one unit.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, localcontext
from enum import StrEnum

from app.core.errors import InvalidInput

# Arithmetic on certified values and volumes keeps far more digits than any certificate has;
# rounding happens only for display (GB/T 8170) and in reports.
PRECISION = 40


class Dimension(StrEnum):
    VOLUME = "volume"
    MASS = "mass"
    MASS_CONCENTRATION = "mass_concentration"  # mass per volume, base mg/L
    MASS_FRACTION = "mass_fraction"  # mass per mass, base mg/kg
    DENSITY = "density"  # base g/mL


@dataclass(frozen=True)
class Unit:
    symbol: str
    dimension: Dimension
    factor: Decimal  # how many base units one of this unit is


def _units(dimension: Dimension, table: dict[str, str]) -> dict[str, Unit]:
    return {symbol: Unit(symbol, dimension, Decimal(factor)) for symbol, factor in table.items()}


UNITS: dict[str, Unit] = {
    **_units(Dimension.VOLUME, {"L": "1000", "mL": "1", "μL": "0.001"}),
    **_units(Dimension.MASS, {"kg": "1000", "g": "1", "mg": "0.001", "μg": "0.000001"}),
    **_units(Dimension.MASS_CONCENTRATION, {
        "g/L": "1000", "mg/mL": "1000", "mg/L": "1", "μg/mL": "1", "μg/L": "0.001", "ng/mL": "0.001",
        "ng/L": "0.000001",
    }),
    **_units(Dimension.MASS_FRACTION, {
        "%": "10000", "g/kg": "1000", "mg/g": "1000", "mg/kg": "1", "μg/g": "1", "μg/kg": "0.001",
        "ng/g": "0.001",
    }),
    **_units(Dimension.DENSITY, {"g/mL": "1", "g/cm3": "1", "kg/L": "1", "g/L": "0.001"}),
}
# g/L is both a concentration and a density; as a unit of its own it is read as a concentration.
UNITS["g/L"] = Unit("g/L", Dimension.MASS_CONCENTRATION, Decimal(1000))
DENSITY_UNITS = ("g/mL", "g/cm3", "kg/L")

_LITRES = {"l": "L", "ml": "mL", "μl": "μL"}


def _spelled(part: str) -> str:
    """One side of a unit as the table spells it: μ for u or µ, L for litre."""
    if part.startswith("u"):
        part = "μ" + part[1:]
    return _LITRES.get(part.lower(), part)


class UnknownUnit(InvalidInput):
    code = "unknown_unit"
    message_zh = "无法识别的单位：{unit}。"
    message_en = "Unknown unit: {unit}."


class IncompatibleUnits(InvalidInput):
    code = "incompatible_units"
    message_zh = "单位 {from_unit} 不能换算为 {to_unit}{hint_zh}。"
    message_en = "{from_unit} cannot be converted into {to_unit}{hint_en}."


def parse_unit(text: str) -> Unit:
    """The unit a lab wrote, whatever the spelling of micro and litre."""
    raw = (text or "").strip().replace(" ", "").replace("µ", "μ")
    symbol = "/".join(_spelled(part) for part in raw.split("/"))
    if symbol in UNITS:
        return UNITS[symbol]
    raise UnknownUnit(unit=raw[:20] or "—")


def convert(value: Decimal, from_unit: str, to_unit: str) -> Decimal:
    """`value` in `from_unit` expressed in `to_unit`, exactly (same dimension only)."""
    source, target = parse_unit(from_unit), parse_unit(to_unit)
    if source.dimension != target.dimension:
        hint_zh, hint_en = _hint(source.dimension, target.dimension)
        raise IncompatibleUnits(from_unit=source.symbol, to_unit=target.symbol, hint_zh=hint_zh, hint_en=hint_en)
    with localcontext() as ctx:
        ctx.prec = PRECISION
        return value * source.factor / target.factor


def _hint(source: Dimension, target: Dimension) -> tuple[str, str]:
    pair = {source, target}
    if pair in ({Dimension.MASS_FRACTION, Dimension.MASS_CONCENTRATION}, {Dimension.MASS, Dimension.VOLUME}):
        return "（需要密度）", " without a density"
    return "", ""


def to_base(value: Decimal, unit: str) -> tuple[Decimal, Dimension]:
    parsed = parse_unit(unit)
    with localcontext() as ctx:
        ctx.prec = PRECISION
        return value * parsed.factor, parsed.dimension


def is_dimension(unit: str, *dimensions: Dimension) -> bool:
    try:
        return parse_unit(unit).dimension in dimensions
    except UnknownUnit:
        return False


# Units written in Chinese by the lab's methods, as an English report prints them.
UNIT_NAMES_EN = {"无量纲": "dimensionless", "无": "—"}


def printed_unit(unit: str, language: str) -> str:
    """The unit as a report in `language` ("zh" or "en") prints it: pH's 无量纲 is "dimensionless"
    in English; symbols (mg/L, °C, μS/cm) are the same in both."""
    return UNIT_NAMES_EN.get(unit, unit) if language == "en" else unit
