"""Concentration and uncertainty of a standard solution prepared by dilution (pure functions).

c = c_parent × aliquot / final volume (with a density where the parent's amount and the aliquot
are measured in different dimensions). The relative standard uncertainties of the independent
inputs combine in quadrature (JJF 1059.1-2012; EURACHEM/CITAC CG4 §8):

    u_rel(c)² = u_rel(parent)² + u_rel(aliquot)² + u_rel(final volume)² [+ u_rel(density)²]

A certified value contributes U/k; glassware and balances contribute their tolerance (maximum
permissible error) as a rectangular distribution, tolerance/√3. Several devices used for one
amount (two pipettings of 5 mL for a 10 mL aliquot) add their standard uncertainties in
quadrature. Everything is Decimal at 40 digits; rounding is for display only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, localcontext

from app.core.errors import InvalidInput
from app.core.units import PRECISION, Dimension, IncompatibleUnits, convert, parse_unit, to_base

SQRT3_DIVISOR = Decimal(3)


class NonPositiveAmount(InvalidInput):
    code = "non_positive_amount"
    message_zh = "{what_zh}必须大于零。"
    message_en = "{what_en} must be greater than zero."


class AliquotExceedsFinalVolume(InvalidInput):
    code = "aliquot_exceeds_final_volume"
    message_zh = "移取量（{aliquot}）大于定容体积（{final_volume}）。"
    message_en = "The aliquot ({aliquot}) is larger than the final volume ({final_volume})."


class GlasswareRequired(InvalidInput):
    code = "glassware_required"
    message_zh = "请填写用于{what_zh}的量器（名称、等级与允差）。"
    message_en = "Give the glassware or balance used for the {what_en} (name, class and tolerance)."


class DensityRequired(InvalidInput):
    code = "density_required"
    message_zh = "母液以 {parent_unit} 定值，按{aliquot_kind_zh}移取需要母液密度。"
    message_en = "The parent is certified in {parent_unit}; an aliquot by {aliquot_kind_en} needs its density."


class UncertaintyRequired(InvalidInput):
    code = "uncertainty_required"
    message_zh = "认定值 {analyte} 缺少扩展不确定度 U 或包含因子 k。"
    message_en = "The certified value of {analyte} needs its expanded uncertainty U and coverage factor k."


@dataclass(frozen=True)
class Device:
    """A volumetric vessel or a balance with its tolerance (± in `unit`)."""

    name: str
    tolerance: Decimal
    unit: str
    glass_class: str = ""

    def standard_uncertainty(self, in_unit: str) -> Decimal:
        with localcontext() as ctx:
            ctx.prec = PRECISION
            return convert(self.tolerance, self.unit, in_unit) / SQRT3_DIVISOR.sqrt()


@dataclass(frozen=True)
class ParentValue:
    """What is being diluted: one analyte's value in the parent and its relative standard
    uncertainty."""

    analyte: str
    value: Decimal
    unit: str
    relative_u: Decimal


@dataclass(frozen=True)
class DilutionStep:
    aliquot: Decimal
    aliquot_unit: str
    final_volume: Decimal
    final_volume_unit: str
    aliquot_devices: tuple[Device, ...]
    final_devices: tuple[Device, ...]
    density: Decimal | None = None  # of the parent, where the dimensions need it
    density_unit: str = "g/mL"
    density_relative_u: Decimal = Decimal(0)


@dataclass(frozen=True)
class BudgetLine:
    """One row of an uncertainty budget (不确定度分量表)."""

    component: str  # parent | aliquot | final_volume | density
    value: Decimal
    unit: str
    standard_uncertainty: Decimal
    relative_u: Decimal
    note: str = ""


@dataclass(frozen=True)
class DilutionResult:
    analyte: str
    concentration: Decimal
    unit: str
    relative_u: Decimal
    budget: tuple[BudgetLine, ...]

    @property
    def standard_uncertainty(self) -> Decimal:
        with localcontext() as ctx:
            ctx.prec = PRECISION
            return self.concentration * self.relative_u


def relative_u_certified(analyte: str, value: Decimal, expanded: Decimal | None, k: Decimal | None) -> Decimal:
    """u_rel of a certified value: (U/k)/value."""
    if expanded is None or k is None:
        raise UncertaintyRequired(analyte=analyte)
    if value <= 0 or k <= 0 or expanded < 0:
        raise NonPositiveAmount(what_zh="认定值、U 与 k", what_en="The certified value, U and k")
    with localcontext() as ctx:
        ctx.prec = PRECISION
        return expanded / k / value


def combine(relatives: Sequence[Decimal]) -> Decimal:
    """Root sum of squares. The squares and the root are exact to twice the working precision,
    then rounded once: the result never falls below its largest term (a dilution through
    glassware of zero tolerance keeps the parent's u_rel, not one digit less)."""
    with localcontext() as ctx:
        ctx.prec = 2 * PRECISION + 2
        root = sum((r * r for r in relatives), Decimal(0)).sqrt()
    with localcontext() as ctx:
        ctx.prec = PRECISION
        return +root


def _amount_line(component: str, amount: Decimal, unit: str, devices: Sequence[Device],
                 what_zh: str, what_en: str) -> BudgetLine:
    if amount <= 0:
        raise NonPositiveAmount(what_zh=what_zh, what_en=what_en)
    if not devices:
        raise GlasswareRequired(what_zh=what_zh, what_en=what_en.lower())
    for device in devices:
        if device.tolerance < 0:
            raise NonPositiveAmount(what_zh="量器允差", what_en="A tolerance")
    u = combine([device.standard_uncertainty(unit) for device in devices])
    with localcontext() as ctx:
        ctx.prec = PRECISION
        note = "; ".join(f"{d.name} {d.glass_class} ±{d.tolerance} {d.unit}".replace("  ", " ") for d in devices)
        return BudgetLine(component, amount, unit, u, u / amount, note)


def dilute(parent: ParentValue, step: DilutionStep, output_unit: str) -> DilutionResult:
    """The diluted concentration of one analyte with its uncertainty budget."""
    output = parse_unit(output_unit)
    if output.dimension != Dimension.MASS_CONCENTRATION:
        raise IncompatibleUnits(from_unit=parent.unit, to_unit=output.symbol, hint_zh="", hint_en="")
    parent_base, parent_dim = to_base(parent.value, parent.unit)
    if parent.value <= 0:
        raise NonPositiveAmount(what_zh="母液浓度", what_en="The parent's value")
    if parent_dim not in (Dimension.MASS_CONCENTRATION, Dimension.MASS_FRACTION):
        raise IncompatibleUnits(from_unit=parent.unit, to_unit=output.symbol, hint_zh="", hint_en="")
    aliquot_line = _amount_line("aliquot", step.aliquot, step.aliquot_unit, step.aliquot_devices, "移取量", "Aliquot")
    final_line = _amount_line("final_volume", step.final_volume, step.final_volume_unit, step.final_devices,
                              "定容体积", "Final volume")
    final_ml, final_dim = to_base(step.final_volume, step.final_volume_unit)
    if final_dim != Dimension.VOLUME:
        raise IncompatibleUnits(from_unit=step.final_volume_unit, to_unit="mL", hint_zh="", hint_en="")
    aliquot_base, aliquot_dim = to_base(step.aliquot, step.aliquot_unit)
    if aliquot_dim not in (Dimension.VOLUME, Dimension.MASS):
        raise IncompatibleUnits(from_unit=step.aliquot_unit, to_unit="mL", hint_zh="", hint_en="")

    lines = [BudgetLine("parent", parent.value, parent.unit, _times(parent.value, parent.relative_u),
                        parent.relative_u), aliquot_line, final_line]
    needs_density = (parent_dim == Dimension.MASS_CONCENTRATION) != (aliquot_dim == Dimension.VOLUME)
    with localcontext() as ctx:
        ctx.prec = PRECISION
        aliquot_ml = aliquot_base if aliquot_dim == Dimension.VOLUME else None
        if needs_density:
            density = _density(step, parent, aliquot_dim)
            lines.append(BudgetLine("density", step.density, step.density_unit,
                                    step.density * step.density_relative_u, step.density_relative_u))
            # a volume aliquot of a mass-fraction parent weighs V·ρ; a mass aliquot of a
            # concentration parent occupies m/ρ
            if aliquot_dim == Dimension.VOLUME:
                aliquot_base = aliquot_base * density
            else:
                aliquot_base = aliquot_ml = aliquot_base / density
        if aliquot_ml is not None and aliquot_ml > final_ml:
            raise AliquotExceedsFinalVolume(aliquot=f"{step.aliquot} {step.aliquot_unit}",
                                            final_volume=f"{step.final_volume} {step.final_volume_unit}")
        # mg/L × mL / mL = mg/L; mg/kg × g / mL = mg/L (1 mg/kg·g = 1 μg; 1 μg/mL = 1 mg/L)
        concentration = parent_base * aliquot_base / final_ml / output.factor
        if concentration.as_tuple().exponent > 0:  # 1.0E+2 is 100: keep the plain form, exactly
            concentration = concentration.quantize(Decimal(1))
    relative_u = combine([line.relative_u for line in lines])
    return DilutionResult(parent.analyte, concentration, output.symbol, relative_u, tuple(lines))


def _density(step: DilutionStep, parent: ParentValue, aliquot_dim: Dimension) -> Decimal:
    if step.density is None:
        raise DensityRequired(parent_unit=parent.unit,
                              aliquot_kind_zh="体积" if aliquot_dim == Dimension.VOLUME else "质量",
                              aliquot_kind_en="volume" if aliquot_dim == Dimension.VOLUME else "mass")
    if step.density <= 0:
        raise NonPositiveAmount(what_zh="密度", what_en="The density")
    base, dimension = to_base(step.density, step.density_unit)
    if dimension != Dimension.DENSITY:
        raise IncompatibleUnits(from_unit=step.density_unit, to_unit="g/mL", hint_zh="", hint_en="")
    return base


def _times(a: Decimal, b: Decimal) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = PRECISION
        return a * b


def expanded_for_display(value: Decimal, relative_u: Decimal, k: Decimal = Decimal(2)) -> tuple[str, str]:
    """(value, U) as printed: U to two significant figures, the value to the same decimal place,
    both rounded half to even (GB/T 8170-2008)."""
    with localcontext() as ctx:
        ctx.prec = PRECISION
        expanded = abs(value * relative_u * k)
        if expanded == 0:
            return (f"{value.normalize():f}", "0")
        exponent = expanded.adjusted() - 1  # two significant figures
        quantum = Decimal(1).scaleb(exponent)
        shown_u = expanded.quantize(quantum, rounding=ROUND_HALF_EVEN)
        if shown_u.adjusted() > expanded.adjusted():  # 9.96 → 10: still two figures
            quantum = Decimal(1).scaleb(exponent + 1)
            shown_u = expanded.quantize(quantum, rounding=ROUND_HALF_EVEN)
        shown_value = value.quantize(quantum, rounding=ROUND_HALF_EVEN)
    return (f"{shown_value:f}", f"{shown_u:f}")
